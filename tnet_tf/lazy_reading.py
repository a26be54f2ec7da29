"""TNet inference on a JPEG file that reads only what each level needs.

A dense input holds the whole image as a float tensor (a 16k x 16k photo is
3 GB in float32). Here the image stays encoded: level 1 comes from a reduced
decode (libjpeg's DCT scaling, `ratio` 2, 4 or 8, the largest that keeps
both sides at least the base resolution), and every attended region from
decoding its own window (`tf.io.decode_and_crop_jpeg`) at full resolution,
each then resized to the base resolution as TNet does.

It plugs into TNet's traversal without copying it: `EncodedImage` is the
call's `images`, an empty `tf.SparseTensor` of the image's dense shape
`(1, H, W, 3)`, so the shape checks and the regions' geometry see the true
size while no pixel is allocated; its `reader_class`, `JpegRegions`, is
what `TNet.region_reader` returns for it. Regions are read by their boxes
(`Regions.origins`, `Regions.size`), in eager mode, one image per call.

Compared with the dense path (the decoded image, `2 x - 1`): regions are
equal pixel for pixel (each window is decoded with a margin, so libjpeg's
chroma upsampling at the window's edge does not change it); level 1 differs
when `ratio > 1`, since DCT scaling averages where the bilinear resize of
the whole image samples. `max_ratio=1` decodes level 1 in full: the dense
path's result, up to float rounding.

Example:
>>> outputs = lazy_reading.classify_file(model, "photo.jpg")
>>> outputs["logits"].shape
TensorShape([1, num_classes])
"""

import os

import numpy as np
import tensorflow as tf

from tnet_tf.models import regions as regions_lib

RATIOS = (1, 2, 4, 8)
# Extra pixels decoded around a window: libjpeg's fancy upsampling of the
# chroma reads one pixel past the window's edge.
_MARGIN = 16


class UnreadableJpegError(ValueError):
    """The bytes are not a JPEG that decodes in full."""


def _decode_error(error, what):
    message = error.message.strip().splitlines()[0]
    return UnreadableJpegError(f"cannot decode the JPEG ({what}): {message}")


