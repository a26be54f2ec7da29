r"""Pictures of what a TNet attends on a split, and accuracy vs FLOPs.

    python -m experiments.visualize --recipe=imagenet_tnet \
        --workdir=runs/imagenet_tnet --data_dir=records/imagenet \
        --num_images=16 --csv_images=1000
    python -m experiments.visualize --recipe=imagenet_tnet \
        --workdir=runs/imagenet_tnet \
        --eval_csv=runs/imagenet_tnet/evaluation/validation.csv \
        --eval_csv=runs/imagenet_bagnet77/evaluation/validation.csv

With --data_dir, writes to <workdir>/figures/:
- attention_<split>.png: the first --num_images images with their attended
  boxes, prediction and label;
- attention_<split>.csv: per image, the attended cells and the
  probabilities of every cell of every grid (--csv_images rows, default
  the whole split).
With --eval_csv (evaluate's CSVs), accuracy_vs_flops.png: one line per TNet
over its location settings, one point per baseline (paper Fig. 1b, 3).
"""

import os

from absl import app
from absl import flags

from experiments import flags as common
from tnet_tf import experiment

NUM_IMAGES = flags.DEFINE_integer("num_images", 16, "Images in the grid.")
CSV_IMAGES = flags.DEFINE_integer(
    "csv_images", None, "Rows of the attention CSV (default: whole split)."
)
EVAL_CSV = flags.DEFINE_multi_string(
    "eval_csv", [], "CSV written by experiments.evaluate; repeat for several."
)


# The shared flags this entry point reads, listed by its --help.
common.declare_key_flags(
    __name__,
    *common.RECIPE_FLAGS,
    *common.CHECKPOINT_FLAGS,
    "locations",
    "split",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not (common.DATA_DIR.value or EVAL_CSV.value):
        raise app.UsageError(
            "Pass --data_dir (pictures) or --eval_csv (plot)."
        )
    recipe = common.recipe()
    settings = common.locations(recipe)
    checkpoint = common.CHECKPOINT.value
    if common.DATA_DIR.value:
        common.check_data_dir(common.SPLIT.value or recipe.eval_split)
        checkpoint = common.checkpoint()
    missing = [path for path in EVAL_CSV.value if not os.path.isfile(path)]
    if missing:
        raise app.UsageError(f"--eval_csv: no file {missing[0]!r}.")
    paths = experiment.run_visualize(
        recipe,
        common.WORKDIR.value,
        common.DATA_DIR.value,
        checkpoint=checkpoint,
        split=common.SPLIT.value,
        locations=settings,
        num_images=NUM_IMAGES.value,
        csv_images=CSV_IMAGES.value,
        eval_csvs=EVAL_CSV.value,
    )
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["workdir"])
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
