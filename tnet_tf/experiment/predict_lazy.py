"""The predict verb's `--lazy` way: each file classified at full resolution
by `tnet_tf.lazy_reading.classify_file` (a JPEG read region by region, other
formats decoded once to uint8) instead of resized to the model's input size.

- `predict_files`: `(path, outputs for that image)` per readable file, as
  `image_files.predict_images` yields them.
- `picture_pixels`: the image to draw the attended boxes on, a JPEG
  decoded at a reduced DCT ratio when it is large.
"""

import os

import keras
import tensorflow as tf
from absl import logging

from tnet_tf import lazy_reading
from tnet_tf import viz

# A JPEG is drawn on a decode whose longer side is at least this (or its
# own size): large enough for the picture, small for a gigapixel file.
PICTURE_SIDE = 2048


def check_lazy_model(predictor):
    """Raises `ValueError` unless `predictor` holds a Keras TNet (a
    SavedModel's endpoints take dense images; a baseline attends no
    region)."""
    model = predictor.model
    if model is None or not hasattr(model, "region_reader"):
        raise ValueError(
            "--lazy reads the regions a TNet attends: it needs a .keras "
            f"checkpoint or a preset directory of a TNet, not a "
            f"{predictor.kind} {type(model).__name__ if model else ''}".strip()
            + "."
        )
    return model


def predict_files(predictor, paths, *, setting=None, on_skip, progress=False):
    """Yields `(path, outputs for that image)` for each readable file of
    `paths`, in order, each classified at full resolution, one at a time;
    `on_skip(path, reason)` is called for each file that cannot be read."""
    model = check_lazy_model(predictor)
    bar = keras.utils.Progbar(len(paths), unit_name="image")
    for done, path in enumerate(paths, start=1):
        try:
            outputs = lazy_reading.classify_file(model, path, setting)
        except (
            lazy_reading.UnreadableImageError,
            lazy_reading.ImageTooLargeError,
            tf.errors.OpError,
        ) as error:
            reason = getattr(error, "message", None) or str(error)
            reason = reason.strip().splitlines()[0]
            on_skip(path, reason.removeprefix(f"{path}: "))
        else:
            yield path, viz.outputs_for_image(outputs, 0)
        if progress:
            bar.update(done, finalize=done == len(paths))


def picture_pixels(path):
    """uint8 `(h, w, 3)` of the image at `path` to draw on: a JPEG at the
    coarsest DCT ratio keeping its longer side at least `PICTURE_SIDE` px
    (TensorFlow's decoder refuses a 16k JPEG in full); others in full."""
    path = os.fspath(path)
    magic = lazy_reading.JPEG_MAGIC
    # Only the magic bytes: the file's contents as Python bytes would copy
    # the whole file (45 MiB for a 16k px JPEG) for a format check.
    with tf.io.gfile.GFile(path, "rb") as file:
        is_jpeg = file.read(len(magic)) == magic
    contents = tf.io.read_file(path)
    if is_jpeg:
        height, width = (
            int(s) for s in tf.io.extract_jpeg_shape(contents)[:2]
        )
        ratio = 1
        for candidate in lazy_reading.RATIOS:
            if max(height, width) // candidate >= PICTURE_SIDE:
                ratio = candidate
        logging.debug("Drawing %s at 1/%d", path, ratio)
        return tf.io.decode_jpeg(contents, channels=3, ratio=ratio).numpy()
    return tf.io.decode_image(
        contents, channels=3, expand_animations=False
    ).numpy()
