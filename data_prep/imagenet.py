r"""ILSVRC-2012 (ImageNet) to TFRecords.

Raw layout read (the Inception `build_imagenet_data.py` inputs):

    <raw_dir>/train/<synset>/<name>.JPEG
    <raw_dir>/validation/<synset>/<name>.JPEG        per-synset folders, or
    <raw_dir>/val/ILSVRC2012_val_00000001.JPEG ...   flat, with
        --validation_labels_file: one synset per line, line i naming the
        label of ILSVRC2012_val_<i, 8 digits>.JPEG (the format of
        `imagenet_2012_validation_synset_labels.txt`).
    --synsets_file: one synset per line (`imagenet_lsvrc_2015_synsets.txt`);
        the label of a synset is its line number, starting at 1 (0 is left
        for background; the pipeline subtracts 1).
    --metadata_file (optional): `<synset>\\t<human text>` lines
        (`imagenet_metadata.txt`), stored as the class text.
    --bounding_boxes_csv (optional): `<file>,xmin,ymin,xmax,ymax` lines,
        normalised (`imagenet_2012_bounding_boxes.csv`); train images only.

Either `validation/` or `val/` may hold either layout. Output splits:
"train" (1024 shards) and "validation" (128 shards).

    python -m data_prep.imagenet --raw_dir RAW --output_dir OUT \\
        --synsets_file RAW/imagenet_lsvrc_2015_synsets.txt \\
        --validation_labels_file RAW/imagenet_2012_validation_synset_labels.txt
"""

import collections
import os

from absl import flags

from data_prep import common_flags
from tnet_tf.data import images
from tnet_tf.data import shards

DEFAULT_SHARDS = {"train": 1024, "validation": 128}
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")

SYNSETS_FILE = flags.DEFINE_string(
    "synsets_file", None, "One synset per line; labels follow the line order."
)
METADATA_FILE = flags.DEFINE_string(
    "metadata_file", None, "Optional `<synset>\\t<text>` lines."
)
BOUNDING_BOXES_CSV = flags.DEFINE_string(
    "bounding_boxes_csv", None, "Optional `<file>,xmin,ymin,xmax,ymax` lines."
)
VALIDATION_LABELS_FILE = flags.DEFINE_string(
    "validation_labels_file",
    None,
    "One synset per line for a flat validation folder (line i labels "
    "ILSVRC2012_val_<i>.JPEG).",
)

# The shared flags this converter reads, listed by its --help.
common_flags.declare_key_flags(__name__, *common_flags.CONVERTER_FLAGS)


def read_lines(path):
    with open(path) as file:
        return [line.strip() for line in file if line.strip()]


def read_metadata(path):
    """`{synset: human text}` from `<synset>\\t<text>` lines."""
    texts = {}
    for line in read_lines(path):
        synset, _, text = line.partition("\t")
        texts[synset] = text.strip()
    return texts


def read_bounding_boxes(path):
    """`{file name: [(ymin, xmin, ymax, xmax), ...]}` from the CSV."""
    boxes = collections.defaultdict(list)
    for line in read_lines(path):
        name, *values = line.split(",")
        xmin, ymin, xmax, ymax = (float(value) for value in values)
        boxes[os.path.basename(name)].append((ymin, xmin, ymax, xmax))
    return boxes


def _image_files(folder):
    return sorted(
        name
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )


def _synset_folder_items(folder, labels, texts, boxes):
    """Items of a `<folder>/<synset>/*` tree, and files rejected there."""
    items, rejected = [], []
    for synset in sorted(os.listdir(folder)):
        synset_dir = os.path.join(folder, synset)
        if not os.path.isdir(synset_dir):
            continue
        for name in _image_files(synset_dir):
            path = os.path.join(synset_dir, name)
            if synset not in labels:
                rejected.append(
                    (path, f"synset {synset} not in the synsets file")
                )
                continue
            items.append(
                images.ImageItem(
                    path=path,
                    label=labels[synset],
                    text=texts.get(synset, ""),
                    synset=synset,
                    boxes=tuple(boxes.get(name, ())),
                )
            )
    return items, rejected


