"""Lazy region reading of large images (`tnet_tf.lazy_reading`,
`tnet_tf.lazy_regions`) against the dense path (the decoded image as a
float tensor)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import TNet
from tnet_tf import lazy_reading
from tnet_tf import lazy_regions
from tnet_tf import presets
from tnet_tf.models import regions as regions_lib

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
def test_reduced_decodes_are_close(model, jpegs, index):
    """Every box at the coarsest ratio keeping 224 px (level 1 at 1/8,
    level 2 at 1/4 or 1/8, level 3 at 1/2 or 1/4): a DCT-scaled decode
    averages where the dense path's bilinear resize samples, so
    probabilities move a little (a near tie may choose another cell:
    4096 x 3072 here, cells 7 and 1 at 0.082 and 0.079); the class
    agrees."""
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
        assert np.max(np.abs(reduced["logits"] - dense["logits"])) < 0.02


def level_regions(image, origins, size, level=1):
    return regions_lib.Regions(
        origins=tf.constant(origins, tf.float32),
        size=size,
        image_size=(image.height, image.width),
        positions=tf.zeros((len(origins), 3)),
        cells=tf.zeros((len(origins),), tf.int32),
        log_probs=tf.zeros((len(origins),)),
        per_image=len(origins),
        level=level,
    )


@pytest.mark.parametrize(
    "size, ratio", [((1040, 1040), 4), ((520, 520), 2), ((2048, 2048), 4)]
)
def test_scaled_window_equals_the_scaled_decode(model, jpegs, size, ratio):
    """A region decoded at 1/ratio from its own window (crop window in the
    scaled image's coordinates, with a margin) reads what sampling the
    whole image decoded at 1/ratio reads; sampling at ratio 1 is
    `tf.image.resize` of the region. The ratio is the coarsest keeping 224
    px, at most level 1's (1/4 here: its decode at 1/2 would be over
    `SHARED_DECODE_PIXELS`)."""
    image = lazy_reading.EncodedImage(tf.io.read_file(str(jpegs[1])))
    reader = model.region_reader(image)
    reader.start(image)
    assert min(lazy_regions.decode_ratio(*size, 224), 4) == ratio
    origins = [[-1.0, -1.0], [1000.0, 1700.0], [513.0, 77.0]]
    if size[0] > 1040:
        origins = [[0.0, 682.0]]
    read = reader.read(level_regions(image, origins, size))
    whole = tf.io.decode_jpeg(image.contents, channels=3, ratio=ratio)
    expected = tf.concat(
        [
            lazy_regions.sample_box(
                whole, (0, 0), (int(y), int(x), *size), ratio, 224
            )
            for y, x in origins
        ],
        axis=0,
    )
    # Up to float rounding of the sample coordinates (another origin).
    np.testing.assert_allclose(read, expected, atol=1e-4)
    full = tf.io.decode_jpeg(image.contents, channels=3)
    y, x, height, width = 513, 77, 1040, 520
    box = lazy_regions.to_model_range(full[y : y + height, x : x + width])
    np.testing.assert_allclose(
        lazy_regions.sample_box(full, (0, 0), (y, x, height, width), 1, 224),
        tf.image.resize(box[None], (224, 224)),
        atol=1e-4,
    )


def test_regions_equal_the_dense_crops(model, jpegs):
    """Levels 2 and 3 are read pixel for pixel as the dense path reads
    them (the region windows are decoded with a margin)."""
    path = jpegs[1]
    image = lazy_reading.EncodedImage(tf.io.read_file(str(path)), max_ratio=1)
    dense = tf.io.decode_jpeg(image.contents, channels=3)
    reader = model.region_reader(image)
    assert isinstance(reader, lazy_regions.JpegRegions)
    reader.start(image)
    # Corner boxes partly outside the image (padding reads zero) and one
    # inside.
    origins = tf.constant([[-1.0, -1.0], [1000.0, 1700.0], [513.0, 77.0]])
    read = reader.read(level_regions(image, origins, (1040, 1040)))
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
def test_decode_ratio(height, width, ratio):
    assert lazy_reading.decode_ratio(height, width, 224) == ratio
    assert lazy_reading.decode_ratio(height, width, 224, 1) == 1


def test_truncated_jpeg_fails_clearly(model, jpegs, tmp_path):
    data = jpegs[0].read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    # The header is intact: the decode of level 1 finds the damage.
    with pytest.raises(lazy_reading.UnreadableImageError) as raised:
        lazy_reading.classify_file(model, path)
    message = str(raised.value)
    assert str(path) in message and "level 1" in message


@pytest.mark.parametrize(
    "data", [b"not an image at all", b""], ids=["garbage", "empty"]
)
def test_not_an_image_fails_clearly(model, tmp_path, data):
    path = tmp_path / "image.jpg"
    path.write_bytes(data)
    with pytest.raises(lazy_reading.UnreadableImageError, match="image"):
        lazy_reading.classify_file(model, path)


def test_bad_jpeg_header_fails_clearly(model, tmp_path):
    path = tmp_path / "image.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)
    with pytest.raises(lazy_reading.UnreadableImageError, match="JPEG header"):
        lazy_reading.classify_file(model, path)


@pytest.mark.parametrize("index", [0, 1])
def test_png_matches_the_dense_path(model, jpegs, tmp_path, index):
    """A PNG is decoded once to uint8 and its boxes sampled from it: the
    dense path up to float rounding of the sample coordinates."""
    pixels = tf.io.decode_jpeg(tf.io.read_file(str(jpegs[index])))
    path = tmp_path / "image.png"
    path.write_bytes(tf.io.encode_png(pixels).numpy())
    image = lazy_reading.open_image(tf.io.read_file(str(path)))
    assert isinstance(model.region_reader(image), lazy_regions.ArrayRegions)
    lazy = lazy_reading.classify_file(model, path)
    dense = dense_outputs(model, path)
    np.testing.assert_allclose(lazy["logits"], dense["logits"], atol=1e-4)
    np.testing.assert_array_equal(
        lazy["attended_cells"], dense["attended_cells"]
    )


def test_truncated_png_fails_clearly(model, jpegs, tmp_path):
    pixels = tf.io.decode_jpeg(tf.io.read_file(str(jpegs[0])))
    data = tf.io.encode_png(pixels).numpy()
    path = tmp_path / "truncated.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(lazy_reading.UnreadableImageError) as raised:
        lazy_reading.classify_file(model, path)
    assert str(path) in str(raised.value)


def test_too_large_for_the_decoder(model, jpegs, monkeypatch):
    """TensorFlow's decoder refuses decodes of 512 MiB or more (a 16k
    JPEG at full resolution): a clear error naming `max_ratio`; a coarser
    ratio reads it."""
    monkeypatch.setattr(lazy_regions, "DECODER_LIMIT_BYTES", 2**22)
    with pytest.raises(lazy_reading.ImageTooLargeError, match="max_ratio"):
        lazy_reading.classify_file(model, jpegs[0], max_ratio=1)
    lazy_reading.classify_file(model, jpegs[0], max_ratio=2)


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


def test_compiled_call_equals_the_eager_one(model, jpegs):
    """`classify_image` runs `TNet.call` as one `tf.function` of the
    bytes, the size dynamic: the eager call's outputs, and one trace for
    files of every size."""
    locations = model.resolve_locations(None)
    for path in jpegs:
        image = lazy_reading.EncodedImage(tf.io.read_file(str(path)))
        eager = lazy_reading.call_lazy(model, image, locations)
        compiled = lazy_reading.classify_image(model, image)
        np.testing.assert_allclose(
            compiled["logits"], eager["logits"], atol=1e-5
        )
        for key in ("attended_cells", "attended_boxes"):
            np.testing.assert_allclose(compiled[key], eager[key], atol=1e-6)
    (call,) = [
        call
        for key, call in lazy_reading._CALLS[model].items()
        if key == (lazy_reading.EncodedImage, (("max_ratio", 8),), locations)
    ]
    assert call.traced.experimental_get_tracing_count() == 1


def test_anytime_on_a_lazy_image(model, jpegs):
    """`predict_anytime` reads a lazy image where it attends (the lazy
    readers' `keep` is trivial: one image): with no threshold, `k` steps
    are `classify_file`'s `[k, 1]`; a threshold stops it early. One
    compiled program serves images of every size."""
    for path in jpegs[:2]:
        image = lazy_reading.EncodedImage(tf.io.read_file(str(path)))
        result = model.predict_anytime(image, max_locations=2)
        lazy = lazy_reading.classify_file(model, path)
        np.testing.assert_allclose(result.logits, lazy["logits"], atol=1e-5)
        np.testing.assert_array_equal(
            result.attended_cells, lazy["attended_cells"]
        )
        assert result.locations.tolist() == [2]
        early = model.predict_anytime(image, threshold=1e-6, max_locations=2)
        assert early.locations.tolist() == [1]
        np.testing.assert_array_equal(
            early.attended_cells[:, :2], lazy["attended_cells"][:, :2]
        )
    pixels = tf.io.decode_jpeg(tf.io.read_file(str(jpegs[0])))
    decoded = lazy_reading.DecodedImage(pixels)
    result = model.predict_anytime(decoded, max_locations=2)
    dense = dense_outputs(model, jpegs[0])
    np.testing.assert_allclose(result.logits, dense["logits"], atol=1e-4)


def test_benchmark_smoke(capsys, tmp_path):
    """`python -m bench.lazy_reading --smoke` prints its table and JSON;
    its exact-path checks (max_ratio=1) pass on the tiny stand-in. It bounds
    its own address space while its cases run, and must not leave the bound
    on the process that called it (here, the test's)."""
    import resource

    from bench import lazy_reading as bench

    limits = resource.getrlimit(resource.RLIMIT_AS)
    bench.main(["--smoke", "--quiet", "--image-dir", str(tmp_path)])
    assert resource.getrlimit(resource.RLIMIT_AS) == limits
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert [case["name"] for case in result["cases"]] == [
        "lazy_128",
        "dense_128",
        "lazy_256",
        "dense_256",
        "lazy_512",
    ]
    assert "ms/image" in "\n".join(lines[:-1])
    exact = [c for c in result["checks"] if "max_ratio=1" in c["name"]]
    assert len(exact) == 2 and all(c["passed"] for c in exact)
    assert len(result["checks"]) == 4
