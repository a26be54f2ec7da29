"""The public API of tnet_tf carries type hints (issue 15, item 6).

Every parameter (but `self`/`cls`, `*args` and `**kwargs`) and the return
of each public function and method named here has an annotation, and
`typing.get_type_hints` resolves them all (no broken forward reference).
"""

import inspect
import typing

import pytest

from tnet_tf import config
from tnet_tf import export
from tnet_tf import layers
from tnet_tf import models
from tnet_tf import presets
from tnet_tf import training
from tnet_tf.data import augment
from tnet_tf.data import datasets
from tnet_tf.data import pipelines
from tnet_tf.data import records

# The models' public methods of the contract (those defined in tnet_tf).
MODEL_METHODS = (
    "__init__",
    "call",
    "build_feature_extractor",
    "build_classification_module",
    "resolve_locations",
    "region_sampling_mode",
    "check_traversal_depth",
    "evaluate",
    "predict",
    "predict_anytime",
    "export",
    "from_preset",
    "save_to_preset",
    "compile",
)
MODEL_CLASSES = (
    models.TNet,
    models.BaselineClassifier,
    models.ImageClassifier,
)
LAYER_CLASSES = (
    layers.ClassificationModule,
    layers.FeatureExtractor,
    layers.FeatureWeighting,
    layers.LocationModule,
    layers.PositionalEncoding,
)
# Modules whose every public function defined there is checked.
WHOLE_MODULES = (records, datasets, augment)
FUNCTIONS = (
    models.build_model,
    presets.get,
    presets.names,
    presets.build,
    presets.build_model,
    export.export_saved_model,
    export.save_keras,
    export.endpoint_name,
    training.fit,
    pipelines.make_dataset,
    config.validate_locations,
    config.is_positive_int,
    layers.classifier_initializer,
    layers.sinusoidal_encoding,
)


def _defined_in_tnet_tf(function):
    return getattr(function, "__module__", "").startswith("tnet_tf")


def _public_api():
    """`{module.qualified_name: function}` of everything checked (an
    inherited method once, under the class that defines it)."""
    found = {}
    for function in FUNCTIONS:
        found[f"{function.__module__}.{function.__qualname__}"] = function
    for module in WHOLE_MODULES:
        for name, value in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(value):
                continue
            if value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    classes = [(cls, MODEL_METHODS) for cls in MODEL_CLASSES]
    classes += [(cls, ("__init__", "call")) for cls in LAYER_CLASSES]
    spec_methods = ("check_split", "num_examples", "tfds_split")
    classes.append((datasets.DatasetSpec, spec_methods))
    for cls, names in classes:
        for name in names:
            method = inspect.getattr_static(cls, name, None)
            if method is None:
                method = getattr(cls, name, None)
            method = getattr(method, "__func__", method)
            if method is None or not _defined_in_tnet_tf(method):
                continue
            found[f"{method.__module__}.{method.__qualname__}"] = method
    return found


def _missing_annotations(name, function):
    signature = inspect.signature(function)
    missing = []
    for i, parameter in enumerate(signature.parameters.values()):
        if i == 0 and parameter.name in ("self", "cls"):
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.annotation is inspect.Parameter.empty:
            missing.append(f"{name}({parameter.name})")
    if signature.return_annotation is inspect.Signature.empty:
        missing.append(f"{name} -> return")
    return missing


def test_the_api_is_found():
    api = _public_api()
    for name in (
        "TNet.__init__",
        "TNet.call",
        "TNet.region_sampling_mode",
        "BaselineClassifier.call",
        "ImageClassifier.predict",
        "TrainingStep.compile",
        "ImageClassifier.from_preset",
        "LocationModule.call",
        "tnet_tf.data.records.parse_example",
        "tnet_tf.data.augment.preprocess_for_training",
        "tnet_tf.data.datasets.folder_spec",
        "tnet_tf.preset_configs.get",
    ):
        assert any(key.endswith(name) for key in api), sorted(api)


def test_every_parameter_and_return_is_annotated():
    missing = []
    for name, function in sorted(_public_api().items()):
        missing += _missing_annotations(name, function)
    assert not missing, "Missing type hints:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", sorted(_public_api()))
def test_type_hints_resolve(name):
    function = _public_api()[name]
    hints = typing.get_type_hints(function)
    assert "return" in hints, name


def test_the_check_names_what_is_missing():
    def unannotated(self, x, *args, y: int = 0, **kwargs):
        return x

    assert _missing_annotations("f", unannotated) == ["f(x)", "f -> return"]
