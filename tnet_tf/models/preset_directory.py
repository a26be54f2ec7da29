"""Preset directories: a trained model as files a person can read.

`model.save_to_preset(directory)` writes, and `TNet.from_preset(directory)`,
`BaselineClassifier.from_preset(directory)` or
`tnet_tf.presets.build(directory)` read back, offline:

- `config.json`: the model's class name and config (`to_dict()`), with the
  tnet-tf and Keras versions that wrote it;
- `model.weights.h5`: the weights (`model.save_weights`);
- `preprocessing.json`: what the model expects of its input: the image
  size evaluation resizes to, 3 channels, pixels in [-1, 1];
- `class_names.json` (when known): the class names, index = class id.
"""

import json
import os

import keras

from tnet_tf import backbones

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
PREPROCESSING_FILE = "preprocessing.json"
CLASS_NAMES_FILE = "class_names.json"
# The Keras registration package of the library's models.
REGISTERED_PACKAGE = "tnet_tf"


def is_preset_directory(name):
    """Whether `name` is a path to a folder (not a preset name)."""
    return isinstance(name, (str, os.PathLike)) and os.path.isdir(name)


def _write_json(path, value):
    with open(path, "w") as stream:
        json.dump(value, stream, indent=2)
        stream.write("\n")


def _read_json(path):
    with open(path) as stream:
        return json.load(stream)


def save(model, directory, class_names=None):
    """Writes `model` as a preset directory (see the module docstring).

    Raises:
        ValueError: when `class_names` does not name every class.
    """
    if class_names is None:
        class_names = getattr(model, "class_names", None)
    config = model.config
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if len(class_names) != config.num_classes:
            raise ValueError(
                f"'{model.name}' predicts {config.num_classes} classes but "
                f"{len(class_names)} class names were given."
            )
    os.makedirs(directory, exist_ok=True)
    _write_json(
        os.path.join(directory, CONFIG_FILE),
        {
            "class_name": type(model).__name__,
            "config": config.to_dict(),
            "tnet_tf_version": _library_version(),
            "keras_version": keras.__version__,
        },
    )
    _write_json(
        os.path.join(directory, PREPROCESSING_FILE),
        {
            "image_size": list(config.image_size),
            "channels": 3,
            "input_range": [-1.0, 1.0],
            "evaluation_resize": "bilinear to image_size, aspect not kept",
        },
    )
    if class_names is not None:
        _write_json(os.path.join(directory, CLASS_NAMES_FILE), class_names)
    model.save_weights(os.path.join(directory, WEIGHTS_FILE))
    return str(directory)


def load(directory, expected_class, **overrides):
    """The model saved in preset directory `directory`, with config fields
    `overrides` changed (e.g. `locations_per_level`), as an instance of
    `expected_class` (or a subclass); its `class_names` attribute holds the
    saved names (None when none were saved).

    Raises:
        FileNotFoundError: a file of the preset is missing.
        ValueError: the directory holds another kind of model.
    """
    paths = {
        name: os.path.join(directory, name)
        for name in (CONFIG_FILE, WEIGHTS_FILE)
    }
    missing = [
        name for name, path in paths.items() if not os.path.isfile(path)
    ]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a preset directory: it has no "
            f"{' or '.join(missing)} (write one with model.save_to_preset)."
        )
    saved = _read_json(paths[CONFIG_FILE])
    class_name = saved.get("class_name")
    model_class = keras.saving.get_registered_object(
        f"{REGISTERED_PACKAGE}>{class_name}"
    )
    if model_class is None or not issubclass(model_class, expected_class):
        raise ValueError(
            f"{directory} holds a {class_name!r}, not a "
            f"{expected_class.__name__}."
        )
    config = model_class.config_class.from_dict(saved["config"])
    # Every weight is loaded next.
    with backbones.loading_saved_weights():
        model = model_class(
            config.replace(**overrides), load_backbone_weights=False
        )
    model.load_weights(paths[WEIGHTS_FILE])
    names_path = os.path.join(directory, CLASS_NAMES_FILE)
    model.class_names = (
        tuple(_read_json(names_path)) if os.path.isfile(names_path) else None
    )
    return model


def _library_version():
    import tnet_tf  # the package is fully imported when a model is saved

    return tnet_tf.__version__
