"""The run folder (`--workdir`, WORKSPACE.md): its paths and checkpoints.

- The layout: `EXPERIMENT_FILE`, `FINAL_CHECKPOINT`, `BEST_CHECKPOINT`
  and the folders each verb writes into (`EVALUATION_DIR`, `PROFILE_DIR`,
  `EXPORT_DIR`, `FIGURES_DIR`).
- `write_experiment_file`: the resolved recipe and its model config.
- `default_checkpoint`, `load_checkpoint`, `restore_weights`: the
  checkpoints a verb reads.
"""

import json
import os

import keras

# === Working-directory layout (WORKSPACE.md) ===
EXPERIMENT_FILE = "experiment.json"
FINAL_CHECKPOINT = os.path.join("checkpoints", "final.keras")
BEST_CHECKPOINT = os.path.join("checkpoints", "best.keras")
EVALUATION_DIR = "evaluation"
PROFILE_DIR = "profile"
EXPORT_DIR = "export"
FIGURES_DIR = "figures"


def write_experiment_file(recipe, directory):
    """Writes the resolved recipe and its model config as JSON."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, EXPERIMENT_FILE)
    content = {
        "experiment": recipe.to_dict(),
        "model": recipe.model_config().to_dict(),
    }
    with open(path, "w") as file:
        json.dump(content, file, indent=2, sort_keys=True)
    return path


def load_checkpoint(path):
    """A model from a `.keras` checkpoint (uncompiled)."""
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No checkpoint at {path!r}; train first (experiments.train) or "
            "pass --checkpoint."
        )
    return keras.saving.load_model(path, compile=False)


def default_checkpoint(workdir, checkpoint=None):
    """`checkpoint`, or the final checkpoint of `workdir`."""
    return checkpoint or os.path.join(workdir, FINAL_CHECKPOINT)


def restore_weights(model, path):
    """Copies the weights of the checkpoint at `path` into `model`.

    Model weights only (no optimizer state): the step and the schedule
    restart, as the release's fMoW stage 2. The two models must have the
    same weights in the same order, as a TNet preset and its deeper stage.
    """
    source = load_checkpoint(path)
    shapes = [tuple(w.shape) for w in source.weights]
    expected = [tuple(w.shape) for w in model.weights]
    if shapes != expected:
        raise ValueError(
            f"The checkpoint {path!r} ('{source.name}', {len(shapes)} "
            f"weights) does not fit '{model.name}' ({len(expected)} weights)."
        )
    model.set_weights(source.get_weights())
