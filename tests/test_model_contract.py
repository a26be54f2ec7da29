"""Every model answers one contract: the same call, the same output dict,
the same config, `.keras` and preset paths (tnet_tf.models.ImageClassifier)."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import tnet_tf
from tests import helpers
from tnet_tf import config as config_lib
from tnet_tf import models
from tnet_tf import presets

OUTPUT_KEYS = {
    "logits",
    "per_feature_logits",
    "features",
    "location_probs",
    "attended_boxes",
    "attended_levels",
    "attended_cells",
    "attended_log_probs",
    "location_log_prob",
}


def tiny_tnet(**changes):
    return models.TNet(presets.get("tiny_test").replace(**changes))


def tiny_baseline(**changes):
    config = config_lib.BaselineConfig(
        name="tiny_baseline",
        backbone="tiny_cnn",
        num_classes=10,
        image_size=96,
    )
    return models.BaselineClassifier(config.replace(**changes))


# (name of the model class, factory, a setting it accepts besides None).
MODEL_CASES = [
    ("TNet", tiny_tnet, [2, 1]),
    ("TNet", lambda: tiny_tnet(feature_weighting=True), [3]),
    ("BaselineClassifier", tiny_baseline, []),
]
CASE_IDS = [f"{case[0]}-{index}" for index, case in enumerate(MODEL_CASES)]


@pytest.fixture(scope="module")
def images():
    return helpers.random_images(batch=2, height=96)


@pytest.mark.parametrize(
    "name, make_model, setting", MODEL_CASES, ids=CASE_IDS
)
def test_every_model_returns_the_same_dict(name, make_model, setting, images):
    model = make_model()
    assert isinstance(model, models.ImageClassifier)
    for locations in (None, setting):
        outputs = model(images, training=False, locations_per_level=locations)
        assert OUTPUT_KEYS <= set(outputs)
        attended = outputs["attended_levels"].shape[1]
        assert outputs["logits"].shape == (2, 10)
        assert outputs["per_feature_logits"].shape == (2, attended, 10)
        assert outputs["attended_boxes"].shape == (2, attended, 4)
        assert outputs["attended_cells"].shape == (2, attended)
        assert outputs["attended_log_probs"].shape == (2, attended)
        assert outputs["location_log_prob"].shape == (2,)
        assert outputs["features"].shape[0] == 2
        # The first vector is always the whole image at level 1.
        np.testing.assert_array_equal(
            outputs["attended_boxes"][:, 0], [[0, 0, 1, 1]] * 2
        )
        np.testing.assert_array_equal(outputs["attended_levels"][:, 0], 1)
        np.testing.assert_array_equal(outputs["attended_cells"][:, 0], -1)
        np.testing.assert_allclose(
            tf.reduce_sum(outputs["attended_log_probs"], axis=1),
            outputs["location_log_prob"],
            atol=1e-5,
        )


def test_a_baseline_is_a_tnet_that_attends_nothing(images):
    baseline = tiny_baseline()
    outputs = baseline(images)
    assert outputs["location_probs"] == ()
    np.testing.assert_allclose(
        outputs["per_feature_logits"][:, 0], outputs["logits"]
    )
    # What it computes is a backbone, pooling and the classifier.
    expected = baseline.classification_module(
        baseline.feature_extractor(images)
    )
    np.testing.assert_allclose(outputs["logits"], expected, atol=1e-6)
    assert baseline.resolve_locations([]) == ()
    with pytest.raises(
        config_lib.LocationSettingError,
        match="attends no regions.*got \\[2\\]",
    ):
        baseline(images, locations_per_level=[2])
    with pytest.raises(config_lib.LocationSettingError):
        baseline.evaluate(
            images, np.zeros(2), locations_per_level=[1], verbose=0
        )


@pytest.mark.parametrize(
    "name, make_model, setting", MODEL_CASES, ids=CASE_IDS
)
def test_models_round_trip(name, make_model, setting, images, tmp_path):
    model = make_model()
    # `load_backbone_weights` is not saved: the weights follow in the file.
    helpers.assert_config_round_trip(
        model, ignored_init_args=("load_backbone_weights",)
    )
    helpers.assert_keras_file_round_trip(
        model, images, tmp_path, call_kwargs={"locations_per_level": setting}
    )


def test_every_public_model_is_round_trip_tested():
    public = {
        name
        for name in models.__all__
        if isinstance(getattr(models, name), type)
        and issubclass(getattr(models, name), models.ImageClassifier)
        and getattr(models, name) is not models.ImageClassifier
    }
    assert public == {case[0] for case in MODEL_CASES}
    for name in public:
        assert getattr(tnet_tf, name) is getattr(models, name)


def test_from_preset_builds_its_own_kind_only():
    baseline = models.BaselineClassifier.from_preset(
        "megapixel_mnist_cnn", image_size=64
    )
    assert baseline.config.image_size == (64, 64)
    assert type(presets.build("tiny_test")) is models.TNet
    with pytest.raises(ValueError, match="BaselineConfig, not a TNetConfig"):
        models.TNet.from_preset("megapixel_mnist_cnn")
    with pytest.raises(ValueError, match="Not a model config"):
        models.build_model({"name": "x"})


def test_both_models_evaluate_through_the_same_step(images):
    labels = np.array([1, 2])
    for model in (tiny_tnet(), tiny_baseline()):
        model.compile(optimizer=keras.optimizers.SGD(), jit_compile=False)
        logs = model.evaluate(
            images,
            labels,
            verbose=0,
            return_dict=True,
            locations_per_level=None,
        )
        assert {"loss", "top1", "top5", "l2", "contrastive"} <= set(logs)
        history = model.fit(images, labels, epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][0])


# === Keras parity: predict, export, preset directories ===


@pytest.mark.parametrize(
    "name, make_model, setting", MODEL_CASES, ids=CASE_IDS
)
def test_predict_takes_locations_per_level(name, make_model, setting, images):
    model = make_model()
    predicted = model.predict(
        images, batch_size=1, verbose=0, locations_per_level=setting
    )
    expected = model(images, training=False, locations_per_level=setting)
    assert OUTPUT_KEYS <= set(predicted)
    for key in ("logits", "attended_boxes", "attended_cells"):
        np.testing.assert_allclose(predicted[key], expected[key], atol=1e-5)
    # The setting applies to that call only.
    default = model.predict(images, verbose=0)
    assert default["attended_boxes"].shape == (
        model(images)["attended_boxes"].shape
    )


@pytest.mark.parametrize(
    "name, make_model, setting", MODEL_CASES, ids=CASE_IDS
)
def test_keras_export_writes_the_project_endpoints(
    name, make_model, setting, images, tmp_path
):
    model = make_model()
    path = str(tmp_path / "saved_model")
    info = model.export(path, locations_settings=[setting])
    served = tf.saved_model.load(path)
    assert {"serve", "serve_uint8", "serve_image_bytes"} <= set(
        served.signatures
    )
    assert info["outputs"][:3] == [
        "logits",
        "probabilities",
        "image_is_finite",
    ]
    outputs = served.signatures["serve"](images=tf.constant(images))
    np.testing.assert_allclose(
        outputs["logits"], model(images)["logits"], atol=1e-5
    )
    with pytest.raises(ValueError, match="own endpoints"):
        model.export(str(tmp_path / "other"), format="onnx")


@pytest.mark.parametrize(
    "name, make_model, setting", MODEL_CASES, ids=CASE_IDS
)
def test_preset_directory_round_trip(
    name, make_model, setting, images, tmp_path
):
    model = make_model()
    directory = str(tmp_path / "preset")
    names = [f"class {index}" for index in range(10)]
    model.save_to_preset(directory, class_names=names)
    # Files a person can read.
    saved = json.loads((tmp_path / "preset" / "config.json").read_text())
    assert saved["class_name"] == name
    assert saved["config"] == model.config.to_dict()
    preprocessing = json.loads(
        (tmp_path / "preset" / "preprocessing.json").read_text()
    )
    assert preprocessing["input_range"] == [-1.0, 1.0]
    for loaded in (
        type(model).from_preset(directory),
        presets.build(directory),
        models.ImageClassifier.from_preset(directory),
    ):
        assert type(loaded) is type(model)
        assert loaded.class_names == tuple(names)
        np.testing.assert_allclose(
            loaded(images, locations_per_level=setting)["logits"],
            model(images, locations_per_level=setting)["logits"],
            atol=1e-6,
        )
    other = models.BaselineClassifier if name == "TNet" else models.TNet
    with pytest.raises(ValueError, match=f"holds a '{name}'"):
        other.from_preset(directory)
    with pytest.raises(ValueError, match="12 class names"):
        model.save_to_preset(
            str(tmp_path / "bad"), class_names=names + ["a", "b"]
        )
    with pytest.raises(FileNotFoundError, match="not a preset directory"):
        type(model).from_preset(str(tmp_path))


def test_the_readme_keras_block_runs_as_written(tmp_path, monkeypatch):
    readme = (
        pathlib.Path(__file__).resolve().parents[1] / "README.md"
    ).read_text()
    section = readme.split("### As a Keras model", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    # The block writes under /tmp; here it writes under the test's folder.
    block = block.replace("/tmp/", f"{tmp_path}/")
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["predicted"]["attended_boxes"].shape == (4, 7, 4)
    assert namespace["same"].class_names[:3] == ("a", "b", "c")
    assert (tmp_path / "tiny_saved_model" / "saved_model.pb").exists()
