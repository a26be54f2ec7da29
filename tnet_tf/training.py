"""What surrounds `model.fit`: learning-rate schedules, callbacks, resuming.

`fit` trains a `TNet` in a working directory with the callbacks of
`make_callbacks`: a `ResumableBackupAndRestore` (backups every
`DEFAULT_BACKUP_STEPS` steps and at epoch ends; a killed run resumes at the
backed-up step and ends with the weights of an uninterrupted one), the best
checkpoint, and TensorBoard logs with `AttentionImagesCallback` images.
`TrainingBackup` is the backup format, shared with
`distributed.train_loop`.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import viz
# Part of the training API (README); defined where recipes use it too.
from tnet_tf.schedules import learning_rate_schedule  # noqa: F401


def seed_variables(model):
    """The `SeedGenerator` states of `model`: random state, not weights."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


# === Backup and resume ===

BACKUP_FOLDER = "backup"  # inside a run's workdir (WORKSPACE.md)
# Training steps between backups. A backup writes the weights and the
# optimizers' slots (three copies of the weights with Adam): 67 MB in 0.9 s
# for cub_tnet_b0 on a 2-core CPU. Every 500 steps that stays under 1% of
# the training time for steps of 0.2 s or more, and a kill loses at most
# 500 steps.
DEFAULT_BACKUP_STEPS = 500
# Where the training input given to a resumed run starts:
# - "epoch": every epoch starts the input again (a finite dataset that
#   Keras `fit` reads once per epoch);
# - "run": one stream runs through every epoch from the run's first batch
#   (`repeat()` with `steps_per_epoch`, and `distributed.train_loop`);
# - "backup": the input was built to start after the batches the backup
#   has trained (`pipelines.make_dataset(skip_batches=...)`).
# The resumed run reads and drops the batches the killed run had read, which
# for "run" is every batch since the start: build the input to start at the
# backup ("backup") to resume a long run without reading it again.
INPUT_STARTS = ("epoch", "run", "backup")
_POSITION_FILE = "training_metadata.json"


@dataclasses.dataclass(frozen=True)
class TrainingPosition:
    """How far a run has trained.

    Attributes:
        epoch: the epoch in progress (0-based).
        step: batches trained in that epoch.
        batches: batches trained since the run started, over all epochs.
    """

    epoch: int = 0
    step: int = 0
    batches: int = 0

    def batches_to_read(self, input_starts_at):
        """Batches a resumed run must read and drop from its input to
        continue where this position stopped (see `INPUT_STARTS`)."""
        if input_starts_at not in INPUT_STARTS:
            raise ValueError(
                f"`input_starts_at` must be one of {INPUT_STARTS}, got "
                f"{input_starts_at!r}."
            )
        return {"epoch": self.step, "run": self.batches, "backup": 0}[
            input_starts_at
        ]


class TrainingBackup:
    """The backup folder of a training run, written by `fit` (through
    `ResumableBackupAndRestore`) and by `distributed.train_loop`.

    A backup is one `model.save_weights` file (weights, batch-norm
    statistics, the reward baseline, and the slots and `iterations` of
    `model.optimizer` and `model.backbone_optimizer`) named after its
    position, and `training_metadata.json`: the `TrainingPosition`, the
    weights file's name and the `SeedGenerator` states (cell sampling,
    dropout), which `save_weights` leaves out. The metadata is replaced
    atomically once the weights file is complete, then older weights files
    are deleted: a run killed at any instant leaves a whole backup.

    Under a multi-worker strategy every worker calls `save` (reading
    variables may need all of them), but only the `writer` (the chief)
    writes into `directory`; the others write into a scratch folder that
    is deleted at once. Every worker restores from `directory`, which must
    therefore be readable by all of them.

    Args:
        directory: the backup folder, e.g. `<workdir>/backup`.
        writer: whether this process writes the backup.
    """

    def __init__(self, directory, *, writer=True):
        self.directory = os.fspath(directory)
        self.writer = writer

    @property
    def _metadata_path(self):
        return os.path.join(self.directory, _POSITION_FILE)

    def _metadata(self):
        if not tf.io.gfile.exists(self._metadata_path):
            return None
        with tf.io.gfile.GFile(self._metadata_path) as f:
            return json.load(f)

    def position(self):
        """The backed-up `TrainingPosition`, or None without a backup."""
        metadata = self._metadata()
        if metadata is None:
            return None
        return TrainingPosition(
            metadata["epoch"], metadata["step"], metadata["batches"]
        )

    def restore(self, model):
        """Loads the backup into `model` (compiled, with the variables of the
        run that wrote it) and returns its position; without a backup,
        changes nothing and returns the start, `TrainingPosition()`."""
        metadata = self._metadata()
        if metadata is None:
            return TrainingPosition()
        with model.distribute_strategy.scope():
            _build_optimizers(model)
        model.load_weights(os.path.join(self.directory, metadata["weights"]))
        states = metadata["seed_states"]
        variables = seed_variables(model)
        if len(states) != len(variables):
            raise ValueError(
                f"The backup in {self.directory} holds {len(states)} seed "
                f"states; the model has {len(variables)}."
            )
        for variable, state in zip(variables, states):
            variable.assign(np.asarray(state, variable.dtype))
        return self.position()

    def save(self, model, position):
        """Backs up `model` at `position` (a `TrainingPosition`)."""
        name = (
            f"state-epoch{position.epoch}-step{position.step}.weights.h5"
        )
        directory = self.directory if self.writer else tempfile.mkdtemp()
        try:
            metadata = self._metadata() if self.writer else None
            if metadata is not None and metadata["weights"] == name:
                return  # this position is already backed up
            tf.io.gfile.makedirs(directory)
            model.save_weights(os.path.join(directory, name), overwrite=True)
            if not self.writer:
                return
            metadata = {
                **dataclasses.asdict(position),
                "weights": name,
                "seed_states": [
                    np.asarray(v).tolist() for v in seed_variables(model)
                ],
            }
            partial = self._metadata_path + ".partial"
            with tf.io.gfile.GFile(partial, "w") as f:
                f.write(json.dumps(metadata))
            tf.io.gfile.rename(partial, self._metadata_path, overwrite=True)
            for old in tf.io.gfile.glob(
                os.path.join(directory, "state-*.weights.h5")
            ):
                if os.path.basename(old) != name:
                    tf.io.gfile.remove(old)
        finally:
            if not self.writer:
                shutil.rmtree(directory, ignore_errors=True)

    def delete(self):
        """Deletes the backup (the writer's folder; others have none)."""
        if self.writer and tf.io.gfile.exists(self.directory):
            tf.io.gfile.rmtree(self.directory)


