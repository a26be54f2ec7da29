"""Reading a record folder: a split's shards -> serialized records.

`record_examples` is the `source="records"` side of
`tnet_tf.data.pipelines.make_dataset`.
"""

import os

import tensorflow as tf

from tnet_tf.data import record_checks
from tnet_tf.data import records

# The features `record_checks.check_records` needs, parsed a chunk at a time.
CHECKED_FEATURES = {
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
}


def record_examples(
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
        parsed = tf.io.parse_example(chunk["serialized"], CHECKED_FEATURES)
        return record_checks.check_records(
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
