"""FeatureExtractor: outputs, taps, weights, serialization, errors."""

import keras
import numpy as np
import pytest

from tests import helpers
from tnet_tf.layers.feature_extractor import FeatureExtractor

TINY_SIZE = 64


def _numpy(value):
    return keras.ops.convert_to_numpy(value)


def _randomize_weights(layer, seed=0):
    """Sets every weight (BN statistics included) to random values."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        if weight.dtype.startswith("float"):
            values = rng.uniform(0.5, 1.5, size=weight.shape)
            weight.assign(values.astype(weight.dtype))


@pytest.fixture(scope="module")
def bagnet_extractor():
    return FeatureExtractor("bagnet77", base_resolution=77, grid_size=5)


@pytest.fixture(scope="module")
def efficientnet_extractor():
    return FeatureExtractor(
        "efficientnet_b0",
        base_resolution=224,
        grid_size=3,
        drop_connect_rate=0.3,
    )


# === BagNet-77 ===


def test_bagnet_outputs_and_properties(bagnet_extractor):
    assert bagnet_extractor.feature_dim == 512
    assert bagnet_extractor.tap_channels == 1024
    assert bagnet_extractor.family == "bagnet"
    assert bagnet_extractor.count_params() == 20_033_664

    images = helpers.random_images(batch=2, height=77)
    features, feature_map = bagnet_extractor(images)
    assert tuple(features.shape) == (2, 512)
    assert tuple(feature_map.shape) == (2, 5, 5, 1024)

    # V is the mean of the part-6 map; F is the part-4 output [::2, ::2].
    model = bagnet_extractor.backbone_model
    probe = keras.Model(
        model.input,
        [model.output, model.get_layer("part4_block6_out").output],
    )
    part6, part4 = (_numpy(value) for value in probe(images, training=False))
    np.testing.assert_allclose(
        _numpy(features), part6.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(_numpy(feature_map), part4[:, ::2, ::2, :])


def test_bagnet_with_classifier_parameter_count(bagnet_extractor):
    images = keras.Input((77, 77, 3))
    features, _ = bagnet_extractor(images)
    model = keras.Model(images, keras.layers.Dense(1000)(features))
    assert model.count_params() == 20_546_664


# === EfficientNet-B0 ===


def test_efficientnet_outputs(efficientnet_extractor):
    assert efficientnet_extractor.feature_dim == 1280
    assert efficientnet_extractor.tap_channels == 80
    assert efficientnet_extractor.family == "efficientnet"
    features, feature_map = efficientnet_extractor(
        helpers.random_images(batch=1, height=224)
    )
    assert tuple(features.shape) == (1, 1280)
    assert tuple(feature_map.shape) == (1, 3, 3, 80)


def test_efficientnet_with_62_classes_parameter_count(efficientnet_extractor):
    classifier = keras.layers.Dense(62)
    classifier.build((None, efficientnet_extractor.feature_dim))
    total = efficientnet_extractor.count_params() + classifier.count_params()
    # keras.applications adds 7 Normalization variables to the release's count.
    assert total == 4_128_986 + 7
    assert abs(total - 4_128_986) / 4_128_986 < 0.005


# === tiny CNN, baselines, training flag ===


@pytest.mark.parametrize("grid_size", [2, 3, 4, 5])
def test_tiny_grids(grid_size):
    extractor = FeatureExtractor(
        "tiny_cnn", base_resolution=TINY_SIZE, grid_size=grid_size
    )
    features, feature_map = extractor(helpers.random_images(height=TINY_SIZE))
    assert tuple(features.shape) == (2, 64)
    assert tuple(feature_map.shape) == (2, grid_size, grid_size, 32)


def test_without_grid_any_input_size():
    extractor = FeatureExtractor("tiny_cnn")
    assert extractor.tap_channels is None
    for size in (48, 96):
        features = extractor(helpers.random_images(height=size))
        assert tuple(features.shape) == (2, 64)


def test_symbolic_call_and_output_shape():
    extractor = FeatureExtractor(
        "tiny_cnn", base_resolution=TINY_SIZE, grid_size=3
    )
    features, feature_map = extractor(keras.Input((TINY_SIZE, TINY_SIZE, 3)))
    assert tuple(features.shape) == (None, 64)
    assert tuple(feature_map.shape) == (None, 3, 3, 32)
    assert extractor.compute_output_shape((4, TINY_SIZE, TINY_SIZE, 3)) == (
        (4, 64),
        (4, 3, 3, 32),
    )


def test_dropout_only_in_training():
    extractor = FeatureExtractor(
        "tiny_cnn", base_resolution=TINY_SIZE, grid_size=2, dropout_rate=0.5
    )
    images = helpers.random_images(batch=4, height=TINY_SIZE)
    inference = _numpy(extractor(images, training=False)[0])
    np.testing.assert_allclose(
        _numpy(extractor(images, training=False)[0]), inference
    )
    assert not np.allclose(
        _numpy(extractor(images, training=True)[0]), inference
    )


# === tap overrides and the generic adapter ===


def test_tap_slice_override():
    extractor = FeatureExtractor(
        "tiny_cnn",
        base_resolution=TINY_SIZE,
        grid_size=2,
        tap_slice=(0, None, 8),
    )
    images = helpers.random_images(height=TINY_SIZE)
    _, feature_map = extractor(images)
    tap = keras.Model(
        extractor.backbone_model.input,
        extractor.backbone_model.get_layer("stage2_relu").output,
    )
    np.testing.assert_allclose(
        _numpy(feature_map),
        _numpy(tap(images, training=False))[:, ::8, ::8, :],
    )


def test_tap_mismatch_names_layer_map_and_grid():
    with pytest.raises(
        ValueError, match="'stage2_relu'.*16x16.*8x8.*not the 3x3"
    ):
        FeatureExtractor(
            "tiny_cnn",
            base_resolution=TINY_SIZE,
            grid_size=3,
            tap_slice=(0, None, 2),
        )


def test_keras_application_with_named_tap():
    extractor = FeatureExtractor(
        "keras.applications.MobileNetV2",
        base_resolution=96,
        grid_size=3,
        tap_layer="block_13_expand_relu",  # 6x6x576 at 96 px
        tap_slice=(1, None, 2),
    )
    assert extractor.family == "generic"
    assert extractor.feature_dim == 1280
    assert extractor.tap_channels == 576
    features, feature_map = extractor(
        helpers.random_images(batch=1, height=96)
    )
    assert tuple(features.shape) == (1, 1280)
    assert tuple(feature_map.shape) == (1, 3, 3, 576)


def test_keras_application_needs_a_tap_for_a_grid():
    with pytest.raises(ValueError, match="no default tap"):
        FeatureExtractor(
            "keras.applications.MobileNetV2", base_resolution=96, grid_size=3
        )


def test_unknown_tap_layer():
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        FeatureExtractor(
            "tiny_cnn",
            base_resolution=TINY_SIZE,
            grid_size=2,
            tap_layer="nope",
        )


# === errors ===


def test_unknown_backbone():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet9'"):
        FeatureExtractor("resnet9", base_resolution=TINY_SIZE)


def test_unsupported_grid():
    with pytest.raises(
        ValueError, match="grid_size=4.*Supported grid sizes: 5"
    ):
        FeatureExtractor("bagnet77", base_resolution=77, grid_size=4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"base_resolution": "big"}, "base_resolution='big'"),
        ({"base_resolution": (64, 64, 3)}, "base_resolution=\\(64, 64, 3\\)"),
        ({"base_resolution": 64, "grid_size": 2.0}, "grid_size=2.0"),
        ({"grid_size": 2}, "base_resolution=None, grid_size=2"),
        (
            {"base_resolution": 64, "tap_layer": "stage2_relu"},
            "need a `grid_size`",
        ),
        (
            {"base_resolution": 64, "grid_size": 2, "tap_slice": (1, 2)},
            "(1, 2)",
        ),
        (
            {"base_resolution": 64, "grid_size": 2, "tap_layer": 3},
            "tap_layer=3",
        ),
        ({"base_resolution": 64, "dropout_rate": 1.0}, "dropout_rate=1.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureExtractor("tiny_cnn", **kwargs)


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.weights.h5"):
        FeatureExtractor(
            "tiny_cnn",
            base_resolution=TINY_SIZE,
            weights=str(tmp_path / "nothing.weights.h5"),
        )


# === weights and serialization ===


def test_weights_round_trip(tmp_path):
    first = FeatureExtractor(
        "tiny_cnn", base_resolution=TINY_SIZE, grid_size=4
    )
    _randomize_weights(first)
    path = str(tmp_path / "tiny_cnn.weights.h5")
    first.backbone_model.save_weights(path)

    second = FeatureExtractor(
        "tiny_cnn", base_resolution=TINY_SIZE, grid_size=4, weights=path
    )
    assert second.backbone_weights == path
    # The path is not serialized: saved models carry their own weights.
    assert second.get_config()["weights"] is None
    images = helpers.random_images(height=TINY_SIZE)
    helpers.assert_outputs_close(
        second(images, training=False), first(images, training=False)
    )


def test_config_round_trip():
    extractor = FeatureExtractor(
        "tiny_cnn",
        base_resolution=(TINY_SIZE, TINY_SIZE),
        grid_size=2,
        dropout_rate=0.25,
        tap_layer="stage2_relu",
        tap_slice=(3, None, 8),
        name="extractor",
    )
    clone = helpers.assert_config_round_trip(extractor)
    config = clone.get_config()
    assert config["backbone"] == "tiny_cnn"
    assert config["base_resolution"] == [TINY_SIZE, TINY_SIZE]
    assert config["tap_slice"] == [3, None, 8]
    assert clone.tap_slice == (3, None, 8)


@pytest.mark.parametrize("grid_size", [None, 3])
def test_keras_file_round_trip(grid_size, tmp_path):
    extractor = FeatureExtractor(
        "tiny_cnn", base_resolution=TINY_SIZE, grid_size=grid_size
    )
    _randomize_weights(extractor)
    helpers.assert_keras_file_round_trip(
        extractor, helpers.random_images(height=TINY_SIZE), tmp_path
    )
