"""The Megapixel-MNIST demo: TNet against two CNNs, end to end on a CPU.

`make demo` runs `run_demo`, the project's main job on its embedded data:

1. Generate Megapixel MNIST canvases in memory (`tnet_tf.data.megapixel_mnist`):
   train canvases, validation canvases (more canvases of the train split,
   held out for early stopping) and test canvases (the test split's digits).
2. Pretrain the tiny CNN backbone on single MNIST digits at random scales
   (the demo's stand-in for the ImageNet-pretrained backbones of the paper);
   all three models start from these weights.
3. Train, on the same canvases, each until its validation top-1 stops
   improving (early stopping, best epoch kept):
   - TNet (`megapixel_mnist_tnet`) at `locations` locations;
   - the same CNN on the canvas downscaled (antialiased) to the resolution
     where its multiply-adds match TNet's at `equal_flops_locations`;
   - the same CNN on the full-resolution canvas.
4. Evaluate TNet at every setting of `evaluation_locations` and both CNNs on
   the test canvases: top-1, TNet's localization (the fraction of canvases
   where an attended cell contains the digit's centre, beside its chance
   level), multiply-adds and ms per image in one table (`results.csv`,
   `results.json`, `table.txt`).
5. Export TNet as a SavedModel (one endpoint per location setting), draw the
   attended boxes and the location module's probability map of test
   canvases, and the accuracy-vs-multiply-adds plot.

Every step shows a progress bar. The working directory (default
`runs/demo`) holds, besides the files above, `pretrain/`, one training
folder per model (`tnet/`, `cnn_downscaled/`, `cnn_full/`, each with a
resumable backup while it trains, `checkpoints/best.keras` and
`checkpoints/final.keras`), `export/` and `figures/`.
"""
import contextlib
import dataclasses
import json
import logging
import math
import os
import time
import typing

import keras
import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from tnet_tf import backbones
from tnet_tf import experiment
from tnet_tf import export
from tnet_tf import geometry
from tnet_tf import presets
from tnet_tf import profiling
from tnet_tf import training
from tnet_tf import viz
from tnet_tf.data import megapixel_mnist

