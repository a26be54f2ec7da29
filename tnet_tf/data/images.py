"""Robust decoding and re-encoding of raw image files for the converters.

Every record stores an RGB JPEG. Raw datasets contain files that are not:
CMYK and grayscale JPEGs, PNGs (or GIF/BMP/WebP) named `.jpg`, truncated
downloads, corrupt and zero-byte files (ImageNet alone has 22 CMYK files and
one PNG, `original_implementation_detail.md` §11.2). `reencode_as_rgb_jpeg`
keeps valid RGB JPEG bytes unchanged, re-encodes what it can, and names the
reason when it cannot, so the converters can report the file instead of
failing. Only TensorFlow ops are used (PIL is not a dependency).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tnet_tf.data import records

# The release re-encodes converted images at quality 100 (§11.2).
JPEG_QUALITY = 100
# A truncated JPEG is kept (its missing rows filled by the decoder) only when
# at least this fraction of its rows decodes from data actually present.
MIN_INTACT_FRACTION = 0.9
_MCU_ROWS = 16
_END_OF_IMAGE = b"\xff\xd9"

# Magic bytes at offset 0 of each format the converters and the pipeline
# accept (WebP, "RIFF....WEBP", is checked apart).
IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)


def image_format(data):
    """The format named by the file's magic bytes, or `None` if unknown."""
    for signature, name in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _error_text(error):
    """The useful line of a TF op error, without the function-node prefix."""
    text = getattr(error, "message", str(error)).strip().splitlines()[0]
    if text.startswith("{{"):
        text = text.split("}}", 1)[-1].strip()
    return text.split(" [Op:", 1)[0]


def encode_rgb_jpeg(image, quality=JPEG_QUALITY):
    """Encodes a uint8 `(height, width, 3)` array as JPEG bytes."""
    return tf.io.encode_jpeg(image, quality=quality).numpy()


def _try(function, *args, **kwargs):
    try:
        return function(*args, **kwargs), ""
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        return None, _error_text(error)


def _intact_rows(data, height, width):
    """How many leading rows of a damaged JPEG decode from real data.

    A strict decode that stops at the last row of a crop window does not
    need the data below it, so a binary search over the window height
    finds the last row backed by bytes in the file (about log2(height)
    small decodes). The decoder reads up to one MCU row (at most 16 pixels)
    ahead, for chroma upsampling and its bit buffer, so that many rows are
    added back.
    """
    low, high = 0, height
    while low < high:
        rows = (low + high + 1) // 2
        window = [0, 0, rows, width]
        _, error = _try(tf.io.decode_and_crop_jpeg, data, window, channels=3)
        low, high = (rows, high) if not error else (low, rows - 1)
    return min(height, low + _MCU_ROWS) if low else 0


def _recover_truncated(data, height, width, min_intact_fraction, error):
    """Decodes a truncated JPEG whose rows are mostly present.

    The file is closed with an end-of-image marker and decoded strictly:
    libjpeg then fills the rows it has no data for with mid-grey, as its
    truncation recovery would. That recovery itself
    (`try_recover_truncated=True`) is never used: on some files it never
    returns (`shared/reference/bad_inputs/truncated_hangs_decoder.jpg`).

    Returns `(image or None, reason)`.
    """
    intact = _intact_rows(data, height, width)
    if intact < min_intact_fraction * height:
        reason = (
            f"truncated or corrupt JPEG ({error}): only {intact} of {height} "
            "rows decodable"
        )
        return None, reason
    image, error = _try(tf.io.decode_jpeg, data + _END_OF_IMAGE, channels=3)
    if error:
        return None, f"corrupt JPEG: {error}"
    return (
        image,
        f"truncated JPEG recovered ({intact} of {height} rows intact)",
    )


