"""The library's models, one contract for all (see `ImageClassifier`).

- `TNet`: the multi-scale hard-attention classifier;
- `BaselineClassifier`: a CNN on the whole image, the paper's baselines;
- `build_model(config)`: the model of a config.
"""

from typing import Any

from tnet_tf import config as config_lib
from tnet_tf.models import preset_directory
from tnet_tf.models.baseline import BaselineClassifier
from tnet_tf.models.image_classifier import ImageClassifier
from tnet_tf.models.tnet import TNet

# The model class of each config class.
MODEL_CLASSES = {
    config_lib.TNetConfig: TNet,
    config_lib.BaselineConfig: BaselineClassifier,
}


def build_model(
    config: config_lib.TNetConfig | config_lib.BaselineConfig, **kwargs: Any
) -> ImageClassifier:
    """The model of `config`: a `TNet` for a `TNetConfig`, a
    `BaselineClassifier` for a `BaselineConfig`; `kwargs` go to its
    constructor (e.g. `load_backbone_weights`)."""
    model_class = MODEL_CLASSES.get(type(config))
    if model_class is None:
        raise ValueError(f"Not a model config: {config!r}")
    return model_class(config, **kwargs)


__all__ = [
    "BaselineClassifier",
    "ImageClassifier",
    "MODEL_CLASSES",
    "TNet",
    "build_model",
]
