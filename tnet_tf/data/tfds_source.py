"""Reading through tensorflow-datasets, from local data only.

`tfds_examples` is the `source="tfds"` side of
`tnet_tf.data.pipelines.make_dataset`: a record folder made readable by
`write_tfds_metadata` (`tfds_record_features` describes our schema to
tfds), or a tfds data directory where the dataset is already prepared.
tensorflow_datasets is imported only when used.
"""

import os

import tensorflow as tf

from tnet_tf.data import record_checks
from tnet_tf.data import records
from tnet_tf.data import shards

_TFDS_METADATA_FILE = "dataset_info.json"
_TFDS_FILENAME_TEMPLATE = "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"


def has_tfds_metadata(data_dir):
    """Whether `data_dir` is a record folder with tfds metadata."""
    return os.path.isfile(
        os.path.join(os.fspath(data_dir), _TFDS_METADATA_FILE)
    )


def tfds_record_features(class_names=None, num_classes=None):
    """The tfds `FeaturesDict` of our record schema.

    tfds flattens nested feature names with "/", so this dict serializes to
    exactly the keys of `tnet_tf.data.records.KEYS`: tfds reads our shards
    as they are.

    Args:
        class_names: names of the stored labels 0, 1, ... (labels below a
            `label_offset` included): the label is a `ClassLabel` with
            these `names`.
        num_classes: without names, a `ClassLabel` of this many stored
            labels; with neither, a plain int64 label.
    """
    import numpy as np
    import tensorflow_datasets as tfds

    features = tfds.features

    def column(dtype):
        return features.Sequence(features.Scalar(dtype=dtype))

    if class_names is not None:
        label = features.ClassLabel(names=[str(n) for n in class_names])
    elif num_classes is not None:
        label = features.ClassLabel(num_classes=num_classes)
    else:
        label = features.Scalar(dtype=np.int64)

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
                            "label": label,
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


def write_tfds_metadata(data_dir, class_names=None, num_classes=None):
    """Makes a record folder readable with `tfds.builder_from_directory`.

    Writes tfds' `dataset_info.json` and `features.json` next to the shards
    (the shards are read, to count the records of each split, but not
    changed). Afterwards `make_dataset(..., source="tfds")` and
    `tfds.builder_from_directory(data_dir).as_dataset(split=...)` read the
    folder; the image comes back decoded unless `decoders` says otherwise.

    The label feature is a `ClassLabel` named by `class_names` (one per
    stored label), by default the names the converter saved
    (`shards.read_class_names`); without names, of `num_classes` stored
    labels where given (see `tfds_record_features`).
    """
    import tensorflow_datasets as tfds

    if class_names is None:
        class_names = shards.read_class_names(data_dir)
    tfds.folder_dataset.write_metadata(
        data_dir=os.fspath(data_dir),
        features=tfds_record_features(class_names, num_classes),
        split_infos=None,  # detected from the shard names and counted
        filename_template=_TFDS_FILENAME_TEMPLATE,
        check_data=True,
    )


def _checked_tfds_example(example, tfds_id, spec):
    """`example` once `record_checks.check_records` passed it (one record, named by its
    tfds id)."""
    checks = record_checks.check_records(
        example["label"][None],
        example["image"][None],
        lambda i: (tfds_id,),
        spec,
    )
    with tf.control_dependencies(checks):
        return {**example, "image": tf.identity(example["image"])}


def tfds_examples(
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
