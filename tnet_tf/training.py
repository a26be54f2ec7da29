"""What surrounds `model.fit`: learning-rate schedule, callbacks, resuming.

`fit` trains a `TNet` in a working directory with the callbacks of
`make_callbacks` (`tnet_tf.callbacks`): a `ResumableBackupAndRestore`
(backups every `DEFAULT_BACKUP_STEPS` steps and at epoch ends; a killed run
resumes at the backed-up step and ends with the weights of an uninterrupted
one), the best checkpoint, and TensorBoard logs with
`AttentionImagesCallback` images. `TrainingBackup` (`tnet_tf.backup`) is the
backup format, shared with `distributed.train_loop`.

The names imported below are the training API its callers use through this
module (README, `tnet_tf.experiment`, `tnet_tf.distributed`); they are
defined in `tnet_tf.schedules`, `tnet_tf.backup` and `tnet_tf.callbacks`.
"""

import json
import os
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tnet_tf.backup import BACKUP_FOLDER
from tnet_tf.backup import DEFAULT_BACKUP_STEPS
from tnet_tf.backup import TrainingBackup
from tnet_tf.backup import TrainingPosition
from tnet_tf.backup import backup_due
from tnet_tf.backup import backup_position
from tnet_tf.callbacks import make_callbacks
from tnet_tf.schedules import learning_rate_schedule

__all__ = [
    "BACKUP_FOLDER",
    "DEFAULT_BACKUP_STEPS",
    "TrainingBackup",
    "TrainingPosition",
    "backup_due",
    "backup_position",
    "fit",
    "learning_rate_schedule",
    "make_callbacks",
]


def fit(
    model: keras.Model,
    train_data: tf.data.Dataset | tuple,
    *,
    epochs: int,
    workdir: str | os.PathLike,
    steps_per_epoch: int | None = None,
    validation_data: tf.data.Dataset | tuple | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: str | int = "auto",
    **callback_options: Any,
) -> keras.callbacks.History:
    """`model.fit` in `workdir` with the callbacks of `make_callbacks`.

    Writes `model.config` to `workdir/config.json`. Calling `fit` again with
    the same `workdir` resumes a killed run at the step of its last backup
    (`backup_steps`, default `DEFAULT_BACKUP_STEPS`, and every epoch end)
    and ends with the weights of an uninterrupted run, given a
    deterministic `train_data`. Where that input starts on resume
    (`input_starts_at`) defaults to "run" with `steps_per_epoch` (one
    stream through the epochs) and "epoch" without; pass "backup" for an
    input built to start at `backup_position(workdir)`. With
    `validation_data` (a dataset or an `(images, labels)` tuple) the best
    checkpoint is kept and its first images are drawn. `callback_options`
    go to `make_callbacks`; `callbacks` run after its callbacks. Returns
    the `History`.
    """
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(model.config.to_dict(), f, indent=2, sort_keys=True)
    options = {
        "best_checkpoint": validation_data is not None,
        # A model that attends no region has no boxes worth drawing.
        "validation_images": (
            _first_images(validation_data)
            if model.config.attends_regions
            else None
        ),
        "input_starts_at": "epoch" if steps_per_epoch is None else "run",
    }
    options.update(callback_options)
    return model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        # A dataset shuffles itself; Keras would warn that `shuffle` is
        # ignored for one. Arrays are shuffled by Keras as usual.
        shuffle=not isinstance(train_data, tf.data.Dataset),
        validation_data=validation_data,
        callbacks=make_callbacks(workdir, **options) + list(callbacks or []),
        verbose=verbose,
    )


def _first_images(data, count=4):
    """A few images of a batched dataset or an `(x, y)` tuple, or None."""
    if data is None:
        return None
    if isinstance(data, tf.data.Dataset):
        data = next(iter(data.take(1)))
    images = data[0] if isinstance(data, (tuple, list)) else data
    return images[:count]
