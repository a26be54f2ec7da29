"""Flags shared by the entry points, declared once.

absl flags are process-global, so a flag used by several entry points is
declared here and nowhere else (the tests import every entry point into one
process). A flag should select a recipe and override a few fields: anything
else is `--override key=value` (`tnet_tf.recipes.apply_overrides`).
"""

from absl import flags

from tnet_tf import experiment
from tnet_tf import recipes

WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "The run's folder, e.g. runs/<recipe> (WORKSPACE.md): experiment.json, "
    "checkpoints/, logs/, evaluation/, profile/, export/, figures/.",
)
RECIPE = flags.DEFINE_string(
    "recipe", None, "Recipe name (tnet_tf.recipes.names())."
)
PRESET = flags.DEFINE_string(
    "preset",
    None,
    "Instead of --recipe: a model preset (tnet_tf.presets.names()), run "
    "with the first recipe that trains it.",
)
OVERRIDE = flags.DEFINE_multi_string(
    "override",
    [],
    "key=value edits of the recipe, e.g. epochs=2 or batch_size=32; "
    "model.key=value edits the preset, e.g. model.dropout_rate=0.3. "
    "Repeat the flag for several.",
)
TINY = flags.DEFINE_bool(
    "tiny",
    False,
    "Smoke run: the same model and data, two steps of two images, one "
    "evaluation batch.",
)
SEED = flags.DEFINE_integer(
    "seed", None, "Seed of the input pipeline and Keras (default: recipe's)."
)
# data_prep.verify declares --data_dir for the same thing (a record folder);
# allow_override lets both modules be imported into one process.
DATA_DIR = flags.DEFINE_string(
    "data_dir",
    None,
    "Record folder of the recipe's dataset (records/<dataset>).",
    allow_override=True,
)
CHECKPOINT = flags.DEFINE_string(
    "checkpoint",
    None,
    "A .keras checkpoint (default: <workdir>/checkpoints/final.keras); "
    "predict also takes an exported SavedModel folder; convert_release "
    "takes the release's tf.train.Checkpoint (prefix or folder).",
)
LOCATIONS = flags.DEFINE_multi_string(
    "locations",
    [],
    "A location setting such as 2,1 (2 cells, then 1 in each), 0, or none "
    "(level 1 alone); repeat for several. Default: the recipe's settings.",
)
SPLIT = flags.DEFINE_string(
    "split", None, "Dataset split (default: the recipe's evaluation split)."
)


def recipe():
    """The resolved recipe: --recipe or --preset, --override, --tiny, --seed."""
    return recipes.resolve(
        RECIPE.value,
        preset=PRESET.value,
        overrides=OVERRIDE.value,
        tiny=TINY.value or None,
        seed=SEED.value,
    )


def locations():
    """The --locations settings as tuples, or None when not given."""
    return [experiment.parse_locations(v) for v in LOCATIONS.value] or None
