"""The flags of `experiments.predict` that only it reads.

Kept beside the entry point so that `predict.py` stays a thin app;
`experiments.predict` adopts them as key flags, so its `--help` lists them.
"""

from absl import flags

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
