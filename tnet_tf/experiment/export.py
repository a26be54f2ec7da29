"""The export verb: a checkpoint as a SavedModel and a `.keras` file.

- `run_export`: the SavedModel of `tnet_tf.export` (one endpoint per
  location setting) and a `.keras` copy, in `export/`.
"""

import os

from tnet_tf import export
from tnet_tf.experiment.models import location_settings
from tnet_tf.experiment.models import resolve_recipe
from tnet_tf.experiment.run_folder import EXPORT_DIR
from tnet_tf.experiment.run_folder import default_checkpoint
from tnet_tf.experiment.run_folder import load_checkpoint
from tnet_tf.experiment.run_folder import write_experiment_file


def run_export(
    recipe,
    workdir,
    *,
    checkpoint=None,
    locations=None,
    output_dir=None,
    overrides=(),
):
    """Writes the SavedModel and a `.keras` copy of a checkpoint.

    The SavedModel (`tnet_tf.export`) has one endpoint per setting of
    `locations` (default the recipe's `evaluation_locations`) besides
    `serve`, `serve_uint8` and `serve_image_bytes` (resizing to the
    recipe's image size).

    Returns:
        A dict: `saved_model` and `keras` paths, `signature_info`.
    """
    recipe = resolve_recipe(recipe, overrides)
    model = load_checkpoint(default_checkpoint(workdir, checkpoint))
    output_dir = output_dir or os.path.join(workdir, EXPORT_DIR)
    settings = [
        list(setting)
        for setting in location_settings(recipe, model, locations)
    ]
    write_experiment_file(recipe, workdir)  # once the arguments are checked
    saved_model = os.path.join(output_dir, "saved_model")
    info = export.export_saved_model(
        model, saved_model, settings, image_size=recipe.image_size
    )
    keras_path = export.save_keras(
        model, os.path.join(output_dir, f"{model.name}.keras")
    )
    return {
        "saved_model": saved_model,
        "keras": keras_path,
        "signature_info": info,
    }
