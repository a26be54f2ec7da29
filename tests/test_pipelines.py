"""Dataset specs and the tf.data pipelines over tiny record folders."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.data import datasets
from tnet_tf.data import pipelines
from tnet_tf.data import records
from tnet_tf.data.pipelines import make_dataset

SIZE = 32  # records are 32 x 32: four flat 16 x 16 quadrants
NUM_TRAIN, NUM_VALIDATION = 12, 5
SPEC = datasets.DatasetSpec(
    name="tiny",
    num_classes=200,  # validation labels are 100..104
    label_offset=1,
    splits={"train": NUM_TRAIN, "validation": NUM_VALIDATION},
    augmentation="imagenet",
    has_boxes=True,
    image_size=SIZE,
)


def _quadrant_colours(index):
    rng = np.random.RandomState(index)
    return rng.randint(0, 256, size=(4, 3)).astype(np.uint8)


def _pixels(index):
    colours = _quadrant_colours(index)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    half = SIZE // 2
    image[:half, :half], image[:half, half:] = colours[0], colours[1]
    image[half:, :half], image[half:, half:] = colours[2], colours[3]
    return image


def _write_split(directory, split, count, num_shards, first_index):
    index = first_index
    for shard in range(num_shards):
        path = os.path.join(
            directory, records.shard_name(split, shard, num_shards)
        )
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(count // num_shards + (shard < count % num_shards)):
                example = records.encode_example(
                    image_bytes=tf.io.encode_jpeg(
                        _pixels(index), quality=100
                    ).numpy(),
                    label=index + 1,  # 1-based, as ImageNet/CUB records
                    height=SIZE,
                    width=SIZE,
                    filename=f"{index}.jpg",
                    text=f"class {index}",
                    boxes=[[0.25, 0.25, 0.75, 0.75]] if index % 2 else None,
                )
                writer.write(example.SerializeToString())
                index += 1


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory):
    """Train: records 0..11 in 3 shards; validation: 100..104 in 2 shards."""
    directory = str(tmp_path_factory.mktemp("records"))
    _write_split(directory, "train", NUM_TRAIN, 3, first_index=0)
    _write_split(directory, "validation", NUM_VALIDATION, 2, first_index=100)
    return directory


def _all_batches(dataset, limit=100):
    images, labels = [], []
    for batch_images, batch_labels in dataset.take(limit):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    return images, labels


# === Dataset specs ===


def test_registry_holds_every_dataset():
    assert set(datasets.names()) >= {
        "imagenet",
        "fmow",
        "fmow_crops",
        "cub",
        "nabirds",
        "megapixel_mnist",
    }
    offsets = {
        name: datasets.get_spec(name).label_offset for name in datasets.names()
    }
    assert offsets["imagenet"] == 1 and offsets["cub"] == 1
    assert (
        offsets["fmow"]
        == offsets["nabirds"]
        == offsets["megapixel_mnist"]
        == 0
    )
    assert datasets.get_spec("cub").augmentation == "birds"
    assert datasets.get_spec("fmow").augmentation == "imagenet"
    assert datasets.get_spec("cub").tfds_split("validation") == "test"
    assert datasets.get_spec("imagenet").tfds_split("train") == "train"
    assert datasets.get_spec(SPEC) is SPEC


def test_spec_errors_are_clear():
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'"):
        datasets.get_spec("mnist")
    with pytest.raises(ValueError, match="augmentation"):
        datasets.DatasetSpec(
            name="x",
            num_classes=2,
            splits={"train": 1, "validation": 1},
            augmentation="mixup",
        )
    with pytest.raises(ValueError, match="no split 'test'"):
        datasets.get_spec("imagenet").num_examples("test")


# === Record pipelines ===


def test_evaluation_keeps_pixels_labels_and_order(record_dir):
    dataset = make_dataset(
        SPEC, record_dir, "validation", training=False, batch_size=2
    )
    images, labels = _all_batches(dataset)
    assert [len(batch) for batch in labels] == [2, 2, 1]  # partial batch kept
    labels = np.concatenate(labels)
    np.testing.assert_array_equal(
        labels, np.arange(100, 105)
    )  # offset 1 removed
    for image, label in zip(np.concatenate(images), labels):
        expected = _pixels(label) / 127.5 - 1.0
        # JPEG's chroma subsampling blurs the quadrant borders; the quadrant
        # centres are within a few grey levels (YCbCr rounding), far closer
        # than the quadrants are to each other: no flip, no shift.
        centres = (slice(4, 12), slice(20, 28))
        for rows in centres:
            for columns in centres:
                np.testing.assert_allclose(
                    image[rows, columns], expected[rows, columns], atol=0.05
                )


def test_label_offset_comes_from_the_spec(record_dir):
    spec = datasets.DatasetSpec(
        name="offset_zero",
        num_classes=200,
        splits={"train": None, "validation": None},
    )
    dataset = make_dataset(
        spec, record_dir, "validation", training=False, batch_size=8
    )
    _, (labels,) = _all_batches(dataset)
    np.testing.assert_array_equal(labels, np.arange(101, 106))
    assert labels.dtype == np.int32


def test_evaluation_resize_is_square(record_dir):
    dataset = make_dataset(
        SPEC,
        record_dir,
        "validation",
        training=False,
        batch_size=5,
        image_size=(8, 24),
    )
    assert dataset.element_spec[0].shape.as_list() == [None, 8, 24, 3]
    images, _ = next(iter(dataset))
    assert images.shape == (5, 8, 24, 3)


@pytest.mark.parametrize("augmentation", ["imagenet", "birds", "none"])
def test_training_batches(record_dir, augmentation):
    spec = datasets.DatasetSpec(
        name="tiny_" + augmentation,
        num_classes=20,
        label_offset=1,
        splits={"train": NUM_TRAIN, "validation": NUM_VALIDATION},
        augmentation=augmentation,
    )
    dataset = make_dataset(
        spec,
        record_dir,
        "train",
        training=True,
        batch_size=4,
        image_size=12,
        seed=1,
    )
    assert dataset.element_spec[0].shape.as_list() == [4, 12, 12, 3]
    images, labels = _all_batches(dataset, limit=5)  # repeats past 3 batches
    assert len(images) == 5
    images, labels = np.stack(images), np.stack(labels)
    assert (
        images.dtype == np.float32
        and images.min() >= -1.0
        and images.max() <= 1.0
    )
    assert labels.min() >= 0 and labels.max() < NUM_TRAIN


def test_one_training_epoch_visits_each_record_once_shuffled(record_dir):
    dataset = make_dataset(
        SPEC,
        record_dir,
        "train",
        training=True,
        batch_size=4,
        seed=3,
        repeat=False,
    )
    _, labels = _all_batches(dataset)
    labels = np.concatenate(labels)
    assert sorted(labels.tolist()) == list(range(NUM_TRAIN))
    assert labels.tolist() != list(range(NUM_TRAIN))


def test_deterministic_mode_gives_identical_batches(record_dir):
    def batches(seed):
        dataset = make_dataset(
            SPEC,
            record_dir,
            "train",
            training=True,
            batch_size=4,
            seed=seed,
            deterministic=True,
        )
        return _all_batches(dataset, limit=4)

    first, second, other = batches(7), batches(7), batches(8)
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first[0], other[0]))


def test_errors_are_clear(record_dir, tmp_path):
    with pytest.raises(ValueError, match="no split 'test'"):
        make_dataset(SPEC, record_dir, "test", training=False, batch_size=2)
    with pytest.raises(ValueError, match="does not exist"):
        make_dataset(
            SPEC, tmp_path / "missing", "train", training=False, batch_size=2
        )
    with pytest.raises(ValueError, match="source"):
        make_dataset(
            SPEC,
            record_dir,
            "train",
            training=False,
            batch_size=2,
            source="web",
        )
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(SPEC, record_dir, "train", training=False, batch_size=0)


def test_mirrored_strategy_and_fit(record_dir, two_cpu_devices):
    strategy = tf.distribute.MirroredStrategy(two_cpu_devices)
    # No augmentation: the graph traces faster; augmentation is tested above.
    spec = datasets.DatasetSpec(
        name="tiny_plain",
        num_classes=20,
        label_offset=1,
        splits={"train": NUM_TRAIN, "validation": NUM_VALIDATION},
        augmentation="none",
    )
    dataset = make_dataset(
        spec,
        record_dir,
        "train",
        training=True,
        batch_size=4,
        image_size=12,
        seed=0,
    )
    distributed = strategy.experimental_distribute_dataset(dataset)
    images, labels = next(iter(distributed))
    local_images = strategy.experimental_local_results(images)
    local_labels = strategy.experimental_local_results(labels)
    assert [tuple(x.shape) for x in local_images] == [(2, 12, 12, 3)] * 2
    assert [tuple(y.shape) for y in local_labels] == [(2,)] * 2
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((12, 12, 3)),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(SPEC.num_classes),
            ]
        )
        model.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    history = model.fit(
        dataset, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False
    )
    assert np.isfinite(history.history["loss"][0])


# === tensorflow-datasets ===


def test_tfds_features_match_the_record_keys():
    info = pipelines.tfds_record_features().get_serialized_info()

    def flatten(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from flatten(value, f"{prefix}{key}/")
            else:
                yield prefix + key

    assert set(flatten(info)) == set(records.KEYS)


def test_tfds_label_feature_names():
    def label(features):
        return features["image"]["class"]["label"]

    named = label(pipelines.tfds_record_features(["cat", "dog"]))
    assert named.names == ["cat", "dog"] and named.num_classes == 2
    counted = label(pipelines.tfds_record_features(num_classes=3))
    assert counted.num_classes == 3
    assert not hasattr(label(pipelines.tfds_record_features()), "names")
    # Same serialized key and type as the plain int64 label.
    assert (
        pipelines.tfds_record_features(["a"]).get_serialized_info()
        == pipelines.tfds_record_features().get_serialized_info()
    )


def test_record_folder_through_tfds(record_dir, tmp_path):
    folder = tmp_path / "with_metadata"
    folder.mkdir()
    for name in os.listdir(record_dir):
        (folder / name).write_bytes(
            open(os.path.join(record_dir, name), "rb").read()
        )
    assert not pipelines.has_tfds_metadata(folder)
    pipelines.write_tfds_metadata(folder)
    assert pipelines.has_tfds_metadata(folder)
    from_records = _all_batches(
        make_dataset(SPEC, folder, "validation", training=False, batch_size=5)
    )
    from_tfds = _all_batches(
        make_dataset(
            SPEC,
            folder,
            "validation",
            training=False,
            batch_size=5,
            source="tfds",
        )
    )
    np.testing.assert_array_equal(from_tfds[1][0], from_records[1][0])
    np.testing.assert_array_equal(from_tfds[0][0], from_records[0][0])
    images, labels = next(
        iter(
            make_dataset(
                SPEC,
                folder,
                "train",
                training=True,
                batch_size=4,
                source="tfds",
                seed=0,
            )
        )
    )
    assert (
        images.shape == (4, SIZE, SIZE, 3) and labels.numpy().max() < NUM_TRAIN
    )


def test_tfds_catalog_dataset_from_local_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(
        num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        evaluation = make_dataset(
            "imagenet",
            tmp_path,
            "validation",
            training=False,
            batch_size=3,
            image_size=16,
            source="tfds",
        )
        images, labels = next(iter(evaluation))
        training = make_dataset(
            "imagenet",
            tmp_path,
            "train",
            training=True,
            batch_size=2,
            image_size=16,
            source="tfds",
            seed=0,
        )
        train_images, _ = next(iter(training))
    assert images.shape == (3, 16, 16, 3) and train_images.shape == (
        2,
        16,
        16,
        3,
    )
    labels = labels.numpy()
    assert (
        labels.min() >= 0 and labels.max() < 1000
    )  # catalog labels: no offset


def test_tfds_never_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        make_dataset(
            "cub",
            tmp_path,
            "train",
            training=True,
            batch_size=2,
            source="tfds",
        )
    with pytest.raises(
        ValueError, match="not in the tensorflow-datasets catalog"
    ):
        make_dataset(
            "fmow",
            tmp_path,
            "train",
            training=True,
            batch_size=2,
            source="tfds",
        )


# === Bad records are named (issue 13, items 7 and 8) ===


def _write_shard(path, examples):
    """Writes `(label, image_bytes)` records into one shard."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index, (label, image_bytes) in enumerate(examples):
            example = records.encode_example(
                image_bytes=image_bytes,
                label=label,
                height=SIZE,
                width=SIZE,
                filename=f"{index}.jpg",
            )
            writer.write(example.SerializeToString())


