"""The train verb: `run_training` and what it compiles a model with.

- `run_training`: builds the recipe's model under a distribution strategy,
  restores an earlier stage's weights (`restore_from`), trains with
  `tnet_tf.training.fit` (default and mirrored strategies) or
  `tnet_tf.distributed.train_loop` (multi-worker, where Keras `fit` fails on
  TensorFlow 2.21), and saves `checkpoints/final.keras`; it returns a
  `TrainingResult`.
- `fit_model`: `tnet_tf.training.fit` with optional early stopping that
  keeps the best epoch; `save_final` and `training_summary` its checkpoint
  and what the run did. The demo trains its models through these too.
- `make_optimizers`, `compile_for_training`: Adam on the recipe's schedule
  (and the backbone's own rate), TNet's loss variant.
"""

import dataclasses
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import distributed
from tnet_tf import export
from tnet_tf import training
from tnet_tf.experiment.models import build_model
from tnet_tf.experiment.models import make_input
from tnet_tf.experiment.models import resolve_recipe
from tnet_tf.experiment.run_folder import BEST_CHECKPOINT
from tnet_tf.experiment.run_folder import FINAL_CHECKPOINT
from tnet_tf.experiment.run_folder import restore_weights
from tnet_tf.experiment.run_folder import write_experiment_file

LOOPS = ("fit", "custom")


def make_optimizers(recipe):
    """Adam with the recipe's piecewise-constant schedule (and a second one
    for the backbone when `backbone_learning_rate` is set)."""

    def adam(rate):
        return keras.optimizers.Adam(
            training.learning_rate_schedule(
                rate,
                recipe.total_steps,
                recipe.schedule_drops,
                recipe.lr_decay_factor,
            )
        )

    backbone = recipe.backbone_learning_rate
    return adam(recipe.learning_rate), (
        adam(backbone) if backbone is not None else None
    )


def compile_for_training(model, recipe):
    """Compiles `model` with the recipe's optimizers and loss variant."""
    optimizer, backbone_optimizer = make_optimizers(recipe)
    model.compile(
        optimizer=optimizer,
        backbone_optimizer=backbone_optimizer,
        loss_variant=recipe.loss_variant,
        jit_compile=recipe.jit_compile,
    )


def fit_model(
    model,
    train,
    workdir,
    *,
    epochs,
    validation=None,
    early_stopping_patience=None,
    **fit_options,
):
    """Fits `model` in `workdir` with `tnet_tf.training.fit` (resumable,
    best checkpoint kept when `validation` is given).

    With `early_stopping_patience`, training stops once `val_top1` has not
    improved for that many epochs, and the model ends with the weights of
    its best epoch (read back from `checkpoints/best.keras`, so a resumed
    run keeps the best epoch of the whole run). `fit_options` go to
    `training.fit`. Returns the `History`.
    """
    callbacks = list(fit_options.pop("callbacks", None) or [])
    if early_stopping_patience is not None:
        if validation is None:
            raise ValueError(
                "`early_stopping_patience` needs validation data: it "
                "watches `val_top1`."
            )
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_top1",
                mode="max",
                patience=early_stopping_patience,
            )
        )
    history = training.fit(
        model,
        train,
        epochs=epochs,
        workdir=workdir,
        validation_data=validation,
        callbacks=callbacks,
        **fit_options,
    )
    if early_stopping_patience is not None:
        model.load_weights(os.path.join(workdir, BEST_CHECKPOINT))
    return history


def save_final(model, workdir):
    """Saves `model` as the run's `checkpoints/final.keras`; its path."""
    final = os.path.join(workdir, FINAL_CHECKPOINT)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    return export.save_keras(model, final)


def training_summary(history, patience=None):
    """What a run with validation did, from its `History` (or its
    `history` dict): `epochs` run, `best_epoch` and its `validation_top1`
    (1-based epochs), and `stopped_early` (False when the epochs ran out
    while `val_top1` was still improving within `patience`)."""
    logs = getattr(history, "history", history)
    scores = logs["val_top1"]
    best = int(np.argmax(scores))
    epochs = getattr(history, "epoch", None) or list(range(len(scores)))
    return {
        "epochs": epochs[-1] + 1,
        "best_epoch": epochs[best] + 1,
        "validation_top1": float(scores[best]),
        "stopped_early": patience is not None
        and len(scores) - 1 - best >= patience,
    }


@dataclasses.dataclass
class TrainingResult:
    """What `run_training` returns.

    Attributes:
        history: metric name -> list of per-epoch values.
        workdir: where this process wrote (a temporary folder on
            multi-worker workers other than the chief, removed at the end).
        final_checkpoint: `checkpoints/final.keras`, the weights the
            release evaluates (no best-checkpoint selection).
        best_checkpoint: `checkpoints/best.keras` (highest `val_top1`), or
            `None` without validation.
        experiment_file: the resolved recipe, `experiment.json`.
    """

    history: dict
    workdir: str
    final_checkpoint: str
    best_checkpoint: str = None
    experiment_file: str = None


