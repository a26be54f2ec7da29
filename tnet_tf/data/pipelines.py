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
(`records.shard_records`, `record_checks.check_records`): a shard cut
mid-record, a label outside `[0, num_classes)`, image bytes of no known
format.

This module assembles the pipeline; `record_source` and `tfds_source` read
the two sources (the tfds metadata helpers `has_tfds_metadata`,
`tfds_record_features` and `write_tfds_metadata` are imported here for this
module's callers).
"""

import os
from collections.abc import Sequence

import tensorflow as tf

from tnet_tf.data import augment
from tnet_tf.data import datasets
from tnet_tf.data import record_source
from tnet_tf.data import tfds_source

# Re-exported: callers (README, tests) reach the tfds metadata helpers here.
from tnet_tf.data.tfds_source import has_tfds_metadata  # noqa: F401
from tnet_tf.data.tfds_source import tfds_record_features  # noqa: F401
from tnet_tf.data.tfds_source import write_tfds_metadata  # noqa: F401

SOURCES = ("records", "tfds")
# A fixed number of shards read in parallel, so the record order (and hence
# deterministic mode) does not depend on the machine's core count.
DEFAULT_CYCLE_LENGTH = 16
DEFAULT_SHUFFLE_BUFFER = 10_000


def make_dataset(
    spec_or_name: datasets.DatasetSpec | str,
    data_dir: str | os.PathLike,
    split: str,
    *,
    training: bool,
    batch_size: int,
    image_size: int | Sequence[int] | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    source: str = "records",
    repeat: bool | None = None,
    drop_remainder: bool | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    cycle_length: int = DEFAULT_CYCLE_LENGTH,
    skip_batches: int = 0,
) -> tf.data.Dataset:
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
        dataset, to_example = record_source.record_examples(
            spec, data_dir, split, training, seed, ordered, cycle_length
        )
    else:
        dataset, to_example = tfds_source.tfds_examples(
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
