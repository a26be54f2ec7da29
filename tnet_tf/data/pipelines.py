"""tf.data input pipelines: record folders (or tfds) -> batches for `fit`.

One pipeline serves every dataset; its `DatasetSpec` supplies the label
offset and which training augmentation applies. The steps follow the
release (`original_implementation_detail.md` §11.1):

1. list the split's shards and, in training, shuffle the list;
2. read the shards with `interleave(TFRecordDataset)`;
3. in training, shuffle the records (buffer 10,000) and repeat;
4. parse, check the label range and the image format, decode and
   augment (training) or resize (evaluation), scale to [-1, 1], subtract
   the label offset;
5. batch (dropping the remainder in training) and prefetch.

Randomness is seeded per image through stateless ops: with a seed, two runs
give identical batches (for the same data, seed and global TF seed), since a
seeded pipeline keeps its element order unless `deterministic=False`.
`skip_batches` starts the stream at a later batch without decoding the
skipped images, so a resumed run reads what the killed one would have read
next. `source="tfds"` reads through tensorflow-datasets instead, from local
data only.

A bad record fails the pipeline with its shard and index named
(`records.shard_records`, `check_records`): a shard cut mid-record, a label
outside `[0, num_classes)`, image bytes of no known format.
"""

import os

import tensorflow as tf

from tnet_tf.data import augment
from tnet_tf.data import datasets
from tnet_tf.data import images
from tnet_tf.data import records

SOURCES = ("records", "tfds")
# A fixed number of shards read in parallel, so the record order (and hence
# deterministic mode) does not depend on the machine's core count.
DEFAULT_CYCLE_LENGTH = 16
DEFAULT_SHUFFLE_BUFFER = 10_000
_TFDS_METADATA_FILE = "dataset_info.json"
_TFDS_FILENAME_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"


def make_dataset(
    spec_or_name,
    data_dir,
    split,
    *,
    training,
    batch_size,
    image_size=None,
    seed=None,
    deterministic=None,
    source="records",
    repeat=None,
    drop_remainder=None,
    shuffle_buffer=DEFAULT_SHUFFLE_BUFFER,
    cycle_length=DEFAULT_CYCLE_LENGTH,
    skip_batches=0,
):
    """The input pipeline of one split.

    Args:
        spec_or_name: a `DatasetSpec` or a registered dataset name.
        data_dir: with `source="records"`, the record folder holding
            `<split>-NNNNN-of-NNNNN.tfrecord` shards. With `source="tfds"`,
            either such a folder after `write_tfds_metadata`, or a
            tensorflow-datasets data directory where the spec's `tfds_name`
            is already prepared (nothing is ever downloaded).
        split: split name, e.g. "train" or "validation".
        training: random crop, resize method, flip and colour or geometric
            augmentation per the spec, shard and record shuffling, repeat;
            otherwise the plain square resize of the release.
        batch_size: the global batch size.
        image_size: output side (int) or `(height, width)`; defaults to the
            spec's `image_size`.
        seed: int seed of the shuffles and the augmentation; `None` draws
            fresh randomness every run (with `deterministic=True`: 0).
        deterministic: keep the element order and the random draws
            reproducible (slightly slower); otherwise parallel steps may
            reorder elements. `None` (default): reproducible when `seed` is
            given, since a seed asks for a repeatable run (unordered parallel
            interleave and map gave seeded runs different batches).
        source: "records" or "tfds".
        repeat: `True` repeats forever, an int that many times, `False`
            once; defaults to `training`.
        drop_remainder: defaults to `training` (the release keeps the last
            partial batch in evaluation so every image counts).
        shuffle_buffer: records in the shuffle buffer (training only).
        cycle_length: shards read at once in training (evaluation reads
            them one after the other, so records come in file order).
        skip_batches: the stream starts after its first `skip_batches`
            batches, with the batches that would have followed them (to
            resume a run; with a seed). Skipped records are read and
            shuffled but not decoded.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: float32
        `(batch, height, width, 3)` in [-1, 1] and int32 `(batch,)` in
        `[0, num_classes)`.

    Example:
    >>> dataset = make_dataset("megapixel_mnist", "/data/mnist", "train",
    ...                        training=True, batch_size=32, seed=0)
    """
    spec = datasets.get_spec(spec_or_name)
    spec.check_split(split)
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}, got {source!r}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
    height, width = augment.image_size_pair(
        spec.image_size if image_size is None else image_size
    )
    if deterministic is None:
        deterministic = seed is not None
    if deterministic and seed is None:
        seed = 0
    if skip_batches < 0:
        raise ValueError(
            f"`skip_batches` must be at least 0, got {skip_batches}."
        )
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    # Evaluation keeps the record order whatever the mode.
    ordered = deterministic or not training

    if source == "records":
        dataset, to_example = _record_examples(
            spec, data_dir, split, training, seed, ordered, cycle_length
        )
    else:
        dataset, to_example = _tfds_examples(
            spec, data_dir, split, training, seed, ordered, cycle_length
        )
    if training:
        dataset = dataset.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    if repeat is True:
        dataset = dataset.repeat()
    elif repeat:
        dataset = dataset.repeat(int(repeat))

    def prepare(element, image_seed=None):
        example = to_example(element)
        if training:
            image = augment.preprocess_for_training(
                example["image"],
                example["boxes"],
                (height, width),
                spec.augmentation,
                image_seed,
            )
        else:
            image = augment.preprocess_for_evaluation(
                example["image"], (height, width)
            )
        image = tf.ensure_shape(image, [height, width, 3])
        return image, tf.cast(example["label"], tf.int32)

    if training:
        # One seed (2 int64) per element, drawn after the shuffle and repeat,
        # so every epoch gets new augmentation and runs stay reproducible.
        image_seeds = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        ).batch(2)
        dataset = tf.data.Dataset.zip((dataset, image_seeds))
    if skip_batches:
        # Before the map: skipped records are never decoded or augmented.
        # Each batch is the next `batch_size` elements (full batches), so
        # skipping elements skips exactly those batches.
        dataset = dataset.skip(skip_batches * batch_size)
    dataset = dataset.map(
        prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=ordered
    )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = ordered
    return dataset.with_options(options)


