r"""Classifies images and draws the regions the model attended.

    python -m experiments.predict --image=bird.jpg \
        --checkpoint=runs/cub_tnet_b0/checkpoints/final.keras \
        --class_names=records/cub/classes.txt --output_png=figures/bird.png
    python -m experiments.predict --images='photos/*.jpg' \
        --checkpoint=my_preset_dir --output=predictions.csv

--image prints the top-5 classes and writes a PNG of the image with the
attended boxes under a caption. --images (a quoted glob; repeat for more)
classifies many images in one process into a CSV of one row per image
(tnet_tf.experiment.predict.csv_columns; README) and, with --pictures_dir,
one PNG each. --checkpoint is a .keras file, a preset directory or an
exported SavedModel folder (default <workdir>/checkpoints/final.keras).
--lazy classifies each image at full resolution instead of resized to the
model's input size: a JPEG is read region by region (tnet_tf.lazy_reading;
files of any size), other formats decoded once to uint8; a TNet only.
Unreadable files are skipped with a warning line each; the exit status is
then 3. Usage errors (such as a pattern matching no file) exit with 1.
"""

import os
import sys

from absl import app
from absl import flags

from experiments import flags as common
from tnet_tf import config as config_lib
from tnet_tf.experiment import predict as predict_lib

SKIPPED_EXIT_STATUS = 3
common.declare_key_flags(__name__, *common.CHECKPOINT_FLAGS, "locations")

IMAGE = flags.DEFINE_string("image", None, "Image file (JPEG, PNG, ...).")
IMAGES = flags.DEFINE_multi_string(
    "images", [], "Instead of --image: a quoted glob such as 'a/*.jpg'."
)
# convert_release also declares --output: allow_override lets both modules
# be imported into one process.
OUTPUT = flags.DEFINE_string(
    "output", None, "With --images: the CSV to write.", allow_override=True
)
PICTURES_DIR = flags.DEFINE_string(
    "pictures_dir", None, "With --images: a folder for one PNG per image."
)
BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 32, "With --images: images per model call.", lower_bound=1
)
TOP_K = flags.DEFINE_integer("top_k", 5, "Classes listed.", lower_bound=1)
CLASS_NAMES = flags.DEFINE_string(
    "class_names", None, "Text file of class names, one per line."
)
LAZY = flags.DEFINE_bool(
    "lazy",
    False,
    "Classify each image at full resolution, reading only the regions the "
    "TNet attends (JPEG), instead of resizing it to the input size.",
)
OUTPUT_PNG = flags.DEFINE_string(
    "output_png", None, "With --image: the picture (<image>_attention.png)."
)


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
    return model_path, settings[0] if settings else None


def _predict_one(model_path, setting, class_names):
    result = predict_lib.run_predict(
        IMAGE.value,
        model_path,
        OUTPUT_PNG.value,
        locations=setting,
        class_names=class_names,
        top_k=TOP_K.value,
        lazy=LAZY.value,
    )
    for rank, (name, probability) in enumerate(result["top"], start=1):
        print(f"{rank}. {name:<30} {probability:.4f}")
    print(f"Picture: {result['png']}")
    return 0


def _warn(path, reason):
    print(f"Warning: skipped {path}: {reason}", file=sys.stderr, flush=True)


def _predict_many(model_path, setting, class_names):
    try:
        paths = predict_lib.expand_images(IMAGES.value)
    except FileNotFoundError as error:
        raise app.UsageError(f"--images: {error}") from None
    print(f"Classifying {len(paths)} files with {model_path}")
    result = predict_lib.run_batch_predict(
        paths,
        model_path,
        OUTPUT.value,
        locations=setting,
        class_names=class_names,
        top_k=TOP_K.value,
        batch_size=BATCH_SIZE.value,
        pictures_dir=PICTURES_DIR.value,
        on_skip=_warn,
        lazy=LAZY.value,
    )
    print(f"Wrote {result['rows']} rows to {result['csv']}")
    if result["skipped"]:
        print(
            f"Skipped {len(result['skipped'])} unreadable file(s) (exit "
            f"status {SKIPPED_EXIT_STATUS}): "
            + ", ".join(path for path, _ in result["skipped"]),
            file=sys.stderr,
        )
        return SKIPPED_EXIT_STATUS
    return 0


def main(argv):
    model_path, setting = _check_flags(argv)
    class_names = predict_lib.read_class_names(CLASS_NAMES.value)
    try:
        if IMAGE.value:
            return _predict_one(model_path, setting, class_names)
        return _predict_many(model_path, setting, class_names)
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
