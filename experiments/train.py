r"""Trains one recipe (any preset) and saves its final checkpoint.

    python -m experiments.train --recipe=imagenet_tnet \
        --workdir=runs/imagenet_tnet --data_dir=records/imagenet
    python -m experiments.train --preset=fmow_en_b0_448 \
        --workdir=runs/fmow_en_b0_448 --data_dir=records/fmow \
        --override=epochs=2 --strategy=mirrored
    python -m experiments.train --recipe=fmow_tnet_stage2 --tiny ...

Strategies: `default` (one device), `mirrored` (this host's GPUs) and
`multi_worker` (one process per host, cluster in TF_CONFIG). Multi-worker
runs train with `tnet_tf.distributed.train_loop`, since Keras `fit` fails
under MultiWorkerMirroredStrategy on TF 2.21; the others use `fit`.

A run is seeded (--seed, default the recipe's): the same command on the
same machine gives the same weights. Every strategy backs up into
<workdir>/backup every --backup_steps steps (default 500) and at every
epoch end; re-running the same command after a kill resumes from the last
backup, with the input at the same batch, and ends with the weights of an
uninterrupted run (restart every worker of a multi-worker run).
--deterministic_ops (default off) also makes the kernels deterministic
(`tf.config.experimental.enable_op_determinism`), for GPUs; seeded CPU runs
repeat without it.
A recipe with `restore_from` (fMoW stage 2) starts from that recipe's
final checkpoint in the sibling folder, runs/<restore_from>/, or from the
`.keras` file given by --override=restore_from=<path>.
"""

import os

from absl import app
from absl import flags

from experiments import flags as common
from tnet_tf import distributed
from tnet_tf import experiment
from tnet_tf import training

STRATEGY = flags.DEFINE_enum(
    "strategy",
    "default",
    distributed.STRATEGY_KINDS,
    "Distribution strategy: default, mirrored or multi_worker (TF_CONFIG).",
)

BACKUP_STEPS = flags.DEFINE_integer(
    "backup_steps",
    training.DEFAULT_BACKUP_STEPS,
    "Training steps between backups into <workdir>/backup (also at every "
    "epoch end); 0: at epoch ends only.",
    lower_bound=0,
)
DETERMINISTIC_OPS = flags.DEFINE_bool(
    "deterministic_ops",
    False,
    "Deterministic kernels (tf.config.experimental.enable_op_determinism), "
    "for identical GPU runs; seeded CPU runs repeat without it.",
)


# The shared flags this entry point reads, listed by its --help.
common.declare_key_flags(__name__, *common.RECIPE_FLAGS, "workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    recipe = common.recipe()
    common.check_data_dir(recipe.train_split, recipe.eval_split)
    runs_dir = os.path.dirname(os.path.abspath(common.WORKDIR.value))
    restore_path = recipe.restore_path(runs_dir)
    if restore_path and not os.path.exists(restore_path):
        raise app.UsageError(
            f"Recipe '{recipe.name}' starts from {restore_path!r}, which does "
            "not exist: train that recipe first, or pass "
            "--override=restore_from=<a .keras file>."
        )
    result = experiment.run_training(
        recipe,
        common.WORKDIR.value,
        common.DATA_DIR.value,
        STRATEGY.value,
        backup_steps=BACKUP_STEPS.value,
        deterministic_ops=DETERMINISTIC_OPS.value,
    )
    print(f"Resolved recipe: {result.experiment_file}")
    print(f"Final checkpoint: {result.final_checkpoint}")
    if result.best_checkpoint:
        print(f"Best checkpoint: {result.best_checkpoint}")


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["workdir", "data_dir"])
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
