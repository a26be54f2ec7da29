"""Multiply-add counting on hand-computed models, `profile` and the CLI."""

import json
import subprocess
import sys
import types

import keras
import pytest
import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf import models
from tnet_tf import presets
from tnet_tf import profiling
from tnet_tf.experiment import locations
from tnet_tf.experiment import profile as command_line


def count(layer_or_fn, *shapes):
    signature = [tf.TensorSpec(shape, tf.float32) for shape in shapes]
    return profiling.count_multiply_adds(layer_or_fn, signature)


# Each case: (layer, input shape, multiply-adds computed by hand as
# output elements x kernel entries per output element).
HAND_COUNTED = {
    # 8x8x3 -> 6x6x4 (VALID, stride 1): 6*6*4 outputs x 3*3*3.
    "conv_valid": (keras.layers.Conv2D(4, 3), [1, 8, 8, 3], 6 * 6 * 4 * 27),
    # 9x9x3 -> 5x5x5 (SAME, stride 2: ceil(9 / 2) = 5).
    "conv_same_strided": (
        keras.layers.Conv2D(5, 3, strides=2, padding="same"),
        [1, 9, 9, 3],
        5 * 5 * 5 * 27,
    ),
    # 9x9x3 -> 4x4x5 (VALID, stride 2: (9 - 3) // 2 + 1 = 4).
    "conv_valid_strided": (
        keras.layers.Conv2D(5, 3, strides=2),
        [1, 9, 9, 3],
        4 * 4 * 5 * 27,
    ),
    # Rectangular kernel, no bias: 4x6x2 -> 4x4x2 x (1*3*2).
    "conv_rectangular": (
        keras.layers.Conv2D(2, (1, 3), use_bias=False),
        [1, 4, 6, 2],
        4 * 4 * 2 * 6,
    ),
    # Grouped convolution (Keras runs it as a nested graph function):
    # 6x6x2 -> 4x4x4, each output sees 3*3*1 inputs.
    "conv_grouped": (
        keras.layers.Conv2D(4, 3, groups=2),
        [1, 6, 6, 2],
        4 * 4 * 4 * 9,
    ),
    # 1x1 convolution: 7x7x16 -> 7x7x8.
    "conv_pointwise": (
        keras.layers.Conv2D(8, 1),
        [1, 7, 7, 16],
        7 * 7 * 8 * 16,
    ),
    # Depthwise: 6x6x3 -> 4x4x6 (multiplier 2), each output sees 3*3.
    "depthwise_valid": (
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
        [1, 6, 6, 3],
        4 * 4 * 6 * 9,
    ),
    # Depthwise, SAME, stride 2: 6x6x3 -> 3x3x3.
    "depthwise_same_strided": (
        keras.layers.DepthwiseConv2D(3, strides=2, padding="same"),
        [1, 6, 6, 3],
        3 * 3 * 3 * 9,
    ),
    # Transposed convolution: every input element meets 3*3*4 weights.
    "conv_transpose": (
        keras.layers.Conv2DTranspose(4, 3, strides=2),
        [1, 5, 5, 2],
        5 * 5 * 2 * 3 * 3 * 4,
    ),
    "dense_2d": (keras.layers.Dense(10), [1, 20], 20 * 10),
    # Dense on (batch, 5, 3): each of the 5 vectors costs 3 * 7.
    "dense_3d": (keras.layers.Dense(7), [1, 5, 3], 5 * 3 * 7),
    "dense_4d": (keras.layers.Dense(3), [1, 2, 4, 5], 2 * 4 * 5 * 3),
    # Element-wise and pooling layers cost nothing.
    "batch_norm": (keras.layers.BatchNormalization(), [1, 4, 4, 3], 0),
    "pooling": (keras.layers.GlobalAveragePooling2D(), [1, 4, 4, 3], 0),
}


@pytest.mark.parametrize("name", sorted(HAND_COUNTED))
def test_layer_multiply_adds_match_hand_count(name):
    layer, shape, expected = HAND_COUNTED[name]
    assert count(layer, shape) == expected


def test_count_scales_with_batch():
    layer = keras.layers.Conv2D(4, 3)
    assert count(layer, [3, 8, 8, 3]) == 3 * count(layer, [1, 8, 8, 3])


def test_sequential_model_sums_its_layers():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),  # -> 6x6x4
            keras.layers.DepthwiseConv2D(3),  # -> 4x4x4
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(5),
        ]
    )
    expected = 6 * 6 * 4 * 27 + 4 * 4 * 4 * 9 + 4 * 5
    assert count(model, [1, 8, 8, 3]) == expected


