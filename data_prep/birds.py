r"""CUB-200-2011 and NABirds to TFRecords: one converter, two datasets.

Both datasets publish the same index files in their root folder (the one
holding `images.txt`):

    images.txt              <image id> <path under images/>
    image_class_labels.txt  <image id> <class id>
    train_test_split.txt    <image id> <1: train, 0: test>
    classes.txt             <class id> <class name>
    bounding_boxes.txt      <image id> <x> <y> <width> <height>   (pixels)
    images/<class folder>/<file>.jpg

CUB ids are integers and its class names read `001.Black_footed_Albatross`;
NABirds ids are UUIDs and its classes.txt also lists the inner nodes of the
class hierarchy. Records store:

- CUB: the class id as label, 1..200 (the pipeline subtracts 1); the text
  is the name without its number prefix.
- NABirds: labels 0..554, assigned to the class ids in order of first
  appearance while walking images.txt, as the release does (§11.2); the
  text is the full class name (the release kept only its first word, Q18).
- Boxes normalised by the decoded image size, as (ymin, xmin, ymax, xmax).

Splits: "train" and "validation" (the official test images, as in the
release), 16 shards each.

    python -m data_prep.birds --dataset cub --raw_dir CUB_200_2011 \\
        --output_dir OUT
"""

import os

from absl import app
from absl import flags

from data_prep import common_flags
from tnet_tf.data import images
from tnet_tf.data import shards

DATASETS = ("cub", "nabirds")
DEFAULT_SHARDS = {"train": 16, "validation": 16}

# The shared flags this converter reads, listed by its --help.
common_flags.declare_key_flags(
    __name__, *common_flags.CONVERTER_FLAGS, "dataset"
)


def read_table(path):
    """`{first column: rest of the line}` of a whitespace-separated file."""
    table = {}
    with open(path) as file:
        for line in file:
            key, _, rest = line.strip().partition(" ")
            if key:
                table[key] = rest.strip()
    return table


def read_index(raw_dir):
    """The index files as dicts keyed by image id (classes by class id)."""
    names = ("images", "image_class_labels", "train_test_split", "classes")
    index = {
        name: read_table(os.path.join(raw_dir, f"{name}.txt"))
        for name in names
    }
    boxes_path = os.path.join(raw_dir, "bounding_boxes.txt")
    index["bounding_boxes"] = (
        read_table(boxes_path) if os.path.exists(boxes_path) else {}
    )
    return index


def class_labels(dataset, index):
    """`{class id: (stored label, text)}` for the classes images use."""
    if dataset == "cub":
        # classes.txt names read "001.Black_footed_Albatross".
        return {
            class_id: (int(class_id), name.split(".", 1)[-1])
            for class_id, name in index["classes"].items()
        }
    labels = {}
    for image_id in index["images"]:  # the order of images.txt
        class_id = index["image_class_labels"].get(image_id)
        if class_id is not None and class_id not in labels:
            text = index["classes"].get(class_id, "")
            labels[class_id] = (len(labels), text)
    return labels


def class_names(labels):
    """The class texts in stored-label order, from `class_labels`."""
    return [text for _, text in sorted(labels.values())]


def _pixel_box(line):
    x, y, width, height = (float(value) for value in line.split())
    return ((y, x, y + height, x + width),)


def work_items(raw_dir, dataset):
    """`({split: (items, rejected)}, class names)` from the index files
    (the names of stored labels `label_offset`, `label_offset + 1`, ...)."""
    if dataset not in DATASETS:
        raise ValueError(
            f"`dataset` must be one of {DATASETS}, got {dataset!r}."
        )
    index = read_index(raw_dir)
    labels = class_labels(dataset, index)
    splits = {"train": ([], []), "validation": ([], [])}
    for image_id, relative_path in index["images"].items():
        path = os.path.join(raw_dir, "images", relative_path)
        class_id = index["image_class_labels"].get(image_id)
        is_train = index["train_test_split"].get(image_id)
        if is_train not in ("0", "1"):
            # Without a split the file belongs nowhere; count it in train.
            splits["train"][1].append(
                (path, "no entry in train_test_split.txt")
            )
            continue
        items, rejected = splits["train" if is_train == "1" else "validation"]
        if class_id not in labels:
            rejected.append((path, f"no class for image id {image_id}"))
            continue
        box = index["bounding_boxes"].get(image_id)
        label, text = labels[class_id]
        items.append(
            images.ImageItem(
                path=path,
                label=label,
                text=text,
                pixel_boxes=_pixel_box(box) if box else (),
            )
        )
    return splits, class_names(labels)


def convert(raw_dir, output_dir, dataset, num_shards=None, **writer_options):
    """Converts CUB-200-2011 or NABirds; returns `{split: report}`.

    The class names (without CUB's number prefix) go to
    `conversion/class_names.json` (`shards.write_class_names`).

    Args:
        dataset: "cub" or "nabirds".
        num_shards: `{split: shards}`; default `DEFAULT_SHARDS`.
        **writer_options: passed to `shards.write_sharded`.
    """
    splits, names = work_items(raw_dir, dataset)
    num_shards = {**DEFAULT_SHARDS, **(num_shards or {})}
    label_offset = 1 if dataset == "cub" else 0
    reports = shards.write_splits(
        splits,
        output_dir,
        num_shards,
        num_classes=len(names),
        label_offset=label_offset,
        raw_dir=raw_dir,  # entries resolving outside it are not read
        **writer_options,
    )
    shards.write_class_names(output_dir, names, label_offset)
    return reports


def main(argv):
    del argv
    common_flags.check_paths(folders=[common_flags.RAW_DIR])
    if common_flags.DATASET.value not in DATASETS:
        raise app.UsageError(
            f"--dataset must be one of {', '.join(DATASETS)}, got "
            f"{common_flags.DATASET.value!r}."
        )
    index = os.path.join(common_flags.RAW_DIR.value, "images.txt")
    if not os.path.isfile(index):
        raise app.UsageError(
            "--raw_dir must be the dataset's root folder, the one holding "
            f"images.txt; {common_flags.RAW_DIR.value!r} has none."
        )
    with common_flags.layout_errors_as_usage():
        reports = convert(
            common_flags.RAW_DIR.value,
            common_flags.OUTPUT_DIR.value,
            common_flags.DATASET.value,
            num_shards=common_flags.shard_counts(DEFAULT_SHARDS),
            **common_flags.writer_options(),
        )
    common_flags.print_reports(reports)


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["raw_dir", "output_dir", "dataset"])
    common_flags.run_app(main, __name__)


if __name__ == "__main__":
    run()
