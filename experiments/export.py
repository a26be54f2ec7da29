r"""Exports a checkpoint as a SavedModel (and a .keras copy).

    python -m experiments.export --recipe=fmow_tnet_stage2 \
        --workdir=runs/fmow_tnet_stage2 --locations=2,1 --locations=3,1

Writes <workdir>/export/saved_model, which runs with TensorFlow alone
(`tf.saved_model.load(path).signatures["serve"]`), with one endpoint per
location setting (default: the recipe's) besides `serve`, `serve_uint8` and
`serve_image_bytes`, and <workdir>/export/<model>.keras. See
`tnet_tf.export` for the endpoints' inputs and outputs.
"""

from absl import app
from absl import flags

from experiments import flags as common
from tnet_tf import experiment

# The shared flags this entry point reads, listed by its --help.
common.declare_key_flags(
    __name__, *common.RECIPE_FLAGS, *common.CHECKPOINT_FLAGS, "locations"
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    recipe = common.recipe()
    paths = experiment.run_export(
        recipe,
        common.WORKDIR.value,
        checkpoint=common.checkpoint(),
        locations=common.locations(recipe),
    )
    print(f"SavedModel: {paths['saved_model']}")
    endpoints = sorted(paths["signature_info"]["endpoints"])
    print(f"Endpoints: {', '.join(endpoints)}")
    print(f"Keras file: {paths['keras']}")


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["workdir"])
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
