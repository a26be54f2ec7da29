"""Flags shared by the entry points, declared once.

absl flags are process-global, so a flag used by several entry points is
declared here and nowhere else (the tests import every entry point into one
process). A flag should select a recipe and override a few fields: anything
else is `--override key=value` (`tnet_tf.recipes.apply_overrides`).
"""

import dataclasses
import os

from absl import app
from absl import flags

from tnet_tf import config as config_lib
from tnet_tf import experiment
from tnet_tf import recipes

# The entry points call these through this module.
from tnet_tf.command_line import declare_key_flags  # noqa: F401
from tnet_tf.command_line import run_app  # noqa: F401
from tnet_tf.data import datasets
from tnet_tf.data import records

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
ANYTIME_THRESHOLD = flags.DEFINE_multi_float(
    "anytime_threshold",
    [],
    "Anytime inference (a TNet): each image attends locations one at a "
    "time and stops once its top class probability reaches this, in "
    "(0, 1]; the rows (evaluate) or each image (predict) report the "
    "locations and multiply-adds used. evaluate takes several.",
)
ANYTIME_BUDGET = flags.DEFINE_multi_float(
    "anytime_budget",
    [],
    "evaluate: anytime inference with this many locations per image on "
    "average, spent per batch on the least certain images (>= 1); "
    "repeat for several.",
)


# The shared flags each helper below reads: an entry point declares those
# it reads as its key flags (`declare_key_flags`), so that its --help lists
# them next to its own.
RECIPE_FLAGS = ("recipe", "preset", "override", "tiny", "seed", "data_dir")
CHECKPOINT_FLAGS = ("checkpoint", "workdir")


# The entry points validate every flag through the functions below before
# they write anything: a bad value raises `app.UsageError`, which absl
# prints with the usage (no traceback) before exiting with status 1.


def recipe():
    """The resolved recipe: --recipe or --preset, --override, --tiny, --seed.

    On a --data_dir that describes itself (its `dataset.json`, written by
    `data_prep.image_folder`), the recipe runs on that folder's dataset
    (`on_folder`).

    Raises:
        app.UsageError: an unknown recipe or preset, a bad --override, or a
            class count that differs from the folder's.
    """
    try:
        chosen, preset = RECIPE.value, PRESET.value
        folder = DATA_DIR.value and datasets.folder_spec(DATA_DIR.value)
        if folder:
            chosen = on_folder(recipes.resolve(chosen, preset=preset), folder)
            preset = None
        return recipes.resolve(
            chosen,
            preset=preset,
            overrides=OVERRIDE.value,
            tiny=TINY.value or None,
            seed=SEED.value,
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    except TypeError as error:
        # A value of the wrong type fails in a config check whose message
        # names no flag.
        raise app.UsageError(
            f"--override {' '.join(OVERRIDE.value)}: a value of the wrong "
            f"type ({error})."
        ) from None


def on_folder(resolved_recipe, spec):
    """`resolved_recipe` on the dataset `spec` of a self-describing folder.

    The folder's splits, an epoch of its training records and a head of its
    class count (an --override=model.num_classes that differs fails); the
    preset's backbone, geometry and schedule are kept.
    """
    return dataclasses.replace(
        resolved_recipe,
        dataset=spec.name,
        train_split=None,
        eval_split=None,
        steps_per_epoch=None,
        model_overrides=(
            *resolved_recipe.model_overrides,
            f"num_classes={spec.num_classes}",
        ),
    )


def locations(resolved_recipe=None):
    """The --locations settings as tuples, or None when not given.

    With `resolved_recipe`, each setting is also checked against its model
    (a baseline takes none; a TNet's counts must fit its grid).

    Raises:
        app.UsageError: a setting that does not parse or does not fit.
    """
    try:
        settings = [experiment.parse_locations(v) for v in LOCATIONS.value]
        if settings and resolved_recipe is not None:
            if not resolved_recipe.is_tnet:
                raise ValueError(
                    f"--locations: the recipe '{resolved_recipe.name}' trains "
                    "a baseline, which attends no locations."
                )
            grid_size = resolved_recipe.model_config().grid_size
            for setting in settings:
                config_lib.validate_locations(setting, grid_size)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    return settings or None


def anytime(resolved_recipe=None):
    """The --anytime_threshold and --anytime_budget settings as
    `[("threshold", t), ..., ("budget", b), ...]`.

    Raises:
        app.UsageError: a value out of range, or a recipe that trains a
            baseline (which attends no locations).
    """
    settings = [("threshold", t) for t in ANYTIME_THRESHOLD.value]
    settings += [("budget", b) for b in ANYTIME_BUDGET.value]
    for threshold in ANYTIME_THRESHOLD.value:
        if not 0.0 < threshold <= 1.0:
            raise app.UsageError(
                f"--anytime_threshold must be in (0, 1], got {threshold}."
            )
    for budget in ANYTIME_BUDGET.value:
        if budget < 1:
            raise app.UsageError(
                "--anytime_budget counts locations per image on average, "
                f"at least 1, got {budget}."
            )
    if settings and resolved_recipe and not resolved_recipe.is_tnet:
        raise app.UsageError(
            f"--anytime_*: the recipe '{resolved_recipe.name}' trains a "
            "baseline, which attends no locations."
        )
    return settings


def check_data_dir(*splits):
    """Checks that --data_dir holds the complete shards of each split.

    Raises:
        app.UsageError: no --data_dir, a missing folder or missing shards.
    """
    if not DATA_DIR.value:
        raise app.UsageError("Pass --data_dir: the record folder.")
    for split in splits:
        try:
            records.list_shards(DATA_DIR.value, split)
        except ValueError as error:
            raise app.UsageError(f"--data_dir: {error}") from None


def checkpoint(from_workdir=True):
    """--checkpoint, else (with `from_workdir`) the final checkpoint of
    --workdir, checked to exist; `None` when there is neither.

    Raises:
        app.UsageError: the checkpoint does not exist.
    """
    path = CHECKPOINT.value
    if not path and from_workdir and WORKDIR.value:
        path = experiment.default_checkpoint(WORKDIR.value)
    if path and not os.path.exists(path):
        raise app.UsageError(
            f"No checkpoint at {path!r}: train first (experiments.train) or "
            "pass --checkpoint."
        )
    return path