def _reencode_jpeg(data, quality, min_intact_fraction):
    shape, error = _try(tf.io.extract_jpeg_shape, data)
    if error:
        return None, 0, 0, f"truncated or corrupt JPEG header: {error}"
    height, width, channels = (int(v) for v in shape.numpy())
    image, error = _try(tf.io.decode_jpeg, data, channels=3)
    if not error:
        if channels == 3:
            return data, height, width, ""
        kind = {1: "grayscale", 4: "CMYK"}.get(channels, f"{channels}-channel")
        note = f"{kind} JPEG re-encoded as RGB"
        return encode_rgb_jpeg(image, quality), height, width, note
    image, note = _recover_truncated(
        data, height, width, min_intact_fraction, error
    )
    if image is None:
        return None, 0, 0, note
    return encode_rgb_jpeg(image, quality), height, width, note


def reencode_as_rgb_jpeg(
    data,
    path="",
    quality=JPEG_QUALITY,
    min_intact_fraction=MIN_INTACT_FRACTION,
):
    """Turns raw image bytes into RGB JPEG bytes, or says why it cannot.

    - a valid 3-channel JPEG: the bytes are returned unchanged;
    - a CMYK or grayscale JPEG, or a PNG/GIF/BMP/WebP (whatever its file
      name says): decoded and re-encoded as an RGB JPEG (alpha is dropped,
      GIFs keep their first frame);
    - a truncated JPEG with at least `min_intact_fraction` of its rows
      present: decoded with its missing rows in mid-grey and re-encoded
      (without libjpeg's truncation recovery, which can loop forever);
    - zero-byte, unknown-format, corrupt or too-truncated data: `None`.

    Args:
        data: the raw file contents (`bytes`).
        path: the source path, used only to mention a misleading extension.
        quality: JPEG quality for re-encoded images.
        min_intact_fraction: see `MIN_INTACT_FRACTION`.

    Returns:
        `(jpeg_bytes or None, height, width, reason)`. `reason` is "" for
        bytes kept unchanged, a note of what was done for converted images,
        and the reason for skipping when the bytes are `None`.
    """
    if not data:
        return None, 0, 0, "zero-byte file"
    kind = image_format(data)
    if kind is None:
        # The reason names no bytes: a report must not show file content.
        known = "JPEG, PNG, GIF, BMP or WebP"
        return None, 0, 0, f"not a known image format (not {known})"
    if kind == "JPEG":
        return _reencode_jpeg(data, quality, min_intact_fraction)
    image, error = _try(
        tf.io.decode_image, data, channels=3, expand_animations=False
    )
    if error:
        return None, 0, 0, f"corrupt or unsupported {kind}: {error}"
    image = image.numpy()
    extension = str(path).lower().rsplit(".", 1)[-1]
    disguise = f" named .{extension}" if extension in ("jpg", "jpeg") else ""
    note = f"{kind}{disguise} re-encoded as RGB JPEG"
    height, width = image.shape[:2]
    return encode_rgb_jpeg(image, quality), height, width, note


def read_file(path):
    """Reads a file's bytes: `(bytes, "")`, or `(None, reason)` on failure."""
    try:
        with open(path, "rb") as file:
            return file.read(), ""
    except OSError as error:
        return None, f"unreadable file: {error.strerror or error}"


