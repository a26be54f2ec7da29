"""The authors' released models: the release switch, the checkpoint loader,
the TF-TPU EfficientNet initialisation and `experiments.convert_release`.

The proof against the release's own outputs uses the release fixture
(`../shared/reference/release_fixture`, or `$TNET_RELEASE_FIXTURE`): the
original fMoW TNet's variables, a release-format checkpoint's key list, four
images and the release's outputs; `keys/` lists every key of all 25 released
models.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from bench import release_agreement
from experiments import convert_release
from tnet_tf import backbones
from tnet_tf import checkpoints
from tnet_tf import experiment
from tnet_tf import presets
from tnet_tf import recipes
from tnet_tf import release
from tnet_tf.backbones import efficientnet
from tnet_tf.config import BaselineConfig
from tnet_tf.config import TNetConfig
from tnet_tf.models import BaselineClassifier
from tnet_tf.models import TNet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_ROOT = os.environ.get(
    "TNET_RELEASE_FIXTURE",
    os.path.join(REPO, "..", "shared", "reference", "release_fixture"),
)
FMOW_FIXTURE = os.path.join(FIXTURE_ROOT, "fmow_tnet_b0_896")
KEYS = os.path.join(FIXTURE_ROOT, "keys")

needs_fixture = pytest.mark.skipif(
    not os.path.isdir(FMOW_FIXTURE),
    reason=f"the release fixture is not at {FIXTURE_ROOT}",
)

# Key manifest (keys/<name>.json) -> the preset of the released model.
MANIFEST_PRESETS = {
    "imagenet_tnet": "imagenet_tnet",
    "imagenet_bagnet77": "imagenet_bagnet77",
    "fmow_tnet_stage1": "fmow_tnet_b0",
    "fmow_tnet_stage2": "fmow_tnet_b0_896",
    "fmow_en_b0": "fmow_en_b0_224",
    **{
        f"{dataset}_{kind}_b{index}": f"{dataset}_{kind}_b{index}"
        for dataset in ("cub", "nabirds")
        for kind in ("tnet", "en")
        for index in range(5)
    },
}
# Building B1..B4 takes 10-25 s each; the default tier keeps every B0 and
# one feature-weighting B-variant.
FAST_MANIFESTS = {
    name
    for name in MANIFEST_PRESETS
    if not any(f"_b{index}" in name for index in range(1, 5))
} | {"cub_tnet_b2"}


def _run_entry_point(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "experiments.convert_release", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )


def _numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


# === The release switch ===


def test_paper_defaults_stay_and_release_config_sets_the_release_switches():
    paper = presets.get("fmow_tnet_b0_896")
    assert paper.input_normalization == "backbone"
    assert not paper.normalize_location_logits
    assert (paper.selection, paper.log_prob) == ("sample", "sequential")
    released = release.release_config(paper)
    assert released == paper.replace(
        input_normalization="none",
        normalize_location_logits=True,
        selection="greedy",
        log_prob="sum",
    )
    baseline = release.release_config(presets.get("cub_en_b0"))
    assert baseline == presets.get("cub_en_b0").replace(
        input_normalization="none"
    )
    with pytest.raises(ValueError, match="input_normalization"):
        TNetConfig(input_normalization="imagenet")


def test_release_recipe_trains_with_the_release_loss():
    recipe = release.release_recipe("fmow_tnet_stage2")
    assert recipe.loss_variant == "release"
    assert recipe.model_config() == release.release_config(
        recipes.get("fmow_tnet_stage2").model_config()
    )
    baseline = release.release_recipe("cub_en_b0")
    assert baseline.model_config().input_normalization == "none"
    assert baseline.loss_variant == "paper"


def test_unnormalised_efficientnet_gets_the_pixels_unchanged():
    spec = backbones.build_backbone(
        "efficientnet_b0", input_shape=(64, 64, 3), input_normalization="none"
    )
    layers = spec.model.layers
    assert not any(
        isinstance(layer, (keras.layers.Normalization, keras.layers.Rescaling))
        for layer in layers
    )
    stem_input = keras.Model(
        spec.model.input, spec.model.get_layer("stem_conv_pad").input
    )
    images = np.random.uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(_numpy(stem_input(images)), images)
    # The default keeps keras.applications' ImageNet normalisation.
    default = backbones.build_backbone(
        "efficientnet_b0", input_shape=(64, 64, 3)
    )
    assert any(
        isinstance(layer, keras.layers.Normalization)
        for layer in default.model.layers
    )


def test_unnormalised_baseline_round_trips_through_keras_file(tmp_path):
    config = BaselineConfig(
        backbone="efficientnet_b0",
        num_classes=3,
        image_size=64,
        input_normalization="none",
    )
    model = BaselineClassifier(config)
    path = str(tmp_path / "baseline.keras")
    model.save(path)
    loaded = experiment.load_checkpoint(path)
    assert loaded.config.input_normalization == "none"
    assert not any(
        isinstance(layer, keras.layers.Normalization)
        for layer in loaded.feature_extractor.backbone_model.layers
    )
    images = np.random.uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        _numpy(loaded(images)["logits"]),
        _numpy(model(images)["logits"]),
        rtol=1e-5,
        atol=1e-5,
    )


def test_unnormalised_efficientnet_loads_a_keras_applications_h5(tmp_path):
    """keras.applications files hold the Normalization layer the unnormalised
    backbone lacks; every other layer still loads, by name."""
    reference = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(64, 64, 3)
    )
    path = str(tmp_path / "efficientnetb0_notop.h5")
    reference.save(path)
    spec = backbones.build_backbone(
        "efficientnet_b0",
        input_shape=(64, 64, 3),
        weights=path,
        input_normalization="none",
    )
    for layer in spec.model.layers:
        if not layer.weights:
            continue
        for ours, theirs in zip(
            layer.get_weights(), reference.get_layer(layer.name).get_weights()
        ):
            np.testing.assert_array_equal(ours, theirs)


# === TF-TPU EfficientNet checkpoints (the release's initialisation) ===


def _write_checkpoint(prefix, tensors):
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=list(tensors),
        shape_and_slices=[""] * len(tensors),
        tensors=[tf.constant(value) for value in tensors.values()],
    )


def test_tpu_checkpoint_initialises_the_backbone(tmp_path):
    source = backbones.build_backbone(
        "efficientnet_b0", input_shape=(64, 64, 3), input_normalization="none"
    ).model
    names = efficientnet.tpu_checkpoint_variables(source, "efficientnet-b0")
    assert (
        "efficientnet-b0/blocks_0/conv2d/kernel/ExponentialMovingAverage"
        in names
    )
    assert (
        "efficientnet-b0/blocks_1/tpu_batch_normalization_2/moving_variance"
        "/ExponentialMovingAverage" in names
    )
    # Every backbone weight has a checkpoint name.
    assert {id(v) for v in names.values()} == {id(v) for v in source.weights}
    tensors = {name: _numpy(variable) for name, variable in names.items()}
    # A real checkpoint also holds the raw weights, the classifier, the step.
    tensors["efficientnet-b0/head/dense/kernel"] = np.zeros(
        (1280, 1000), "float32"
    )
    tensors["efficientnet-b0/stem/conv2d/kernel"] = np.zeros(
        (3, 3, 3, 32), "float32"
    )
    tensors["global_step"] = np.int64(7)
    prefix = str(tmp_path / "efficientnet-b0" / "model.ckpt")
    _write_checkpoint(prefix, tensors)

    # As a user starts the release's fine-tuning: the weights in the config.
    config = release.release_config(
        presets.get("cub_tnet_b0").replace(backbone_weights=prefix)
    )
    backbone = TNet(config).feature_extractor.backbone_model
    for layer in backbone.layers:
        if not layer.weights:
            continue
        for ours, theirs in zip(
            layer.get_weights(), source.get_layer(layer.name).get_weights()
        ):
            np.testing.assert_array_equal(ours, theirs)

    del tensors[
        "efficientnet-b0/blocks_3/se/conv2d_1/bias/ExponentialMovingAverage"
    ]
    broken = str(tmp_path / "broken" / "model.ckpt")
    _write_checkpoint(broken, tensors)
    with pytest.raises(ValueError, match="blocks_3/se/conv2d_1/bias"):
        backbones.build_backbone(
            "efficientnet_b0", input_shape=(64, 64, 3), weights=broken
        )
    with pytest.raises(FileNotFoundError, match="neither a file nor"):
        backbones.build_backbone(
            "efficientnet_b0",
            input_shape=(64, 64, 3),
            weights=str(tmp_path / "missing" / "model.ckpt"),
        )


# === Every released model: key coverage ===


def _manifest_cases():
    return [
        pytest.param(
            name,
            marks=() if name in FAST_MANIFESTS else (pytest.mark.slow,),
            id=name,
        )
        for name in sorted(MANIFEST_PRESETS)
    ]


@needs_fixture
@pytest.mark.parametrize("manifest", _manifest_cases())
def test_every_released_checkpoint_loads_every_variable(manifest, tmp_path):
    with open(os.path.join(KEYS, f"{manifest}.json")) as file:
        entries = json.load(file)
    rng = np.random.default_rng(0)
    values = {
        entry["key"]: rng.normal(size=entry["shape"]).astype("float32")
        for entry in entries
    }
    # The checkpoint as train.py writes it under TF 2.4: the model keys, the
    # Adam slots and step, the checkpoint's counter.
    listed = [
        {**entry, "key": release_agreement.checkpoint_key(entry["key"])}
        for entry in entries
    ]
    slot = listed[0]["key"].replace(
        release_agreement.VALUE_SUFFIX,
        "/.OPTIMIZER_SLOT/optimizer/m" + release_agreement.VALUE_SUFFIX,
    )
    listed.append({**listed[0], "key": slot})
    for counter in ("optimizer/iter", "save_counter"):
        key = counter + release_agreement.VALUE_SUFFIX
        listed.append({"key": key, "shape": [], "dtype": "int64"})
    prefix = str(tmp_path / "ckpt-1")
    release_agreement.write_release_checkpoint(
        prefix,
        listed,
        {release_agreement.checkpoint_key(k): v for k, v in values.items()},
    )
    model = release.load_release_checkpoint(MANIFEST_PRESETS[manifest], prefix)
    assert model.config == release.release_config(
        presets.get(MANIFEST_PRESETS[manifest])
    )

    mapping = release.release_variables(model)
    assert set(mapping) == set(values)  # every key consumed
    covered = {id(getattr(t, "variable", t)) for t in mapping.values()}
    assert [w.path for w in model.weights if id(w) not in covered] == []
    for name, target in mapping.items():  # every weight set
        if isinstance(target, checkpoints.Element):
            loaded = _numpy(target.variable)[target.index]
            np.testing.assert_array_equal(loaded, values[name].reshape(()))
        else:
            np.testing.assert_array_equal(_numpy(target), values[name])


# === The release's own outputs, through the entry point ===


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The fixture's release-format checkpoint, converted by the entry point,
    then loaded as the tools load it, with the release's outputs."""
    if not os.path.isdir(FMOW_FIXTURE):
        pytest.skip(f"the release fixture is not at {FIXTURE_ROOT}")
    directory = tmp_path_factory.mktemp("release")
    checkpoint = str(directory / "checkpoint" / "ckpt-1")
    release_agreement.write_fixture_checkpoint(checkpoint, FMOW_FIXTURE)
    output = str(directory / "fmow_tnet_stage2.keras")
    process = release_agreement.convert(checkpoint, output)
    assert process.returncode == 0, process.stderr
    images, io = release_agreement.fixture_inputs(FMOW_FIXTURE)
    model = experiment.load_checkpoint(output)
    return {
        "model": model,
        "checkpoint": checkpoint,
        "agreement": release_agreement.agreement(model, images, io),
    }


