"""The recipe, its model and its input, as every verb uses them.

- `resolve_recipe`: a recipe name or `ExperimentConfig` (with overrides) to
  a resolved recipe.
- `build_model`, `compile_for_evaluation`, `make_input`: a fresh model,
  compiled for `evaluate`; the recipe's seeded input pipeline.
- `location_settings`, `_call`, `_to_numpy`: the settings a verb runs a
  model at, and one greedy forward pass (a TNet's or a baseline's) as an
  output dict.
"""

import keras
import numpy as np

from tnet_tf import presets
from tnet_tf import recipes
from tnet_tf.data import pipelines
from tnet_tf.experiment.locations import format_locations
from tnet_tf.model import TNet


def resolve_recipe(recipe, overrides):
    """The resolved recipe of a name or an `ExperimentConfig`."""
    if isinstance(recipe, recipes.ExperimentConfig) and not overrides:
        return recipe.resolve()
    return recipes.resolve(recipe, overrides=overrides)


def build_model(recipe):
    """A fresh `TNet` or `BaselineClassifier` for the recipe's model config."""
    return presets.build_model(recipe.model_config())


def compile_for_evaluation(model):
    """Compiles for `evaluate` (plain SGD: no optimizer slots are used)."""
    model.compile(optimizer=keras.optimizers.SGD(), jit_compile=False)


def make_input(
    recipe, data_dir, split, training, source="records", skip_batches=0
):
    """The recipe's pipeline of `split`, seeded (the same batches every run)
    and starting after `skip_batches` batches; evaluation stops at
    `eval_steps`."""
    dataset = pipelines.make_dataset(
        recipe.dataset,
        data_dir,
        split,
        training=training,
        batch_size=recipe.batch_size,
        image_size=recipe.image_size,
        seed=recipe.seed,
        source=source,
        skip_batches=skip_batches,
    )
    if not training and recipe.eval_steps:
        dataset = dataset.take(recipe.eval_steps)
    return dataset


def location_settings(recipe, model, locations=None):
    """The settings to evaluate: `locations`, else the recipe's, else the
    model's default; `[None]` for a baseline."""
    if not isinstance(model, TNet):
        if locations:
            raise ValueError(
                f"'{model.name}' is a baseline: it takes no location settings, "
                f"got {[format_locations(s) for s in locations]}."
            )
        return [None]
    settings = locations or recipe.evaluation_locations
    if not settings:
        settings = [model.config.locations_per_level]
    return [model.resolve_locations(setting) for setting in settings]


def _call(model, images, setting):
    """The model's output dict (a baseline's logits as `{"logits": ...}`)."""
    if isinstance(model, TNet):
        return model(images, training=False, locations_per_level=setting)
    return {"logits": model(images, training=False)}


def _to_numpy(outputs):
    """An output dict as NumPy arrays (`location_probs` stays a tuple)."""
    return {
        key: (
            tuple(np.asarray(p) for p in value)
            if key == "location_probs"
            else np.asarray(value)
        )
        for key, value in outputs.items()
    }