class SharedLayerModel(keras.Model):
    """Calls one convolution twice, as TNet calls its backbone per level."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(3, 3, padding="same")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(2)

    def call(self, images, training=False):
        first = self.conv(images)  # (1, 8, 8, 3)
        second = self.conv(first)  # (1, 8, 8, 3)
        return self.head(self.pool(second))


def test_subclassed_model_counts_every_call_of_a_shared_layer():
    model = SharedLayerModel()
    per_call = 8 * 8 * 3 * 3 * 3 * 3
    assert count(model, [1, 8, 8, 3]) == 2 * per_call + 3 * 2


def test_matmul_einsum_and_batch_matmul():
    def fn(x, y):
        # BatchMatMulV2 (2, 3, 4) @ (2, 4, 5): 2*3*5 outputs x 4.
        product = tf.matmul(x, y)
        # Same shapes through adjoint_a: (2, 4, 3)^T @ (2, 4, 5).
        adjoint = tf.matmul(tf.transpose(x, [0, 2, 1]), y, adjoint_a=True)
        # Einsum contracting j (4): 2*3*5 outputs x 4.
        einsum = tf.einsum("bij,bjk->bik", x, y)
        return product + adjoint + einsum

    assert count(fn, [2, 3, 4], [2, 4, 5]) == 3 * (2 * 3 * 5 * 4)


def test_einsum_with_ellipsis():
    def fn(x, y):
        return tf.einsum("...ij,jk->...ik", x, y)  # (2, 3, 5, 4) @ (4, 6)

    assert count(fn, [2, 3, 5, 4], [4, 6]) == 2 * 3 * 5 * 6 * 4


def test_unused_ops_are_not_counted():
    conv = keras.layers.Conv2D(4, 3)
    dense = keras.layers.Dense(3)

    def fn(x):
        conv(x)  # result unused: pruned from the count
        return dense(x[:, 0, 0, :])

    assert count(fn, [1, 8, 8, 2]) == 2 * 3


def test_conditional_counts_the_most_expensive_branch():
    big = keras.layers.Dense(10)
    small = keras.layers.Dense(2)
    big.build((1, 6))
    small.build((1, 6))

    def fn(x):
        return tf.cond(
            tf.reduce_sum(x) > 0,
            lambda: big(x)[:, :2],
            lambda: small(x),
        )

    assert count(fn, [1, 6]) == 6 * 10


def test_dynamic_shapes_are_rejected():
    with pytest.raises(ValueError, match="static"):
        count(keras.layers.Dense(3), [None, 4])


def test_efficientnet_b0_matches_paper_backbone_count():
    # original_implementation_detail.md §16: EN-B0 backbone 0.3845 G
    # multiply-adds at 224 px.
    model = keras.applications.EfficientNetB0(
        weights=None, include_top=False, input_shape=(224, 224, 3)
    )
    result = profiling.profile(model, 224)
    assert result["flops"] == pytest.approx(0.3845e9, rel=1e-3)
    assert result["params"] == model.count_params()
    assert result["image_size"] == [224, 224]
    assert result["locations_per_level"] is None


class LocationsModel(models.ImageClassifier):
    """Stands in for TNet (a library model, so it takes
    `locations_per_level`): one dense pass per attended location."""

    config_class = config_lib.TNetConfig

    def __init__(self, default_locations=(2,), **kwargs):
        kwargs.setdefault("name", "locations_model")
        super().__init__(presets.get("tiny_test"), **kwargs)
        self.default_locations = list(default_locations)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(4)

    def call(self, images, training=False, locations_per_level=None):
        if locations_per_level is None:
            locations_per_level = self.default_locations
        features = self.pool(images)  # (batch, 3)
        logits = self.head(features)
        for _ in range(sum(locations_per_level)):
            logits = logits + self.head(features)
        return {"logits": logits}


def test_profile_passes_locations_to_models_that_take_them():
    model = LocationsModel()
    per_pass = 3 * 4
    result = profiling.profile(model, (16, 12), locations_per_level=[2, 1])
    assert result == {
        "params": 3 * 4 + 4,
        "flops": (1 + 3) * per_pass,
        "image_size": [16, 12],
        "locations_per_level": [2, 1],
    }
    assert profiling.profile(model, 16)["flops"] == (1 + 2) * per_pass
    zero = profiling.profile(model, 16, locations_per_level=[0])
    assert zero["flops"] == per_pass


def test_profile_rejects_bad_arguments():
    baseline = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)]
    )
    with pytest.raises(ValueError, match="locations_per_level"):
        profiling.profile(baseline, 8, locations_per_level=[1])
    with pytest.raises(ValueError, match="image_size"):
        profiling.profile(baseline, (8, 8, 3))
    with pytest.raises(ValueError, match="image_size"):
        profiling.profile(baseline, 0)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", None),
        (None, None),
        ("0", (0,)),
        ("3", (3,)),
        ("2,1", (2, 1)),
        ("none", ()),
    ],
)
def test_parse_locations(text, expected):
    # The profiling command line reads an empty value as the preset's own.
    parsed = locations.parse_locations(text, empty=locations.MODEL_DEFAULT)
    assert parsed == expected


def test_parse_locations_reads_empty_as_level_1_alone_by_default():
    # The experiments' --locations: "" is level 1 alone, as "none".
    assert locations.parse_locations("") == ()
    assert locations.parse_locations(None) == ()


@pytest.mark.parametrize("text", ["a", "2,", "-1", "1.5"])
def test_parse_locations_rejects_bad_text(text):
    with pytest.raises(ValueError, match="location setting"):
        locations.parse_locations(text, empty=locations.MODEL_DEFAULT)


@pytest.fixture
def fake_presets(monkeypatch):
    """A stand-in for tnet_tf.presets with one TNet-like, one baseline."""
    configs = {
        "toy_tnet": types.SimpleNamespace(
            image_size=(16, 16), locations_per_level=(2,)
        ),
        "toy_baseline": types.SimpleNamespace(image_size=(8, 8)),
    }

    def build(name):
        if name == "toy_tnet":
            return LocationsModel()
        return keras.Sequential(
            [keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3)]
        )

    module = types.ModuleType("tnet_tf.presets")
    module.get = configs.__getitem__
    module.build = build
    module.names = lambda: sorted(configs)
    monkeypatch.setitem(sys.modules, "tnet_tf.presets", module)
    return module


def run_main(argv):
    command_line.main(command_line.parse_flags(["profiling"] + argv))


def test_cli_json_line(fake_presets, capsys):
    run_main(["--preset", "toy_tnet", "--locations", "2,1", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert list(row) == [
        "preset",
        "params",
        "flops",
        "locations_per_level",
        "image_size",
    ]
    assert row == {
        "preset": "toy_tnet",
        "params": 16,
        "flops": 4 * 12,
        "locations_per_level": [2, 1],
        "image_size": [16, 16],
    }


def test_cli_defaults_and_explicit_zero(fake_presets, capsys):
    run_main(["--preset", "toy_tnet", "--json"])
    row = json.loads(capsys.readouterr().out)
    assert row["locations_per_level"] == [2]
    assert row["flops"] == 3 * 12

    run_main(["--preset", "toy_tnet", "--locations", "0", "--json"])
    row = json.loads(capsys.readouterr().out)
    assert row["locations_per_level"] == [0]
    assert row["flops"] == 12

    run_main(["--preset", "toy_baseline", "--image_size", "10", "--json"])
    row = json.loads(capsys.readouterr().out)
    assert row["image_size"] == [10, 10]
    assert row["locations_per_level"] is None
    assert row["flops"] == 8 * 8 * 2 * 27


def test_cli_all_prints_progress_and_table(fake_presets, capsys):
    run_main(["--all"])
    captured = capsys.readouterr()
    assert "[1/2] toy_baseline" in captured.err
    assert "[2/2] toy_tnet" in captured.err
    table = captured.out.splitlines()
    assert table[0].split()[0] == "preset"
    assert table[2].split()[0] == "toy_baseline"
    assert table[3].split()[0] == "toy_tnet"

    run_main(["--all", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["preset"] for row in rows] == ["toy_baseline", "toy_tnet"]


def test_cli_rejects_bad_flags(fake_presets):
    with pytest.raises(SystemExit):
        command_line.parse_flags(["profiling", "--preset", "x", "--all"])
    with pytest.raises(SystemExit):
        command_line.parse_flags(
            ["profiling", "--preset", "x", "--locations", "a"]
        )
    with pytest.raises(SystemExit):
        command_line.parse_flags(["profiling"])


def test_module_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, "-m", "tnet_tf.profiling", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--preset" in result.stdout
    # absl's underscores, as every entry point; the old dashes still read.
    assert "--image_size" in result.stdout
    assert "--image-size" not in result.stdout
    dashed = ["profiling", "--preset", "x", "--image-size", "10"]
    assert command_line.parse_flags(dashed).image_size == 10


def test_loop_body_is_counted_once_with_a_warning():
    dense = keras.layers.Dense(4)
    dense.build((1, 4))

    def fn(x):
        return tf.while_loop(
            lambda i, y: i < tf.cast(tf.reduce_sum(x), tf.int32),
            lambda i, y: (i + 1, dense(y)),
            (tf.constant(0), x),
        )[1]

    with pytest.warns(UserWarning, match="counted once"):
        assert count(fn, [1, 4]) == 4 * 4
