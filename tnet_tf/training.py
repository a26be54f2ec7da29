"""What surrounds `model.fit`: learning-rate schedules, callbacks, resuming.

`fit` trains a `TNet` in a working directory with the callbacks of
`make_callbacks`: a `ResumableBackupAndRestore` (a killed run resumes at the
same step and ends with the weights of an uninterrupted one), the best
checkpoint, and TensorBoard logs with `AttentionImagesCallback` images.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import viz

# Fractions of the total steps where the release drops the learning rate
# (original_implementation_detail.md §10).
SCHEDULE_DROPS = {
    "imagenet": (0.8,),
    "fmow": (0.8,),
    "cub": (0.9,),
    "nabirds": (0.9,),
    "two_step": (0.7, 0.85),
}

def learning_rate_schedule(
    initial_learning_rate, total_steps, drops=(0.8,), factor=0.1
):
    """The release's schedule: `PiecewiseConstantDecay` dropping by `factor`.

    `drops` are increasing fractions of `total_steps` in (0, 1), or a key of
    `SCHEDULE_DROPS`; each boundary is `int(total_steps * fraction)`,
    truncated like the release. As in Keras, the update made at
    `optimizer.iterations == n` uses the lower rate once `n > boundary`.
    """
    if isinstance(drops, str):
        drops = SCHEDULE_DROPS[drops]
    drops = tuple(float(f) for f in drops)
    if not drops or not all(0.0 < f < 1.0 for f in drops):
        raise ValueError(f"`drops` must be fractions in (0, 1), got {drops}.")
    if list(drops) != sorted(set(drops)):
        raise ValueError(f"`drops` must be increasing, got {drops}.")
    boundaries = [int(total_steps * f) for f in drops]
    values = [initial_learning_rate * factor**i for i in range(len(drops) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def seed_variables(model):
    """The `SeedGenerator` states of `model`: random state, not weights."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class ResumableBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that resumes at the same step.

    Keras 3.15's callback backs up `model.save_weights` (weights, batch-norm
    statistics, the reward baseline, and the slots and `iterations` of
    `model.optimizer` and `model.backbone_optimizer`) and the epoch. A
    resumed run restarts that epoch at its first batch with fresh random
    state. This callback also:

    - backs up and restores the `SeedGenerator` states (cell sampling,
      dropout), which `save_weights` leaves out;
    - fast-forwards the resumed epoch past the batches already trained: the
      input is read and dropped, without a training step;
    - builds `model.optimizer` on the variables it updates before loading
      (Keras builds it on all trainable variables, which with a
      `backbone_optimizer` makes it skip loading the saved slots);
    - records the current epoch in backups made after a resume, and clears
      the resumed epoch when `fit` ends.

    The resumed run then repeats the uninterrupted one exactly when each
    epoch is a new pass over a deterministic dataset (a finite dataset, the
    Keras default). With an endless stream and `steps_per_epoch`, Keras
    restarts the stream on resume, so only the model state is exact.
    Arguments are those of `keras.callbacks.BackupAndRestore`.
    """

    def __init__(self, backup_dir, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self._step_in_epoch = 0  # batches trained in the current epoch
        self._resume_step = 0  # batches of the resumed epoch to skip
        self._skip_remaining = 0
        self._train_function = None  # the model's, while fast-forwarding

    def on_train_begin(self, logs=None):
        self._restore_train_function()
        self._resume_step = 0
        super().on_train_begin(logs)  # calls _load_model
        if self._resume_step:
            self._skip_remaining = self._resume_step
            self._train_function = self.model.train_function
            self.model.train_function = self._fast_forward

    def _load_model(self):
        model = self.model
        optimizer = model.optimizer
        if tf.io.gfile.exists(self._weights_path) and not optimizer.built:
            # Stock BackupAndRestore would build it over every trainable
            # variable, which mismatches the saved slots of a model with two
            # optimizers; TNet.compile builds it on the right ones.
            with model.distribute_strategy.scope():
                model.compile_optimizers()
        super()._load_model()
        if not tf.io.gfile.exists(self._training_metadata_path):
            return
        with tf.io.gfile.GFile(self._training_metadata_path) as f:
            metadata = json.load(f)
        self._current_epoch = metadata["epoch"]
        self._resume_step = metadata.get("step", 0)
        states = metadata.get("seed_states", [])
        variables = seed_variables(model)
        if states and len(states) != len(variables):
            raise ValueError(
                f"The backup in {self.backup_dir} holds {len(states)} seed "
                f"states; the model has {len(variables)}."
            )
        for variable, state in zip(variables, states):
            variable.assign(np.asarray(state, variable.dtype))

    def _fast_forward(self, iterator):
        # Stands in for model.train_function while the resumed epoch reads
        # past the batches that the interrupted run had trained on.
        for _ in range(self.model.steps_per_execution):
            iterator.get_next()
        self._skip_remaining -= self.model.steps_per_execution
        if self._skip_remaining <= 0:
            self._restore_train_function()
        return self.model.get_metrics_result()

    def _restore_train_function(self):
        if self._train_function is not None:
            self.model.train_function = self._train_function
            self._train_function = None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._step_in_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        self._step_in_epoch = 0
        self._resume_step = 0
        super().on_epoch_end(epoch, logs)  # backs up epoch + 1, step 0

    def on_train_batch_end(self, batch, logs=None):
        self._step_in_epoch = batch + 1
        if self._step_in_epoch <= self._resume_step:
            self._last_batch_seen = batch  # skipped: nothing new to back up
            return
        super().on_train_batch_end(batch, logs)

    def _save_model(self):
        super()._save_model()
        # Keras's metadata, plus what resuming at the same step needs.
        metadata = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "step": self._step_in_epoch,
            "seed_states": [
                np.asarray(v).tolist() for v in seed_variables(self.model)
            ],
        }
        with tf.io.gfile.GFile(self._training_metadata_path, "w") as f:
            f.write(json.dumps(metadata))

    def on_train_end(self, logs=None):
        self._restore_train_function()
        self.model._initial_epoch = None  # Keras would keep it for next fit
        super().on_train_end(logs)


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
    backup_save_freq="epoch",
    delete_backup=True,
    monitor="val_top1",
):
    """The callbacks of a training run in `workdir`, in this order.

    - `ResumableBackupAndRestore` in `workdir/backup`, every epoch or every
      `backup_save_freq` steps, deleted at the end unless `delete_backup`
      is False;
    - `ModelCheckpoint` of the highest `monitor` in
      `workdir/checkpoints/best.keras`;
    - `TensorBoard` in `workdir/logs`, plus `AttentionImagesCallback` in
      `workdir/logs/attention` when `validation_images` are given.
    """
    callbacks = []
    if backup:
        callbacks.append(ResumableBackupAndRestore(
            os.path.join(workdir, "backup"),
            save_freq=backup_save_freq,
            delete_checkpoint=delete_backup,
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
    the same `workdir` resumes a killed run. With `validation_data` (a
    dataset or an `(images, labels)` tuple) the best checkpoint is kept and
    its first images are drawn. `callback_options` go to `make_callbacks`;
    `callbacks` run after its callbacks. Returns the `History`.
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
    }
    options.update(callback_options)
    return model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
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
