"""Region readers of `tnet_tf.lazy_reading`: TNet's regions read from an
image that is never held as a full-size float tensor.

Two readers share the window, padding and sampling code (`LazyRegions`):

- `JpegRegions` reads a JPEG's bytes: each box (the whole image at level 1,
  then every attended region) is decoded at the coarsest DCT scaling ratio
  (1, 2, 4 or 8, at most the image's `max_ratio`) whose decode of the box is
  still at least the base resolution on both sides (`decode_ratio`). Level
  1's decode is kept, finer than it needs while it stays small
  (`SHARED_DECODE_PIXELS`): a region it has the resolution for is sampled
  from it, any other decoded from its own window
  (`tf.io.decode_and_crop_jpeg`; with `ratio > 1` in scaled pixels).
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

The readers are TensorFlow ops throughout, eager or traced: sizes and
origins may be tensors, and where a ratio is only known when run (an image
size given by the bytes, in a `tf.function` or a SavedModel) each ratio is
a branch of `tf.switch_case`, since libjpeg's `ratio` is a static
attribute of the decode op.
"""

import re

import tensorflow as tf

from tnet_tf.models import regions as regions_lib

RATIOS = (1, 2, 4, 8)
# Extra pixels decoded around a window: libjpeg's fancy upsampling of the
# chroma reads past the window's edge.
_MARGIN = 16
# TensorFlow's JPEG decoder refuses an image whose decode (at the requested
# ratio, whatever the crop window) is this many bytes or more.
DECODER_LIMIT_BYTES = 2**29
# Level 1's decode may be finer than it needs up to this many pixels (3 MiB
# of uint8): one decode then serves regions that would each entropy-decode
# the file up to their window.
SHARED_DECODE_PIXELS = 1024 * 1024
# 0 in [-1, 1] as a uint8 value: the grid's padding when sampling uint8.
_PAD_VALUE = 127.5


class UnreadableImageError(ValueError):
    """The bytes are not an image that decodes in full."""


class ImageTooLargeError(ValueError):
    """TensorFlow's JPEG decoder cannot decode the image at this ratio."""


def decode_error(error, what):
    """An `UnreadableImageError` from a TensorFlow decode error (its
    message without the op's node name)."""
    lines = error.message.strip().splitlines()
    message = lines[0]
    if message.startswith("Graph execution error"):
        # A traced call's error: the op's own line comes after the node's
        # name and where it was defined.
        lines = [
            line
            for line in lines[1:]
            if line.strip()
            and not line.startswith((" ", "\t", "Detected at node"))
        ]
        message = lines[-1] if lines else message
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:\w+\].*$", "", message)
    return UnreadableImageError(f"cannot decode the image ({what}): {message}")


