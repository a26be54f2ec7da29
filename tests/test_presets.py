"""Every preset builds and runs; the paper's models have the paper's size and cost."""

import gc

import keras
import numpy as np
import pytest
import tensorflow as tf

import tnet_tf
from tnet_tf import presets
from tnet_tf import profiling

# Parameters (paper Tables 1-2, within 0.5%) and, for CUB/NABirds, the
# release's counts (original_implementation_detail.md §16).
EXPECTED_PARAMS = {
    "imagenet_bagnet77": 20.55e6,
    "imagenet_tnet": 21.86e6,
    "fmow_en_b0_224": 4.13e6,
    "fmow_en_b0_448": 4.13e6,
    "fmow_en_b0_896": 4.13e6,
    "fmow_en_b0_crops": 4.13e6,
    "fmow_tnet_b0": 4.56e6,
    "fmow_tnet_b0_896": 4.56e6,
    "cub_en_b0": 4_305_764,
    "cub_tnet_b0": 5_558_451,
    "cub_en_b1": 6_831_432,
    "cub_tnet_b1": 8_069_459,
    "cub_en_b2": 8_050_362,
    "cub_tnet_b2": 9_549_017,
    "cub_en_b3": 11_090_928,
    "cub_tnet_b3": 12_872_623,
    "cub_en_b4": 18_032_416,
    "cub_tnet_b4": 20_456_467,
    "nabirds_en_b0": 4_760_519,
    "nabirds_tnet_b0": 6_013_206,
    "nabirds_en_b4": 18_668_931,
    "nabirds_tnet_b4": 21_092_982,
}

# Multiply-adds per image in billions (paper Tables 1-2), within 3%:
# preset -> [(image size, locations_per_level or None, paper value)].
EXPECTED_FLOPS = {
    "imagenet_tnet": [
        (224, [0], 1.82),
        (224, [1], 3.63),
        (224, [2], 5.43),
        (224, [3], 7.24),
        (224, [5], 10.84),
    ],
    "imagenet_bagnet77": [(224, None, 18.42)],
    "fmow_tnet_b0": [
        (448, [0], 0.39),
        (448, [1], 0.77),
        (448, [2], 1.16),
        (448, [3], 1.55),
    ],
    "fmow_tnet_b0_896": [(896, [2, 1], 1.94), (896, [2, 2], 2.71)],
    "fmow_en_b0_224": [(224, None, 0.39)],
    "fmow_en_b0_448": [(448, None, 1.54)],
    "fmow_en_b0_896": [(896, None, 6.18)],
}


@pytest.mark.parametrize("name", presets.names())
def test_preset_builds_runs_and_matches_the_paper(name):
    config = presets.get(name)
    model = presets.build(name)
    height, width = config.image_size
    images = tf.random.uniform((1, height, width, 3), -1.0, 1.0)
    out = model(images, training=False)
    logits = out["logits"] if isinstance(out, dict) else out
    assert logits.shape == (1, config.num_classes)
    assert np.all(np.isfinite(logits.numpy()))
    if isinstance(model, tnet_tf.TNet):
        vectors = 1
        per_level = 1
        for k in config.locations_per_level:
            per_level *= k
            vectors += per_level
        assert out["per_feature_logits"].shape[1] == vectors
    if name in EXPECTED_PARAMS:
        expected = EXPECTED_PARAMS[name]
        assert abs(model.count_params() - expected) <= 0.005 * expected, (
            model.count_params(),
            expected,
        )
    for size, locations, paper in EXPECTED_FLOPS.get(name, []):
        result = profiling.profile(model, size, locations)
        assert abs(result["flops"] / 1e9 - paper) <= 0.03 * paper, (
            size,
            locations,
            result,
        )
    del model
    keras.backend.clear_session()
    gc.collect()


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="Available: .*fmow_tnet_b0"):
        presets.get("fmow_tnet_b9")


def test_every_paper_model_is_registered():
    names = set(presets.names())
    for prefix in ("cub", "nabirds"):
        for i in range(5):
            assert {f"{prefix}_tnet_b{i}", f"{prefix}_en_b{i}"} <= names
    assert set(EXPECTED_FLOPS) <= names
