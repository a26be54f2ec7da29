"""The backup of a training run: how far it trained, and its saved state.

`TrainingBackup` is the backup folder's format (weights, optimizer slots,
`SeedGenerator` states and the `TrainingPosition`), written atomically so a
run killed at any instant leaves a whole backup. Keras `fit` writes it
through `tnet_tf.callbacks.ResumableBackupAndRestore`, the custom loop
`distributed.train_loop` directly; both back up on the `backup_due`
schedule.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

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
        name = f"state-epoch{position.epoch}-step{position.step}.weights.h5"
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


def seed_variables(model):
    """The `SeedGenerator` states of `model`: random state, not weights."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def backup_position(workdir):
    """The `TrainingPosition` of the backup in `workdir` (the start when
    there is none): build the input of a resumed run to start there, e.g.
    `make_dataset(..., skip_batches=backup_position(workdir).batches)`, and
    pass `input_starts_at="backup"` to `tnet_tf.training.fit`."""
    position = TrainingBackup(os.path.join(workdir, BACKUP_FOLDER)).position()
    return position or TrainingPosition()
