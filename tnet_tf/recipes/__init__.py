"""The paper's experiments by name: preset + data + schedule.

A recipe is an `ExperimentConfig` (`experiment_config`): which model preset
(`tnet_tf.presets`) is trained on which dataset (`tnet_tf.data.datasets`),
with which batch size, epochs, learning rates and schedule, and which
location settings are evaluated afterwards. Every experiment of the paper is
one registered function returning its config (`paper`); its docstring holds
the command that runs it and the number the paper reports.

`get(name)` returns a recipe, `names()` lists them, `describe(name)` gives
the docstring, and `resolve(...)` turns a name (or a preset) plus
`"key=value"` overrides into the fully resolved config an experiment runs
with (`tnet_tf.experiment`); these live in `lookup`.

Example:
>>> recipe = tnet_tf.recipes.get("fmow_tnet_stage2")
>>> recipe.restore_from, recipe.epochs
('fmow_tnet_stage1', 10)
>>> resolve("imagenet_tnet", overrides=["epochs=2", "model.dropout_rate=0.1"])
"""

from tnet_tf.recipes import paper  # noqa: F401  (registers the recipes)
from tnet_tf.recipes.experiment_config import RECIPES
from tnet_tf.recipes.experiment_config import TINY_SETTINGS
from tnet_tf.recipes.experiment_config import ExperimentConfig
from tnet_tf.recipes.lookup import MODEL_PREFIX
from tnet_tf.recipes.lookup import apply_overrides
from tnet_tf.recipes.lookup import describe
from tnet_tf.recipes.lookup import for_preset
from tnet_tf.recipes.lookup import get
from tnet_tf.recipes.lookup import names
from tnet_tf.recipes.lookup import register
from tnet_tf.recipes.lookup import resolve
