"""The predict verb's one inference path: image files -> per-image outputs.

- `expand_images`: glob patterns -> the files, each once.
- `image_dataset`: files read, decoded and preprocessed as in evaluation,
  in `tf.data` batches.
- `predict_images`: `(path, outputs)` per readable file, in batches (or
  one by one at full resolution, `predict_lazy`); unreadable files are
  skipped and reported (`unreadable_reason`).
"""

import glob
import os

import keras
import tensorflow as tf
from absl import logging

from tnet_tf import viz
from tnet_tf.data import augment
from tnet_tf.experiment import predict_lazy


def expand_images(patterns):
    """The files matching glob `patterns` (a string or a list), sorted per
    pattern, each once.

    Raises:
        FileNotFoundError: no file matches.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    paths = {}
    for pattern in patterns:
        for path in sorted(glob.glob(os.fspath(pattern), recursive=True)):
            if os.path.isfile(path):
                paths.setdefault(path, None)
    if not paths:
        raise FileNotFoundError(
            f"No image file matches {', '.join(map(repr, patterns))}."
        )
    return list(paths)


def image_dataset(paths, image_size, batch_size):
    """`(paths, images)` batches: each file read, decoded and preprocessed
    as in evaluation (`augment.preprocess_for_evaluation`), in order; files
    that cannot be read or decoded are left out."""

    def load(path):
        encoded = tf.io.read_file(path)
        return path, augment.preprocess_for_evaluation(encoded, image_size)

    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(paths))
    dataset = dataset.map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.ignore_errors()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def unreadable_reason(path):
    """Why `path` cannot be read as an image (one line)."""
    try:
        augment.decode_image(tf.io.read_file(path))
    except tf.errors.OpError as error:
        return error.message.strip().splitlines()[0]
    return "could not be read"


def predict_images(
    predictor,
    paths,
    *,
    setting=None,
    batch_size=32,
    on_skip=None,
    progress=False,
    lazy=False,
):
    """Yields `(path, outputs for that image)` for each readable file of
    `paths`, in order, predicted in batches of `batch_size` (or with
    `lazy`, one by one at full resolution: `predict_lazy.predict_files`).

    `on_skip(path, reason)` is called for each file that cannot be read or
    decoded (default: a logged warning); `progress` shows a Keras
    `Progbar` of the files done.
    """
    if on_skip is None:

        def on_skip(path, reason):
            logging.warning("Skipped %s: %s", path, reason)

    paths = list(dict.fromkeys(os.fspath(p) for p in paths))
    if lazy:
        yield from predict_lazy.predict_files(
            predictor,
            paths,
            setting=setting,
            on_skip=on_skip,
            progress=progress,
        )
        return
    bar = keras.utils.Progbar(len(paths), unit_name="image")
    done = 0
    dataset = image_dataset(paths, predictor.image_size, batch_size)
    for batch_paths, images in dataset:
        outputs = predictor.predict(images, setting)
        for index, path in enumerate(batch_paths.numpy()):
            path = path.decode()
            while paths[done] != path:  # files the dataset left out
                on_skip(paths[done], unreadable_reason(paths[done]))
                done += 1
            done += 1
            yield path, viz.outputs_for_image(outputs, index)
        if progress:
            bar.update(done)
    for path in paths[done:]:
        on_skip(path, unreadable_reason(path))
    if progress:
        bar.update(len(paths), finalize=True)
