"""Classifies one image and draws the regions the model attended.

    python -m experiments.predict --image=bird.jpg \
        --checkpoint=runs/cub_tnet_b0/checkpoints/final.keras \
        --class_names=records/cub/classes.txt --output_png=figures/bird.png
    python -m experiments.predict --image=site.jpg \
        --checkpoint=runs/fmow_tnet_stage2/export/saved_model --locations=3,1

Prints the top-5 classes with their probabilities and writes a PNG of the
image with the attended boxes (one colour per level, each labelled with its
location probability) under a caption. --checkpoint is a .keras file or an
exported SavedModel folder (default <workdir>/checkpoints/final.keras).
"""

import os

from absl import app
from absl import flags

from experiments import flags as common
from tnet_tf import config as config_lib
from tnet_tf import experiment

IMAGE = flags.DEFINE_string("image", None, "Image file (JPEG, PNG, ...).")
CLASS_NAMES = flags.DEFINE_string(
    "class_names", None, "Text file of class names, one per line."
)
OUTPUT_PNG = flags.DEFINE_string(
    "output_png", None, "The picture (default: <image>_attention.png)."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    model_path = common.checkpoint()
    if model_path is None:
        raise app.UsageError("Pass --checkpoint or --workdir.")
    if not os.path.isfile(IMAGE.value):
        raise app.UsageError(f"--image: no file {IMAGE.value!r}.")
    settings = common.locations()
    if settings and len(settings) > 1:
        raise app.UsageError("predict draws one --locations setting.")
    try:
        result = experiment.run_predict(
            IMAGE.value,
            model_path,
            OUTPUT_PNG.value,
            locations=settings[0] if settings else None,
            class_names=experiment.read_class_names(CLASS_NAMES.value),
        )
    except config_lib.LocationSettingError as error:
        # The model, known only once loaded, cannot take this setting.
        raise app.UsageError(f"--locations: {error}") from None
    for rank, (name, probability) in enumerate(result["top"], start=1):
        print(f"{rank}. {name:<30} {probability:.4f}")
    print(f"Picture: {result['png']}")


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["image"])
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
