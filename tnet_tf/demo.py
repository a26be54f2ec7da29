"""The Megapixel-MNIST demo: TNet against two CNNs, end to end on a CPU.

`make demo` runs `run_demo`, the project's main job on its embedded data:

1. Generate Megapixel MNIST canvases in memory (`tnet_tf.data.megapixel_mnist`).
2. Pretrain the tiny CNN backbone on single MNIST digits at random scales
   (the demo's stand-in for the ImageNet-pretrained backbones of the paper);
   all three models start from these weights.
3. Train, for the same number of epochs on the same canvases:
   - TNet (`megapixel_mnist_tnet`);
   - the same CNN on the canvas downscaled (antialiased) to the resolution
     where its multiply-adds match TNet's at `equal_flops_locations`;
   - the same CNN on the full-resolution canvas.
4. Evaluate TNet at every setting of `evaluation_locations` and both CNNs on
   the test canvases: top-1, multiply-adds and ms per image in one table
   (`results.csv`, `results.json`, `table.txt`).
5. Export TNet as a SavedModel (one endpoint per location setting), draw the
   attended boxes of test canvases and the accuracy-vs-multiply-adds plot.

Every step shows a progress bar. The working directory (default
`runs/demo`) holds, besides the files above, `pretrain/`, one training
folder per model (`tnet/`, `cnn_downscaled/`, `cnn_full/`, each with a
resumable backup while it trains and `checkpoints/final.keras` after),
`export/` and `figures/`.
"""

