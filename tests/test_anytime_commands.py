"""Anytime inference where users meet the model, run as a user runs it:
`python -m experiments.evaluate --anytime_threshold/--anytime_budget`
(rows beside the fixed settings) and `python -m experiments.predict
--anytime_threshold` (each row's locations and multiply-adds), checked
against `model.predict_anytime` on the same batches in this process."""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tnet_tf import experiment
from tnet_tf import presets
from tnet_tf.data import augment
from tnet_tf.data import megapixel_mnist
from tnet_tf.experiment import predict as predict_lib

RECORDS = 4  # the tiny_test recipe evaluates one batch of 2
THRESHOLD = 0.12  # an untrained model's top probability is near 0.1
IMAGES = 3


def _finish(process):
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


def _read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Records, an untrained tiny_test TNet saved as the run's final
    checkpoint, a few image files, and both commands started side by
    side."""
    root = tmp_path_factory.mktemp("anytime_commands")
    data_dir = str(root / "records")
    megapixel_mnist.MegapixelMNIST(
        canvas_size=96, num_digits=3, num_label_digits=2, num_noise=2
    ).write_records(
        data_dir, "test", RECORDS, 1, num_workers=1, show_progress=False
    )
    workdir = root / "run"
    model = presets.build("tiny_test")
    size = tuple(model.config.image_size)
    model(np.zeros((1, *size, 3), "float32"))
    checkpoint = workdir / "checkpoints" / "final.keras"
    checkpoint.parent.mkdir(parents=True)
    model.save(str(checkpoint))
    images = root / "images"
    images.mkdir()
    paths = []
    rng = np.random.default_rng(0)
    for index in range(IMAGES):
        pixels = rng.integers(0, 256, (80 + 8 * index, 90, 3), np.uint8)
        path = str(images / f"image_{index}.png")
        tf.io.write_file(path, tf.io.encode_png(pixels))
        paths.append(path)
    started = {
        "evaluate": helpers.start_module(
            "experiments.evaluate",
            "--recipe=tiny_test",
            f"--workdir={workdir}",
            f"--data_dir={data_dir}",
            "--locations=2,1",
            f"--anytime_threshold={THRESHOLD}",
            "--anytime_budget=1.5",
        ),
        "predict": helpers.start_module(
            "experiments.predict",
            f"--images={images}/*",
            f"--checkpoint={checkpoint}",
            f"--output={root / 'predictions.csv'}",
            "--batch_size=2",
            f"--anytime_threshold={THRESHOLD}",
        ),
    }
    return {
        "root": root,
        "data_dir": data_dir,
        "workdir": str(workdir),
        "checkpoint": str(checkpoint),
        "model": model,
        "paths": paths,
        "finished": {name: _finish(p) for name, p in started.items()},
    }


def test_evaluate_adds_anytime_rows(setup):
    returncode, stdout, stderr = setup["finished"]["evaluate"]
    assert returncode == 0, stderr[-3000:]
    assert "Anytime" in stdout and f"threshold {THRESHOLD:g}" in stdout
    rows = _read_csv(os.path.join(setup["workdir"], "evaluation", "test.csv"))
    assert [row["anytime"] for row in rows] == [
        "",
        f"threshold {THRESHOLD:g}",
        "budget 1.5/image",
    ]
    fixed = rows[0]
    assert fixed["locations"] == "2,1" and fixed["mean_locations"] == ""
    # The same batches in this process.
    model = setup["model"]
    recipe = experiment.resolve_recipe("tiny_test", ())
    dataset = experiment.make_input(recipe, setup["data_dir"], "test", False)
    for row, options in zip(
        rows[1:], ({"threshold": THRESHOLD}, {"budget": 3})
    ):
        outs, labels = [], []
        for images, batch_labels in dataset:
            outs.append(model.predict_anytime(images, **options))
            labels.append(np.asarray(batch_labels))
        labels = np.concatenate(labels)
        logits = np.concatenate([out.logits for out in outs])
        steps = np.concatenate([out.locations for out in outs])
        macs = np.concatenate([out.multiply_adds for out in outs])
        assert row["locations"] == "2,1"  # the most an image attends
        assert float(row["top1"]) == pytest.approx(
            np.mean(logits.argmax(-1) == labels)
        )
        assert float(row["mean_locations"]) == pytest.approx(steps.mean())
        # A step is a cell and the cell below it: 2 regions.
        assert float(row["attended"]) == pytest.approx(2 * steps.mean())
        assert int(row["flops"]) == round(macs.mean())
    assert float(rows[2]["mean_locations"]) == 1.5


def test_predict_rows_report_locations_and_multiply_adds(setup):
    returncode, stdout, stderr = setup["finished"]["predict"]
    assert returncode == 0, stderr[-3000:]
    rows = _read_csv(setup["root"] / "predictions.csv")
    assert list(rows[0]) == predict_lib.csv_columns(5, anytime=True)
    assert [row["path"] for row in rows] == setup["paths"]
    model = setup["model"]
    size = tuple(model.config.image_size)
    images = np.stack(
        [
            augment.preprocess_for_evaluation(tf.io.read_file(p), size)
            for p in setup["paths"]
        ]
    )
    # The command's batches of 2.
    outs = [
        model.predict_anytime(images[start : start + 2], threshold=THRESHOLD)
        for start in (0, 2)
    ]
    steps = np.concatenate([out.locations for out in outs])
    macs = np.concatenate([out.multiply_adds for out in outs])
    levels = np.concatenate([out.attended_levels for out in outs])
    logits = np.concatenate([out.logits for out in outs])
    assert [int(row["locations_used"]) for row in rows] == steps.tolist()
    assert [int(row["multiply_adds"]) for row in rows] == macs.tolist()
    for index, row in enumerate(rows):
        assert int(row["top1_class"]) == logits[index].argmax()
        # Only the attended slots are listed.
        attended = [int(v) for v in levels[index] if v > 0]
        assert json.loads(row["attended_levels"]) == attended
        assert len(attended) == 1 + 2 * steps[index]


def test_predict_one_image_prints_what_it_used(setup):
    result = helpers.run_module(
        "experiments.predict",
        f"--image={setup['paths'][0]}",
        f"--checkpoint={setup['checkpoint']}",
        f"--output_png={setup['root'] / 'one.png'}",
        "--anytime_threshold=1.0",
        "--locations=2,1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model = setup["model"]
    assert "Locations used: 2, multiply-adds: " in result.stdout
    printed = int(result.stdout.split("multiply-adds: ")[1].split()[0])
    size = tuple(model.config.image_size)
    cost = model.predict_anytime(
        np.zeros((1, *size, 3), "float32"), max_locations=1
    ).cost
    # Never sure at 1.0: both steps, each followed by an aggregation.
    assert printed == (
        cost.level_one
        + 2 * cost.per_step
        + cost.aggregation(3)
        + cost.aggregation(5)
    )
    assert os.path.getsize(setup["root"] / "one.png") > 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--anytime_threshold=1.5"], "(0, 1]"),
        (["--anytime_threshold=0.5", "--lazy"], "does not go with --lazy"),
        (["--anytime_budget=2"], "one --anytime_threshold"),
    ],
)
def test_predict_usage_errors(setup, arguments, message):
    result = helpers.run_module(
        "experiments.predict",
        f"--images={setup['paths'][0]}",
        f"--checkpoint={setup['checkpoint']}",
        f"--output={setup['root'] / 'never.csv'}",
        *arguments,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert message in result.stderr
    assert not os.path.exists(setup["root"] / "never.csv")
