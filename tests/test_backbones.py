"""Backbone registry, BagNet-77, EfficientNet-B0..B4, tiny CNN, generic adapter.

Reference numbers: original_implementation_detail.md §2 and §16.
"""

import dataclasses
import logging

import keras
import numpy as np
import pytest

from tests.helpers import random_images
from tnet_tf import backbones
from tnet_tf.backbones import bagnet
from tnet_tf.backbones import efficientnet
from tnet_tf.backbones import tiny

# EfficientNet-B*: (feature dim, channels of the 3x3 tap, channels of the 5x5
# tap, total params with Dense(200) from §16 minus that Dense).
EFFICIENTNET_EXPECTED = {
    "efficientnet_b0": (1280, 80, 80, 4_305_764 - 256_200),
    "efficientnet_b1": (1280, 80, 40, 6_831_432 - 256_200),
    "efficientnet_b2": (1408, 88, 48, 8_050_362 - 281_800),
    "efficientnet_b3": (1536, 96, 48, 11_090_928 - 307_400),
    "efficientnet_b4": (1792, 112, 56, 18_032_416 - 358_600),
}
# keras.applications' Normalization layer adds mean (3), variance (3) and
# count (1) to the release's counts.
NORMALIZATION_PARAMS = 7


def _tap_shape(spec):
    """(n, n, C) of the sliced tap of `spec`."""
    layer_shape = spec.model.get_layer(spec.tap_layer).output.shape
    cells = slice(*spec.tap_slice)
    rows = len(range(*cells.indices(layer_shape[1])))
    cols = len(range(*cells.indices(layer_shape[2])))
    return (rows, cols, layer_shape[3])


def _run(model, images):
    """Inference-mode outputs as NumPy (eager: no tracing cost)."""
    return keras.ops.convert_to_numpy(model(images, training=False))


# === Registry and argument checks ===


def test_registered_names():
    assert backbones.backbone_names() == [
        "bagnet77",
        "efficientnet_b0",
        "efficientnet_b1",
        "efficientnet_b2",
        "efficientnet_b3",
        "efficientnet_b4",
        "tiny_cnn",
    ]


def test_unknown_backbone_lists_available():
    with pytest.raises(
        ValueError, match="Unknown backbone 'resnet'.*bagnet77"
    ):
        backbones.build_backbone("resnet", input_shape=(64, 64, 3))


def test_unknown_keras_application():
    with pytest.raises(ValueError, match="no model class 'NotANet'"):
        backbones.build_backbone(
            "keras.applications.NotANet", input_shape=(64, 64, 3)
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (64, 64)}, "input_shape=\\(64, 64\\)"),
        ({"input_shape": (64, 64, 1)}, "input_shape=\\(64, 64, 1\\)"),
        ({"input_shape": (64, 64, 3), "grid_size": 0}, "grid_size=0"),
        ({"input_shape": (None, None, 3), "grid_size": 3}, "unknown sides"),
        (
            {"input_shape": (64, 64, 3), "dropout_rate": 1.5},
            "dropout_rate=1.5",
        ),
        (
            {"input_shape": (64, 64, 3), "drop_connect_rate": -0.1},
            "drop_connect_rate=-0.1",
        ),
        ({"input_shape": (64, 64, 3), "weights": 3}, "weights=3"),
        ({"input_shape": (64, 64, 3), "weights": "imagenet"}, "local weights"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        backbones.build_backbone("tiny_cnn", **kwargs)


def test_missing_weights_file(tmp_path):
    path = tmp_path / "missing.weights.h5"
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        backbones.build_backbone(
            "tiny_cnn", input_shape=(32, 32, 3), weights=path
        )


def test_unreadable_weights_file(tmp_path):
    path = tmp_path / "garbage.weights.h5"
    path.write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match="Could not load the weights file"):
        backbones.build_backbone(
            "tiny_cnn", input_shape=(32, 32, 3), weights=str(path)
        )


# Keras warns about every layer it cannot match before it raises.
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_incompatible_weights_file(tmp_path):
    path = str(tmp_path / "tiny.weights.h5")
    tiny.tiny_cnn((32, 32, 3)).save_weights(path)
    with pytest.raises(ValueError, match="into backbone 'keras.applications"):
        backbones.build_backbone(
            "keras.applications.MobileNetV2",
            input_shape=(32, 32, 3),
            weights=path,
        )


