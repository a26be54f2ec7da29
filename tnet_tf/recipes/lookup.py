"""Recipes by name: registering, listing, describing and resolving them.

`resolve` turns a recipe name (or a preset) plus `"key=value"` overrides
into the resolved `ExperimentConfig` a run trains with.
"""

import dataclasses
import inspect

from tnet_tf import config as config_lib
from tnet_tf import presets
from tnet_tf.recipes.experiment_config import RECIPES
from tnet_tf.recipes.experiment_config import ExperimentConfig

# Prefix of `--override` keys that edit the model preset instead of the
# experiment, e.g. "model.dropout_rate=0.3".
MODEL_PREFIX = "model."


def register(function):
    """Registers a recipe function under its own name (a decorator)."""
    RECIPES.register(function.__name__, function)
    return function


def get(name):
    """The `ExperimentConfig` registered as `name`."""
    return RECIPES.get(name)()


def names():
    """Sorted names of all recipes."""
    return RECIPES.names()


def describe(name):
    """The docstring of recipe `name`: what it is, its command, the paper's
    number."""
    return inspect.getdoc(RECIPES.get(name))


def for_preset(preset):
    """The first recipe (by name) training `preset`, for `--preset` runs."""
    presets.get(preset)  # an unknown preset raises with the known ones
    for name in names():
        recipe = get(name)
        if recipe.preset == preset:
            return recipe
    raise ValueError(
        f"No recipe trains preset '{preset}'; pass --recipe, or add one to "
        "tnet_tf/recipes/paper.py."
    )


def apply_overrides(recipe, overrides):
    """`recipe` with `"key=value"` strings applied.

    Keys are `ExperimentConfig` fields; keys starting with `model.` edit the
    preset config and are appended to `model_overrides`. Values are parsed
    as in `tnet_tf.config.apply_overrides`.

    Example:
    >>> apply_overrides(get("imagenet_tnet"), ["epochs=1", "model.seed=3"])
    """
    plain, model = [], list(recipe.model_overrides)
    model_fields = {f.name for f in dataclasses.fields(recipe.model_config())}
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key.startswith(MODEL_PREFIX):
            model.append(item.strip()[len(MODEL_PREFIX) :])
            continue
        known = {f.name for f in dataclasses.fields(ExperimentConfig)}
        if key not in known and key in model_fields:
            raise ValueError(
                f"'{key}' is a model field: write {MODEL_PREFIX}{item}. "
                f"Experiment fields: {', '.join(sorted(known))}"
            )
        plain.append(item)
    recipe = dataclasses.replace(recipe, model_overrides=tuple(model))
    return config_lib.apply_overrides(recipe, plain)


def resolve(recipe=None, *, preset=None, overrides=(), tiny=None, seed=None):
    """The resolved config of a run, from a recipe name or a preset.

    Args:
        recipe: a recipe name or an `ExperimentConfig`.
        preset: instead of `recipe`: the first recipe of this preset
            (`for_preset`); override `dataset` etc. as needed.
        overrides: `"key=value"` strings (`apply_overrides`).
        tiny: when not `None`, sets the smoke-run switch.
        seed: when not `None`, sets the seed.

    Returns:
        A resolved `ExperimentConfig`.
    """
    if (recipe is None) == (preset is None):
        raise ValueError(
            "Give exactly one of a recipe (--recipe) and a preset (--preset); "
            f"got recipe={recipe!r}, preset={preset!r}. Recipes: "
            f"{', '.join(names())}"
        )
    if preset is not None:
        recipe = for_preset(preset)
    elif isinstance(recipe, str):
        recipe = get(recipe)
    recipe = apply_overrides(recipe, list(overrides or ()))
    if tiny is not None:
        recipe = dataclasses.replace(recipe, tiny=bool(tiny))
    if seed is not None:
        recipe = dataclasses.replace(recipe, seed=int(seed))
    return recipe.resolve()
