"""Named model presets: every network of the paper, its baselines, and test models.

`get(name)` returns a config (`TNetConfig` or `BaselineConfig`), `build(name)`
the Keras model, `names()` the registered names. The configs themselves are
in `tnet_tf.preset_configs`.

Example:
>>> import tnet_tf
>>> config = tnet_tf.presets.get("fmow_tnet_b0")
>>> model = tnet_tf.presets.build("fmow_tnet_b0_896")
"""

import os
from typing import Any

from tnet_tf import models
from tnet_tf.config import BaselineConfig
from tnet_tf.config import TNetConfig
from tnet_tf.preset_configs import PRESETS  # noqa: F401 (public registry)
from tnet_tf.preset_configs import get
from tnet_tf.preset_configs import names  # noqa: F401 (public API)


def build(name: str | os.PathLike, **overrides: Any) -> models.ImageClassifier:
    """The model of preset `name` (a registered name, or a preset directory
    written by `model.save_to_preset`) with some config fields overridden."""
    if models.preset_directory.is_preset_directory(name):
        return models.ImageClassifier.from_preset(name, **overrides)
    return build_model(get(name).replace(**overrides))


def build_model(
    config: TNetConfig | BaselineConfig,
) -> models.ImageClassifier:
    """The model of `config`: a `TNet` for a `TNetConfig`, a
    `BaselineClassifier` for a `BaselineConfig`."""
    return models.build_model(config)