import dataclasses
import json
import os
import time
import typing

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import backbones
from tnet_tf import experiment
from tnet_tf import export
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
# Model names in the result rows.
TNET = "TNet"
CNN_DOWNSCALED = "CNN downscaled"
CNN_FULL = "CNN full resolution"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo's data and training.

    Args:
        train_canvases, test_canvases: canvases per split.
        canvas_size, num_digits, num_label_digits, num_noise: the Megapixel
            MNIST generator's settings (see `MegapixelMNIST`).
        pretrain_digits: single-digit images the backbone is pretrained on.
        pretrain_size: side of those images; each digit is scaled to a random
            side between `pretrain_scales` and placed at random.
        pretrain_epochs: epochs of backbone pretraining.
        epochs: training epochs of each of the three models.
        batch_size: training batch size of every stage.
        learning_rate: Adam's learning rate of every stage.
        backbone_learning_rate: Adam's learning rate of the pretrained
            backbone while the three models train (a second optimizer, as
            the paper's fine-tuning); `None` uses `learning_rate`.
        evaluation_locations: TNet's settings evaluated (one level: `k`).
        equal_flops_locations: the TNet setting whose multiply-adds the
            downscaled CNN matches.
        pictures: test canvases drawn with their attended boxes.
        seed: seed of data, initialisation and location sampling.
    """

    train_canvases: int = 3000
    test_canvases: int = 1000
    canvas_size: int = 256
    num_digits: int = 1
    num_label_digits: int = 1
    num_noise: int = 10
    pretrain_digits: int = 12000
    pretrain_size: int = 48
    pretrain_scales: tuple = (7, 28)
    pretrain_epochs: int = 8
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 2e-3
    backbone_learning_rate: typing.Optional[float] = 2e-4
    evaluation_locations: tuple = (0, 1, 2, 3, 4, 5)
    equal_flops_locations: int = 1
    pictures: int = 8
    seed: int = 0

    def __post_init__(self):
        for key in ("train_canvases", "test_canvases", "pretrain_digits",
                    "pretrain_epochs", "epochs", "batch_size", "pictures"):
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
    test_canvases=8,
    pretrain_digits=64,
    pretrain_epochs=1,
    epochs=1,
    batch_size=8,
    evaluation_locations=(0, 1, 2),
    pictures=2,
)


# === Data ===


def generate_canvases(config, split, count, progress):
    """`(canvases uint8 (count, S, S), labels int64 (count,))`.

    Kept as grayscale uint8 (64 KiB a canvas at 256 px, 1/12 of float RGB);
    `canvas_dataset` converts batches on the fly.
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
    chunk = 100
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        (
            canvases[start : start + size],
            labels[start : start + size],
            _,
        ) = generator.generate(split, size, start)
        progress.add(size)
    return canvases, labels


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


def digit_pretraining_set(config):
    """Single MNIST digits of the train split at random scales and places.

    Returns:
        `(images float32 (N, s, s, 3) in [-1, 1], labels int64 (N,))` with
        `N = config.pretrain_digits` and `s = config.pretrain_size`.
    """
    rng = np.random.default_rng([config.seed, 7])
    digits, digit_labels = megapixel_mnist.load_mnist_digits()
    pool = megapixel_mnist.MegapixelMNIST(seed=config.seed).digit_pool("train")
    count, side = config.pretrain_digits, config.pretrain_size
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
    """Trains the tiny CNN on single digits; returns `(weights path, top1)`."""
    path = os.path.join(workdir, PRETRAINED_WEIGHTS)
    images, labels = digit_pretraining_set(config)
    split = max(1, len(images) // 10)
    keras.utils.set_random_seed(config.seed)
    with backbones.loading_saved_weights():  # random on purpose
        model = presets.build_model(presets.get(CNN_FULL_PRESET).replace(
            name="digit_pretraining", image_size=config.pretrain_size
        ))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    model.fit(
        images[split:],
        labels[split:],
        batch_size=2 * config.batch_size,
        epochs=config.pretrain_epochs,
        verbose=verbose,
    )
    top1 = model.evaluate(
        images[:split], labels[:split], verbose=0, return_dict=True
    )["top1"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.feature_extractor.backbone_model.save_weights(path)
    return path, float(top1)


def train(model, dataset, config, directory, verbose):
    """Fits `model` on `dataset` in `directory` (resumable) and saves its
    final checkpoint; returns the training time in seconds."""
    keras.utils.set_random_seed(config.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        backbone_optimizer=(
            None if config.backbone_learning_rate is None
            else keras.optimizers.Adam(config.backbone_learning_rate)
        ),
    )
    started = time.perf_counter()
    training.fit(
        model,
        dataset,
        epochs=config.epochs,
        workdir=directory,
        best_checkpoint=False,
        tensorboard=False,
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    path = os.path.join(directory, experiment.FINAL_CHECKPOINT)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save(path)
    return seconds


def evaluate_row(model, name, canvases, labels, setting, side):
    """One table row: top-1, multiply-adds and ms per image of `model` on
    `canvases` at `side` px (`setting`: TNet's locations, None for a CNN)."""
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
    return {
        "model": name,
        "locations": "" if setting is None else ",".join(map(str, setting)),
        "input_px": side,
        "top1": float(result["top1"]),
        "macs": int(macs),
        "ms_per_image": timing["ms_per_image"],
    }


# === Report ===

TABLE_COLUMNS = [
    ("model", lambda row: row["model"]),
    ("locations", lambda row: row["locations"] or "-"),
    ("input px", lambda row: row["input_px"]),
    ("top-1 %", lambda row: f"{100 * row['top1']:.1f}"),
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


def run_demo(workdir="runs/demo", config=None, verbose=1):
    """Runs the whole demo in `workdir` and returns its result rows.

    Args:
        workdir: output folder (created).
        config: a `DemoConfig` (default: the full demo).
        verbose: 1 shows Keras progress bars, 2 one line per epoch, 0 none
            (the stage headers are always printed).

    Returns:
        A list of row dicts (`model`, `locations`, `input_px`, `top1`,
        `macs`, `ms_per_image`), as in `results.csv`.
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
        f"Generating Megapixel MNIST: {config.train_canvases} train and "
        f"{config.test_canvases} test canvases of {config.canvas_size} px"
    )
    progress = keras.utils.Progbar(
        config.train_canvases + config.test_canvases,
        unit_name="canvas",
        verbose=verbose,
    )
    train_canvases, train_labels = generate_canvases(
        config, "train", config.train_canvases, progress
    )
    test_canvases, test_labels = generate_canvases(
        config, "test", config.test_canvases, progress
    )

    def train_set(side):
        return canvas_dataset(
            train_canvases, train_labels, config.batch_size, side,
            shuffle_seed=config.seed,
        )

    header(
        f"Pretraining the tiny CNN on {config.pretrain_digits} single digits "
        f"({config.pretrain_epochs} epochs)"
    )
    weights, pretrain_top1 = pretrain_backbone(config, workdir, verbose)
    print(f"digit top-1 on held-out digits: {100 * pretrain_top1:.1f}%")

    header(f"Training TNet ({config.epochs} epochs)")
    keras.utils.set_random_seed(config.seed)
    tnet = presets.build_model(presets.get(TNET_PRESET).replace(
        image_size=config.canvas_size,
        backbone_weights=weights,
        seed=config.seed,
    ))
    seconds = {TNET: train(
        tnet, train_set(None), config, os.path.join(workdir, "tnet"), verbose
    )}
    tnet_macs = profiling.profile(
        tnet, config.canvas_size, [config.equal_flops_locations]
    )["flops"]
    cnns = {
        CNN_DOWNSCALED: ("cnn_downscaled",
                           equal_flops_resolution(tnet_macs)[0]),
        CNN_FULL: ("cnn_full", config.canvas_size),
    }
    for name, (folder, side) in cnns.items():
        header(f"Training the {name} at {side} px ({config.epochs} epochs)")
        keras.utils.set_random_seed(config.seed)
        cnn = presets.build_model(presets.get(CNN_FULL_PRESET).replace(
            name=folder, image_size=side, backbone_weights=weights
        ))
        seconds[name] = train(
            cnn, train_set(side), config, os.path.join(workdir, folder),
            verbose,
        )
        cnns[name] = (cnn, side)

    header("Evaluating on the test canvases")
    settings = [[k] for k in config.evaluation_locations]
    progress = keras.utils.Progbar(
        len(settings) + len(cnns), unit_name="model", verbose=verbose
    )
    rows = []
    for setting in settings:
        rows.append(evaluate_row(
            tnet, TNET, test_canvases, test_labels, setting,
            config.canvas_size,
        ))
        progress.add(1)
    for name, (cnn, side) in cnns.items():
        rows.append(evaluate_row(
            cnn, name, test_canvases, test_labels, None, side
        ))
        progress.add(1)

    header("Exporting TNet and drawing pictures")
    export.export_saved_model(
        tnet, os.path.join(workdir, "export", "saved_model"), settings
    )
    figures = os.path.join(workdir, "figures")
    os.makedirs(figures, exist_ok=True)
    pictures = model_inputs(test_canvases[: config.pictures])
    # At the model's default setting (3 locations): several boxes to see.
    outputs = tnet(pictures, training=False)
    viz.attention_grid_png(
        os.path.join(figures, "attention.png"),
        pictures,
        {key: np.asarray(value) for key, value in outputs.items()
         if key != "location_probs"},
        labels=test_labels[: config.pictures],
    )
    viz.accuracy_vs_flops_png(
        os.path.join(figures, "accuracy_vs_flops.png"),
        accuracy_series(rows),
        title="Megapixel MNIST (test canvases)",
        x_label="multiply-adds per image (millions)",
        log_x=True,
    )

    header("Results")
    table = experiment.format_table(
        rows, TABLE_COLUMNS, notes=[""] + summary_lines(rows, config)
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
            "training_seconds": seconds,
            "total_seconds": total,
        }, stream, indent=2)
    return rows
