"""TNet inference on an image file of any size, reading only what each
level needs.

A dense input holds the whole image as a float tensor (a 16k x 16k photo is
3 GB in float32; TensorFlow's JPEG decoder refuses to decode it at all).
Here a JPEG stays encoded: every box TNet reads (the whole image at level
1, then each attended region) is decoded at the coarsest DCT scaling ratio
(libjpeg's `ratio` 1, 2, 4 or 8, at most `max_ratio`) that still gives the
base resolution on both sides, or finer: level 1's decode, finer than it
needs while it holds at most 1024 x 1024 px, serves every region it has
the resolution for; any other region is decoded from its own window
(`tf.io.decode_and_crop_jpeg`). Other
formats (PNG, GIF, BMP) are decoded once to uint8 and every box is sampled
straight from that array: no full-size float copy. See
`tnet_tf.lazy_regions` for the readers.

It plugs into TNet's traversal without copying it: a `LazyImage` is the
call's `images`, an empty `tf.SparseTensor` of the image's dense shape
`(1, H, W, 3)`, so the shape checks and the regions' geometry see the true
size while no pixel is allocated; its `reader_class` is what
`TNet.region_reader` returns for it. Inference only, one image per call.

The readers are TensorFlow ops, so `classify_image` runs `TNet.call` as a
`tf.function` of the image's bytes (or uint8 pixels) with its size dynamic:
one trace per model, setting and `max_ratio` serves every file, and the
backbone runs compiled, not layer by layer (`LazyImage.function`). The
SavedModel endpoint `serve_jpeg_lazy` (`tnet_tf.export`) is the same call.

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
import weakref

import tensorflow as tf

from tnet_tf import geometry
from tnet_tf import lazy_regions
from tnet_tf.lazy_regions import RATIOS
from tnet_tf.lazy_regions import ImageTooLargeError
from tnet_tf.lazy_regions import UnreadableImageError
from tnet_tf.lazy_regions import decode_ratio  # noqa: F401
from tnet_tf.models import traversal_limits

JPEG_MAGIC = b"\xff\xd8\xff"


def _static_or_tensor(side):
    """A side as a Python int where known now, else an int32 tensor."""
    known = tf.get_static_value(side)
    if known is not None:
        return int(known)
    return tf.cast(side, tf.int32)


class LazyImage(tf.SparseTensor):
    """One image as a TNet input: an empty `SparseTensor` of dense shape
    `(1, height, width, 3)` (the size without the pixels); subclasses name
    the `reader_class` that reads its regions.

    Sides are ints, or int32 tensors in a trace (the size given by the
    bytes). `component` is the one tensor the image is rebuilt from in a
    `tf.function` (`function`, with `static_arguments`), `component_spec`
    its signature.
    """

    reader_class = None
    component_spec = None

    def __init__(self, height, width):
        self.height, self.width = map(_static_or_tensor, (height, width))
        super().__init__(
            indices=tf.zeros((0, 4), tf.int64),
            values=tf.zeros((0,), tf.float32),
            dense_shape=tf.stack(
                [1, tf.cast(height, tf.int64), tf.cast(width, tf.int64), 3]
            ),
        )

    @property
    def component(self):
        raise NotImplementedError

    def static_arguments(self):
        """The constructor's arguments besides the component."""
        return {}

    def check(self, config, locations):
        """Raises before a call what the traced call cannot say clearly."""

    def function(self, fn, *signature):
        """`fn(lazy image, *args)` as a `tf.function` of the image's
        `component` (JPEG bytes or uint8 pixels) and `args` (of the
        `signature`'s `tf.TensorSpec`s), for images of this type and static arguments:
        the image is rebuilt inside the trace with its size dynamic, so one
        trace serves every size. Returns a callable taking `(lazy image,
        *args)`; its `traced` is the `tf.function`.

        A `LazyImage` cannot be a `tf.function`'s argument itself (its
        reader and bytes would be lost to a plain `SparseTensor`).
        """
        # The type and arguments, not the image: its bytes would stay
        # cached with the function.
        kind, static = type(self), self.static_arguments()
        traced = tf.function(
            lambda component, *args: fn(kind(component, **static), *args),
            input_signature=[self.component_spec, *signature],
        )

        def call(lazy, *args):
            return traced(lazy.component, *args)

        call.traced = traced
        return call


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
    component_spec = tf.TensorSpec([], tf.string)

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
        super().__init__(shape[0], shape[1])
        self.contents = contents
        self.max_ratio = max_ratio

    @property
    def component(self):
        return self.contents

    def static_arguments(self):
        return {"max_ratio": self.max_ratio}

    def check(self, config, locations):
        """Raises `ImageTooLargeError` where a box would be decoded at a
        ratio TensorFlow's decoder refuses for this image."""
        # The finest ratio is the deepest level's.
        height, width, side = self.height, self.width, config.base_resolution
        sides, ratio = (height, width), self.max_ratio
        for _ in range(traversal_limits.cell_levels(locations) + 1):
            ratio = min(ratio, decode_ratio(*sides, side, self.max_ratio))
            sides = tuple(
                geometry.cell_layout(
                    s, config.grid_size, config.cell_fraction
                ).cell_size
                for s in sides
            )
        rows, columns = -(-height // ratio), -(-width // ratio)
        limit = lazy_regions.DECODER_LIMIT_BYTES
        if rows * columns * 3 >= limit:
            raise ImageTooLargeError(
                f"TensorFlow's JPEG decoder refuses to decode this "
                f"{height}x{width} px image at 1/{ratio} ({rows}x{columns} "
                f"px, {limit // 2**20} MiB or more, even a window of it): "
                f"allow a coarser `max_ratio` (now {self.max_ratio})."
            )


class DecodedImage(LazyImage):
    """An image decoded once to uint8 `(height, width, 3)` as a TNet input
    (read by `ArrayRegions`, never converted to float in full)."""

    reader_class = lazy_regions.ArrayRegions
    component_spec = tf.TensorSpec([None, None, 3], tf.uint8)

    def __init__(self, pixels):
        pixels = tf.convert_to_tensor(pixels)
        if pixels.dtype != tf.uint8 or pixels.shape.rank != 3:
            raise ValueError(
                f"`pixels` must be uint8 (height, width, 3), got "
                f"{pixels.dtype.name} {tuple(pixels.shape)}."
            )
        shape = tf.shape(pixels)
        super().__init__(shape[0], shape[1])
        self.pixels = pixels

    @property
    def component(self):
        return self.pixels


def open_image(contents, max_ratio=8):
    """The `LazyImage` of an encoded image: an `EncodedImage` for a JPEG,
    else (PNG, GIF, BMP) a `DecodedImage` of its uint8 decode.

    Raises:
        UnreadableImageError: the bytes are not an image, or it does not
            decode in full (e.g. truncated).
    """
    contents = tf.convert_to_tensor(contents, tf.string)
    # Only the magic bytes: `.numpy()` of the whole would copy the file.
    if tf.strings.substr(contents, 0, 3).numpy() == JPEG_MAGIC:
        return EncodedImage(contents, max_ratio=max_ratio)
    try:
        pixels = tf.io.decode_image(
            contents, channels=3, dtype=tf.uint8, expand_animations=False
        )
    except tf.errors.OpError as error:
        raise lazy_regions.decode_error(error, "whole image") from None
    return DecodedImage(pixels)


def call_lazy(model, image, locations):
    """`TNet.call` on a `LazyImage` (greedy selection, inference), traced
    or not: what `classify_image` compiles and the SavedModel endpoint
    serves."""
    # `call` itself: Keras' `__call__` would rebuild the input as a plain
    # SparseTensor (losing what the reader needs).
    return model.call(
        image,
        training=False,
        locations_per_level=locations,
        selection="greedy",
    )


# Compiled `call_lazy`s per model and (image type, its static
# arguments, locations).
_CALLS = weakref.WeakKeyDictionary()


def classify_image(model, image, locations_per_level=None):
    """TNet's outputs for a `LazyImage` (greedy selection, inference),
    from a compiled call cached per model, setting and image type.

    Raises:
        ValueError: the image is too small for the model or the setting.
        ImageTooLargeError: see `classify_file`.
        UnreadableImageError: a box does not decode.
    """
    locations = model.resolve_locations(locations_per_level)
    # Eagerly, where the size is known: clear errors before any trace.
    traversal_limits.check_images(model.config, model.name, image, locations)
    image.check(model.config, locations)
    key = (type(image), tuple(image.static_arguments().items()), locations)
    calls = _CALLS.setdefault(model, {})
    if key not in calls:
        calls[key] = image.function(
            lambda lazy: call_lazy(model, lazy, locations)
        )
    try:
        return calls[key](image)
    except tf.errors.InvalidArgumentError as error:
        if "_decode" not in error.message:
            raise
        where = "level 1" if "level_1_decode" in error.message else "region"
        raise lazy_regions.decode_error(error, where) from None


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
