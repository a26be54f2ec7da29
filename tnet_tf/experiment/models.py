"""The recipe, its model and its input, as every verb uses them.

- `resolve_recipe`: a recipe name or `ExperimentConfig` (with overrides) to
  a resolved recipe.
- `build_model`, `compile_for_evaluation`, `make_input`: a fresh model,
  compiled for `evaluate`; the recipe's seeded input pipeline.
- `location_settings`, `to_numpy`: the settings a verb runs a model at
  (every model answers the same call), and its output dict as NumPy.
"""

import keras
import numpy as np

from tnet_tf import presets
from tnet_tf import recipes
from tnet_tf.data import pipelines


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
    """The settings to run, resolved by the model: `locations`, else the
    recipe's, else the model's default (`()` for a baseline, which takes no
    other)."""
    settings = locations or recipe.evaluation_locations or [None]
    return [model.resolve_locations(setting) for setting in settings]


def to_numpy(outputs):
    """An output dict as NumPy arrays (`location_probs` stays a tuple)."""
    return {
        key: (
            tuple(np.asarray(p) for p in value)
            if key == "location_probs"
            else np.asarray(value)
        )
        for key, value in outputs.items()
    }
