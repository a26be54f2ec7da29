"""TNet inference on an image file of any size, reading only what each
level needs.

A dense input holds the whole image as a float tensor (a 16k x 16k photo is
3 GB in float32; TensorFlow's JPEG decoder refuses to decode it at all).
Here a JPEG stays encoded: every box TNet reads (the whole image at level
1, then each attended region) is decoded at the coarsest DCT scaling ratio
(libjpeg's `ratio` 1, 2, 4 or 8, at most `max_ratio`) that still gives the
base resolution on both sides, from level 1's decode when the ratio is the
same, else from its own window (`tf.io.decode_and_crop_jpeg`). Other
formats (PNG, GIF, BMP) are decoded once to uint8 and every box is sampled
straight from that array: no full-size float copy. See
`tnet_tf.lazy_regions` for the readers.

It plugs into TNet's traversal without copying it: a `LazyImage` is the
call's `images`, an empty `tf.SparseTensor` of the image's dense shape
`(1, H, W, 3)`, so the shape checks and the regions' geometry see the true
size while no pixel is allocated; its `reader_class` is what
`TNet.region_reader` returns for it. Inference only, eager, one image per
call.

Compared with the dense path (the decoded image, `2 x - 1`, resized):
`max_ratio=1` reads a JPEG as the dense path does, up to float rounding
(regions pixel for pixel). With `ratio > 1`, a box is a DCT-scaled decode
(an average of `ratio x ratio` pixels) sampled where the dense path's
bilinear resize samples single pixels, so logits move a little
(BENCHMARKS.md reports by how much). PNG boxes equal the dense path's up to
float rounding of the sample coordinates.

Example:
>>> outputs = lazy_reading.classify_file(model, "photo.jpg")
>>> outputs["logits"].shape
TensorShape([1, num_classes])
"""

import os

import tensorflow as tf

from tnet_tf import lazy_regions
from tnet_tf.lazy_regions import RATIOS
from tnet_tf.lazy_regions import ImageTooLargeError  # noqa: F401
from tnet_tf.lazy_regions import UnreadableImageError
from tnet_tf.lazy_regions import decode_ratio  # noqa: F401

JPEG_MAGIC = b"\xff\xd8\xff"


class LazyImage(tf.SparseTensor):
    """One image as a TNet input: an empty `SparseTensor` of dense shape
    `(1, height, width, 3)` (the size without the pixels); subclasses name
    the `reader_class` that reads its regions."""

    reader_class = None

    def __init__(self, height, width):
        super().__init__(
            indices=tf.zeros((0, 4), tf.int64),
            values=tf.zeros((0,), tf.float32),
            dense_shape=[1, height, width, 3],
        )
        self.height, self.width = int(height), int(width)


class EncodedImage(LazyImage):
    """A JPEG as a TNet input, kept encoded (read by `JpegRegions`).

    Args:
        contents: the JPEG's bytes (a scalar string tensor or `bytes`).
        max_ratio: the largest DCT scaling ratio a box may be decoded at
            (1, 2, 4 or 8); 1 decodes every box at full resolution, as the
            dense path.

    Raises:
        UnreadableImageError: the bytes are not a JPEG.
    """

    reader_class = lazy_regions.JpegRegions

    def __init__(self, contents, max_ratio=8):
        if max_ratio not in RATIOS:
            raise ValueError(
                f"`max_ratio` must be one of {RATIOS}, got {max_ratio!r}."
            )
        contents = tf.convert_to_tensor(contents, tf.string)
        try:
            shape = tf.io.extract_jpeg_shape(contents)
        except tf.errors.OpError as error:
            raise lazy_regions.decode_error(error, "JPEG header") from None
        super().__init__(*(int(side) for side in shape[:2]))
        self.contents = contents
        self.max_ratio = max_ratio


class DecodedImage(LazyImage):
    """An image decoded once to uint8 `(height, width, 3)` as a TNet input
    (read by `ArrayRegions`, never converted to float in full)."""

    reader_class = lazy_regions.ArrayRegions

    def __init__(self, pixels):
        pixels = tf.convert_to_tensor(pixels)
        if pixels.dtype != tf.uint8 or pixels.shape.rank != 3:
            raise ValueError(
                f"`pixels` must be uint8 (height, width, 3), got "
                f"{pixels.dtype.name} {tuple(pixels.shape)}."
            )
        super().__init__(*pixels.shape[:2])
        self.pixels = pixels


def open_image(contents, max_ratio=8):
    """The `LazyImage` of an encoded image: an `EncodedImage` for a JPEG,
    else (PNG, GIF, BMP) a `DecodedImage` of its uint8 decode.

    Raises:
        UnreadableImageError: the bytes are not an image, or it does not
            decode in full (e.g. truncated).
    """
    contents = tf.convert_to_tensor(contents, tf.string)
    if contents.numpy()[:3] == JPEG_MAGIC:
        return EncodedImage(contents, max_ratio=max_ratio)
    try:
        pixels = tf.io.decode_image(
            contents, channels=3, dtype=tf.uint8, expand_animations=False
        )
    except tf.errors.OpError as error:
        raise lazy_regions.decode_error(error, "whole image") from None
    return DecodedImage(pixels)


def classify_image(model, image, locations_per_level=None):
    """TNet's outputs for a `LazyImage` (greedy selection, inference)."""
    # `call` itself: Keras' `__call__` would rebuild the input as a plain
    # SparseTensor (losing what the reader needs).
    return model.call(
        image,
        training=False,
        locations_per_level=locations_per_level,
        selection="greedy",
    )


def classify_file(model, path, locations_per_level=None, max_ratio=8):
    """TNet's outputs for the image file at `path` at full resolution,
    reading only the regions it attends (greedy selection, inference).

    Args:
        model: a `TNet`.
        path: a JPEG (read lazily), or a PNG, GIF or BMP (decoded once to
            uint8).
        locations_per_level: as `TNet.call`; the config's by default.
        max_ratio: see `EncodedImage`.

    Returns:
        `TNet.call`'s output dict for a batch of one image.

    Raises:
        UnreadableImageError: the file is not an image, or it does not
            decode (e.g. truncated); the message names the file.
        ImageTooLargeError: TensorFlow's JPEG decoder cannot decode it at
            the ratios `max_ratio` allows.
    """
    contents = tf.io.read_file(os.fspath(path))
    try:
        image = open_image(contents, max_ratio=max_ratio)
        return classify_image(model, image, locations_per_level)
    except (UnreadableImageError, ImageTooLargeError) as error:
        raise type(error)(f"{os.fspath(path)}: {error}") from None


def classify_files(model, paths, locations_per_level=None, max_ratio=8):
    """`classify_file` for each of `paths`, in order (a list of output
    dicts, one image each)."""
    return [
        classify_file(model, path, locations_per_level, max_ratio)
        for path in paths
    ]
