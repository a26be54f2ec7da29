"""Tests of TNet's modules: location, encoding, classifier, weighting.

Values are checked against tests/numpy_reference.py, parameter counts against
original_implementation_detail.md §16, and every public layer goes through the
config and `.keras` round trips of tests/helpers.py.
"""

import pathlib
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tnet_tf.layers
from tests import helpers
from tests import numpy_reference
from tnet_tf.layers import ClassificationModule
from tnet_tf.layers import FeatureWeighting
from tnet_tf.layers import LocationModule
from tnet_tf.layers import PositionalEncoding
from tnet_tf.layers import sinusoidal_encoding


def _randomize_weights(layer, seed=0, scale=0.5):
    """Overwrites every weight (biases too) so that none is trivially zero."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(
            scale * rng.standard_normal(tuple(weight.shape)).astype("float32")
        )


def _weight_dict(layer, sublayer_names):
    weights = {
        "coordinate_kernel": getattr(layer, "coordinate_kernel", None),
        "coordinate_bias": getattr(layer, "coordinate_bias", None),
    }
    for name in sublayer_names:
        sublayer = getattr(layer, f"{name}_conv", None) or getattr(layer, name)
        weights[f"{name}_kernel"] = sublayer.kernel
        weights[f"{name}_bias"] = sublayer.bias
    return {
        key: keras.ops.convert_to_numpy(value)
        for key, value in weights.items()
        if value is not None
    }


# === Parameter counts (detail §3, §6, §7, §16) ===


@pytest.mark.parametrize(
    "variant, grid_size, channels, features_dim, expected",
    [
        ("bagnet", 5, 1024, 512, 788_485),
        ("efficientnet", 3, 80, 1280, 19_725),  # fMoW, EN-B0 3x3
        ("efficientnet", 5, 80, 1280, 19_725),  # CUB, EN-B0 5x5
        ("efficientnet", 5, 40, 1280, 5_065),  # EN-B1
        ("efficientnet", 5, 48, 1408, 7_229),  # EN-B2, EN-B3
        ("efficientnet", 5, 56, 1792, 9_777),  # EN-B4
    ],
)
def test_location_module_parameter_count(
    variant, grid_size, channels, features_dim, expected
):
    module = LocationModule(variant, grid_size)
    logits = module(
        np.zeros((1, grid_size, grid_size, channels), "float32"),
        np.zeros((1, features_dim), "float32"),
    )
    assert tuple(logits.shape) == (1, grid_size * grid_size)
    assert module.count_params() == expected


@pytest.mark.parametrize(
    "variant, output_dim, encoding_dim, expected",
    [
        ("bagnet", 512, 512, 524_800),
        ("efficientnet", 1280, 320, 410_880),  # EN-B0, EN-B1
        ("efficientnet", 1408, 352, 497_024),  # EN-B2
        ("efficientnet", 1536, 384, 591_360),  # EN-B3
        ("efficientnet", 1792, 448, 804_608),  # EN-B4
    ],
)
def test_positional_encoding_parameter_count(
    variant, output_dim, encoding_dim, expected
):
    layer = PositionalEncoding(variant, output_dim, encoding_dim)
    out = layer(np.zeros((1, output_dim), "float32"), np.zeros((1, 3)))
    assert tuple(out.shape) == (1, output_dim)
    assert layer.count_params() == expected


@pytest.mark.parametrize(
    "channels, expected",
    [(1280, 822_081), (1408, 994_401), (1536, 1_183_105), (1792, 1_609_665)],
)
def test_feature_weighting_parameter_count(channels, expected):
    layer = FeatureWeighting()
    layer(np.zeros((1, 6, channels), "float32"))
    assert layer.count_params() == expected


def test_classification_module_parameter_count():
    head = ClassificationModule(num_classes=1000)
    head(np.zeros((1, 512), "float32"))
    assert head.count_params() == 513_000  # detail §16, Dense(512 -> 1000)


# === Positional encoding values (detail §6) ===


@pytest.mark.parametrize("encoding_dim", [512, 320, 352, 384, 448, 12, 8])
def test_sinusoidal_encoding_matches_numpy_reference(encoding_dim):
    positions = np.concatenate(
        [
            np.zeros((1, 3), "float32"),  # level 1
            helpers.random_positions(4, grid_size=5, levels=2, seed=1),
            helpers.random_positions(4, grid_size=3, levels=3, seed=2),
        ]
    )
    got = keras.ops.convert_to_numpy(
        sinusoidal_encoding(positions, encoding_dim)
    )
    want = numpy_reference.positional_encoding(positions, encoding_dim)
    assert got.shape == (9, encoding_dim)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_sinusoidal_encoding_layout():
    # 85 frequencies from 1 down to 1/100, two zero columns (detail §6 table).
    encoding = keras.ops.convert_to_numpy(
        sinusoidal_encoding([[2.0, 3.0, 1.0], [0.0, 0.0, 0.0]], 512)
    )
    count = 85
    y_sine = encoding[0, :count]
    assert y_sine[0] == pytest.approx(np.sin(2.0), abs=1e-6)
    assert y_sine[-1] == pytest.approx(np.sin(2.0 / 100.0), abs=1e-6)
    x_cosine = encoding[0, 3 * count : 4 * count]
    assert x_cosine[0] == pytest.approx(np.cos(3.0), abs=1e-6)
    np.testing.assert_array_equal(encoding[:, 6 * count :], 0.0)
    # Level 1, (0, 0, 0): zeros in the sine blocks, ones in the cosine blocks.
    level_one = encoding[1, : 6 * count].reshape(6, count)
    np.testing.assert_array_equal(level_one[0::2], 0.0)
    np.testing.assert_array_equal(level_one[1::2], 1.0)


def test_sinusoidal_encoding_leading_axes_and_integer_positions():
    positions = helpers.random_positions(6, grid_size=5, seed=3)
    flat = keras.ops.convert_to_numpy(sinusoidal_encoding(positions, 30))
    nested = sinusoidal_encoding(positions.reshape(2, 3, 3), 30)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(nested).reshape(6, 30), flat, atol=1e-7
    )
    from_ints = sinusoidal_encoding(positions.astype("int32"), 30)
    assert keras.backend.standardize_dtype(from_ints.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(from_ints), flat)


@pytest.mark.parametrize("variant", ["bagnet", "efficientnet"])
def test_positional_encoding_layer_matches_numpy_reference(variant):
    output_dim, encoding_dim = 24, 12 if variant == "bagnet" else 14
    layer = PositionalEncoding(variant, output_dim, encoding_dim)
    features = helpers.random_features(5, output_dim, seed=4)
    positions = helpers.random_positions(5, grid_size=3, levels=3, seed=5)
    layer(features, positions)
    _randomize_weights(layer, seed=6)
    got = keras.ops.convert_to_numpy(layer(features, positions))

    encoding = numpy_reference.positional_encoding(positions, encoding_dim)
    kernel = keras.ops.convert_to_numpy(layer.projection.kernel)
    bias = keras.ops.convert_to_numpy(layer.projection.bias)
    if variant == "bagnet":
        want = numpy_reference.positional_encoding_bagnet(
            features, encoding, kernel, bias
        )
    else:
        want = numpy_reference.positional_encoding_efficientnet(
            features, encoding, kernel, bias
        )
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_positional_encoding_initializers():
    bagnet = PositionalEncoding("bagnet", 8, 12)
    efficientnet = PositionalEncoding("efficientnet", 8, 12)
    assert isinstance(
        bagnet.projection.kernel_initializer, keras.initializers.GlorotNormal
    )
    initializer = efficientnet.projection.kernel_initializer
    assert isinstance(initializer, keras.initializers.VarianceScaling)
    assert initializer.get_config()["scale"] == pytest.approx(1.0 / 3.0)
    assert initializer.mode == "fan_out"
    assert initializer.distribution == "uniform"


# === Location module (detail §3) ===


@pytest.mark.parametrize("normalize_logits", [False, True])
def test_bagnet_location_module_matches_numpy_reference(normalize_logits):
    module = LocationModule(
        "bagnet", 3, hidden_channels=6, normalize_logits=normalize_logits
    )
    feature_map = helpers.random_feature_map(2, 3, 5, seed=7)
    features = helpers.random_features(2, 4, seed=8)
    module(feature_map, features)
    _randomize_weights(module, seed=9)
    got = keras.ops.convert_to_numpy(module(feature_map, features))
    want = numpy_reference.location_logits_bagnet(
        feature_map,
        features,
        _weight_dict(module, ["hidden", "output"]),
        normalize_logits=normalize_logits,
    )
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "hidden_channels, normalize_logits", [(None, False), (6, True)]
)
def test_efficientnet_location_module_matches_numpy_reference(
    hidden_channels, normalize_logits
):
    module = LocationModule(
        "efficientnet",
        4,
        hidden_channels=hidden_channels,
        normalize_logits=normalize_logits,
    )
    feature_map = helpers.random_feature_map(3, 4, 8, seed=10)
    module(feature_map)
    _randomize_weights(module, seed=11)
    got = keras.ops.convert_to_numpy(module(feature_map))
    names = ["input", "squeeze", "excite", "hidden", "output"]
    want = numpy_reference.location_logits_efficientnet(
        feature_map,
        _weight_dict(module, names),
        normalize_logits=normalize_logits,
    )
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    expected_hidden = hidden_channels or 8
    assert module.hidden_conv.filters == expected_hidden
    assert module.squeeze_conv.filters == expected_hidden // 2


def test_location_module_coordinate_channels_and_initializers():
    module = LocationModule("efficientnet", 3)
    module(helpers.random_feature_map(1, 3, 4))
    # Identity affine maps at initialisation, 4 parameters in all.
    np.testing.assert_array_equal(module.coordinate_kernel.numpy(), [1, 1])
    np.testing.assert_array_equal(module.coordinate_bias.numpy(), [0, 0])
    channels = keras.ops.convert_to_numpy(
        module._coordinate_channels(np.zeros((2, 3, 3, 4), "float32"))
    )
    assert channels.shape == (2, 3, 3, 2)
    np.testing.assert_allclose(
        channels[0], numpy_reference.coordinate_channels(3)
    )
    np.testing.assert_array_equal(channels[0, :, 0, 0], [-1, 0, 1])  # rows
    np.testing.assert_array_equal(channels[0, 0, :, 1], [-1, 0, 1])  # columns

    initializer = module.input_conv.kernel_initializer
    assert isinstance(initializer, keras.initializers.VarianceScaling)
    assert (initializer.scale, initializer.mode, initializer.distribution) == (
        2.0,
        "fan_out",
        "truncated_normal",
    )
    bagnet = LocationModule("bagnet", 3)
    assert isinstance(
        bagnet.hidden_conv.kernel_initializer, keras.initializers.GlorotNormal
    )
    assert bagnet.hidden_conv.filters == 512


@pytest.mark.parametrize("variant", ["bagnet", "efficientnet"])
def test_location_module_stops_gradients_at_its_inputs(variant):
    module = LocationModule(variant, 3, hidden_channels=6)
    feature_map = tf.constant(helpers.random_feature_map(2, 3, 5, seed=12))
    features = tf.constant(helpers.random_features(2, 4, seed=13))
    target = tf.constant(helpers.random_uniform((2, 9), seed=14))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([feature_map, features])
        loss = tf.reduce_sum(module(feature_map, features) * target)
    assert tape.gradient(loss, [feature_map, features]) == [None, None]
    # The module itself still learns.
    gradients = tape.gradient(loss, module.trainable_weights)
    assert all(gradient is not None for gradient in gradients)
    assert any(np.any(gradient.numpy() != 0) for gradient in gradients)


def test_location_module_logit_normalization():
    feature_map = helpers.random_feature_map(4, 5, 6, seed=15)
    features = helpers.random_features(4, 3, seed=16)
    plain = LocationModule("bagnet", 5, hidden_channels=8)
    normalized = LocationModule(
        "bagnet", 5, hidden_channels=8, normalize_logits=True
    )
    logits = keras.ops.convert_to_numpy(plain(feature_map, features))
    normalized(feature_map, features)
    normalized.set_weights(plain.get_weights())
    unit = keras.ops.convert_to_numpy(normalized(feature_map, features))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        unit,
        logits / np.linalg.norm(logits, axis=-1, keepdims=True),
        atol=1e-6,
    )
    assert not np.allclose(np.linalg.norm(logits, axis=-1), 1.0)

    # All-zero logits stay finite (the release would give NaN).
    for weight in normalized.weights:
        weight.assign(tf.zeros_like(weight))
    zeros = keras.ops.convert_to_numpy(normalized(feature_map, features))
    np.testing.assert_array_equal(zeros, 0.0)


def test_location_module_row_major_cells():
    # With one input channel, an identity-like head and no context, each
    # logit is the feature map value of its own cell.
    module = LocationModule("bagnet", 3, hidden_channels=1)
    feature_map = np.arange(9, dtype="float32").reshape(1, 3, 3, 1)
    features = np.zeros((1, 1), "float32")
    module(feature_map, features)
    module.hidden_conv.kernel.assign(
        np.array([1, 0, 0, 0], "float32").reshape(1, 1, 4, 1)
    )
    module.hidden_conv.bias.assign([0.0])
    module.output_conv.kernel.assign(np.ones((1, 1, 1, 1), "float32"))
    module.output_conv.bias.assign([0.0])
    logits = keras.ops.convert_to_numpy(module(feature_map, features))
    np.testing.assert_allclose(logits, np.arange(9, dtype="float32")[None])


def _empty_batch_convolution_is_broken():
    """TF 2.21's oneDNN Conv2D returns its input for a batch of 0.

    Seen on CPUs where oneDNN is on (TF_ENABLE_ONEDNN_OPTS): shape
    (0, 3, 3, 13) in gives (0, 3, 3, 13) out whatever the kernel. Not ours
    to fix; the layers are fine where the kernel is.
    """
    kernel = tf.zeros((1, 1, 13, 4))
    return (
        tf.nn.conv2d(tf.zeros((0, 3, 3, 13)), kernel, 1, "SAME").shape[-1] != 4
    )


@pytest.mark.parametrize("variant", ["bagnet", "efficientnet"])
def test_location_module_and_encoding_accept_an_empty_batch(variant):
    # Attending 0 cells leaves a level with no regions at all.
    if _empty_batch_convolution_is_broken():
        pytest.skip("TensorFlow's oneDNN Conv2D mishandles a batch of 0 here")
    module = LocationModule(variant, 3, hidden_channels=4)
    logits = module(
        np.zeros((0, 3, 3, 5), "float32"), np.zeros((0, 6), "float32")
    )
    assert tuple(logits.shape) == (0, 9)
    encoding = PositionalEncoding(variant, 6, 12)
    out = encoding(np.zeros((0, 6), "float32"), np.zeros((0, 3), "float32"))
    assert tuple(out.shape) == (0, 6)


# === Feature weighting (detail §7) ===


def test_feature_weighting_matches_numpy_reference():
    layer = FeatureWeighting()
    vectors = helpers.random_uniform((3, 6, 16), seed=17)
    layer(vectors)
    _randomize_weights(layer, seed=18)
    aggregate, weights = layer(vectors)
    aggregate = keras.ops.convert_to_numpy(aggregate)
    weights = keras.ops.convert_to_numpy(weights)
    assert aggregate.shape == (3, 16) and weights.shape == (3, 6)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-6)
    # The aggregate weighs the un-gated vectors.
    np.testing.assert_allclose(
        aggregate, np.einsum("bt,btc->bc", weights, vectors), atol=1e-5
    )
    reference = {}
    for name in ("squeeze", "excite", "score"):
        sublayer = getattr(layer, name)
        reference[f"{name}_kernel"] = sublayer.kernel.numpy()
        reference[f"{name}_bias"] = sublayer.bias.numpy()
    want_aggregate, want_weights = numpy_reference.feature_weighting(
        vectors, reference
    )
    np.testing.assert_allclose(aggregate, want_aggregate, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(weights, want_weights, atol=1e-6, rtol=1e-5)
    assert layer.squeeze.units == 4  # C // reduction


def test_feature_weighting_accepts_any_number_of_vectors():
    layer = FeatureWeighting(reduction=2)
    layer(helpers.random_uniform((2, 6, 8)))
    aggregate, weights = layer(helpers.random_uniform((2, 4, 8), seed=1))
    assert tuple(aggregate.shape) == (2, 8) and tuple(weights.shape) == (2, 4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(weights).sum(-1), 1.0
    )
    # A single vector (level 1 only) gets weight 1, without a softmax warning.
    single = helpers.random_uniform((2, 1, 8), seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aggregate, weights = layer(single)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(weights), 1.0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(aggregate), single[:, 0], atol=1e-7
    )


def test_feature_weighting_gradients_flow_through_the_weights():
    layer = FeatureWeighting()
    vectors = tf.constant(helpers.random_uniform((2, 5, 8), seed=19))
    target = tf.constant(helpers.random_uniform((2, 8), seed=20))
    with tf.GradientTape() as tape:
        aggregate, _ = layer(vectors)
        loss = tf.reduce_sum(aggregate * target)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert all(gradient is not None for gradient in gradients)
    assert np.any(layer.score.kernel.numpy() != 0)
    score_gradient = gradients[
        layer.trainable_weights.index(layer.score.kernel)
    ]
    assert np.any(score_gradient.numpy() != 0)


# === Classification module (detail §8) ===


def test_classification_module_dropout_and_dense():
    head = ClassificationModule(num_classes=3, dropout_rate=0.5)
    inputs = helpers.random_uniform((2, 4, 32), seed=21)
    logits = keras.ops.convert_to_numpy(head(inputs, training=False))
    assert logits.shape == (2, 4, 3)
    kernel, bias = head.dense.kernel.numpy(), head.dense.bias.numpy()
    np.testing.assert_allclose(logits, inputs @ kernel + bias, atol=1e-5)
    dropped = keras.ops.convert_to_numpy(head(inputs, training=True))
    assert not np.allclose(dropped, logits)


def test_classification_module_kernel_initializer():
    head = ClassificationModule(
        num_classes=3,
        kernel_initializer={
            "class_name": "VarianceScaling",
            "config": {
                "scale": 1 / 3,
                "mode": "fan_out",
                "distribution": "uniform",
            },
        },
    )
    assert isinstance(
        head.dense.kernel_initializer, keras.initializers.VarianceScaling
    )
    assert isinstance(
        ClassificationModule(3).dense.kernel_initializer,
        keras.initializers.GlorotNormal,
    )


# === Serialization round trips (layout.md, style rule 3) ===

# (class name, layer factory, inputs). Every public layer of tnet_tf.layers
# must appear here or in COVERED_ELSEWHERE (guarded below).
ROUND_TRIP_CASES = [
    (
        "LocationModule",
        lambda: LocationModule("bagnet", 3, hidden_channels=6),
        lambda: [
            helpers.random_feature_map(2, 3, 5),
            helpers.random_features(2, 4),
        ],
    ),
    (
        "LocationModule",
        lambda: LocationModule(
            "efficientnet", 3, se_ratio=0.25, normalize_logits=True
        ),
        lambda: [helpers.random_feature_map(2, 3, 8)],
    ),
    (
        "PositionalEncoding",
        lambda: PositionalEncoding(
            "bagnet", 8, 12, max_inverse_frequency=50.0
        ),
        lambda: [helpers.random_features(2, 8), helpers.random_positions(2)],
    ),
    (
        "PositionalEncoding",
        lambda: PositionalEncoding("efficientnet", 8, 6),
        lambda: [helpers.random_features(2, 8), helpers.random_positions(2)],
    ),
    (
        "ClassificationModule",
        lambda: ClassificationModule(
            5, dropout_rate=0.5, kernel_initializer="he_uniform"
        ),
        lambda: [helpers.random_features(2, 8)],
    ),
    (
        "FeatureWeighting",
        lambda: FeatureWeighting(reduction=2),
        lambda: [helpers.random_uniform((2, 4, 8))],
    ),
]

# Public layers whose round trips live in another test file.
COVERED_ELSEWHERE = {"FeatureExtractor": "test_feature_extractor.py"}


@pytest.mark.parametrize(
    "make_layer, make_inputs",
    [case[1:] for case in ROUND_TRIP_CASES],
    ids=[f"{case[0]}-{index}" for index, case in enumerate(ROUND_TRIP_CASES)],
)
def test_layer_round_trips(make_layer, make_inputs, tmp_path):
    layer = make_layer()
    clone = helpers.assert_config_round_trip(layer)
    assert clone.get_config() == layer.get_config()
    loaded = helpers.assert_keras_file_round_trip(
        layer, make_inputs(), tmp_path
    )
    assert isinstance(loaded, keras.Model)


def test_every_public_layer_is_round_trip_tested():
    public_classes = {
        name for name in tnet_tf.layers.__all__ if name[:1].isupper()
    }
    for name in public_classes:
        value = getattr(tnet_tf.layers, name)
        assert isinstance(value, type) and issubclass(
            value, keras.layers.Layer
        )
    tested_here = {case[0] for case in ROUND_TRIP_CASES}
    assert tested_here | set(COVERED_ELSEWHERE) == public_classes
    for name, filename in COVERED_ELSEWHERE.items():
        path = pathlib.Path(__file__).parent / filename
        assert path.exists(), f"{name} should be round-trip tested in {path}"
        text = path.read_text()
        assert name in text, path
        assert "helpers.assert_config_round_trip(" in text, path
        assert "helpers.assert_keras_file_round_trip(" in text, path


# === Argument and input validation ===


@pytest.mark.parametrize(
    "factory, received",
    [
        (lambda: LocationModule("resnet", 3), "'resnet'"),
        (lambda: LocationModule("bagnet", 0), "grid_size=0"),
        (lambda: LocationModule("bagnet", 2.5), "grid_size=2.5"),
        (lambda: LocationModule("bagnet", 3, hidden_channels=-4), "=-4"),
        (lambda: LocationModule("efficientnet", 3, se_ratio=1.5), "=1.5"),
        (
            lambda: LocationModule("bagnet", 3, normalize_logits="yes"),
            "normalize_logits='yes'",
        ),
        (lambda: PositionalEncoding("vit", 8, 12), "variant='vit'"),
        (lambda: PositionalEncoding("bagnet", 0, 12), "output_dim=0"),
        (lambda: PositionalEncoding("bagnet", 8, 5), "encoding_dim=5"),
        (
            lambda: PositionalEncoding(
                "bagnet", 8, 12, max_inverse_frequency=-1
            ),
            "max_inverse_frequency=-1",
        ),
        (lambda: sinusoidal_encoding(np.zeros((1, 3)), 3), "encoding_dim=3"),
        (lambda: ClassificationModule(0), "num_classes=0"),
        (
            lambda: ClassificationModule(3, dropout_rate=1.0),
            "dropout_rate=1.0",
        ),
        (
            lambda: ClassificationModule(3, kernel_initializer="no_such_init"),
            "'no_such_init'",
        ),
        (lambda: FeatureWeighting(reduction=0), "reduction=0"),
    ],
)
def test_bad_arguments_raise_with_the_received_value(factory, received):
    with pytest.raises(ValueError, match="Received") as error:
        factory()
    assert received in str(error.value)


@pytest.mark.parametrize(
    "call, received",
    [
        (
            lambda: LocationModule("efficientnet", 5)(np.zeros((1, 3, 3, 4))),
            "(1, 3, 3, 4)",
        ),
        (lambda: LocationModule("bagnet", 3)(np.zeros((1, 3, 3, 4))), "None"),
        (
            lambda: PositionalEncoding("efficientnet", 8, 12)(
                np.zeros((1, 6)), np.zeros((1, 3))
            ),
            "(1, 6)",
        ),
        (
            lambda: PositionalEncoding("bagnet", 8, 12)(
                np.zeros((1, 6)), np.zeros((1, 2))
            ),
            "(1, 2)",
        ),
        (lambda: FeatureWeighting()(np.zeros((2, 8))), "(2, 8)"),
    ],
)
def test_bad_input_shapes_raise_with_the_received_shape(call, received):
    with pytest.raises(ValueError, match="Received") as error:
        call()
    assert received in str(error.value)