def test_random_init_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="absl"):
        backbones.build_backbone("tiny_cnn", input_shape=(32, 32, 3))
    assert "random initialization" in caplog.text


def test_drop_connect_only_for_efficientnet():
    with pytest.raises(ValueError, match="drop_connect_rate=0.2"):
        backbones.build_backbone(
            "tiny_cnn", input_shape=(32, 32, 3), drop_connect_rate=0.2
        )


# === BagNet-77 ===


@pytest.fixture(scope="module")
def bagnet_spec():
    return backbones.build_backbone(
        "bagnet77", input_shape=(77, 77, 3), grid_size=5, dropout_rate=0.5
    )


def test_bagnet_parameter_counts(bagnet_spec):
    assert bagnet_spec.model.count_params() == 20_033_664
    classifier = keras.layers.Dense(1000)
    classifier.build((None, bagnet.FEATURE_DIM))
    total = bagnet_spec.model.count_params() + classifier.count_params()
    assert total == 20_546_664


def test_bagnet_spec_and_shapes_at_77(bagnet_spec):
    assert bagnet_spec.family == "bagnet"
    assert bagnet_spec.feature_layer == "part6_dropout"
    assert bagnet_spec.tap_layer == "part4_block6_out"
    assert bagnet_spec.tap_slice == (None, None, 2)
    tap = bagnet_spec.model.get_layer(bagnet_spec.tap_layer)
    assert tuple(tap.output.shape) == (None, 9, 9, 1024)
    assert _tap_shape(bagnet_spec) == (5, 5, 1024)
    assert tuple(bagnet_spec.model.output.shape) == (None, 7, 7, 512)


def test_bagnet_layers_follow_the_release(bagnet_spec):
    layers = bagnet_spec.model.layers
    # No normalization layers at all.
    assert not [
        layer for layer in layers if "Normalization" in type(layer).__name__
    ]
    convs = [
        layer for layer in layers if isinstance(layer, keras.layers.Conv2D)
    ]
    # part1 + 16 blocks x 3 convs + 4 shortcut projections + part6.
    assert len(convs) == 1 + 16 * 3 + 4 + 1
    for conv in convs:
        assert conv.use_bias
        assert isinstance(
            conv.kernel_initializer, keras.initializers.GlorotNormal
        )
    for layer in layers:
        if isinstance(layer, keras.layers.LeakyReLU):
            assert layer.negative_slope == pytest.approx(0.2)
    # VALID first blocks of parts 4 and 5 crop their shortcuts by 1 px.
    assert bagnet_spec.model.get_layer("part4_block1_conv2").padding == "valid"
    assert bagnet_spec.model.get_layer("part5_block1_conv2").padding == "valid"
    assert bagnet_spec.model.get_layer("part4_block1_crop").cropping == (
        (1, 1),
        (1, 1),
    )
    dropout = bagnet_spec.model.get_layer("part6_dropout")
    assert isinstance(dropout, keras.layers.SpatialDropout2D)
    assert dropout.rate == 0.5


def test_bagnet_without_grid_accepts_any_size():
    spec = backbones.build_backbone("bagnet77", input_shape=(None, None, 3))
    assert spec.tap_layer is None and spec.tap_slice is None
    assert spec.model.compute_output_shape((1, 224, 224, 3)) == (
        1,
        25,
        25,
        512,
    )
    tap = keras.Model(
        spec.model.input, spec.model.get_layer("part4_block6_out").output
    )
    assert tap.compute_output_shape((1, 224, 224, 3)) == (1, 27, 27, 1024)


def test_bagnet_unsupported_grid():
    with pytest.raises(
        ValueError, match="grid_size=3.*Supported grid sizes: 5"
    ):
        backbones.build_backbone(
            "bagnet77", input_shape=(77, 77, 3), grid_size=3
        )


def test_bagnet_grid_needs_its_base_resolution():
    with pytest.raises(
        ValueError, match="part4_block6_out.*11x11.*not the 5x5"
    ):
        backbones.build_backbone(
            "bagnet77", input_shape=(96, 96, 3), grid_size=5
        )


def test_bagnet_too_small_input():
    with pytest.raises(ValueError, match="at least 27x27"):
        bagnet.bagnet77((26, 26, 3))


# === EfficientNet-B0..B4 ===


