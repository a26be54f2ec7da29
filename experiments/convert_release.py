r"""Converts one of the authors' released checkpoints into a .keras file.

    python -m experiments.convert_release --recipe=fmow_tnet_stage2 \
        --checkpoint=release/fmow_tnet_stage2/ckpt-56799 \
        --output=runs/fmow_tnet_stage2/checkpoints/release.keras
    python -m experiments.convert_release --preset=imagenet_bagnet77 \
        --checkpoint=release/imagenet_bagnet77 --output=bagnet77.keras

--recipe (or --preset) names the model the checkpoint holds; the model gets
the release's behaviour (`tnet_tf.release.release_config`: unnormalised
EfficientNet input, L2-normalised location logits). The .keras file then
goes to experiments.evaluate, export, profile, predict and visualize as
--checkpoint. Nothing is written unless every variable loads; a checkpoint
that does not fit the model is reported with every key at fault.
"""

from absl import app
from absl import flags

from experiments import flags as common
from tnet_tf import config as config_lib
from tnet_tf import presets
from tnet_tf import recipes
from tnet_tf import release

OUTPUT = flags.DEFINE_string(
    "output", None, "The .keras file to write (its folder is created)."
)


# The shared flags this entry point reads, listed by its --help.
common.declare_key_flags(__name__, *common.RECIPE_FLAGS, "checkpoint")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not common.CHECKPOINT.value:
        raise app.UsageError("Pass --checkpoint: the release checkpoint.")
    if not (OUTPUT.value or "").endswith(".keras"):
        raise app.UsageError(
            f"--output must name a .keras file, got {OUTPUT.value!r}."
        )
    try:
        if common.PRESET.value and not common.RECIPE.value:
            # A preset is converted as it is, whether or not a recipe trains it.
            overrides = [
                item.strip().removeprefix(recipes.MODEL_PREFIX)
                for item in common.OVERRIDE.value
            ]
            config = config_lib.apply_overrides(
                presets.get(common.PRESET.value), overrides
            )
        else:
            config = common.recipe().model_config()
        model = release.convert_release(
            config, common.CHECKPOINT.value, OUTPUT.value
        )
    except (ValueError, FileNotFoundError) as error:
        raise app.UsageError(str(error)) from None
    print(f"Converted '{model.name}' ({model.count_params():,} parameters)")
    print(f"Keras file: {OUTPUT.value}")


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
