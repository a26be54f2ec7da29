"""Flags shared by the converters, declared once.

absl flags are process-global: two modules declaring `--output_dir` cannot
both be imported (tests import every entry point). Each converter imports
this module and declares only flags of its own, with distinct names.
"""

import contextlib
import os
import sys

from absl import app
from absl import flags

# The entry points call these through this module.
from tnet_tf.command_line import declare_key_flags  # noqa: F401
from tnet_tf.command_line import run_app  # noqa: F401

RAW_DIR = flags.DEFINE_string("raw_dir", None, "Folder of the raw dataset.")
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Folder for the TFRecord shards (created if missing)."
)
DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "Dataset name: cub or nabirds for data_prep.birds; a registered dataset "
    "(tnet_tf.data.datasets) for data_prep.verify.",
)
TRAIN_SHARDS = flags.DEFINE_integer(
    "train_shards",
    None,
    "Shards of the train split (default: the release's).",
    lower_bound=1,
)
EVAL_SHARDS = flags.DEFINE_integer(
    "eval_shards",
    None,
    "Shards of each evaluation split, validation and test (default: the "
    "release's).",
    lower_bound=1,
)
NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", 8, "Threads decoding and encoding images.", lower_bound=1
)
SHUFFLE_SEED = flags.DEFINE_integer(
    "shuffle_seed",
    12345,
    "Seed of the shuffle before sharding (release: 12345).",
)

# Read by the converters that can downscale (fmow, image_folder); defined
# here once, so that both can be imported into one process.
MAX_SMALLER_SIDE = flags.DEFINE_integer(
    "max_smaller_side",
    None,
    "Downscale images whose smaller side is longer; 0: no cap (default: "
    "the converter's, see its docstring).",
    lower_bound=0,
)

# The flags of every converter of a raw dataset (see `declare_key_flags`).
CONVERTER_FLAGS = (
    "raw_dir",
    "output_dir",
    "train_shards",
    "eval_shards",
    "num_workers",
    "shuffle_seed",
)


class RawLayoutError(ValueError):
    """The raw folder is not laid out as the converter expects."""


@contextlib.contextmanager
def layout_errors_as_usage():
    """Turns a raw-layout problem into a usage message (no traceback).

    Covers `RawLayoutError` and a file or folder of the layout that does not
    exist; anything else is a bug and keeps its traceback.
    """
    try:
        yield
    except RawLayoutError as error:
        raise app.UsageError(f"--raw_dir: {error}") from None
    except FileNotFoundError as error:
        raise app.UsageError(
            f"--raw_dir: {error.filename or error} does not exist; see the "
            "converter's docstring for the layout it reads."
        ) from None


def check_paths(folders=(), files=()):
    """Checks path flags before a converter reads or writes anything.

    Args:
        folders: flags (`FlagHolder`s) that must name existing folders.
        files: flags that must name existing files when given.

    Raises:
        app.UsageError: naming the first flag whose path does not exist;
            absl prints it with the usage (no traceback) and exits with 1.
    """
    for flag in folders:
        if not os.path.isdir(flag.value or ""):
            raise app.UsageError(f"--{flag.name}: no folder {flag.value!r}.")
    for flag in files:
        if flag.value is not None and not os.path.isfile(flag.value):
            raise app.UsageError(f"--{flag.name}: no file {flag.value!r}.")


def shard_counts(defaults):
    """`{split: shards}`: the release's `defaults`, overridden by the flags."""
    counts = dict(defaults)
    for split in counts:
        flag = TRAIN_SHARDS if split == "train" else EVAL_SHARDS
        if flag.value is not None:
            counts[split] = flag.value
    return counts


def writer_options():
    """The keyword arguments of `write_sharded` that flags control."""
    return {
        "num_workers": NUM_WORKERS.value,
        "shuffle_seed": SHUFFLE_SEED.value,
    }


def print_reports(reports):
    """Prints the summary of each split's `ConversionReport`."""
    for report in reports.values():
        print(report.summary())
    skipped = sum(len(report.skipped) for report in reports.values())
    if skipped:
        print(
            f"{skipped} input files skipped (listed above).", file=sys.stderr
        )
