"""`run_demo`: the demo's steps in order, each under a numbered header.

Also the quieting of TensorFlow's INFO lines while TNet is exported
(`_tensorflow_logs_at_warning`).
"""

import contextlib
import logging
import os
import time

import tensorflow as tf
from absl import logging as absl_logging

from tnet_tf import export
from tnet_tf.demo import data
from tnet_tf.demo import pictures
from tnet_tf.demo import report
from tnet_tf.demo import training
from tnet_tf.demo.config import TNET
from tnet_tf.demo.config import DemoConfig

# Headers `run_demo` prints: data, pretraining, three models, evaluation,
# export and pictures, results.
STAGES = 8


def run_demo(workdir="runs/demo", config=None, verbose=1):
    """Runs the whole demo in `workdir` and returns its result rows.

    Args:
        workdir: output folder (created).
        config: a `DemoConfig` (default: the full demo).
        verbose: 1 shows Keras progress bars, 2 one line per epoch, 0 none
            (the stage headers are always printed).

    Returns:
        A list of row dicts (`model`, `locations`, `image_size`, `top1`,
        `localization`, `chance_localization`, `flops`, `ms_per_image`), as
        in `results.csv`.
    """
    config = config or DemoConfig()
    os.makedirs(workdir, exist_ok=True)
    stages = _Stages(STAGES)

    stages.header(
        f"Generating Megapixel MNIST: {config.train_canvases} train, "
        f"{config.validation_canvases} validation and "
        f"{config.test_canvases} test canvases of {config.canvas_size} px"
    )
    train_part, validation, test = data.generate_parts(config, verbose)

    stages.header(
        f"Pretraining the tiny CNN on {config.pretrain_digits} single digits "
        f"({config.pretrain_epochs} epochs)"
    )
    weights, pretrain_top1 = training.pretrain_backbone(
        config, workdir, verbose
    )
    print(
        f"digit top-1 on the test split's digits: {100 * pretrain_top1:.1f}%"
    )

    stages.header(
        f"Training TNet at {config.locations} locations (at most "
        f"{config.max_epochs} epochs, early stopping)"
    )
    tnet = training.build_tnet(config, weights)
    trainings = {
        TNET: training.train(
            tnet,
            *data.training_data(train_part, validation, config, None),
            config,
            os.path.join(workdir, "tnet"),
            verbose,
        )
    }
    print(report.training_lines({TNET: trainings[TNET]})[0])

    cnns = {}
    for name, (folder, side, epochs) in training.cnn_runs(
        config, tnet
    ).items():
        stages.header(
            f"Training the {name} at {side} px (at most {epochs} epochs, "
            "early stopping)"
        )
        cnn = training.build_cnn(config, folder, side, weights)
        trainings[name] = training.train(
            cnn,
            *data.training_data(train_part, validation, config, side),
            config,
            os.path.join(workdir, folder),
            verbose,
            max_epochs=epochs,
        )
        print(report.training_lines({name: trainings[name]})[0])
        cnns[name] = (cnn, side)

    stages.header("Evaluating on the test canvases")
    settings = config.evaluated_settings()
    rows = report.evaluate_rows(
        tnet, settings, cnns, test, config.canvas_size, verbose
    )

    stages.header("Exporting TNet and drawing pictures")
    with _tensorflow_logs_at_warning():
        export.export_saved_model(
            tnet, os.path.join(workdir, "export", "saved_model"), settings
        )
    # The trained TNet as a preset directory: `TNet.from_preset(path)`.
    tnet.save_to_preset(
        os.path.join(workdir, "export", "preset"),
        class_names=[str(digit) for digit in range(10)],
    )
    pictures.draw_pictures(
        tnet,
        test.canvases[: config.pictures],
        test.labels[: config.pictures],
        rows,
        os.path.join(workdir, "figures"),
    )

    stages.header("Results")
    table = report.results_table(rows, config, trainings)
    print(table)
    total = stages.elapsed()
    print(f"\nTotal {total:.0f} s; outputs in {workdir}/")
    report.write_results(
        workdir, table, rows, config, trainings, pretrain_top1, total
    )
    return rows


class _Stages:
    """Prints `[i/count] text  (s so far)` headers, timed from creation."""

    def __init__(self, count):
        self.count = count
        self.started = time.perf_counter()
        self.numbers = iter(range(1, count + 1))

    def elapsed(self):
        return time.perf_counter() - self.started

    def header(self, text):
        print(
            f"\n[{next(self.numbers)}/{self.count}] {text}  "
            f"({self.elapsed():.0f} s so far)",
            flush=True,
        )


@contextlib.contextmanager
def _tensorflow_logs_at_warning():
    """Silences TensorFlow's INFO lines while a SavedModel is written
    (renamed signature inputs, sharding times, assets): nothing in them
    asks the user to act."""
    # TensorFlow logs through both its own logger and absl's. A filter, not
    # setLevel: absl's logger keeps a level cache that setLevel may not
    # clear.
    loggers = (tf.get_logger(), absl_logging.get_absl_logger())
    for logger in loggers:
        logger.addFilter(_warnings_and_above)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(_warnings_and_above)


def _warnings_and_above(record):
    return record.levelno >= logging.WARNING