def run_training(
    recipe,
    workdir,
    data_dir,
    strategy="default",
    overrides=(),
    *,
    restore_path=None,
    loop=None,
    validate=True,
    source="records",
    verbose="auto",
    backup_steps=training.DEFAULT_BACKUP_STEPS,
    deterministic_ops=False,
):
    """Trains a recipe in `workdir` and saves `checkpoints/final.keras`.

    A run is seeded by `recipe.seed` (the input order and augmentation, the
    initial weights, cell sampling and dropout): the same recipe on the same
    CPU machine gives the same weights (on GPUs see `deterministic_ops`).
    It backs up into `workdir/backup` every
    `backup_steps` steps and at every epoch end; calling again with the
    same arguments after a kill resumes from the last backup, with the
    input at the same batch, and ends with the weights of an uninterrupted
    run.

    Args:
        recipe: a recipe name or an `ExperimentConfig`.
        workdir: the run's folder (WORKSPACE.md).
        data_dir: the record folder of the recipe's dataset.
        strategy: `"default"`, `"mirrored"`, `"multi_worker"` (reads
            `TF_CONFIG`) or a `tf.distribute.Strategy`.
        overrides: `"key=value"` strings (`tnet_tf.recipes.apply_overrides`).
        restore_path: the checkpoint to start from; defaults to the
            recipe's `restore_from` looked up next to `workdir`
            (`<runs>/<recipe>/checkpoints/final.keras`).
        loop: `"fit"` (Keras `fit` with the callbacks of
            `tnet_tf.training`) or `"custom"` (`distributed.train_loop`,
            with validation, the best checkpoint, TensorBoard and the same
            backups); by default `"custom"` for multi-worker, where `fit`
            fails on TF 2.21, else `"fit"`.
        validate: validate on `eval_steps` batches of the evaluation split
            after every epoch and keep the best checkpoint (the custom
            loop drops a last partial global batch).
        source: `"records"` or `"tfds"` (`tnet_tf.data.make_dataset`).
        verbose: Keras verbosity.
        backup_steps: training steps between backups (0: epoch ends only).
        deterministic_ops: `tf.config.experimental.enable_op_determinism`
            for the rest of the process: kernels with a deterministic
            variant use it, and ones without raise. Seeded runs already
            repeat on CPU (where it cost no measurable time); this is for
            GPUs, whose reductions and scatters otherwise add in a varying
            order, at a cost not measured here.

    Returns:
        A `TrainingResult`.
    """
    recipe = resolve_recipe(recipe, overrides)
    kind = strategy if isinstance(strategy, str) else None
    if kind is not None:
        strategy = distributed.make_strategy(kind)
    loop = loop or ("custom" if kind == "multi_worker" else "fit")
    if loop not in LOOPS:
        raise ValueError(f"`loop` must be one of {LOOPS}, got {loop!r}.")
    if recipe.early_stopping_patience is not None and (
        loop != "fit" or not validate
    ):
        raise ValueError(
            "`early_stopping_patience` needs `loop='fit'` and validation "
            f"(got loop={loop!r}, validate={validate})."
        )
    chief = distributed.is_chief(strategy)
    # Workers other than the chief write into a scratch folder (TF guide on
    # multi-worker saving): every worker saves, only the chief's copy stays.
    directory = workdir if chief else tempfile.mkdtemp(prefix="tnet_worker_")
    keras.utils.set_random_seed(recipe.seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    if restore_path is None:
        runs_dir = os.path.dirname(os.path.abspath(workdir))
        restore_path = recipe.restore_path(runs_dir)

    # Every worker reads the chief's backup; the input starts after the
    # batches it has trained, so none is read (or decoded) twice.
    backup_dir = os.path.join(workdir, training.BACKUP_FOLDER)
    resumed = training.backup_position(workdir)
    train = make_input(
        recipe,
        data_dir,
        recipe.train_split,
        True,
        source,
        skip_batches=resumed.batches,
    )
    validation = (
        make_input(recipe, data_dir, recipe.eval_split, False, source)
        if validate
        else None
    )
    with strategy.scope():
        model = build_model(recipe)
        if restore_path:
            restore_weights(model, restore_path)
        compile_for_training(model, recipe)
    # Written once the inputs and the model are built, so that a run that
    # fails on its arguments (records, restore path) leaves nothing behind.
    experiment_file = write_experiment_file(recipe, directory)
    if loop == "fit":
        history = fit_model(
            model,
            train,
            directory,
            epochs=recipe.epochs,
            validation=validation,
            early_stopping_patience=recipe.early_stopping_patience,
            steps_per_epoch=recipe.steps_per_epoch,
            verbose=verbose,
            backup_steps=backup_steps,
            input_starts_at="backup",
            delete_backup=False,  # once the final checkpoint is written
        )
    else:
        history = distributed.train_loop(
            model,
            train,
            strategy=strategy,
            steps=recipe.steps_per_epoch,
            global_batch_size=recipe.batch_size,
            epochs=recipe.epochs,
            verbose=0 if verbose == 0 else 2,
            validation_data=validation,
            callbacks=training.make_callbacks(
                directory, backup=False, best_checkpoint=validate
            ),
            backup_dir=backup_dir,
            backup_steps=backup_steps,
            input_starts_at="backup",
            delete_backup=False,  # once the final checkpoint is written
        )
    final = save_final(model, directory)
    training.TrainingBackup(backup_dir, writer=chief).delete()
    best = os.path.join(directory, BEST_CHECKPOINT)
    result = TrainingResult(
        history={
            key: [float(v) for v in values]
            for key, values in history.history.items()
        },
        workdir=directory,
        final_checkpoint=final,
        best_checkpoint=best if os.path.exists(best) else None,
        experiment_file=experiment_file,
    )
    if not chief:
        shutil.rmtree(directory, ignore_errors=True)
    return result
