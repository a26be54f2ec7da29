"""The Keras callbacks of a training run, and `make_callbacks` to make them.

`ResumableBackupAndRestore` backs a `fit` run up (`tnet_tf.backup`) and
resumes it at the backed-up step; `AttentionImagesCallback` writes the
regions a TNet attends on a few images to TensorBoard. `make_callbacks`
adds the best checkpoint and the TensorBoard logs.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import viz
from tnet_tf.backup import BACKUP_FOLDER
from tnet_tf.backup import DEFAULT_BACKUP_STEPS
from tnet_tf.backup import TrainingBackup
from tnet_tf.backup import TrainingPosition
from tnet_tf.backup import backup_due


class ResumableBackupAndRestore(keras.callbacks.Callback):
    """Backs up a `fit` run and resumes it at the same step.

    Backs up into a `TrainingBackup` every `backup_steps` training steps and
    at every epoch end. A later `fit` with this callback restores the
    backup: weights, optimizer slots and step counts, `SeedGenerator`
    states, and the epoch; the resumed epoch then passes over the steps
    already trained without training them, reading and dropping the input
    that the killed run had read (none when `input_starts_at="backup"`, see
    `tnet_tf.backup.INPUT_STARTS`). The resumed run repeats the
    uninterrupted one exactly when the input is deterministic (e.g. a seeded
    `make_dataset`) and `input_starts_at` says where it starts. Keras's own
    `BackupAndRestore` restarts the epoch with fresh random state.

    The logs of the resumed epoch cover the steps trained after the resume.

    Args:
        backup_dir: the backup folder (`TrainingBackup`).
        backup_steps: steps between backups; 0 backs up at epoch ends only.
        input_starts_at: where the training input starts on resume, one of
            `tnet_tf.backup.INPUT_STARTS`: "epoch" (a finite dataset, the
            Keras default), "run" (one stream through all epochs) or
            "backup".
        delete_backup: delete the backup when `fit` completes.
    """

    def __init__(
        self,
        backup_dir,
        *,
        backup_steps=DEFAULT_BACKUP_STEPS,
        input_starts_at="epoch",
        delete_backup=True,
    ):
        super().__init__()
        TrainingPosition().batches_to_read(input_starts_at)  # validates
        if backup_steps < 0:
            raise ValueError(
                f"`backup_steps` must be at least 0, got {backup_steps}."
            )
        self.backup = TrainingBackup(backup_dir)
        self.backup_steps = backup_steps
        self.input_starts_at = input_starts_at
        self.delete_backup = delete_backup
        self.position = TrainingPosition()
        self._steps_to_pass = 0  # of the resumed epoch, trained before
        self._batches_to_read = 0  # input the killed run had read
        self._train_function = None  # the model's, while catching up

    @property
    def backup_dir(self):
        return self.backup.directory

    def on_train_begin(self, logs=None):
        self._restore_train_function()
        model = self.model
        if not model.built:
            raise ValueError("Build the model before `fit` resumes it.")
        self.position = self.backup.restore(model)
        self._steps_to_pass = self.position.step
        self._batches_to_read = self.position.batches_to_read(
            self.input_starts_at
        )
        if self.position != TrainingPosition():
            model._initial_epoch = self.position.epoch
        if self._steps_to_pass or self._batches_to_read:
            self._train_function = model.train_function
            model.train_function = self._catch_up

    def _catch_up(self, iterator):
        # Stands in for model.train_function while the resumed epoch passes
        # over the steps that the killed run had trained.
        for _ in range(self._batches_to_read):
            iterator.get_next()
        self._batches_to_read = 0
        if self._steps_to_pass:
            return self.model.get_metrics_result()
        train_function = self._train_function
        self._restore_train_function()
        return train_function(iterator)

    def _restore_train_function(self):
        if self._train_function is not None:
            self.model.train_function = self._train_function
            self._train_function = None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.position.epoch:
            self.position = TrainingPosition(epoch, 0, self.position.batches)

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        if self._steps_to_pass:
            if step >= self._steps_to_pass:  # the last step passed over
                self._steps_to_pass = 0
                self._restore_train_function()
            return
        trained = step - self.position.step
        before = self.position.batches
        self.position = TrainingPosition(
            self.position.epoch, step, before + trained
        )
        if step == self.params.get("steps"):
            return  # the epoch-end backup follows
        if backup_due(before, self.position.batches, self.backup_steps):
            self.backup.save(self.model, self.position)

    def on_epoch_end(self, epoch, logs=None):
        self.position = TrainingPosition(epoch + 1, 0, self.position.batches)
        self.backup.save(self.model, self.position)

    def on_train_end(self, logs=None):
        self._restore_train_function()
        self.model._initial_epoch = None  # Keras would keep it for next fit
        if self.delete_backup:
            self.backup.delete()


def draw_attended_boxes(model, images):
    """uint8 pictures of `images` (pixels in [-1, 1]) with the regions that
    `model` attends greedily drawn in `tnet_tf.viz` level colours."""
    outputs = model(images, training=False, selection="greedy")
    boxes = np.asarray(outputs["attended_boxes"])
    levels = np.asarray(outputs["attended_levels"])
    return np.stack(
        [
            viz.draw_attention(image, boxes[i], levels[i])
            for i, image in enumerate(np.asarray(images))
        ]
    )


class AttentionImagesCallback(keras.callbacks.Callback):
    """Writes a few images with their attended regions to TensorBoard.

    After every `every_n_epochs`-th epoch, the first `max_images` of
    `images` (in [-1, 1]) drawn by `draw_attended_boxes` go to the image
    summary `attended_regions` in `log_dir`, at step = epoch. Nothing is
    written inside a train step.
    """

    def __init__(self, images, log_dir, every_n_epochs=1, max_images=4):
        super().__init__()
        self.images = tf.convert_to_tensor(images[:max_images], tf.float32)
        self.log_dir = log_dir
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        drawn = draw_attended_boxes(self.model, self.images)
        with self._writer.as_default():
            tf.summary.image(
                "attended_regions",
                drawn,
                step=epoch,
                max_outputs=self.max_images,
            )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def make_callbacks(
    workdir,
    *,
    backup=True,
    best_checkpoint=True,
    tensorboard=True,
    validation_images=None,
    backup_steps=DEFAULT_BACKUP_STEPS,
    input_starts_at="epoch",
    delete_backup=True,
    monitor="val_top1",
):
    """The callbacks of a training run in `workdir`, in this order.

    - `ResumableBackupAndRestore` in `workdir/backup`, every `backup_steps`
      steps and at every epoch end, for an input that starts where
      `input_starts_at` says (`tnet_tf.backup.INPUT_STARTS`), deleted at the
      end unless `delete_backup` is False;
    - `ModelCheckpoint` of the highest `monitor` in
      `workdir/checkpoints/best.keras`;
    - `TensorBoard` in `workdir/logs`, plus `AttentionImagesCallback` in
      `workdir/logs/attention` when `validation_images` are given.
    """
    callbacks = []
    if backup:
        callbacks.append(
            ResumableBackupAndRestore(
                os.path.join(workdir, BACKUP_FOLDER),
                backup_steps=backup_steps,
                input_starts_at=input_starts_at,
                delete_backup=delete_backup,
            )
        )
    if best_checkpoint:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                os.path.join(workdir, "checkpoints", "best.keras"),
                monitor=monitor,
                mode="max",
                save_best_only=True,
            )
        )
    if tensorboard:
        log_dir = os.path.join(workdir, "logs")
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir))
        if validation_images is not None:
            callbacks.append(
                AttentionImagesCallback(
                    validation_images, os.path.join(log_dir, "attention")
                )
            )
    return callbacks
