r"""Classifies images and draws the regions the model attended.

    python -m experiments.predict --image=bird.jpg \
        --checkpoint=runs/cub_tnet_b0/checkpoints/final.keras \
        --class_names=records/cub/classes.txt --output_png=figures/bird.png
    python -m experiments.predict --images='photos/*.jpg' \
        --checkpoint=my_preset_dir --output=predictions.csv

--image prints the top-5 classes and writes a PNG of the attended boxes;
--images (quoted globs, repeatable) writes a CSV of one row per image
(README) and, with --pictures_dir, one PNG each. --checkpoint: a .keras
file, a preset directory or an exported SavedModel folder (default
<workdir>/checkpoints/final.keras). --lazy reads each image at full
resolution, region by region (tnet_tf.lazy_reading; a TNet, any size).
--anytime_threshold=0.9 attends up to --locations one at a time and stops
once the top class probability reaches 0.9 (a TNet); rows get the image's
locations_used and own multiply_adds. Unreadable files are skipped with a
warning each (exit status 3); usage errors exit with 1.
"""

import os
import sys

from absl import app
from absl import flags

from experiments import flags as common
from experiments import predict_flags
from experiments.predict_flags import BATCH_SIZE
from experiments.predict_flags import CLASS_NAMES
from experiments.predict_flags import IMAGE
from experiments.predict_flags import IMAGES
from experiments.predict_flags import LAZY
from experiments.predict_flags import OUTPUT
from experiments.predict_flags import OUTPUT_PNG
from experiments.predict_flags import PICTURES_DIR
from experiments.predict_flags import TOP_K
from tnet_tf import config as config_lib
from tnet_tf.experiment import predict as predict_lib

SKIPPED_EXIT_STATUS = 3
common.declare_key_flags(
    __name__, *common.CHECKPOINT_FLAGS, "locations", "anytime_threshold"
)
flags.adopt_module_key_flags(predict_flags)


def _check_flags(argv):
    if len(argv) > 1:
        raise app.UsageError(
            f"Unexpected arguments: {argv[1:]} (quote an --images pattern)."
        )
    if bool(IMAGE.value) == bool(IMAGES.value):
        raise app.UsageError("Pass either --image or --images.")
    if IMAGES.value and not OUTPUT.value:
        raise app.UsageError("--images needs --output (the CSV to write).")
    if IMAGE.value and (OUTPUT.value or PICTURES_DIR.value):
        raise app.UsageError(
            "--output and --pictures_dir go with --images (a pattern or "
            "one file); --image writes --output_png."
        )
    if IMAGE.value and not os.path.isfile(IMAGE.value):
        raise app.UsageError(f"--image: no file {IMAGE.value!r}.")
    model_path = common.checkpoint()
    if model_path is None:
        raise app.UsageError("Pass --checkpoint or --workdir.")
    settings = common.locations()
    if settings and len(settings) > 1:
        raise app.UsageError("predict takes one --locations setting.")
    anytime = common.anytime()
    if len(anytime) > 1 or common.ANYTIME_BUDGET.value:
        raise app.UsageError("predict takes one --anytime_threshold.")
    # The keyword arguments both ways of predicting take.
    return model_path, {
        "locations": settings[0] if settings else None,
        "class_names": predict_lib.read_class_names(CLASS_NAMES.value),
        "top_k": TOP_K.value,
        "lazy": LAZY.value,
        "anytime_threshold": anytime[0][1] if anytime else None,
    }


def _predict_one(model_path, options):
    result = predict_lib.run_predict(
        IMAGE.value, model_path, OUTPUT_PNG.value, **options
    )
    for rank, (name, probability) in enumerate(result["top"], start=1):
        print(f"{rank}. {name:<30} {probability:.4f}")
    if options["anytime_threshold"] is not None:
        print(
            "Locations used: {locations_used}, multiply-adds: "
            "{multiply_adds}".format(**result["outputs"])
        )
    print(f"Picture: {result['png']}")
    return 0


def _warn(path, reason):
    print(f"Warning: skipped {path}: {reason}", file=sys.stderr, flush=True)


def _predict_many(model_path, options):
    try:
        paths = predict_lib.expand_images(IMAGES.value)
    except FileNotFoundError as error:
        raise app.UsageError(f"--images: {error}") from None
    print(f"Classifying {len(paths)} files with {model_path}")
    result = predict_lib.run_batch_predict(
        paths,
        model_path,
        OUTPUT.value,
        batch_size=BATCH_SIZE.value,
        pictures_dir=PICTURES_DIR.value,
        on_skip=_warn,
        **options,
    )
    print(f"Wrote {result['rows']} rows to {result['csv']}")
    skipped = ", ".join(path for path, _ in result["skipped"])
    if skipped:
        print(
            f"Skipped {len(result['skipped'])} unreadable file(s) (exit "
            f"status {SKIPPED_EXIT_STATUS}): {skipped}",
            file=sys.stderr,
        )
    return SKIPPED_EXIT_STATUS if skipped else 0


def main(argv):
    model_path, options = _check_flags(argv)
    try:
        if IMAGE.value:
            return _predict_one(model_path, options)
        return _predict_many(model_path, options)
    except config_lib.LocationSettingError as error:
        # The model, known only once loaded, cannot take this setting.
        raise app.UsageError(f"--locations: {error}") from None
    except ValueError as error:
        raise app.UsageError(str(error)) from None


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    common.run_app(main, __name__)


if __name__ == "__main__":
    run()
