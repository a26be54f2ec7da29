r"""Top-1 / top-5 of a checkpoint at several location settings, in one run.

    python -m experiments.evaluate --recipe=imagenet_tnet \
        --workdir=runs/imagenet_tnet --data_dir=records/imagenet
    python -m experiments.evaluate --recipe=fmow_tnet_stage2 \
        --workdir=runs/fmow_tnet_stage2 --data_dir=records/fmow \
        --locations=2,1 --locations=3,1 --locations=none

Without --locations the recipe's settings are evaluated (ImageNet TNet:
0, 1, 2, 3 and 5 locations, as Table 1). The same weights serve every
setting. --anytime_threshold=0.9 (or --anytime_budget=4) adds a row of
anytime inference (a TNet attends at most its default locations, one at
a time, and stops per image once sure): its top-1, mean locations and
multiply-adds per image. Prints a table (accuracy, multiply-adds, parameters) and writes
it to <workdir>/evaluation/<split>.csv, the input of the accuracy-vs-FLOPs
plot (experiments.visualize --eval_csv).
"""

from absl import app
from absl import flags

from experiments import flags as common
from tnet_tf import experiment

# The shared flags this entry point reads, listed by its --help.
common.declare_key_flags(
    __name__,
    *common.RECIPE_FLAGS,
    *common.CHECKPOINT_FLAGS,
    "locations",
    "split",
    "anytime_threshold",
    "anytime_budget",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    recipe = common.recipe()
    settings = common.locations(recipe)
    anytime = common.anytime(recipe)
    common.check_data_dir(common.SPLIT.value or recipe.eval_split)
    rows = experiment.run_evaluation(
        recipe,
        common.WORKDIR.value,
        common.DATA_DIR.value,
        checkpoint=common.checkpoint(),
        locations=settings,
        split=common.SPLIT.value,
        anytime=anytime,
    )
    print(experiment.evaluation_table(rows))
    print(f"\nWritten to {common.WORKDIR.value}/evaluation/")


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["workdir", "data_dir"])
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