def level_one_ratio(height, width, side, max_ratio=8):
    """The largest DCT scaling ratio (1, 2, 4 or 8, at most `max_ratio`)
    whose decode is still at least `side` on both sides (libjpeg rounds a
    scaled side up)."""
    ratio = 1
    for candidate in RATIOS:
        if candidate > max_ratio:
            break
        if min(-(-height // candidate), -(-width // candidate)) >= side:
            ratio = candidate
    return ratio


def _to_model_range(pixels):
    """uint8 `[0, 255]` -> float32 `[-1, 1]`, as the dense pipelines."""
    return tf.image.convert_image_dtype(pixels, tf.float32) * 2.0 - 1.0


class JpegRegions(regions_lib.RegionReader):
    """Reads a level's regions from an `EncodedImage`'s bytes: level 1 by a
    reduced decode, regions by decoding their windows (zero outside the
    image, as the grid's padding in `CropRegions`)."""

    def start(self, images):
        if not tf.executing_eagerly():
            raise RuntimeError(
                "JpegRegions reads regions eagerly: call the model outside "
                "tf.function."
            )
        self._image = images

    def read(self, regions):
        image = self._image
        if regions.level == 0:
            ratio = level_one_ratio(
                image.height,
                image.width,
                self.base_resolution,
                image.max_ratio,
            )
            try:
                pixels = tf.io.decode_jpeg(
                    image.contents, channels=3, ratio=ratio
                )
            except tf.errors.OpError as error:
                raise _decode_error(error, f"level 1, ratio {ratio}") from None
            return self._resize(self._cast(_to_model_range(pixels[None])))
        origins = np.asarray(regions.origins).astype(np.int64)
        height, width = (int(side) for side in regions.size)
        # One region at full resolution at a time: each is resized before
        # the next is decoded.
        return tf.concat(
            [
                self._resize(
                    self._cast(self._window(y, x, height, width)[None])
                )
                for y, x in origins
            ],
            axis=0,
        )

    def descend(self, chosen):
        # The regions carry their boxes: nothing follows the traversal.
        pass

    def _cast(self, pixels):
        # As `CropRegions`: resized in the compute dtype.
        return tf.cast(pixels, self.compute_dtype)

    def _window(self, y, x, height, width):
        """The `height x width` box at `(y, x)` (input pixels) in `[-1,
        1]`, zero where it lies outside the image."""
        image = self._image
        top, left = max(y, 0), max(x, 0)
        bottom = min(y + height, image.height)
        right = min(x + width, image.width)
        if bottom <= top or right <= left:
            inside = tf.zeros((0, 0, 3), tf.uint8)
        else:
            # Decode a margin around the box (clipped to the image; the
            # corner on libjpeg's 16 px iMCU grid), then cut the box out.
            y0 = max(top - _MARGIN, 0) // 16 * 16
            x0 = max(left - _MARGIN, 0) // 16 * 16
            y1 = min(bottom + _MARGIN, image.height)
            x1 = min(right + _MARGIN, image.width)
            try:
                decoded = tf.io.decode_and_crop_jpeg(
                    image.contents, [y0, x0, y1 - y0, x1 - x0], channels=3
                )
            except tf.errors.OpError as error:
                raise _decode_error(
                    error, f"region at y={y}, x={x}, {height}x{width} px"
                ) from None
            inside = decoded[top - y0 : bottom - y0, left - x0 : right - x0]
        inside = _to_model_range(inside)
        if (bottom - top, right - left) == (height, width):
            return inside
        # Grid padding: pixels outside the image are 0 (in [-1, 1]).
        pad_top, pad_left = top - y, left - x
        return tf.pad(
            inside,
            [
                [pad_top, height - pad_top - max(bottom - top, 0)],
                [pad_left, width - pad_left - max(right - left, 0)],
                [0, 0],
            ],
        )


class EncodedImage(tf.SparseTensor):
    """One JPEG as a TNet input: an empty `SparseTensor` of dense shape
    `(1, height, width, 3)` (the size without the pixels) that carries the
    encoded `contents` and names `JpegRegions` as its reader.

    Args:
        contents: the JPEG's bytes (a scalar string tensor or `bytes`).
        max_ratio: the largest DCT scaling ratio level 1 may use (1, 2, 4
            or 8); 1 decodes it in full, as the dense path.

    Raises:
        UnreadableJpegError: the bytes are not a JPEG.
    """

    reader_class = JpegRegions

    def __init__(self, contents, max_ratio=8):
        if max_ratio not in RATIOS:
            raise ValueError(
                f"`max_ratio` must be one of {RATIOS}, got {max_ratio!r}."
            )
        contents = tf.convert_to_tensor(contents, tf.string)
        try:
            shape = tf.io.extract_jpeg_shape(contents)
        except tf.errors.OpError as error:
            raise _decode_error(error, "header") from None
        height, width = (int(side) for side in shape[:2])
        super().__init__(
            indices=tf.zeros((0, 4), tf.int64),
            values=tf.zeros((0,), tf.float32),
            dense_shape=[1, height, width, 3],
        )
        self.contents = contents
        self.height, self.width = height, width
        self.max_ratio = max_ratio


def classify_file(model, path, locations_per_level=None, max_ratio=8):
    """TNet's outputs for the JPEG at `path`, reading only the regions it
    attends (greedy selection, inference mode).

    Args:
        model: a `TNet`.
        path: a JPEG file.
        locations_per_level: as `TNet.call`; the config's by default.
        max_ratio: see `EncodedImage`.

    Returns:
        `TNet.call`'s output dict for a batch of one image.

    Raises:
        UnreadableJpegError: the file is not a JPEG, or it does not decode
            (e.g. truncated); the message names the file.
    """
    contents = tf.io.read_file(os.fspath(path))
    try:
        image = EncodedImage(contents, max_ratio=max_ratio)
        # `call` itself: Keras' `__call__` would rebuild the input as a
        # plain SparseTensor (losing the contents). Inference only.
        return model.call(
            image,
            training=False,
            locations_per_level=locations_per_level,
            selection="greedy",
        )
    except UnreadableJpegError as error:
        raise UnreadableJpegError(f"{os.fspath(path)}: {error}") from None


def classify_files(model, paths, locations_per_level=None, max_ratio=8):
    """`classify_file` for each of `paths`, in order (a list of output
    dicts, one image each)."""
    return [
        classify_file(model, path, locations_per_level, max_ratio)
        for path in paths
    ]
