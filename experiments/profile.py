r"""Params, multiply-adds, ms per image and peak memory per location setting.

    python -m experiments.profile --recipe=imagenet_tnet \
        --workdir=runs/imagenet_tnet
    python -m experiments.profile --recipe=fmow_en_b0_896 \
        --override=batch_size=8 --repetitions=20

The layout of the paper's Tables 1 and 2, measured at inference on random
images of the recipe's size, batch = the recipe's batch size (64, as the
paper). Times are the median over --repetitions timed batches after
--warmup untimed ones. Memory is TensorFlow's peak GPU allocation on a GPU,
or how far the process's peak RSS rose above its RSS over the timed batches
on a CPU (the table says which).
The model is the --checkpoint when given, else the preset freshly built.
With --workdir the rows go to <workdir>/profile/profile.csv.
"""

from absl import app
from absl import flags

from experiments import flags as common
from tnet_tf import experiment

REPETITIONS = flags.DEFINE_integer(
    "repetitions", 10, "Timed batches per location setting."
)
WARMUP = flags.DEFINE_integer(
    "warmup", 2, "Untimed batches first (tracing included)."
)


# The shared flags this entry point reads, listed by its --help.
common.declare_key_flags(
    __name__, *common.RECIPE_FLAGS, *common.CHECKPOINT_FLAGS, "locations"
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    recipe = common.recipe()
    rows = experiment.run_profile(
        recipe,
        workdir=common.WORKDIR.value,
        checkpoint=common.checkpoint(from_workdir=False),
        locations=common.locations(recipe),
        repetitions=REPETITIONS.value,
        warmup=WARMUP.value,
    )
    print(experiment.profile_table(rows))


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
