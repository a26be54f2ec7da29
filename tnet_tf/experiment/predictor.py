"""The predict verb's models: a `.keras` checkpoint, a preset directory or
an exported SavedModel, loaded as one `Predictor`.

- `Predictor`: `predict(images, setting)` and the model's image size.
- `load_model`: a `Predictor` for a path.
- `load_predictor`: `(predict, image_size)` of `load_model`.
"""

import dataclasses
import json
import os
from typing import Any
from typing import Callable

import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf import export
from tnet_tf import presets
from tnet_tf import profiling
from tnet_tf.experiment.models import to_numpy
from tnet_tf.experiment.run_folder import load_checkpoint
from tnet_tf.models import preset_directory


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A loaded model, whatever its form.

    `predict(images, setting)` returns the output dict as NumPy arrays for
    float32 images `(batch, H, W, 3)` in [-1, 1]; `setting` is a location
    setting such as `[2, 1]`, or `None` for the model's default.
    """

    predict: Callable[..., dict]
    image_size: tuple
    kind: str  # "keras", "preset" or "saved_model"
    class_names: Any = None  # a preset directory's names, else None
    model: Any = None  # the Keras model; None for a SavedModel

    def multiply_adds(self, setting=None):
        """Multiply-adds per image (`tnet_tf.profiling.profile`) of a Keras
        model; `None` for a SavedModel, which does not record them."""
        if self.model is None:
            return None
        result = profiling.profile(self.model, self.image_size, setting)
        return int(result["flops"])


def _saved_model_predictor(model_path):
    served = tf.saved_model.load(model_path)
    assets = os.path.join(model_path, "assets")
    with open(os.path.join(assets, export.SIGNATURE_INFO_FILE)) as file:
        info = json.load(file)

    def predict_saved(images, setting):
        name = (
            export.DEFAULT_ENDPOINT
            if setting is None
            else export.endpoint_name(setting)
        )
        if name not in served.signatures:
            raise config_lib.LocationSettingError(
                f"The SavedModel has no endpoint {name!r}; it has "
                f"{sorted(served.signatures)}."
            )
        outputs = served.signatures[name](images=images)
        return {k: v.numpy() for k, v in outputs.items()}

    return Predictor(predict_saved, tuple(info["image_size"]), "saved_model")


def load_model(model_path):
    """A `Predictor` for a `.keras` checkpoint, a preset directory or an
    exported SavedModel folder (the one holding `saved_model.pb`)."""
    model_path = os.fspath(model_path)
    if os.path.isfile(os.path.join(model_path, "saved_model.pb")):
        return _saved_model_predictor(model_path)
    if preset_directory.is_preset_directory(model_path):
        model, kind = presets.build(model_path), "preset"
    else:
        model, kind = load_checkpoint(model_path), "keras"

    def predict_keras(images, setting):
        return to_numpy(
            model(images, training=False, locations_per_level=setting)
        )

    return Predictor(
        predict_keras,
        tuple(model.config.image_size),
        kind,
        class_names=getattr(model, "class_names", None),
        model=model,
    )


def load_predictor(model_path):
    """`(predict, image_size)` of `load_model(model_path)`."""
    predictor = load_model(model_path)
    return predictor.predict, predictor.image_size