def _jpeg(index):
    return tf.io.encode_jpeg(_pixels(index)).numpy()


# Ten classes, 0-based, no augmentation: quick to trace.
PLAIN_SPEC = datasets.DatasetSpec(
    name="plain_ten",
    num_classes=10,
    splits={"train": None, "validation": None},
    augmentation="none",
)


def _read_all(folder, split="validation", training=False):
    dataset = make_dataset(
        PLAIN_SPEC,
        folder,
        split,
        training=training,
        batch_size=2,
        image_size=8,
        seed=0,
        repeat=False,
    )
    return [labels.numpy() for _, labels in dataset]


@pytest.mark.parametrize("training", [False, True])
def test_a_truncated_shard_is_named_with_its_record(tmp_path, training):
    for shard in range(2):
        name = records.shard_name("validation", shard, 2)
        _write_shard(tmp_path / name, [(i, _jpeg(i)) for i in range(3)])
    cut = tmp_path / records.shard_name("validation", 1, 2)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) - 100])  # inside record 2
    expected = (
        r"validation-00001-of-00002\.tfrecord#2: truncated or corrupt record; "
        rf"the shard cannot be read past byte \d+ of its {len(data) - 100}"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        _read_all(tmp_path, training=training)


def test_garbage_image_bytes_are_named_before_decoding(tmp_path):
    good = [(i, _jpeg(i)) for i in range(3)]
    _write_shard(
        tmp_path / records.shard_name("validation", 0, 1),
        good[:2] + [(2, b"not an image at all")] + good[2:],
    )
    expected = (
        r"validation-00000-of-00001\.tfrecord#2: the image bytes are not "
        "JPEG, PNG, GIF, BMP or WebP"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        _read_all(tmp_path)


@pytest.mark.parametrize("label", [57, 10, -1])
def test_labels_outside_the_classes_are_rejected(tmp_path, label):
    shard = tmp_path / records.shard_name("train", 0, 1)
    _write_shard(shard, [(1, _jpeg(1)), (label, _jpeg(2)), (3, _jpeg(3))])
    expected = (
        rf"train-00000-of-00001\.tfrecord#1: label {label} outside \[0, 10\) "
        "of dataset plain_ten"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        _read_all(tmp_path, "train", training=True)


def test_checks_let_good_records_through(tmp_path):
    _write_shard(
        tmp_path / records.shard_name("validation", 0, 1),
        [(label, _jpeg(label)) for label in (0, 9, 4)],
    )
    assert np.concatenate(_read_all(tmp_path)).tolist() == [0, 9, 4]
