"""The demo's data: Megapixel MNIST canvases and single digits.

- `generate_canvases`: canvases of a split with their labels and digit
  centres, kept as uint8; `generate_parts` the train, validation and test
  canvases of a run (`Part`s) under one progress bar.
- `model_inputs`: uint8 canvases as the models' float RGB input.
- `canvas_dataset`: batches of canvases at a side; `training_data` the
  train and validation batches a model fits on.
- `digit_pretraining_set`: single MNIST digits at random scales and places,
  the backbone's pretraining (and scoring) set.
"""

import collections

import keras
import numpy as np
import tensorflow as tf

from tnet_tf.data import megapixel_mnist
from tnet_tf.demo.config import SPLIT_SEEDS

# Canvases of one part of a run, as `generate_canvases` returns them.
Part = collections.namedtuple("Part", ["canvases", "labels", "centres"])


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


def generate_parts(config, verbose):
    """`(train, validation, test)` `Part`s of `config`, under one progress
    bar: validation canvases are further canvases of the train split, held
    out for early stopping; test canvases are the test split's."""
    progress = keras.utils.Progbar(
        config.train_canvases
        + config.validation_canvases
        + config.test_canvases,
        unit_name="canvas",
        verbose=verbose,
    )
    train = Part(
        *generate_canvases(config, "train", config.train_canvases, progress)
    )
    validation = Part(
        *generate_canvases(
            config,
            "train",
            config.validation_canvases,
            progress,
            start=config.train_canvases,
        )
    )
    test = Part(
        *generate_canvases(config, "test", config.test_canvases, progress)
    )
    return train, validation, test


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
    return (
        dataset.batch(batch_size)
        .map(
            lambda images, labels: (model_inputs(images, side), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def training_data(train, validation, config, side):
    """`(train batches, validation batches)` of two `Part`s at `side` px:
    the train canvases shuffled every epoch, the validation ones by 100."""
    return (
        canvas_dataset(
            train.canvases,
            train.labels,
            config.batch_size,
            side,
            shuffle_seed=config.seed,
        ),
        canvas_dataset(validation.canvases, validation.labels, 100, side),
    )


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