# What `images.image_format` recognises (its signature table, read here as
# it is there, and WebP's RIFF header): the formats the converters store,
# all of which `tf.io.decode_image` decodes.
_IMAGE_FORMATS = "JPEG, PNG, GIF, BMP or WebP"
_CHECKED_FEATURES = {
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
}


def _is_known_image(image_bytes):
    """Graph version of `images.image_format(...) is not None`."""

    def starts_with(signature, at=0):
        head = tf.strings.substr(image_bytes, at, len(signature))
        return tf.equal(head, signature)

    known = [starts_with(signature) for signature, _ in images.IMAGE_SIGNATURES]
    known.append(tf.logical_and(starts_with(b"RIFF"), starts_with(b"WEBP", 8)))
    return tf.reduce_any(tf.stack(known), axis=0)


def check_records(labels, image_bytes, name, spec):
    """Checks a vector of records' labels and image bytes.

    A label outside `[0, spec.num_classes)` (after the offset) or image
    bytes of no known format fail the pipeline, naming the first record at
    fault, instead of passing through silently or failing in the decoder
    with no file named.

    Args:
        labels: int64 vector, offset already subtracted.
        image_bytes: string vector, the encoded images.
        name: `index -> message parts` naming the record at that index of
            the vectors (its shard and index, or its tfds id).
        spec: the `DatasetSpec`.

    Returns:
        The checks (bool tensors) to make the records depend on.
    """
    label_ok = tf.logical_and(labels >= 0, labels < spec.num_classes)
    image_ok = _is_known_image(image_bytes)

    def first(ok):
        return tf.argmin(tf.cast(ok, tf.int32))

    label_check = records.assert_record(
        tf.reduce_all(label_ok),
        lambda: (
            *name(first(label_ok)), ": label ", labels[first(label_ok)],
            f" outside [0, {spec.num_classes}) of dataset {spec.name}",
        ),
    )
    image_check = records.assert_record(
        tf.reduce_all(image_ok),
        lambda: (
            *name(first(image_ok)),
            f": the image bytes are not {_IMAGE_FORMATS}",
        ),
    )
    return [label_check, image_check]


def _record_examples(
    spec, data_dir, split, training, seed, ordered, cycle_length
):
    """Serialized records of a split and the function that parses one."""
    files = records.list_shards(data_dir, split)
    sizes = [os.path.getsize(path) for path in files]
    dataset = tf.data.Dataset.from_tensor_slices((files, sizes))
    if training:
        dataset = dataset.shuffle(len(files), seed=seed)
    # Evaluation reads the shards one after the other: records come in file
    # order, so predictions can be matched to records.
    cycle_length = min(cycle_length, len(files)) if training else 1

    def check_chunk(chunk):
        # One check per chunk of a shard's records costs less than one per
        # record.
        parsed = tf.io.parse_example(chunk["serialized"], _CHECKED_FEATURES)
        return check_records(
            parsed["image/class/label"] - spec.label_offset,
            parsed["image/encoded"],
            lambda i: (chunk["shard"], "#", chunk["index"][i]),
            spec,
        )

    dataset = dataset.interleave(
        lambda path, size: records.shard_records(path, size, check_chunk),
        cycle_length=max(1, cycle_length),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=ordered,
    )

    def to_example(serialized):
        example = records.parse_example(serialized)
        return {
            "image": example["image"],
            "label": example["label"] - spec.label_offset,
            "boxes": example["boxes"],
        }

    return dataset, to_example


# === tensorflow-datasets ===


def has_tfds_metadata(data_dir):
    """Whether `data_dir` is a record folder with tfds metadata."""
    return os.path.isfile(
        os.path.join(os.fspath(data_dir), _TFDS_METADATA_FILE)
    )