def _build_optimizers(model):
    """Builds the optimizers' slots before a backup is loaded into them."""
    if hasattr(model, "compile_optimizers"):
        # TNet's optimizers each update their own variables; Keras would
        # build `model.optimizer` on all of them, which mismatches the saved
        # slots of a model with a `backbone_optimizer`.
        model.compile_optimizers()
    elif not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def backup_due(batches_before, batches_after, backup_steps):
    """Whether a run backs up after training from its `batches_before`-th to
    its `batches_after`-th batch: at every multiple of `backup_steps` batches
    since the run started (never when `backup_steps` is 0), so a resumed run
    keeps the schedule of the killed one."""
    return bool(backup_steps) and (
        batches_after // backup_steps > batches_before // backup_steps
    )


class ResumableBackupAndRestore(keras.callbacks.Callback):
    """Backs up a `fit` run and resumes it at the same step.

    Backs up into a `TrainingBackup` every `backup_steps` training steps and
    at every epoch end. A later `fit` with this callback restores the
    backup: weights, optimizer slots and step counts, `SeedGenerator`
    states, and the epoch; the resumed epoch then passes over the steps
    already trained without training them, reading and dropping the input
    that the killed run had read (none when `input_starts_at="backup"`, see
    `INPUT_STARTS`). The resumed run repeats the uninterrupted one exactly
    when the input is deterministic (e.g. a seeded `make_dataset`) and
    `input_starts_at` says where it starts. Keras's own `BackupAndRestore`
    restarts the epoch with fresh random state.

    The logs of the resumed epoch cover the steps trained after the resume.

    Args:
        backup_dir: the backup folder (`TrainingBackup`).
        backup_steps: steps between backups; 0 backs up at epoch ends only.
        input_starts_at: where the training input starts on resume, one of
            `INPUT_STARTS`: "epoch" (a finite dataset, the Keras default),
            "run" (one stream through all epochs) or "backup".
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
            tf.summary.image("attended_regions", drawn, step=epoch,
                             max_outputs=self.max_images)
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
      `input_starts_at` says (`INPUT_STARTS`), deleted at the end unless
      `delete_backup` is False;
    - `ModelCheckpoint` of the highest `monitor` in
      `workdir/checkpoints/best.keras`;
    - `TensorBoard` in `workdir/logs`, plus `AttentionImagesCallback` in
      `workdir/logs/attention` when `validation_images` are given.
    """
    callbacks = []
    if backup:
        callbacks.append(ResumableBackupAndRestore(
            os.path.join(workdir, BACKUP_FOLDER),
            backup_steps=backup_steps,
            input_starts_at=input_starts_at,
            delete_backup=delete_backup,
        ))
    if best_checkpoint:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            os.path.join(workdir, "checkpoints", "best.keras"),
            monitor=monitor,
            mode="max",
            save_best_only=True,
        ))
    if tensorboard:
        log_dir = os.path.join(workdir, "logs")
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir))
        if validation_images is not None:
            callbacks.append(AttentionImagesCallback(
                validation_images, os.path.join(log_dir, "attention")
            ))
    return callbacks


def backup_position(workdir):
    """The `TrainingPosition` of the backup in `workdir` (the start when
    there is none): build the input of a resumed run to start there, e.g.
    `make_dataset(..., skip_batches=backup_position(workdir).batches)`, and
    pass `input_starts_at="backup"` to `fit`."""
    position = TrainingBackup(os.path.join(workdir, BACKUP_FOLDER)).position()
    return position or TrainingPosition()


def fit(
    model,
    train_data,
    *,
    epochs,
    workdir,
    steps_per_epoch=None,
    validation_data=None,
    callbacks=None,
    verbose="auto",
    **callback_options,
):
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
        # Only a TNet attends; a baseline has no boxes to draw.
        "validation_images": (
            _first_images(validation_data)
            if hasattr(model, "location_module")
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
