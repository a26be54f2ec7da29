"""Region readers of `tnet_tf.lazy_reading`: TNet's regions read from an
image that is never held as a full-size float tensor.

Two readers share the window, padding and sampling code (`LazyRegions`):

- `JpegRegions` reads a JPEG's bytes: each box (the whole image at level 1,
  then every attended region) is decoded at the coarsest DCT scaling ratio
  (1, 2, 4 or 8, at most the image's `max_ratio`) whose decode of the box is
  still at least the base resolution on both sides (`decode_ratio`). Level
  1's decode is kept: a region at the same ratio is read from it, any other
  by decoding its own window (`tf.io.decode_and_crop_jpeg`; with `ratio >
  1` the window is in the scaled image's coordinates).
- `ArrayRegions` reads a decoded uint8 array (PNG and other formats): every
  box is sampled straight from it.

A box decoded at `ratio > 1`, or read from a uint8 array, is sampled by
`sample_box`: the `side x side` points `tf.image.resize` would sample in
the full-resolution box (bilinear, half-pixel centres), mapped onto the
decoded pixels, read by `tf.image.crop_and_resize` from the uint8 pixels
(no float copy of the box). A box at `ratio == 1` of a JPEG is read as the
dense path reads it: its window decoded with a margin (libjpeg's chroma
upsampling at the window's edge then does not change it), converted, padded
with zeros outside the image, resized.
"""

import re

import numpy as np
import tensorflow as tf

from tnet_tf.models import regions as regions_lib

RATIOS = (1, 2, 4, 8)
# Extra pixels decoded around a window: libjpeg's fancy upsampling of the
# chroma reads past the window's edge.
_MARGIN = 16
# TensorFlow's JPEG decoder refuses an image whose decode (at the requested
# ratio, whatever the crop window) is this many bytes or more.
DECODER_LIMIT_BYTES = 2**29
# 0 in [-1, 1] as a uint8 value: the grid's padding when sampling uint8.
_PAD_VALUE = 127.5


class UnreadableImageError(ValueError):
    """The bytes are not an image that decodes in full."""


class ImageTooLargeError(ValueError):
    """TensorFlow's JPEG decoder cannot decode the image at this ratio."""


def decode_error(error, what):
    """An `UnreadableImageError` from a TensorFlow decode error (its
    message without the op's node name)."""
    message = error.message.strip().splitlines()[0]
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:\w+\].*$", "", message)
    return UnreadableImageError(f"cannot decode the image ({what}): {message}")