def _ceil_div(size, ratio):
    return -(-size // ratio)


def decode_ratio(height, width, side, max_ratio=8):
    """The coarsest DCT scaling ratio (1, 2, 4 or 8, at most `max_ratio`)
    at which a `height x width` box still decodes to at least `side` on both
    sides (libjpeg rounds a scaled side up)."""
    ratio = 1
    for candidate in RATIOS:
        if candidate > max_ratio:
            break
        if min(_ceil_div(height, candidate), _ceil_div(width, candidate)) >= (
            side
        ):
            ratio = candidate
    return ratio


def ratio_index(height, width, side, max_ratio=8):
    """`decode_ratio`'s index in `RATIOS` (`ratio == 2 ** index`) for sizes
    that may be tensors: an int32 scalar tensor."""
    index = tf.constant(0)
    for position, candidate in enumerate(RATIOS[1:], start=1):
        if candidate > max_ratio:
            break
        fits = tf.minimum(
            _ceil_div(height, candidate), _ceil_div(width, candidate)
        )
        index = tf.where(fits >= side, position, index)
    return index


def _switch(index, branches):
    """`branches[index]()`: called directly where `index` is known now
    (eager, or a constant), else `tf.switch_case` (a ratio is a static
    attribute of the decode op, so each is its own branch)."""
    known = tf.get_static_value(index)
    if known is not None:
        return branches[int(known)]()
    return tf.switch_case(index, branches)


def _cond(predicate, true_fn, false_fn):
    """`tf.cond`, or the branch itself where `predicate` is known now."""
    known = tf.get_static_value(predicate)
    if known is not None:
        return true_fn() if known else false_fn()
    return tf.cond(predicate, true_fn, false_fn)


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
    `pixels` they are 0, the grid's padding. Every argument but `side` may
    be a tensor.
    """
    y, x, height, width = (tf.cast(v, tf.float64) for v in box)
    origin_y, origin_x = (tf.cast(v, tf.float64) for v in origin)
    ratio = tf.cast(ratio, tf.float64)
    shape = tf.cast(tf.shape(pixels)[:2], tf.float64)
    rows, columns = tf.maximum(shape[0] - 1, 1), tf.maximum(shape[1] - 1, 1)
    # Input coordinate u = y + (i + 0.5) * h / side - 0.5, scaled (u + 0.5)
    # / ratio - 0.5, then relative to `pixels` and normalised as
    # crop_and_resize's boxes are (by size - 1); float64 until the box.
    ends = tf.constant([0.5, side - 0.5], tf.float64)
    ys = ((y + ends * height / side) / ratio - 0.5 - origin_y) / rows
    xs = ((x + ends * width / side) / ratio - 0.5 - origin_x) / columns
    boxes = tf.cast(tf.stack([ys[0], xs[0], ys[1], xs[1]])[None], tf.float32)
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
    `height`, `width` and this class as its `reader_class`, one image per
    call), eager or traced.

    Subclasses implement `_read_box(y, x, h, w, regions)`: one box as `(1,
    side, side, 3)` float32 in `[-1, 1]` (ints or int32 scalar tensors).
    """

    def start(self, images):
        self._image = images

    def read(self, regions):
        image = self._image
        if regions.level == 0:
            origins = tf.zeros((1, 2), tf.int32)
            height, width = image.height, image.width
        else:
            # Whole pixels (the grid's origins are), possibly negative.
            origins = tf.cast(regions.origins, tf.int32)
            height, width = regions.size
        height, width = (tf.cast(side, tf.int32) for side in (height, width))
        # One box at a time: each is at the base resolution before the next
        # is read. One image: the level's boxes are its `per_image`.
        boxes = [
            self._read_box(origin[0], origin[1], height, width, regions)
            for origin in tf.unstack(origins, num=regions.per_image)
        ]
        return tf.cast(tf.concat(boxes, axis=0), self.compute_dtype)

    def descend(self, chosen):
        """Nothing to follow: the regions carry their boxes."""
        del chosen

    def keep(self, indices):
        """Nothing to narrow: the regions carry their boxes, and a lazy
        image is a batch of one (anytime inference keeps it or stops)."""
        del indices

    def _read_box(self, y, x, height, width, regions):
        raise NotImplementedError

    def _inside(self, y, x, height, width):
        """The part of the box inside the image: `top, left, bottom,
        right` (empty when `bottom <= top` or `right <= left`)."""
        image = self._image
        return (
            tf.maximum(y, 0),
            tf.maximum(x, 0),
            tf.minimum(y + height, image.height),
            tf.minimum(x + width, image.width),
        )

    def _crop_inside(self, pixels, y, x, height, width):
        """The part of the box inside the image from `pixels` (the whole
        image, uint8)."""
        top, left, bottom, right = self._inside(y, x, height, width)
        bottom, right = tf.maximum(bottom, top), tf.maximum(right, left)
        return pixels[top:bottom, left:right]

    def _exact(self, inside, y, x, height, width):
        """The box as the dense path reads it: `inside` (uint8, the part of
        the box inside the image) in `[-1, 1]`, zero-padded to the box,
        resized in the compute dtype."""
        top, left, _, _ = self._inside(y, x, height, width)
        rows, columns = tf.shape(inside)[0], tf.shape(inside)[1]
        pad_top, pad_left = top - y, left - x
        pixels = tf.pad(
            to_model_range(inside),
            [
                [pad_top, height - pad_top - rows],
                [pad_left, width - pad_left - columns],
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
            inside = self._crop_inside(pixels, y, x, height, width)
            return self._exact(inside, y, x, height, width)
        return sample_box(
            pixels, (0, 0), (y, x, height, width), 1, self.base_resolution
        )


class JpegRegions(LazyRegions):
    """Reads boxes from an `EncodedImage`'s JPEG bytes, each decoded at the
    coarsest ratio that keeps the base resolution (`decode_ratio`)."""

    def start(self, images):
        super().start(images)
        # Level 1's decode: `(ratio index, uint8 pixels)`.
        self._decoded = None

    def _ratios(self):
        return [r for r in RATIOS if r <= self._image.max_ratio]

    def _read_box(self, y, x, height, width, regions):
        side = self.base_resolution
        index = ratio_index(height, width, side, self._image.max_ratio)
        box = (y, x, height, width)
        ratios = self._ratios()
        if regions.level == 0:
            first = tf.minimum(index, self._shared_index())
            self._decoded = (
                first,
                _switch(
                    first,
                    [
                        lambda r=r: self._decode(r, None, "level 1")
                        for r in ratios
                    ],
                ),
            )

        def from_level_one(ratio):
            pixels = self._decoded[1]
            if ratio == 1:
                return self._exact(self._crop_inside(pixels, *box), *box)
            return sample_box(pixels, (0, 0), box, ratio, side)

        def from_window(ratio):
            if ratio == 1:
                return self._exact(self._window(*box), *box)
            pixels, origin = self._scaled_window(ratio, *box)
            return sample_box(pixels, origin, box, ratio, side)

        def read(index, how):
            return _switch(index, [lambda r=r: how(r) for r in ratios])

        if self._decoded is None:
            # Not started at level 1 (an anytime step): each window at the
            # ratio level 1's decode would have given it.
            return read(tf.minimum(index, self._shared_index()), from_window)
        # Level 1's decode serves every box it has the resolution for.
        first = self._decoded[0]
        return _cond(
            index >= first,
            lambda: read(first, from_level_one),
            lambda: read(index, from_window),
        )

    def _shared_index(self):
        """The finest ratio's index whose decode of the whole image holds
        at most `SHARED_DECODE_PIXELS` (else the coarsest allowed)."""
        rows, columns = (
            tf.cast(s, tf.int64)
            for s in (self._image.height, self._image.width)
        )
        larger = [
            _ceil_div(rows, r) * _ceil_div(columns, r) > SHARED_DECODE_PIXELS
            for r in self._ratios()
        ]
        return tf.minimum(
            tf.math.count_nonzero(larger, dtype=tf.int32), len(larger) - 1
        )

    def _decode(self, ratio, window, what):
        """The image at `1 / ratio` (uint8), or its `window` `[y, x, h, w]`
        (scaled pixels)."""
        contents = self._image.contents
        # The op's name tells a traced call's error where it happened.
        name = "level_1_decode" if window is None else "region_decode"
        try:
            if window is None:
                return tf.io.decode_jpeg(
                    contents, channels=3, ratio=ratio, name=name
                )
            return tf.io.decode_and_crop_jpeg(
                contents, tf.stack(window), channels=3, ratio=ratio, name=name
            )
        except tf.errors.OpError as error:
            raise decode_error(error, f"{what}, ratio {ratio}") from None

    def _window(self, y, x, height, width):
        """The part of the box inside the image at full resolution (uint8),
        decoded with a margin (its corner on libjpeg's 16 px iMCU grid)."""
        image = self._image
        top, left, bottom, right = self._inside(y, x, height, width)

        def decode():
            y0 = tf.maximum(top - _MARGIN, 0) // 16 * 16
            x0 = tf.maximum(left - _MARGIN, 0) // 16 * 16
            y1 = tf.minimum(bottom + _MARGIN, image.height)
            x1 = tf.minimum(right + _MARGIN, image.width)
            decoded = self._decode(
                1, [y0, x0, y1 - y0, x1 - x0], "region, ratio 1"
            )
            return decoded[top - y0 : bottom - y0, left - x0 : right - x0]

        # A box wholly in the grid's padding decodes nothing.
        return _cond(
            tf.logical_or(bottom <= top, right <= left),
            lambda: tf.zeros((0, 0, 3), tf.uint8),
            decode,
        )

    def _scaled_window(self, ratio, y, x, height, width):
        """The box's window at `1 / ratio` with a margin: `(uint8 pixels,
        scaled origin)`."""
        image = self._image
        rows = _ceil_div(image.height, ratio)
        columns = _ceil_div(image.width, ratio)
        y0 = tf.maximum(y // ratio - _MARGIN, 0)
        x0 = tf.maximum(x // ratio - _MARGIN, 0)
        y1 = tf.minimum(_ceil_div(y + height, ratio) + _MARGIN, rows)
        x1 = tf.minimum(_ceil_div(x + width, ratio) + _MARGIN, columns)
        outside = tf.logical_or(y1 <= y0, x1 <= x0)
        # Wholly in the padding: one pixel far from the samples.
        y0 = tf.where(outside, -2 * height, y0)
        x0 = tf.where(outside, -2 * width, x0)
        pixels = _cond(
            outside,
            lambda: tf.zeros((1, 1, 3), tf.uint8),
            lambda: self._decode(
                ratio, [y0, x0, y1 - y0, x1 - x0], f"region, ratio {ratio}"
            ),
        )
        return pixels, (y0, x0)