def test_converted_model_keeps_the_release_switches(converted):
    model = converted["model"]
    assert model.config == release.release_config(
        presets.get("fmow_tnet_b0_896")
    )
    assert model.location_module.normalize_logits
    assert not any(
        isinstance(layer, keras.layers.Normalization)
        for layer in model.feature_extractor.backbone_model.layers
    )


def test_converted_model_gives_the_release_outputs(converted):
    agreement = converted["agreement"]
    assert agreement["logits_relative"] < 1e-3
    assert agreement["cells_equal"]
    assert agreement["location_probs_absolute"] < 1e-4
    assert agreement["level1_features_relative"] < 1e-4


# === Bad checkpoints and bad flags ===


@needs_fixture
def test_corrupted_checkpoint_names_every_key_at_fault(tmp_path):
    with open(os.path.join(FMOW_FIXTURE, "checkpoint_keys.json")) as file:
        entries = json.load(file)
    variables = np.load(os.path.join(FMOW_FIXTURE, "variables.npz"))
    values = {
        release_agreement.checkpoint_key(name): variables[name]
        for name in variables.files
    }
    missing = "feature_extraction/part5_block3/se/conv2d_1/bias"
    misshaped = "location_prediction/init/conv2d/kernel"
    extra = "location_prediction/extra/conv2d/kernel"
    corrupted = []
    for entry in entries:
        if entry["key"] == release_agreement.checkpoint_key(missing):
            continue
        if entry["key"] == release_agreement.checkpoint_key(misshaped):
            entry = {**entry, "shape": [1, 1, 80, 81]}
            values[entry["key"]] = np.zeros(entry["shape"], "float32")
        corrupted.append(entry)
    corrupted.append(
        {
            "key": release_agreement.checkpoint_key(extra),
            "shape": [2],
            "dtype": "float32",
        }
    )
    prefix = str(tmp_path / "ckpt-1")
    release_agreement.write_release_checkpoint(prefix, corrupted, values)

    output = tmp_path / "out" / "model.keras"
    process = _run_entry_point(
        "--recipe=fmow_tnet_stage2",
        f"--checkpoint={prefix}",
        f"--output={output}",
    )
    assert process.returncode != 0
    assert "Traceback" not in process.stderr
    for key in (missing, misshaped, extra):
        assert key in process.stderr
    assert "(1, 1, 80, 81)" in process.stderr
    assert not output.parent.exists()


@pytest.mark.parametrize(
    "flag_values, message",
    [
        ({"recipe": "fmow_tnet_stage2", "output": "x.keras"}, "--checkpoint"),
        (
            {
                "recipe": "no_such_recipe",
                "checkpoint": "ckpt",
                "output": "x.keras",
            },
            "no_such_recipe",
        ),
        (
            {"preset": "fmow_tnet_b0", "checkpoint": "ckpt", "output": "x.h5"},
            ".keras",
        ),
    ],
    ids=["no-checkpoint", "unknown-recipe", "not-keras"],
)
def test_entry_point_rejects_bad_flags_as_usage_errors(flag_values, message):
    """absl's app.run prints a UsageError's message without a traceback."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(**flag_values):
        with pytest.raises(app.UsageError, match=message):
            convert_release.main(["convert_release"])
    assert not os.path.exists("x.keras")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No TensorFlow checkpoint"):
        release.load_release_checkpoint(
            presets.get("imagenet_bagnet77"), str(tmp_path / "ckpt-1")
        )
