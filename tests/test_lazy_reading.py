"""Lazy region reading of large JPEGs (`tnet_tf.lazy_reading`) against the
dense path (the decoded image as a float tensor)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import TNet
from tnet_tf import lazy_reading
from tnet_tf import presets

# fmow_tnet_b0_896's grid (3 x 3, cell 0.5, base 224, [2, 1]) on the tiny
# backbone, for speed.
CONFIG = presets.get("fmow_tnet_b0_896").replace(
    backbone="tiny_cnn", num_classes=10, drop_connect_rate=None
)
# (height, width): square cells resampled; 2730 px wide, the grid pads a
# pixel, so the dense path crops and the padded windows are read.
SIZES = ((2048, 2048), (2048, 2730), (4096, 3072))


def natural_looking(height, width, seed):
    """A smooth random image with some texture, uint8 `(h, w, 3)`."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (1, 9, 12, 3)).astype(np.float32)
    middle = tf.image.resize(coarse, (height // 8, width // 8), "bicubic")
    middle += rng.normal(0, 20, middle.shape).astype(np.float32)
    image = tf.image.resize(middle, (height, width), "bilinear")[0]
    return tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return TNet(CONFIG, load_backbone_weights=False)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpegs")
    paths = []
    for seed, (height, width) in enumerate(SIZES):
        path = folder / f"image_{height}x{width}.jpg"
        image = natural_looking(height, width, seed)
        path.write_bytes(tf.io.encode_jpeg(image, quality=95).numpy())
        paths.append(path)
    return paths


def dense_outputs(model, path, locations=None):
    pixels = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3)
    images = tf.image.convert_image_dtype(pixels, tf.float32) * 2.0 - 1.0
    return model(images[None], training=False, locations_per_level=locations)


@pytest.mark.parametrize("index", range(len(SIZES)))
def test_matches_the_dense_path(model, jpegs, index):
    path = jpegs[index]
    dense = dense_outputs(model, path)
    # Level 1 decoded in full, the regions from their windows: the dense
    # result (up to float rounding).
    full = lazy_reading.classify_file(model, path, max_ratio=1)
    np.testing.assert_allclose(full["logits"], dense["logits"], atol=1e-5)
    for key in ("attended_cells", "attended_boxes", "attended_levels"):
        np.testing.assert_array_equal(full[key], dense[key])
    np.testing.assert_allclose(
        full["location_probs"][1], dense["location_probs"][1], atol=1e-5
    )


@pytest.mark.parametrize("index", range(len(SIZES)))
def test_reduced_level_one_is_close(model, jpegs, index):
    """Level 1 from the 1/8 DCT-scaled decode: not the dense path's
    bilinear samples, so level 1's cell probabilities move a little (a
    near tie may choose another cell: 4096 x 3072 here, cells 7 and 1 at
    0.082 and 0.079); the class agrees."""
    path = jpegs[index]
    dense = dense_outputs(model, path)
    reduced = lazy_reading.classify_file(model, path)
    np.testing.assert_allclose(
        reduced["location_probs"][0], dense["location_probs"][0], atol=0.05
    )
    assert np.argmax(reduced["logits"]) == np.argmax(dense["logits"])
    assert np.max(np.abs(reduced["logits"] - dense["logits"])) < 0.2
    if index < 2:
        np.testing.assert_array_equal(
            reduced["attended_cells"], dense["attended_cells"]
        )


def test_regions_equal_the_dense_crops(model, jpegs):
    """Levels 2 and 3 are read pixel for pixel as the dense path reads
    them (the region windows are decoded with a margin)."""
    path = jpegs[1]
    image = lazy_reading.EncodedImage(tf.io.read_file(str(path)))
    dense = tf.io.decode_jpeg(image.contents, channels=3)
    reader = model.region_reader(image)
    assert isinstance(reader, lazy_reading.JpegRegions)
    reader.start(image)
    # Corner boxes partly outside the image (padding reads zero) and one
    # inside.
    origins = tf.constant([[-1.0, -1.0], [1000.0, 1700.0], [513.0, 77.0]])
    regions = lazy_reading.regions_lib.Regions(
        origins=origins,
        size=(1040, 1040),
        image_size=(image.height, image.width),
        positions=tf.zeros((3, 3)),
        cells=tf.zeros((3,), tf.int32),
        log_probs=tf.zeros((3,)),
        per_image=3,
        level=1,
    )
    read = reader.read(regions)
    padded = tf.pad(
        tf.image.convert_image_dtype(dense, tf.float32) * 2.0 - 1.0,
        [[1, 1040], [1, 1040], [0, 0]],
    )
    expected = [
        padded[y + 1 : y + 1041, x + 1 : x + 1041]
        for y, x in origins.numpy().astype(int)
    ]
    expected = tf.image.resize(tf.stack(expected), (224, 224))
    np.testing.assert_array_equal(read, expected)


def test_classify_files_and_locations(model, jpegs):
    outputs = lazy_reading.classify_files(
        model, jpegs[:2], locations_per_level=[1]
    )
    assert len(outputs) == 2
    for path, result in zip(jpegs, outputs):
        dense = dense_outputs(model, path, [1])
        assert result["attended_cells"].shape == (1, 2)
        np.testing.assert_array_equal(
            result["attended_cells"], dense["attended_cells"]
        )


@pytest.mark.parametrize(
    "height, width, ratio",
    [
        (4096, 4096, 8),
        (2048, 2730, 8),
        (1000, 1000, 4),
        (449, 2000, 2),
        (300, 1000, 1),
        (224, 224, 1),
    ],
)
def test_level_one_ratio(height, width, ratio):
    assert lazy_reading.level_one_ratio(height, width, 224) == ratio
    assert lazy_reading.level_one_ratio(height, width, 224, 1) == 1


def test_truncated_jpeg_fails_clearly(model, jpegs, tmp_path):
    data = jpegs[0].read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    # The header is intact: the decode of level 1 finds the damage.
    with pytest.raises(lazy_reading.UnreadableJpegError) as raised:
        lazy_reading.classify_file(model, path)
    message = str(raised.value)
    assert str(path) in message and "level 1" in message


@pytest.mark.parametrize(
    "data",
    [
        b"not an image at all",
        b"",
        tf.io.encode_png(tf.zeros((300, 300, 3), tf.uint8)).numpy(),
    ],
    ids=["garbage", "empty", "png"],
)
def test_not_a_jpeg_fails_clearly(model, tmp_path, data):
    path = tmp_path / "image.jpg"
    path.write_bytes(data)
    with pytest.raises(lazy_reading.UnreadableJpegError, match="header"):
        lazy_reading.classify_file(model, path)


def test_missing_file(model, tmp_path):
    with pytest.raises(tf.errors.NotFoundError):
        lazy_reading.classify_file(model, tmp_path / "missing.jpg")


def test_invalid_max_ratio():
    with pytest.raises(ValueError, match="max_ratio"):
        lazy_reading.EncodedImage(b"", max_ratio=3)


def test_too_small_image_is_rejected(model, tmp_path):
    path = tmp_path / "small.jpg"
    image = natural_looking(200, 300, 0)
    path.write_bytes(tf.io.encode_jpeg(image, quality=95).numpy())
    with pytest.raises(ValueError, match="smaller than the base"):
        lazy_reading.classify_file(model, path)


def test_needs_eager(model, jpegs):
    image = lazy_reading.EncodedImage(tf.io.read_file(str(jpegs[0])))
    reader = model.region_reader(image)

    @tf.function
    def start():
        reader.start(image)

    with pytest.raises(RuntimeError, match="eagerly"):
        start()
