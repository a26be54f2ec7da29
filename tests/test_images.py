"""Robust image handling: every broken-file kind, downscaling, crops."""

import numpy as np
import pytest
import tensorflow as tf

from tests import fake_raw_data
from tnet_tf.data import images
from tnet_tf.data import records

IMAGE = fake_raw_data.quadrant_image(3)


def test_rgb_jpeg_is_kept_byte_for_byte():
    data, _ = fake_raw_data.image_file_bytes("rgb_jpeg", IMAGE)
    jpeg, height, width, reason = images.reencode_as_rgb_jpeg(data, "a.jpg")
    assert jpeg is data
    assert (height, width, reason) == (32, 64, "")


@pytest.mark.parametrize(
    "kind, note",
    [
        ("grayscale_jpeg", "grayscale JPEG re-encoded as RGB"),
        ("cmyk_jpeg", "CMYK JPEG re-encoded as RGB"),
        ("png_as_jpeg", "PNG named .jpg re-encoded as RGB JPEG"),
        ("missing_end_marker", "truncated JPEG recovered"),
    ],
)
def test_convertible_kinds_become_rgb_jpeg(kind, note):
    assert fake_raw_data.BROKEN_KINDS[kind] == "converted"
    data, expected = fake_raw_data.image_file_bytes(kind, IMAGE)
    jpeg, height, width, reason = images.reencode_as_rgb_jpeg(data, "a.jpg")
    assert reason.startswith(note)
    assert images.image_format(jpeg) == "JPEG"
    assert tf.io.extract_jpeg_shape(jpeg).numpy().tolist() == [32, 64, 3]
    assert (height, width) == (32, 64)
    fake_raw_data.assert_pixels_close(
        tf.io.decode_jpeg(jpeg).numpy(), expected
    )


def test_cmyk_fixture_really_is_cmyk():
    data, _ = fake_raw_data.image_file_bytes("cmyk_jpeg", IMAGE)
    assert tf.io.extract_jpeg_shape(data).numpy().tolist() == [32, 64, 4]


@pytest.mark.parametrize(
    "kind",
    [k for k, v in fake_raw_data.BROKEN_KINDS.items() if v == "skipped"],
)
def test_unusable_kinds_are_refused_with_a_reason(kind, tmp_path):
    path = str(tmp_path / "image.jpg")
    fake_raw_data.write_image_file(path, kind, IMAGE)
    data, reason = images.read_file(path)
    if data is not None:
        jpeg, height, width, reason = images.reencode_as_rgb_jpeg(data, path)
        assert (jpeg, height, width) == (None, 0, 0)
    assert fake_raw_data.SKIP_REASONS[kind] in reason


def test_other_formats_and_alpha():
    rgba = np.concatenate([IMAGE, np.full((32, 64, 1), 9, np.uint8)], -1)
    png = tf.io.encode_png(rgba).numpy()
    jpeg, _, _, reason = images.reencode_as_rgb_jpeg(png, "a.png")
    assert reason == "PNG re-encoded as RGB JPEG"  # no ".jpg" disguise
    fake_raw_data.assert_pixels_close(tf.io.decode_jpeg(jpeg).numpy(), IMAGE)
    gif = b"GIF89a" + bytes(20)
    jpeg, _, _, reason = images.reencode_as_rgb_jpeg(gif, "a.gif")
    assert jpeg is None and reason.startswith("corrupt or unsupported GIF")


def test_image_format():
    assert images.image_format(b"\xff\xd8\xff\xe0") == "JPEG"
    assert images.image_format(b"\x89PNG\r\n\x1a\n...") == "PNG"
    assert images.image_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert images.image_format(b"hello") is None


def test_truncation_threshold():
    data, _ = fake_raw_data.image_file_bytes("missing_end_marker", IMAGE)
    jpeg, _, _, reason = images.reencode_as_rgb_jpeg(
        data, min_intact_fraction=1.01
    )
    assert jpeg is None and "rows decodable" in reason


@pytest.mark.parametrize(
    "limit, ratio_size",
    [(500, (400, 1000)), (100, (100, 250)), (45, (45, 113)), (10, (10, 25))],
)
def test_cap_smaller_side(limit, ratio_size):
    jpeg = tf.io.encode_jpeg(
        fake_raw_data.quadrant_image(1, 400, 1000)
    ).numpy()
    capped, height, width = images.cap_smaller_side(jpeg, limit)
    assert (height, width) == ratio_size
    assert tf.io.extract_jpeg_shape(capped).numpy().tolist()[:2] == [
        height,
        width,
    ]
    if limit >= 400:
        assert capped is jpeg
    portrait = tf.io.encode_jpeg(
        fake_raw_data.quadrant_image(1, 96, 48)
    ).numpy()
    assert images.cap_smaller_side(portrait, 24)[1:] == (48, 24)


def test_crop_jpeg():
    jpeg = tf.io.encode_jpeg(IMAGE, quality=100).numpy()
    crop, height, width = images.crop_jpeg(jpeg, (0, 0, 16, 32))
    assert (height, width) == (16, 32)
    decoded = tf.io.decode_jpeg(crop).numpy().astype(int)
    assert np.abs(decoded[4:12, 4:28] - IMAGE[4:12, 4:28]).max() <= 8
    assert images.crop_jpeg(jpeg, (0, 0, 16, 32), max_smaller_side=8)[1:] == (
        8,
        16,
    )


def test_encode_image_item(tmp_path):
    path = str(tmp_path / "bird.jpg")
    fake_raw_data.write_image_file(path, "png_as_jpeg", IMAGE)
    item = images.ImageItem(
        path=path,
        label=4,
        text="owl",
        pixel_boxes=((4, 8, 24, 48), (0, 0, 64, 128)),
    )
    example, note = images.encode_image_item(item)
    assert note == "PNG named .jpg re-encoded as RGB JPEG"
    parsed = records.parse_example(example.SerializeToString())
    assert parsed["filename"].numpy() == b"bird.jpg"
    np.testing.assert_allclose(
        parsed["boxes"].numpy(),
        [fake_raw_data.NORMALISED_BOX, (0, 0, 1, 1)],  # the second one clipped
        atol=1e-6,
    )
    capped = images.ImageItem(path=path, label=4, max_smaller_side=16)
    example, note = images.encode_image_item(capped)
    assert note.endswith("downscaled from 32x64 to 16x32")
    outside = images.ImageItem(path=path, label=4, crop=(20, 0, 16, 16))
    assert images.encode_image_item(outside) == (
        None,
        "crop (20, 0, 16, 16) outside the 32x64 image",
    )