def decode_ratio(height, width, side, max_ratio=8):
    """The coarsest DCT scaling ratio (1, 2, 4 or 8, at most `max_ratio`)
    at which a `height x width` box still decodes to at least `side` on both
    sides (libjpeg rounds a scaled side up)."""
    ratio = 1
    for candidate in RATIOS:
        if candidate > max_ratio:
            break
        if min(-(-height // candidate), -(-width // candidate)) >= side:
            ratio = candidate
    return ratio


def to_model_range(pixels):
    """uint8 `[0, 255]` -> float32 `[-1, 1]`, as the dense pipelines."""
    return tf.image.convert_image_dtype(pixels, tf.float32) * 2.0 - 1.0


def sample_box(pixels, origin, box, ratio, side):
    """The `box` `(y, x, h, w)` (input pixels) at `side x side`, `(1, side,
    side, 3)` float32 in `[-1, 1]`, sampled from `pixels`.

    `pixels` (uint8 `(h', w', 3)`) are part of the image decoded at
    `1 / ratio`, their first pixel at scaled pixel `origin` `(y, x)`. The
    samples are where `tf.image.resize` (bilinear, half-pixel centres)
    samples the box in the full-resolution image, on the scaled grid (scaled
    pixel `j` is centred on input pixel `(j + 0.5) * ratio - 0.5`); outside
    `pixels` they are 0, the grid's padding.
    """
    y, x, height, width = box
    rows, columns = pixels.shape[:2]
    ends = np.array([0.5, side - 0.5], np.float64)
    # Input coordinate u = y + (i + 0.5) * h / side - 0.5, scaled (u + 0.5)
    # / ratio - 0.5, then relative to `pixels` and normalised as
    # crop_and_resize's boxes are (by size - 1).
    ys = ((y + ends * height / side) / ratio - 0.5 - origin[0]) / max(
        rows - 1, 1
    )
    xs = ((x + ends * width / side) / ratio - 0.5 - origin[1]) / max(
        columns - 1, 1
    )
    boxes = tf.constant([[ys[0], xs[0], ys[1], xs[1]]], tf.float32)
    sampled = tf.image.crop_and_resize(
        pixels[None],
        boxes,
        tf.zeros((1,), tf.int32),
        (side, side),
        extrapolation_value=_PAD_VALUE,
    )
    return sampled * (2.0 / 255.0) - 1.0


class LazyRegions(regions_lib.RegionReader):
    """Reads a level's regions box by box from a lazy image (an input with
    `height`, `width` and this class as its `reader_class`); eager only.

    Subclasses implement `_read_box(y, x, h, w, level)`: one box as `(1,
    side, side, 3)` float32 in `[-1, 1]`.
    """

    def start(self, images):
        if not tf.executing_eagerly():
            raise RuntimeError(
                f"{type(self).__name__} reads regions eagerly: call the "
                "model outside tf.function."
            )
        self._image = images

    def read(self, regions):
        image = self._image
        if regions.level == 0:
            boxes = [(0, 0)]
            height, width = image.height, image.width
        else:
            boxes = np.asarray(regions.origins).astype(np.int64)
            height, width = (int(side) for side in regions.size)
        # One box at a time: each is at the base resolution before the next
        # is read.
        return tf.concat(
            [
                tf.cast(
                    self._read_box(int(y), int(x), height, width, regions),
                    self.compute_dtype,
                )
                for y, x in boxes
            ],
            axis=0,
        )

    def descend(self, chosen):
        # The regions carry their boxes: nothing follows the traversal.
        pass

    def _read_box(self, y, x, height, width, regions):
        raise NotImplementedError

    def _inside(self, y, x, height, width):
        """The part of the box inside the image: `top, left, bottom,
        right` (empty when `bottom <= top` or `right <= left`)."""
        image = self._image
        return (
            max(y, 0),
            max(x, 0),
            min(y + height, image.height),
            min(x + width, image.width),
        )

    def _exact(self, inside, y, x, height, width):
        """The box as the dense path reads it: `inside` (uint8, the part of
        the box inside the image) in `[-1, 1]`, zero-padded to the box,
        resized in the compute dtype."""
        top, left, bottom, right = self._inside(y, x, height, width)
        pixels = to_model_range(inside)
        if (bottom - top, right - left) != (height, width):
            pad_top, pad_left = top - y, left - x
            pixels = tf.pad(
                pixels,
                [
                    [pad_top, height - pad_top - max(bottom - top, 0)],
                    [pad_left, width - pad_left - max(right - left, 0)],
                    [0, 0],
                ],
            )
        return self._resize(tf.cast(pixels[None], self.compute_dtype))


class ArrayRegions(LazyRegions):
    """Reads boxes from a `DecodedImage`'s uint8 array by `sample_box`: as
    the dense path up to float rounding of the sample coordinates, except
    that a sample between the image's last pixel and the grid's padding is
    the padding rather than a blend. With `antialias`, boxes are converted
    and resized as the dense path does (memory then follows their size)."""

    def _read_box(self, y, x, height, width, regions):
        pixels = self._image.pixels
        if self.antialias:
            top, left, bottom, right = self._inside(y, x, height, width)
            inside = pixels[top:bottom, left:right]
            return self._exact(inside, y, x, height, width)
        return sample_box(
            pixels, (0, 0), (y, x, height, width), 1, self.base_resolution
        )


class JpegRegions(LazyRegions):
    """Reads boxes from an `EncodedImage`'s JPEG bytes, each decoded at the
    coarsest ratio that keeps the base resolution (`decode_ratio`)."""

    def start(self, images):
        super().start(images)
        # Level 1's decode: `(ratio, uint8 pixels)`.
        self._decoded = None

    def _read_box(self, y, x, height, width, regions):
        image = self._image
        side = self.base_resolution
        ratio = decode_ratio(height, width, side, image.max_ratio)
        self._check_decodable(ratio)
        if regions.level == 0:
            self._decoded = ratio, self._decode(ratio, None, "level 1")
        if self._decoded is not None and self._decoded[0] == ratio:
            # Read from level 1's decode.
            pixels, origin = self._decoded[1], (0, 0)
            if ratio == 1:
                top, left, bottom, right = self._inside(y, x, height, width)
                inside = pixels[top:bottom, left:right]
                return self._exact(inside, y, x, height, width)
        elif ratio == 1:
            return self._exact(
                self._window(y, x, height, width), y, x, height, width
            )
        else:
            pixels, origin = self._scaled_window(ratio, y, x, height, width)
        return sample_box(pixels, origin, (y, x, height, width), ratio, side)

    def _check_decodable(self, ratio):
        image = self._image
        rows, columns = -(-image.height // ratio), -(-image.width // ratio)
        if rows * columns * 3 >= DECODER_LIMIT_BYTES:
            raise ImageTooLargeError(
                f"TensorFlow's JPEG decoder refuses to decode this "
                f"{image.height}x{image.width} px image at 1/{ratio} "
                f"({rows}x{columns} px, {DECODER_LIMIT_BYTES // 2**20} MiB "
                f"or more, even a window of it): allow a coarser "
                f"`max_ratio` (now {image.max_ratio})."
            )

    def _decode(self, ratio, window, what):
        """The image at `1 / ratio` (uint8), or its `window` `[y, x, h, w]`
        (scaled pixels)."""
        contents = self._image.contents
        try:
            if window is None:
                return tf.io.decode_jpeg(contents, channels=3, ratio=ratio)
            return tf.io.decode_and_crop_jpeg(
                contents, window, channels=3, ratio=ratio
            )
        except tf.errors.OpError as error:
            raise decode_error(error, f"{what}, ratio {ratio}") from None

    def _window(self, y, x, height, width):
        """The part of the box inside the image at full resolution (uint8),
        decoded with a margin (its corner on libjpeg's 16 px iMCU grid)."""
        top, left, bottom, right = self._inside(y, x, height, width)
        if bottom <= top or right <= left:
            return tf.zeros((0, 0, 3), tf.uint8)
        y0 = max(top - _MARGIN, 0) // 16 * 16
        x0 = max(left - _MARGIN, 0) // 16 * 16
        y1 = min(bottom + _MARGIN, self._image.height)
        x1 = min(right + _MARGIN, self._image.width)
        decoded = self._decode(
            1,
            [y0, x0, y1 - y0, x1 - x0],
            f"region at y={y}, x={x}, {height}x{width} px",
        )
        return decoded[top - y0 : bottom - y0, left - x0 : right - x0]

    def _scaled_window(self, ratio, y, x, height, width):
        """The box's window at `1 / ratio` with a margin: `(uint8 pixels,
        scaled origin)`."""
        image = self._image
        rows, columns = -(-image.height // ratio), -(-image.width // ratio)
        y0 = max(y // ratio - _MARGIN, 0)
        x0 = max(x // ratio - _MARGIN, 0)
        y1 = min(-(-(y + height) // ratio) + _MARGIN, rows)
        x1 = min(-(-(x + width) // ratio) + _MARGIN, columns)
        if y1 <= y0 or x1 <= x0:  # wholly in the padding
            return tf.zeros((1, 1, 3), tf.uint8), (-2 * height, -2 * width)
        pixels = self._decode(
            ratio,
            [y0, x0, y1 - y0, x1 - x0],
            f"region at y={y}, x={x}, {height}x{width} px",
        )
        return pixels, (y0, x0)