def tfds_record_features():
    """The tfds `FeaturesDict` of our record schema.

    tfds flattens nested feature names with "/", so this dict serializes to
    exactly the keys of `tnet_tf.data.records.KEYS`: tfds reads our shards
    as they are.
    """
    import numpy as np
    import tensorflow_datasets as tfds

    features = tfds.features

    def column(dtype):
        return features.Sequence(features.Scalar(dtype=dtype))

    return features.FeaturesDict(
        {
            "image": features.FeaturesDict(
                {
                    "encoded": features.Image(
                        shape=(None, None, 3), encoding_format="jpeg"
                    ),
                    "format": features.Text(),
                    "height": features.Scalar(dtype=np.int64),
                    "width": features.Scalar(dtype=np.int64),
                    "channels": features.Scalar(dtype=np.int64),
                    "colorspace": features.Text(),
                    "filename": features.Text(),
                    "class": features.FeaturesDict(
                        {
                            "label": features.Scalar(dtype=np.int64),
                            "text": features.Text(),
                            "synset": features.Text(),
                        }
                    ),
                    "object": features.FeaturesDict(
                        {
                            "bbox": features.FeaturesDict(
                                {
                                    "xmin": column(np.float32),
                                    "ymin": column(np.float32),
                                    "xmax": column(np.float32),
                                    "ymax": column(np.float32),
                                    "label": column(np.int64),
                                }
                            )
                        }
                    ),
                }
            )
        }
    )


def write_tfds_metadata(data_dir):
    """Makes a record folder readable with `tfds.builder_from_directory`.

    Writes tfds' `dataset_info.json` and `features.json` next to the shards
    (the shards are read, to count the records of each split, but not
    changed). Afterwards `make_dataset(..., source="tfds")` and
    `tfds.builder_from_directory(data_dir).as_dataset(split=...)` read the
    folder; the image comes back decoded unless `decoders` says otherwise.
    """
    import tensorflow_datasets as tfds

    tfds.folder_dataset.write_metadata(
        data_dir=os.fspath(data_dir),
        features=tfds_record_features(),
        split_infos=None,  # detected from the shard names and counted
        filename_template=_TFDS_FILENAME_TEMPLATE,
        check_data=True,
    )


def _checked_tfds_example(example, tfds_id, spec):
    """`example` once `check_records` passed it (one record, named by its
    tfds id)."""
    checks = check_records(
        example["label"][None],
        example["image"][None],
        lambda i: (tfds_id,),
        spec,
    )
    with tf.control_dependencies(checks):
        return {**example, "image": tf.identity(example["image"])}


def _tfds_examples(
    spec, data_dir, split, training, seed, ordered, cycle_length
):
    """tfds examples of a split and the function that adapts one."""
    import tensorflow_datasets as tfds

    options = tf.data.Options()
    options.deterministic = ordered
    read_config = tfds.ReadConfig(
        shuffle_seed=seed,
        interleave_cycle_length=cycle_length if training else 1,
        try_autocache=False,
        options=options,
        add_tfds_id=True,  # names the record (shard and index) in errors
    )
    data_dir = os.fspath(data_dir)
    if has_tfds_metadata(data_dir):
        builder = tfds.builder_from_directory(data_dir)
        if split not in builder.info.splits:
            raise ValueError(
                f"The record folder {data_dir!r} has no split {split!r} in its "
                f"tfds metadata (found {sorted(builder.info.splits)}); re-run "
                "write_tfds_metadata after converting that split."
            )
        dataset = builder.as_dataset(
            split=split,
            shuffle_files=training,
            decoders={"image": {"encoded": tfds.decode.SkipDecoding()}},
            read_config=read_config,
        )

        def to_example(element):
            image = element["image"]
            boxes = image["object"]["bbox"]
            return _checked_tfds_example(
                {
                    "image": image["encoded"],
                    "label": image["class"]["label"] - spec.label_offset,
                    "boxes": tf.stack(
                        [boxes[key] for key in records.BOX_KEYS], -1
                    ),
                },
                element["tfds_id"],
                spec,
            )

        return dataset, to_example

    if spec.tfds_name is None:
        raise ValueError(
            f"Dataset {spec.name!r} is not in the tensorflow-datasets catalog "
            f"and {data_dir!r} has no tfds metadata: read its records with "
            "source='records', or call write_tfds_metadata(data_dir) first."
        )
    try:
        dataset = tfds.load(
            spec.tfds_name,
            split=spec.tfds_split(split),
            data_dir=data_dir,
            download=False,
            shuffle_files=training,
            decoders={"image": tfds.decode.SkipDecoding()},
            read_config=read_config,
        )
    except (AssertionError, FileNotFoundError) as error:
        raise FileNotFoundError(
            f"tensorflow-datasets has no prepared '{spec.tfds_name}' in "
            f"{data_dir!r}, and nothing is downloaded here. Prepare it first, "
            f"e.g. `tfds build {spec.tfds_name} --data_dir={data_dir} "
            "--manual_dir=<folder with the original archives>`, or read our "
            f"records with source='records'. ({error})"
        ) from error

    def to_example(element):
        # Catalog labels are already 0-based; the catalog boxes (where any)
        # are not used: the birds augmentation crops the whole image.
        example = {
            "image": element["image"],
            "label": element["label"],
            "boxes": tf.zeros([0, 4], tf.float32),
        }
        return _checked_tfds_example(example, element["tfds_id"], spec)

    return dataset, to_example