@pytest.fixture(scope="module", params=sorted(EFFICIENTNET_EXPECTED))
def efficientnet_spec(request):
    spec = backbones.build_backbone(
        request.param,
        input_shape=(224, 224, 3),
        grid_size=5,
        drop_connect_rate=0.5,
    )
    return request.param, spec


def test_efficientnet_taps_and_sizes(efficientnet_spec):
    name, spec = efficientnet_spec
    feature_dim, channels_3x3, channels_5x5, params = EFFICIENTNET_EXPECTED[
        name
    ]
    assert spec.family == "efficientnet"
    assert spec.feature_layer == "top_activation"
    assert tuple(spec.model.output.shape) == (None, 7, 7, feature_dim)
    assert _tap_shape(spec) == (5, 5, channels_5x5)
    layer_3x3, slice_3x3 = efficientnet.TAPS[name][3]
    spec_3x3 = dataclasses.replace(
        spec, tap_layer=layer_3x3, tap_slice=slice_3x3
    )
    assert _tap_shape(spec_3x3) == (3, 3, channels_3x3)
    assert backbones.check_tap(spec_3x3, 3, name) == (14, 14)
    assert spec.model.count_params() == params + NORMALIZATION_PARAMS


def test_efficientnet_batch_norm_settings(efficientnet_spec):
    _, spec = efficientnet_spec
    batch_norms = [
        layer
        for layer in spec.model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert batch_norms
    for layer in batch_norms:
        assert layer.momentum == pytest.approx(0.99)
        assert layer.epsilon == pytest.approx(1e-3)


def test_efficientnet_drop_connect_is_one_based(efficientnet_spec):
    name, spec = efficientnet_spec
    blocks = efficientnet.block_names(spec.model)
    rates = {}
    for index, block in enumerate(blocks):
        try:
            rates[block] = spec.model.get_layer(f"{block}_drop").rate
        except ValueError:
            continue
        assert rates[block] == pytest.approx(0.5 * (index + 1) / len(blocks))
    assert rates  # every variant has residual blocks
    if name == "efficientnet_b0":
        # 16 blocks; block2b is block 3 and block7a (no residual) block 16.
        assert len(blocks) == 16
        assert rates["block2b"] == pytest.approx(0.5 * 3 / 16)
        assert rates["block6d"] == pytest.approx(0.5 * 15 / 16)


@pytest.mark.parametrize(
    "efficientnet_spec", ["efficientnet_b0"], indirect=True
)
def test_efficientnet_b0_with_62_classes_parameter_count(efficientnet_spec):
    _, spec = efficientnet_spec
    classifier = keras.layers.Dense(62)
    classifier.build((None, 1280))
    total = spec.model.count_params() + classifier.count_params()
    assert total == 4_128_986 + NORMALIZATION_PARAMS
    assert abs(total - 4_128_986) / 4_128_986 < 0.005


def test_efficientnet_unsupported_grid():
    with pytest.raises(
        ValueError, match="grid_size=4.*Supported grid sizes: 3, 5"
    ):
        backbones.build_backbone(
            "efficientnet_b0", input_shape=(224, 224, 3), grid_size=4
        )


def test_efficientnet_rejects_dropout_rate():
    with pytest.raises(ValueError, match="dropout_rate=0.3"):
        backbones.build_backbone(
            "efficientnet_b0", input_shape=(224, 224, 3), dropout_rate=0.3
        )


SMALL_SIZE = 64


@pytest.fixture(scope="module")
def reference_b0():
    """Plain keras.applications EfficientNetB0 with our normalization."""
    reference = keras.applications.EfficientNetB0(
        include_top=False,
        weights=None,
        input_shape=(SMALL_SIZE, SMALL_SIZE, 3),
    )
    efficientnet.set_imagenet_normalization(reference)
    return reference


def _normalization(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Normalization)
    ][0]


