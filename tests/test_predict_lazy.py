"""`python -m experiments.predict --lazy`: images classified at full
resolution (`tnet_tf.lazy_reading`), run as a user runs it.

A tiny TNet saved as `.keras` classifies a folder with a large JPEG, a PNG,
a truncated large JPEG and a corrupt file; the CSV rows must be what
`lazy_reading.classify_file` gives in-process, the damaged files skipped
with a clear reason, and nothing may hang (every run has a timeout).
"""

import csv
import json
import tracemalloc

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import run_module
from tests.test_lazy_reading import natural_looking
from tnet_tf import lazy_reading
from tnet_tf import presets
from tnet_tf import viz
from tnet_tf.experiment import predict as predict_lib
from tnet_tf.experiment import predict_lazy
from tnet_tf.experiment.predictor import Predictor

SKIPPED_EXIT_STATUS = 3  # experiments.predict.SKIPPED_EXIT_STATUS
TIMEOUT = 240


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_lazy")
    images = root / "images"
    images.mkdir()
    keras.utils.set_random_seed(3)
    model = presets.build("tiny_test")
    checkpoint = root / "model.keras"
    model.save(checkpoint)
    large = natural_looking(3000, 2200, 0)
    (images / "a_large.jpg").write_bytes(
        tf.io.encode_jpeg(large, quality=90).numpy()
    )
    (images / "b_photo.png").write_bytes(
        tf.io.encode_png(natural_looking(300, 400, 1)).numpy()
    )
    damaged = tf.io.encode_jpeg(natural_looking(4096, 4096, 2)).numpy()
    (images / "c_truncated.jpg").write_bytes(damaged[: len(damaged) // 2])
    (images / "d_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 no JPEG")
    return model, str(checkpoint), images, root


def test_batch_lazy_rows_and_skips(setup):
    model, checkpoint, images, root = setup
    output = root / "lazy.csv"
    result = run_module(
        "experiments.predict",
        f"--images={images}/*",
        f"--checkpoint={checkpoint}",
        f"--output={output}",
        "--lazy",
        "--top_k=2",
        timeout=TIMEOUT,
    )
    assert result.returncode == SKIPPED_EXIT_STATUS, result.stderr[-3000:]
    for name in ("c_truncated.jpg", "d_corrupt.jpg"):
        assert f"skipped {images / name}: cannot decode the image" in (
            result.stderr
        )
    with open(output) as file:
        rows = list(csv.DictReader(file))
    assert [row["path"] for row in rows] == [
        str(images / "a_large.jpg"),
        str(images / "b_photo.png"),
    ]
    for row in rows:
        # At full resolution, not resized to the model's 96 px.
        expected = lazy_reading.classify_file(model, row["path"])
        one = viz.outputs_for_image(expected, 0)
        top = predict_lib.top_classes(one, top_k=2)
        assert int(row["top1_class"]) == top[0][0]
        assert float(row["top1_probability"]) == pytest.approx(
            top[0][2], abs=1e-5
        )
        np.testing.assert_allclose(
            json.loads(row["attended_boxes"]),
            one["attended_boxes"],
            atol=1e-5,
        )


def test_single_truncated_file_fails_clearly(setup):
    _, checkpoint, images, root = setup
    result = run_module(
        "experiments.predict",
        f"--image={images / 'c_truncated.jpg'}",
        f"--checkpoint={checkpoint}",
        f"--output_png={root / 'picture.png'}",
        "--lazy",
        timeout=TIMEOUT,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "is not a readable image: cannot decode the image (level 1" in (
        result.stderr
    )


def test_single_large_file_draws_its_picture(setup):
    _, checkpoint, images, root = setup
    picture = root / "large.png"
    result = run_module(
        "experiments.predict",
        f"--image={images / 'a_large.jpg'}",
        f"--checkpoint={checkpoint}",
        f"--output_png={picture}",
        "--lazy",
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert picture.stat().st_size > 0
    assert "1. " in result.stdout


def test_lazy_needs_a_keras_tnet():
    predictor = Predictor(None, (96, 96), "saved_model")
    with pytest.raises(ValueError, match="--lazy .* TNet"):
        predict_lazy.check_lazy_model(predictor)


def test_picture_of_a_large_jpeg_is_reduced(tmp_path):
    path = tmp_path / "large.jpg"
    pixels = natural_looking(4400, 2000, 0)
    path.write_bytes(tf.io.encode_jpeg(pixels).numpy())
    assert predict_lazy.picture_pixels(path).shape == (2200, 1000, 3)
    small = tmp_path / "small.png"
    small.write_bytes(tf.io.encode_png(pixels[:300, :200]).numpy())
    assert predict_lazy.picture_pixels(small).shape == (300, 200, 3)


@pytest.mark.parametrize("encode", [tf.io.encode_jpeg, tf.io.encode_png])
def test_picture_format_check_does_not_copy_the_file(tmp_path, encode):
    """The JPEG check reads the magic bytes, not the file's contents into
    Python: a small image padded to 20 MiB (decoders stop at its end
    marker) is drawn with far less than 20 MiB of Python memory."""
    pixels = natural_looking(64, 48, 0)
    path = tmp_path / "padded"
    path.write_bytes(encode(pixels).numpy() + bytes(20 * 2**20))
    tracemalloc.start()
    try:
        drawn = predict_lazy.picture_pixels(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert drawn.shape == (64, 48, 3)
    assert peak < 2**20, f"{peak / 2**20:.1f} MiB traced"