TNET_PRESET = "megapixel_mnist_tnet"
CNN_FULL_PRESET = "megapixel_mnist_cnn"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
TABLE_TXT = "table.txt"
PRETRAINED_WEIGHTS = os.path.join("pretrain", "tiny_cnn_digits.weights.h5")
BEST_CHECKPOINT = os.path.join("checkpoints", "best.keras")
# Keeps the pretraining set of each split its own random stream.
SPLIT_SEEDS = {"train": 0, "test": 1}
# Test-split digits the pretrained backbone is scored on.
PRETRAIN_TEST_DIGITS = 2000
# Model names in the result rows.
TNET = "TNet"
CNN_DOWNSCALED = "CNN downscaled"
CNN_FULL = "CNN full resolution"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo's data and training.

    Args:
        train_canvases, validation_canvases, test_canvases: canvases per
            part. Validation canvases are further canvases of the train
            split (the same digit instances, other canvases), held out for
            early stopping; test canvases use the test split's digits.
        canvas_size, num_digits, num_label_digits, num_noise: the Megapixel
            MNIST generator's settings (see `MegapixelMNIST`).
        pretrain_digits: single-digit images the backbone is pretrained on.
        pretrain_size: side of those images; each digit is scaled to a random
            side between `pretrain_scales` and placed at random.
        pretrain_epochs: epochs of backbone pretraining.
        pretrain_dropout_rate: dropout of the pretraining network (before
            and after pooling); with only 4,000 training digits it is what
            lets the backbone generalise to the test split's digits.
        max_epochs: the most epochs TNet and the downscaled CNN train.
        full_cnn_max_epochs: the most epochs of the full-resolution CNN,
            which costs about 30 times TNet's multiply-adds per image: the
            15-minute budget of `make demo` allows it only a few epochs,
            and the table says when it ended still improving.
        patience: each model stops after this many epochs without a better
            validation top-1 and keeps its best epoch's weights.
        batch_size: training batch size of every stage.
        learning_rate: Adam's learning rate of every stage.
        backbone_learning_rate: Adam's learning rate of the pretrained
            backbone while the three models train (a second optimizer, as
            the paper's fine-tuning); `None` uses `learning_rate`.
        locations: the number of cells TNet attends while it trains and by
            default (`locations_per_level=(locations,)`).
        evaluation_locations: TNet's settings evaluated (one level: `k`);
            `locations` is always evaluated too.
        equal_flops_locations: the TNet setting whose multiply-adds the
            downscaled CNN matches.
        pictures: test canvases drawn with their attended boxes.
        seed: seed of data, initialisation and location sampling.
    """

    train_canvases: int = 5000
    validation_canvases: int = 500
    test_canvases: int = 1000
    canvas_size: int = 256
    num_digits: int = 1
    num_label_digits: int = 1
    num_noise: int = 10
    pretrain_digits: int = 24000
    pretrain_size: int = 32
    pretrain_scales: tuple = (10, 28)
    pretrain_epochs: int = 12
    pretrain_dropout_rate: float = 0.2
    max_epochs: int = 20
    full_cnn_max_epochs: int = 4
    patience: int = 3
    batch_size: int = 32
    learning_rate: float = 2e-3
    backbone_learning_rate: typing.Optional[float] = None
    locations: int = 8
    evaluation_locations: tuple = (0, 1, 2, 3, 4, 5, 8)
    equal_flops_locations: int = 1
    pictures: int = 8
    seed: int = 0

    def __post_init__(self):
        for key in ("train_canvases", "validation_canvases", "test_canvases",
                    "pretrain_digits", "pretrain_epochs", "max_epochs",
                    "full_cnn_max_epochs", "patience", "batch_size",
                    "locations", "pictures"):
            if getattr(self, key) < 1:
                raise ValueError(
                    f"`{key}` must be >= 1, got {getattr(self, key)}."
                )
        low, high = self.pretrain_scales
        if not 1 <= low <= high <= self.pretrain_size:
            raise ValueError(
                f"`pretrain_scales` must satisfy 1 <= low <= high <= "
                f"pretrain_size={self.pretrain_size}, got {(low, high)}."
            )
        if not 0.0 <= self.pretrain_dropout_rate < 1.0:
            raise ValueError(
                "`pretrain_dropout_rate` must be in [0, 1), got "
                f"{self.pretrain_dropout_rate}."
            )
        if self.equal_flops_locations not in self.evaluation_locations:
            raise ValueError(
                f"`equal_flops_locations`={self.equal_flops_locations} must "
                f"be one of `evaluation_locations` "
                f"{self.evaluation_locations}."
            )

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# Small enough for a test: the same steps on a few canvases.
SMOKE = DemoConfig(
    train_canvases=16,
    validation_canvases=8,
    test_canvases=8,
    pretrain_digits=64,
    pretrain_epochs=1,
    max_epochs=2,
    full_cnn_max_epochs=2,
    patience=1,
    batch_size=8,
    locations=2,
    evaluation_locations=(0, 1, 2),
    pictures=2,
)


# === Data ===


def generate_canvases(config, split, count, progress, start=0):
    """`(canvases uint8 (count, S, S), labels int64 (count,), digit centres
    float32 (count, 2))`: canvases `start .. start + count - 1` of `split`.

    Kept as grayscale uint8 (64 KiB a canvas at 256 px, 1/12 of float RGB);
    `canvas_dataset` converts batches on the fly. A centre is the label
    digit's `(y, x)` as a fraction of the canvas side.
    """
    generator = megapixel_mnist.MegapixelMNIST(
        canvas_size=config.canvas_size,
        num_digits=config.num_digits,
        num_label_digits=config.num_label_digits,
        num_noise=config.num_noise,
        seed=config.seed,
    )
    canvases = np.zeros(
        (count, config.canvas_size, config.canvas_size), np.uint8
    )
    labels = np.zeros((count,), np.int64)
    centres = np.zeros((count, 2), np.float32)
    chunk = 100
    for offset in range(0, count, chunk):
        size = min(chunk, count - offset)
        part = slice(offset, offset + size)
        canvases[part], labels[part], boxes = generator.generate(
            split, size, start + offset
        )
        # Label-class digits come first.
        centres[part] = (boxes[:, 0, :2] + boxes[:, 0, 2:]) / 2
        progress.add(size)
    return canvases, labels, centres


def model_inputs(canvases, side=None):
    """uint8 canvases -> float32 RGB in [-1, 1], resized to `side` (with
    antialiasing) when given."""
    images = megapixel_mnist.to_model_inputs(canvases)
    if side is not None and side != images.shape[-2]:
        images = tf.image.resize(images, (side, side), antialias=True)
    return images


def canvas_dataset(canvases, labels, batch_size, side=None, shuffle_seed=None):
    """Batches `(images, labels)` of the canvases at `side` px (default:
    their own size), shuffled every epoch when `shuffle_seed` is given."""
    dataset = tf.data.Dataset.from_tensor_slices((canvases, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(canvases), seed=shuffle_seed)
    return dataset.batch(batch_size).map(
        lambda images, labels: (model_inputs(images, side), labels),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)


def digit_pretraining_set(config, split="train", count=None):
    """Single MNIST digits of `split` at random scales and places.

    Returns:
        `(images float32 (N, s, s, 3) in [-1, 1], labels int64 (N,))` with
        `N = count or config.pretrain_digits` and `s = config.pretrain_size`.
    """
    rng = np.random.default_rng([config.seed, 7, SPLIT_SEEDS[split]])
    digits, digit_labels = megapixel_mnist.load_mnist_digits()
    pool = megapixel_mnist.MegapixelMNIST(seed=config.seed).digit_pool(split)
    count, side = count or config.pretrain_digits, config.pretrain_size
    rows = rng.choice(pool, count)
    low, high = config.pretrain_scales
    scales = rng.integers(low, high + 1, count)
    canvas = np.zeros((count, side, side), np.float32)
    # One antialiased resize per scale, then paste at a random corner.
    for scale in np.unique(scales):
        chosen = np.flatnonzero(scales == scale)
        resized = tf.image.resize(
            digits[rows[chosen]][..., None].astype(np.float32),
            (scale, scale),
            antialias=True,
        ).numpy()[..., 0]
        corners = rng.integers(0, side - scale + 1, (len(chosen), 2))
        for index, (y, x), digit in zip(chosen, corners, resized):
            canvas[index, y : y + scale, x : x + scale] = digit
    images = megapixel_mnist.to_model_inputs(np.clip(canvas, 0.0, 255.0))
    return np.asarray(images), digit_labels[rows].astype(np.int64)


# === Models ===


def equal_flops_resolution(tnet_macs, candidates=range(16, 257, 1)):
    """The side at which the tiny CNN's multiply-adds are closest to TNet's.

    Multiply-adds of the CNN are counted (`tnet_tf.profiling`) on a
    fully convolutional model, so one model serves every candidate side.
    """
    # Only counted, never trained: no random-initialization warning.
    with backbones.loading_saved_weights():
        model = presets.build(CNN_FULL_PRESET)
    best = None
    for side in candidates:
        macs = profiling.profile(model, side)["flops"]
        if best is None or abs(macs - tnet_macs) < abs(best[1] - tnet_macs):
            best = (side, macs)
        if macs > tnet_macs:
            break
    return best


def pretrain_backbone(config, workdir, verbose):
    """Trains the tiny CNN on single digits of the train split.

    Returns:
        `(weights path, top1)`, the top-1 on digits of the test split (other
        instances than the canvases' training digits) at the same scales.
    """
    path = os.path.join(workdir, PRETRAINED_WEIGHTS)
    images, labels = digit_pretraining_set(config)
    keras.utils.set_random_seed(config.seed)
    with backbones.loading_saved_weights():  # random on purpose
        model = presets.build_model(presets.get(CNN_FULL_PRESET).replace(
            name="digit_pretraining",
            image_size=config.pretrain_size,
            backbone_dropout_rate=config.pretrain_dropout_rate,
            dropout_rate=config.pretrain_dropout_rate,
        ))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    model.fit(
        images,
        labels,
        batch_size=2 * config.batch_size,
        epochs=config.pretrain_epochs,
        verbose=verbose,
    )
    test_images, test_labels = digit_pretraining_set(
        config, "test", PRETRAIN_TEST_DIGITS
    )
    top1 = model.evaluate(
        test_images, test_labels, verbose=0, return_dict=True
    )["top1"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.feature_extractor.backbone_model.save_weights(path)
    return path, float(top1)


def train(model, train_data, validation_data, config, directory, verbose,
          max_epochs=None):
    """Fits `model` in `directory` (resumable) until its validation top-1
    stops improving, keeps its best epoch and saves it as the final
    checkpoint.

    Returns:
        A dict: `seconds` (training time), `epochs` (epochs run),
        `best_epoch` and `validation_top1` (of the kept weights), and
        `stopped_early` (False when `max_epochs` (default
        `config.max_epochs`) ended the run while the model was still
        improving).
    """
    keras.utils.set_random_seed(config.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        backbone_optimizer=(
            None if config.backbone_learning_rate is None
            else keras.optimizers.Adam(config.backbone_learning_rate)
        ),
    )
    started = time.perf_counter()
    history = training.fit(
        model,
        train_data,
        epochs=max_epochs or config.max_epochs,
        workdir=directory,
        validation_data=validation_data,
        callbacks=[keras.callbacks.EarlyStopping(
            monitor="val_top1", mode="max", patience=config.patience
        )],
        tensorboard=False,
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    # `fit` keeps the epoch of highest val_top1 here.
    model.load_weights(os.path.join(directory, BEST_CHECKPOINT))
    path = os.path.join(directory, experiment.FINAL_CHECKPOINT)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save(path)
    scores = history.history["val_top1"]
    best = int(np.argmax(scores))
    return {
        "seconds": seconds,
        "epochs": history.epoch[-1] + 1,
        "best_epoch": history.epoch[best] + 1,
        "validation_top1": float(scores[best]),
        "stopped_early": len(scores) - 1 - best >= config.patience,
    }


def centres_inside(boxes, centres):
    """`(N, T)` bool: whether box `[n, t]` (normalised `(ymin, xmin, ymax,
    xmax)`, `(N or 1, T, 4)`) contains centre `n` (`(N, 2)`, `(y, x)`)."""
    y, x = centres[:, None, 0], centres[:, None, 1]
    return (
        (boxes[..., 0] <= y) & (y < boxes[..., 2])
        & (boxes[..., 1] <= x) & (x < boxes[..., 3])
    )


def attended_centre_fraction(boxes, levels, centres):
    """Fraction of images where an attended cell contains the digit centre.

    Args:
        boxes: `(N, T, 4)` normalised `(ymin, xmin, ymax, xmax)`, TNet's
            `attended_boxes`; level-1 boxes (the whole image) do not count.
        levels: `(N, T)` TNet's `attended_levels`.
        centres: `(N, 2)` normalised `(y, x)` of each image's digit.
    """
    inside = (np.asarray(levels) >= 2) & centres_inside(boxes, centres)
    return float(np.mean(np.any(inside, axis=1)))


def chance_localization(centres, locations, grid_size, cell_fraction, side):
    """`attended_centre_fraction` expected of `locations` distinct cells of
    the grid over a `side` px image, drawn uniformly at random: the level a
    policy must beat."""
    cells = np.asarray(
        geometry.grid_boxes(side, side, grid_size, cell_fraction), np.float64
    ) / side
    covering = np.sum(centres_inside(cells[None], centres), axis=1)
    total = grid_size * grid_size
    missing = [
        math.comb(total - int(m), locations) / math.comb(total, locations)
        for m in covering
    ]
    return float(1.0 - np.mean(missing))


def localization(model, canvases, centres, setting, batch_size=100):
    """`attended_centre_fraction` of TNet at `setting` on `canvases`."""
    found = 0.0
    for start in range(0, len(canvases), batch_size):
        part = slice(start, start + batch_size)
        outputs = model(
            model_inputs(canvases[part]),
            training=False,
            locations_per_level=setting,
        )
        found += attended_centre_fraction(
            np.asarray(outputs["attended_boxes"]),
            np.asarray(outputs["attended_levels"]),
            centres[part],
        ) * len(canvases[part])
    return found / len(canvases)


def evaluate_row(model, name, canvases, labels, setting, side, centres=None):
    """One table row: top-1, multiply-adds and ms per image of `model` on
    `canvases` at `side` px (`setting`: TNet's locations, None for a CNN),
    and for TNet the localization (`localization`) with its chance level."""
    kwargs = {} if setting is None else {"locations_per_level": setting}
    result = model.evaluate(
        canvas_dataset(canvases, labels, 100, side),
        verbose=0,
        return_dict=True,
        **kwargs,
    )
    macs = profiling.profile(model, side, setting)["flops"]
    timing = experiment.measure_inference(
        model, model_inputs(canvases[:32], side), setting,
        repetitions=5, warmup=1,
    )
    located = chance = None
    if setting is not None:
        located = localization(model, canvases, centres, setting)
        config = model.config
        chance = chance_localization(
            centres, setting[0], config.grid_size, config.cell_fraction,
            side,
        )
    return {
        "model": name,
        "locations": "" if setting is None else ",".join(map(str, setting)),
        "input_px": side,
        "top1": float(result["top1"]),
        "localization": located,
        "chance_localization": chance,
        "macs": int(macs),
        "ms_per_image": timing["ms_per_image"],
    }


# === Report ===

def _percent(fraction):
    return "-" if fraction is None else f"{100 * fraction:.1f}"


TABLE_COLUMNS = [
    ("model", lambda row: row["model"]),
    ("locations", lambda row: row["locations"] or "-"),
    ("input px", lambda row: row["input_px"]),
    ("top-1 %", lambda row: f"{100 * row['top1']:.1f}"),
    ("located %", lambda row: _percent(row["localization"])),
    ("chance %", lambda row: _percent(row["chance_localization"])),
    ("MMACs", lambda row: f"{row['macs'] / 1e6:.2f}"),
    ("ms/image", lambda row: f"{row['ms_per_image']:.2f}"),
]


def comparison(rows, config):
    """The demo's two claims, computed from `rows`.

    Returns:
        A dict: `gain_over_equal_flops` (TNet top-1 at
        `equal_flops_locations` minus the downscaled CNN's, in points) and,
        for the full-resolution CNN, `best_within_third`: the TNet row of
        highest top-1 among those with at most a third of its
        multiply-adds, and `gap_to_full` (full CNN's top-1 minus it).
    """
    tnet = [row for row in rows if row["model"] == TNET]
    low = next(row for row in rows if row["model"] == CNN_DOWNSCALED)
    full = next(row for row in rows if row["model"] == CNN_FULL)
    equal = next(
        row for row in tnet
        if row["locations"] == str(config.equal_flops_locations)
    )
    cheap = [row for row in tnet if 3 * row["macs"] <= full["macs"]]
    best = max(cheap, key=lambda row: row["top1"]) if cheap else None
    return {
        "gain_over_equal_flops": 100 * (equal["top1"] - low["top1"]),
        "best_within_third": best,
        "gap_to_full": (
            None if best is None else 100 * (full["top1"] - best["top1"])
        ),
    }


def summary_lines(rows, config):
    claims = comparison(rows, config)
    lines = [
        f"TNet at {config.equal_flops_locations} location(s) vs the CNN at "
        f"the same multiply-adds: {claims['gain_over_equal_flops']:+.1f} "
        "points."
    ]
    best = claims["best_within_third"]
    if best is not None:
        full = next(r for r in rows if r["model"] == CNN_FULL)
        lines.append(
            f"Best TNet at <= 1/3 of the full-resolution CNN's multiply-adds "
            f"({best['locations']} locations, "
            f"{best['macs'] / full['macs']:.2f}x its MACs): "
            f"{-claims['gap_to_full']:+.1f} points vs the full-resolution CNN."
        )
    return lines


def accuracy_series(rows):
    tnet = [row for row in rows if row["model"] == TNET]
    series = [{
        "name": TNET,
        "flops": [row["macs"] / 1e6 for row in tnet],
        "accuracy": [100 * row["top1"] for row in tnet],
        "annotations": [row["locations"] for row in tnet],
        "kind": "line",
    }]
    for row in rows:
        if row["model"] != TNET:
            series.append({
                "name": f"{row['model']} ({row['input_px']} px)",
                "flops": [row["macs"] / 1e6],
                "accuracy": [100 * row["top1"]],
                "kind": "points",
            })
    return series


# === The demo ===


def training_lines(trainings):
    """One line per model: epochs, the kept epoch and training time."""
    lines = []
    for name, result in trainings.items():
        ending = (
            "stopped early" if result["stopped_early"]
            else "max_epochs reached, still improving"
        )
        lines.append(
            f"{name}: {result['epochs']} epochs ({ending}), kept epoch "
            f"{result['best_epoch']} (validation top-1 "
            f"{100 * result['validation_top1']:.1f}%), "
            f"{result['seconds']:.0f} s"
        )
    return lines


def run_demo(workdir="runs/demo", config=None, verbose=1):
    """Runs the whole demo in `workdir` and returns its result rows.

    Args:
        workdir: output folder (created).
        config: a `DemoConfig` (default: the full demo).
        verbose: 1 shows Keras progress bars, 2 one line per epoch, 0 none
            (the stage headers are always printed).

    Returns:
        A list of row dicts (`model`, `locations`, `input_px`, `top1`,
        `localization`, `chance_localization`, `macs`, `ms_per_image`), as
        in `results.csv`.
    """
    config = config or DemoConfig()
    os.makedirs(workdir, exist_ok=True)
    started = time.perf_counter()
    stages = 8
    stage = iter(range(1, stages + 1))

    def header(text):
        elapsed = time.perf_counter() - started
        print(f"\n[{next(stage)}/{stages}] {text}  ({elapsed:.0f} s so far)",
              flush=True)

    header(
        f"Generating Megapixel MNIST: {config.train_canvases} train, "
        f"{config.validation_canvases} validation and "
        f"{config.test_canvases} test canvases of {config.canvas_size} px"
    )
    progress = keras.utils.Progbar(
        config.train_canvases + config.validation_canvases
        + config.test_canvases,
        unit_name="canvas",
        verbose=verbose,
    )
    train_canvases, train_labels, _ = generate_canvases(
        config, "train", config.train_canvases, progress
    )
    # Further canvases of the train split: held out for early stopping.
    validation_canvases, validation_labels, _ = generate_canvases(
        config, "train", config.validation_canvases, progress,
        start=config.train_canvases,
    )
    test_canvases, test_labels, test_centres = generate_canvases(
        config, "test", config.test_canvases, progress
    )

    def data(side):
        return (
            canvas_dataset(
                train_canvases, train_labels, config.batch_size, side,
                shuffle_seed=config.seed,
            ),
            canvas_dataset(validation_canvases, validation_labels, 100, side),
        )

    header(
        f"Pretraining the tiny CNN on {config.pretrain_digits} single digits "
        f"({config.pretrain_epochs} epochs)"
    )
    weights, pretrain_top1 = pretrain_backbone(config, workdir, verbose)
    print(f"digit top-1 on the test split's digits: {100 * pretrain_top1:.1f}%")

    header(
        f"Training TNet at {config.locations} locations (at most "
        f"{config.max_epochs} epochs, early stopping)"
    )
    keras.utils.set_random_seed(config.seed)
    tnet = presets.build_model(presets.get(TNET_PRESET).replace(
        image_size=config.canvas_size,
        backbone_weights=weights,
        locations_per_level=(config.locations,),
        seed=config.seed,
    ))
    trainings = {TNET: train(
        tnet, *data(None), config, os.path.join(workdir, "tnet"), verbose
    )}
    print(training_lines({TNET: trainings[TNET]})[0])
    tnet_macs = profiling.profile(
        tnet, config.canvas_size, [config.equal_flops_locations]
    )["flops"]
    cnns = {
        CNN_DOWNSCALED: ("cnn_downscaled",
                           equal_flops_resolution(tnet_macs)[0]),
        CNN_FULL: ("cnn_full", config.canvas_size),
    }
    cnn_epochs = {
        CNN_DOWNSCALED: config.max_epochs,
        CNN_FULL: config.full_cnn_max_epochs,
    }
    for name, (folder, side) in cnns.items():
        header(
            f"Training the {name} at {side} px (at most {cnn_epochs[name]} "
            "epochs, early stopping)"
        )
        keras.utils.set_random_seed(config.seed)
        cnn = presets.build_model(presets.get(CNN_FULL_PRESET).replace(
            name=folder, image_size=side, backbone_weights=weights
        ))
        trainings[name] = train(
            cnn, *data(side), config, os.path.join(workdir, folder), verbose,
            max_epochs=cnn_epochs[name],
        )
        print(training_lines({name: trainings[name]})[0])
        cnns[name] = (cnn, side)

    header("Evaluating on the test canvases")
    settings = [
        [k] for k in sorted(set(config.evaluation_locations)
                            | {config.locations})
    ]
    progress = keras.utils.Progbar(
        len(settings) + len(cnns), unit_name="model", verbose=verbose
    )
    rows = []
    for setting in settings:
        rows.append(evaluate_row(
            tnet, TNET, test_canvases, test_labels, setting,
            config.canvas_size, test_centres,
        ))
        progress.add(1)
    for name, (cnn, side) in cnns.items():
        rows.append(evaluate_row(
            cnn, name, test_canvases, test_labels, None, side
        ))
        progress.add(1)

    header("Exporting TNet and drawing pictures")
    with _tensorflow_logs_at_warning():
        export.export_saved_model(
            tnet, os.path.join(workdir, "export", "saved_model"), settings
        )
    draw_pictures(
        tnet, test_canvases[: config.pictures], test_labels[: config.pictures],
        rows, os.path.join(workdir, "figures"),
    )

    header("Results")
    table = experiment.format_table(
        rows, TABLE_COLUMNS,
        notes=[""] + summary_lines(rows, config) + [""]
        + training_lines(trainings),
    )
    print(table)
    total = time.perf_counter() - started
    print(f"\nTotal {total:.0f} s; outputs in {workdir}/")
    with open(os.path.join(workdir, TABLE_TXT), "w") as stream:
        stream.write(table + "\n")
    experiment.write_csv(os.path.join(workdir, RESULTS_CSV), rows)
    with open(os.path.join(workdir, RESULTS_JSON), "w") as stream:
        json.dump({
            "config": dataclasses.asdict(config),
            "rows": rows,
            "comparison": comparison(rows, config),
            "pretrain_top1": pretrain_top1,
            "training": trainings,
            "training_seconds": {
                name: result["seconds"] for name, result in trainings.items()
            },
            "total_seconds": total,
        }, stream, indent=2)
    return rows


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


def draw_pictures(tnet, canvases, labels, rows, folder):
    """`attention.png` (attended boxes at TNet's default locations, with
    the prediction and its confidence), `location_probs.png` (the location
    module's probabilities over the grid) and `accuracy_vs_flops.png`."""
    os.makedirs(folder, exist_ok=True)
    pictures = model_inputs(canvases)
    outputs = tnet(pictures, training=False)
    location_probs = np.asarray(outputs["location_probs"][0])[:, 0]
    outputs = {
        key: np.asarray(value) for key, value in outputs.items()
        if key != "location_probs"
    }
    viz.attention_grid_png(
        os.path.join(folder, "attention.png"), pictures, outputs,
        labels=labels,
    )
    viz.location_probability_png(
        os.path.join(folder, "location_probs.png"),
        pictures,
        location_probs,
        tnet.config.grid_size,
        tnet.config.cell_fraction,
        labels=labels,
        predictions=np.argmax(outputs["logits"], axis=-1),
    )
    viz.accuracy_vs_flops_png(
        os.path.join(folder, "accuracy_vs_flops.png"),
        accuracy_series(rows),
        title="Megapixel MNIST (test canvases)",
        x_label="multiply-adds per image (millions)",
        log_x=True,
    )