def test_efficientnet_input_range_boundary(reference_b0):
    """[-1, 1] pixels give what keras.applications gets from [0, 255]."""
    spec = backbones.build_backbone(
        "efficientnet_b0", input_shape=(SMALL_SIZE, SMALL_SIZE, 3)
    )
    # The conversion layer has no weights, so the weight lists line up.
    reference_b0.set_weights(spec.model.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(_normalization(spec.model).adapt_variance),
        np.square(efficientnet.IMAGENET_STDDEV_RGB),
        rtol=1e-6,
    )

    ones = np.ones((1, SMALL_SIZE, SMALL_SIZE, 3), "float32")
    for ours, theirs in [(-1.0, 0.0), (1.0, 255.0)]:
        np.testing.assert_allclose(
            _run(spec.model, ours * ones),
            _run(reference_b0, theirs * ones),
            atol=1e-5,
        )
    images = random_images(batch=2, height=SMALL_SIZE)
    np.testing.assert_allclose(
        _run(spec.model, images),
        _run(reference_b0, (images + 1.0) * 127.5),
        atol=1e-4,
    )


def test_efficientnet_loads_keras_applications_h5(reference_b0, tmp_path):
    """A keras.applications-style full .h5 file loads by layer order, and the
    normalization ends up at ImageNet mean/std whatever the file holds."""
    # Keras' ImageNet files store the std (not its square) as the variance.
    _normalization(reference_b0).adapt_variance.assign(
        np.asarray(efficientnet.IMAGENET_STDDEV_RGB, "float32")
    )
    path = str(tmp_path / "efficientnetb0_notop.h5")
    reference_b0.save(path)
    efficientnet.set_imagenet_normalization(reference_b0)

    spec = backbones.build_backbone(
        "efficientnet_b0",
        input_shape=(SMALL_SIZE, SMALL_SIZE, 3),
        weights=path,
    )
    images = random_images(batch=2, height=SMALL_SIZE)
    np.testing.assert_allclose(
        _run(spec.model, images),
        _run(reference_b0, (images + 1.0) * 127.5),
        atol=1e-4,
    )


# === tiny CNN ===


@pytest.mark.parametrize("grid_size", [2, 3, 4, 5])
def test_tiny_cnn_taps(grid_size):
    spec = backbones.build_backbone(
        "tiny_cnn", input_shape=(64, 64, 3), grid_size=grid_size
    )
    assert spec.family == "efficientnet"
    assert spec.tap_layer == "stage2_relu"
    assert _tap_shape(spec) == (grid_size, grid_size, tiny.TAP_CHANNELS)
    assert tuple(spec.model.output.shape) == (None, 8, 8, tiny.FEATURE_DIM)


@pytest.mark.parametrize(
    "map_size, grid_size, positions",
    [
        (16, 2, [3, 11]),
        (16, 3, [2, 7, 12]),
        (16, 4, [1, 5, 9, 13]),
        (16, 5, [1, 4, 7, 10, 13]),
        (8, 5, [1, 2, 3, 4, 5]),
        (8, 1, [3]),
    ],
)
def test_tiny_grid_slice(map_size, grid_size, positions):
    cells = slice(*tiny.grid_slice(map_size, grid_size))
    assert list(range(map_size))[cells] == positions


def test_tiny_cnn_grid_errors():
    with pytest.raises(
        ValueError,
        match="grid_size=9.*Supported grid sizes: 2, 3, 4, 5, 6, 7, 8",
    ):
        backbones.build_backbone(
            "tiny_cnn", input_shape=(64, 64, 3), grid_size=9
        )
    with pytest.raises(ValueError, match="Supported grid sizes: 2, 3\\."):
        backbones.build_backbone(
            "tiny_cnn", input_shape=(12, 12, 3), grid_size=4
        )
    with pytest.raises(ValueError, match="square"):
        backbones.build_backbone(
            "tiny_cnn", input_shape=(64, 32, 3), grid_size=2
        )


# === generic keras.applications adapter ===


def test_keras_application_adapter():
    spec = backbones.build_backbone(
        "keras.applications.MobileNetV2", input_shape=(96, 96, 3), grid_size=3
    )
    assert spec.family == "generic"
    # No default tap: FeatureExtractor's tap_layer/tap_slice provide it.
    assert spec.tap_layer is None and spec.tap_slice is None
    assert spec.feature_layer == spec.model.layers[-1].name
    assert tuple(spec.model.output.shape) == (None, 3, 3, 1280)
    # MobileNetV2's own preprocessing maps [0, 255] back to [-1, 1].
    preprocessing = keras.Model(
        spec.model.input, spec.model.get_layer("preprocessing").output
    )
    images = random_images(batch=1, height=96)
    np.testing.assert_allclose(_run(preprocessing, images), images, atol=1e-5)