def _flat_validation_items(folder, validation_synsets, labels, texts):
    """Items of a flat validation folder labelled by line order."""
    items, rejected = [], []
    for name in _image_files(folder):
        path = os.path.join(folder, name)
        stem = os.path.splitext(name)[0]
        number = stem.rsplit("_", 1)[-1]
        index = int(number) - 1 if number.isdigit() else -1
        if not 0 <= index < len(validation_synsets):
            rejected.append((path, "no line for it in the validation labels"))
            continue
        synset = validation_synsets[index]
        if synset not in labels:
            rejected.append((path, f"synset {synset} not in the synsets file"))
            continue
        items.append(
            images.ImageItem(
                path=path,
                label=labels[synset],
                text=texts.get(synset, ""),
                synset=synset,
            )
        )
    return items, rejected


def _validation_folder(raw_dir):
    for name in ("validation", "val"):
        if os.path.isdir(os.path.join(raw_dir, name)):
            return os.path.join(raw_dir, name)
    raise common_flags.RawLayoutError(
        f"Neither validation/ nor val/ found in {raw_dir!r}."
    )


def work_items(
    raw_dir,
    synsets_file,
    metadata_file=None,
    bounding_boxes_csv=None,
    validation_labels_file=None,
):
    """`{split: (items, rejected)}` read from the raw ImageNet layout."""
    synsets = read_lines(synsets_file)
    labels = {synset: index + 1 for index, synset in enumerate(synsets)}
    texts = read_metadata(metadata_file) if metadata_file else {}
    boxes = (
        read_bounding_boxes(bounding_boxes_csv) if bounding_boxes_csv else {}
    )
    splits = {
        "train": _synset_folder_items(
            os.path.join(raw_dir, "train"), labels, texts, boxes
        )
    }
    folder = _validation_folder(raw_dir)
    if any(os.path.isdir(os.path.join(folder, n)) for n in os.listdir(folder)):
        splits["validation"] = _synset_folder_items(folder, labels, texts, {})
    elif validation_labels_file:
        validation_synsets = read_lines(validation_labels_file)
        splits["validation"] = _flat_validation_items(
            folder, validation_synsets, labels, texts
        )
    else:
        raise common_flags.RawLayoutError(
            f"{folder!r} holds no synset folders: pass the validation labels "
            "file (one synset per line) to label its images."
        )
    return splits, len(synsets)


def convert(
    raw_dir,
    output_dir,
    synsets_file,
    metadata_file=None,
    bounding_boxes_csv=None,
    validation_labels_file=None,
    num_shards=None,
    **writer_options,
):
    """Converts ImageNet; returns `{split: ConversionReport}`.

    Args:
        num_shards: `{split: shards}`; default `DEFAULT_SHARDS`.
        **writer_options: passed to `shards.write_sharded`
            (`num_workers`, `shuffle_seed`, `show_progress`).

    The synsets, in label order, go to `conversion/class_names.json` as
    the class names (label 0, unused, reads "background").
    """
    splits, num_classes = work_items(
        raw_dir,
        synsets_file,
        metadata_file,
        bounding_boxes_csv,
        validation_labels_file,
    )
    num_shards = {**DEFAULT_SHARDS, **(num_shards or {})}
    reports = shards.write_splits(
        splits,
        output_dir,
        num_shards,
        num_classes=num_classes,
        label_offset=1,
        raw_dir=raw_dir,  # entries resolving outside it are not read
        **writer_options,
    )
    synsets = read_lines(synsets_file)
    shards.write_class_names(output_dir, synsets, label_offset=1)
    return reports


def main(argv):
    del argv
    common_flags.check_paths(
        folders=[common_flags.RAW_DIR],
        files=[
            SYNSETS_FILE,
            METADATA_FILE,
            BOUNDING_BOXES_CSV,
            VALIDATION_LABELS_FILE,
        ],
    )
    with common_flags.layout_errors_as_usage():
        reports = convert(
            common_flags.RAW_DIR.value,
            common_flags.OUTPUT_DIR.value,
            SYNSETS_FILE.value,
            METADATA_FILE.value,
            BOUNDING_BOXES_CSV.value,
            VALIDATION_LABELS_FILE.value,
            num_shards=common_flags.shard_counts(DEFAULT_SHARDS),
            **common_flags.writer_options(),
        )
    common_flags.print_reports(reports)


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["raw_dir", "output_dir", "synsets_file"])
    common_flags.run_app(main, __name__)


if __name__ == "__main__":
    run()