def _limit_smaller_side(image, max_smaller_side):
    """Bilinear resize of a uint8 image so its smaller side is the limit."""
    height, width = int(image.shape[0]), int(image.shape[1])
    if min(height, width) <= max_smaller_side:
        return image
    scale = max_smaller_side / min(height, width)
    if height <= width:
        size = [max_smaller_side, int(np.ceil(width * scale))]
    else:
        size = [int(np.ceil(height * scale)), max_smaller_side]
    resized = tf.image.resize(image, size, method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def cap_smaller_side(jpeg_bytes, max_smaller_side, quality=JPEG_QUALITY):
    """Downscales a JPEG whose smaller side exceeds `max_smaller_side`.

    As the fMoW writer of the release (§11.2): the JPEG is decoded at 1/8,
    1/4 or 1/2 scale when its smaller side is above 8x, 4x or 2x the limit,
    then resized bilinearly so the smaller side is exactly the limit (the
    other side rounded up, aspect kept). The size comes from the JPEG header
    rather than the JSON metadata, which avoids quirk Q10.

    Returns:
        `(jpeg_bytes, height, width)`; the input bytes when no downscale was
        needed.
    """
    height, width = (int(v) for v in tf.io.extract_jpeg_shape(jpeg_bytes)[:2])
    smaller = min(height, width)
    if smaller <= max_smaller_side:
        return jpeg_bytes, height, width
    # DCT-domain downscaling is far cheaper than decoding at full size.
    ratio = 1
    for candidate in (8, 4, 2):
        if smaller > candidate * max_smaller_side:
            ratio = candidate
            break
    image = tf.io.decode_jpeg(jpeg_bytes, channels=3, ratio=ratio)
    image = _limit_smaller_side(image, max_smaller_side)
    height, width = int(image.shape[0]), int(image.shape[1])
    return encode_rgb_jpeg(image, quality), height, width


def crop_jpeg(jpeg_bytes, window, max_smaller_side=None, quality=JPEG_QUALITY):
    """Crops `window = (top, left, height, width)` pixels out of a JPEG.

    The crop is downscaled to `max_smaller_side` when given, then encoded
    once. Returns `(jpeg_bytes, height, width)`.
    """
    image = tf.io.decode_and_crop_jpeg(jpeg_bytes, list(window), channels=3)
    if max_smaller_side:
        image = _limit_smaller_side(image, max_smaller_side)
    height, width = int(image.shape[0]), int(image.shape[1])
    return encode_rgb_jpeg(image, quality), height, width


@dataclasses.dataclass(frozen=True)
class ImageItem:
    """One image file to convert, with everything its record needs.

    Args:
        path: the raw file (reported when the file is skipped).
        label: int, the label as the dataset stores it.
        text, synset: class name and WordNet id (may be empty).
        boxes: `((ymin, xmin, ymax, xmax), ...)` normalised to [0, 1].
        pixel_boxes: the same in pixels of the raw image; normalised by the
            decoded size and clipped (for datasets whose files give pixels).
        filename: the name stored in the record; default: the basename.
        crop: `(top, left, height, width)` in pixels: store this window of
            the image instead of the whole image (fMoW box crops).
        max_smaller_side: downscale so the smaller side is at most this.
    """

    path: str
    label: int
    text: str = ""
    synset: str = ""
    boxes: tuple = ()
    pixel_boxes: tuple = ()
    filename: str = ""
    crop: tuple = None
    max_smaller_side: int = None


def encode_image_item(item):
    """Reads and converts one `ImageItem`: `(tf.train.Example | None, note)`.

    The note is "" for an untouched file, says what was converted
    otherwise, and is the reason for skipping when the example is `None`.
    """
    data, reason = read_file(item.path)
    if data is None:
        return None, reason
    jpeg, height, width, reason = reencode_as_rgb_jpeg(data, item.path)
    if jpeg is None:
        return None, reason
    boxes = np.asarray(item.boxes, np.float32).reshape(-1, 4)
    if item.pixel_boxes:
        size = np.array([height, width, height, width], np.float32)
        pixel_boxes = np.asarray(item.pixel_boxes, np.float32).reshape(-1, 4)
        boxes = np.concatenate([boxes, np.clip(pixel_boxes / size, 0, 1)])
    size = (height, width)
    if item.crop is not None:
        top, left, crop_height, crop_width = item.crop
        if (
            top < 0
            or left < 0
            or top + crop_height > height
            or (left + crop_width > width)
        ):
            return None, f"crop {item.crop} outside the {height}x{width} image"
        jpeg, height, width = crop_jpeg(jpeg, item.crop, item.max_smaller_side)
    elif item.max_smaller_side:
        jpeg, height, width = cap_smaller_side(jpeg, item.max_smaller_side)
    if item.crop is None and (height, width) != size:
        resized = f"downscaled from {size[0]}x{size[1]} to {height}x{width}"
        reason = f"{reason}; {resized}" if reason else resized
    example = records.encode_example(
        image_bytes=jpeg,
        label=item.label,
        height=height,
        width=width,
        filename=item.filename or os.path.basename(item.path),
        text=item.text,
        synset=item.synset,
        boxes=boxes,
    )
    return example, reason
