"""Your own images to TFRecords: a folder of class sub-folders.

    python -m data_prep.image_folder --raw_dir DIR --output_dir OUT

DIR holds one sub-folder per class, named after it (images may sit in
nested folders below it):

    DIR/<class>/*.jpg|jpeg|png|gif|bmp|webp
        validation images are drawn from each class (--validation_fraction,
        default 0.1, seeded by --split_seed);
    DIR/train/<class>/..., DIR/validation/<class>/... (or val/), and
    optionally DIR/test/<class>/...
        the splits as given; every split has the same classes.

The sorted class names are the labels 0..n-1. Records hold RGB JPEGs (other
formats are re-encoded). OUT/dataset.json (class names, class count, split
sizes, image format) and OUT/classes.txt make the folder describe itself:

    python -m experiments.train --preset PRESET --data_dir OUT --workdir RUN

trains any preset on it, with a head of the folder's class count.
Unreadable or corrupt images are skipped with a warning that lists them;
the conversion fails when a class is left without readable training
images. Files without an image extension are ignored; shards default to
one per 1,000 images.
"""

import dataclasses
import math
import os
import random
import sys

from absl import app
from absl import flags

from data_prep import common_flags
from tnet_tf.data import augment
from tnet_tf.data import datasets
from tnet_tf.data import images
from tnet_tf.data import shards

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")
# Split folder name -> split name.
SPLIT_FOLDERS = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "test": "test",
}
DEFAULT_VALIDATION_FRACTION = 0.1
IMAGES_PER_SHARD = 1000
CLASS_NAMES_FILE = "classes.txt"

DATASET_NAME = flags.DEFINE_string(
    "dataset_name",
    None,
    "Name of the dataset in its dataset.json and in runs (default: the "
    "name of --output_dir).",
)
VALIDATION_FRACTION = flags.DEFINE_float(
    "validation_fraction",
    None,
    "Without a validation/ folder: the fraction of each class's images "
    f"held out for validation (default {DEFAULT_VALIDATION_FRACTION}; at "
    "least one image a class).",
)
SPLIT_SEED = flags.DEFINE_integer(
    "split_seed", 0, "Seed of the draw of validation images."
)
AUGMENTATION = flags.DEFINE_enum(
    "augmentation",
    "imagenet",
    augment.AUGMENTATIONS,
    "Training augmentation: imagenet (Inception crop and flip), birds "
    "(crop and flip of the birds datasets) or none.",
)
# Default: keep the images' sizes.
MAX_SMALLER_SIDE = common_flags.MAX_SMALLER_SIDE
# The shared flags this converter reads, listed by its --help.
common_flags.declare_key_flags(
    __name__, *common_flags.CONVERTER_FLAGS, "max_smaller_side"
)


@dataclasses.dataclass
class FolderLayout:
    """The images of a raw folder, by split and class.

    Attributes:
        class_names: sorted class names; a class's label is its index.
        splits: `{split: {class name: [image paths]}}`.
        ignored: paths without an image extension (not read).
        drawn: whether validation images were drawn from the train ones.
    """

    class_names: list
    splits: dict
    ignored: list
    drawn: bool = False


def _folders(folder):
    return sorted(
        name
        for name in os.listdir(folder)
        if not name.startswith(".")
        and os.path.isdir(os.path.join(folder, name))
    )


def _files_below(folder):
    """`(images, ignored)`: the files under `folder`, at any depth."""
    found, ignored = [], []
    for top, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(top, name)
            extension = os.path.splitext(name)[1].lower()
            (found if extension in IMAGE_EXTENSIONS else ignored).append(path)
    return sorted(found), sorted(ignored)


def _read_classes(folder, where):
    """`({class: [paths]}, ignored)` of a folder of class sub-folders."""
    classes = _folders(folder)
    if not classes:
        loose = _files_below(folder)[0]
        hint = (
            f" ({len(loose)} images lie directly in it: move each class's "
            "images into a sub-folder named after the class)"
            if loose
            else ""
        )
        raise common_flags.RawLayoutError(
            f"no class sub-folders in {where}{hint}."
        )
    found, ignored = {}, []
    for name in classes:
        found[name], skipped = _files_below(os.path.join(folder, name))
        ignored += skipped
    empty = [name for name in classes if not found[name]]
    if empty:
        raise common_flags.RawLayoutError(
            f"empty class folder(s) in {where}, with no image file "
            f"({', '.join(IMAGE_EXTENSIONS)}): {', '.join(empty)}."
        )
    return found, ignored


def _draw_validation(train, fraction, seed):
    """Moves `fraction` of each class's images (at least one) from `train`
    into the returned validation split; each class draws with its own seed,
    so adding images to one class changes no other class's draw."""
    validation = {}
    for name, paths in train.items():
        if len(paths) < 2:
            raise common_flags.RawLayoutError(
                f"class '{name}' has {len(paths)} image: drawing validation "
                "images needs at least 2 a class (add images, or give "
                "train/ and validation/ folders)."
            )
        count = min(len(paths) - 1, max(1, round(len(paths) * fraction)))
        drawn = set(random.Random(f"{seed}/{name}").sample(paths, count))
        validation[name] = [path for path in paths if path in drawn]
        train[name] = [path for path in paths if path not in drawn]
    return validation


def read_layout(raw_dir, validation_fraction=None, split_seed=0):
    """The images of `raw_dir` by split and class (module docstring).

    Args:
        raw_dir: a folder of class sub-folders, or of split folders
            (train/, validation/ or val/, test/) of class sub-folders.
        validation_fraction: the fraction of each class drawn for
            validation when there is no validation folder (default 0.1);
            an error when there is one.
        split_seed: seed of that draw.

    Returns:
        A `FolderLayout`.

    Raises:
        common_flags.RawLayoutError: a missing folder, no class sub-folders,
            an empty class, classes that differ between splits, or a
            fraction that cannot apply.
    """
    raw_dir = os.fspath(raw_dir)
    if not os.path.isdir(raw_dir):
        raise common_flags.RawLayoutError(f"no folder {raw_dir!r}.")
    folders = _folders(raw_dir)
    split_folders = [name for name in folders if name in SPLIT_FOLDERS]
    if split_folders:
        others = [name for name in folders if name not in SPLIT_FOLDERS]
        if "train" not in split_folders or others:
            raise common_flags.RawLayoutError(
                f"{raw_dir} has split folders ({', '.join(split_folders)}), "
                "so it must hold train/ and may hold validation/ (or val/) "
                f"and test/, each of class sub-folders; found "
                f"{', '.join(folders)}."
            )
        if {"val", "validation"} <= set(split_folders):
            raise common_flags.RawLayoutError(
                f"{raw_dir} has both val/ and validation/: keep one."
            )
        splits, ignored = {}, []
        folder_of = {SPLIT_FOLDERS[name]: name for name in split_folders}
        for name in split_folders:
            where = os.path.join(raw_dir, name)
            splits[SPLIT_FOLDERS[name]], skipped = _read_classes(where, where)
            ignored += skipped
    else:
        train, ignored = _read_classes(raw_dir, raw_dir)
        splits, folder_of = {"train": train}, {}
    class_names = sorted(splits["train"])
    for split, classes in splits.items():
        missing = [name for name in class_names if name not in classes]
        extra = sorted(set(classes) - set(class_names))
        folder = folder_of.get(split, split)
        problems = []
        if missing:
            problems.append(
                f"in train/ but not in {folder}/: {', '.join(missing)}"
            )
        if extra:
            problems.append(
                f"in {folder}/ but not in train/: {', '.join(extra)}"
            )
        if problems:
            raise common_flags.RawLayoutError(
                f"the splits of {raw_dir} have different classes, "
                f"{'; '.join(problems)}. Every split needs a folder of "
                "images for every class."
            )
    drawn = "validation" not in splits
    if not drawn and validation_fraction is not None:
        raise common_flags.RawLayoutError(
            f"{raw_dir} has a validation folder; --validation_fraction "
            "applies only without one."
        )
    if drawn:
        fraction = validation_fraction
        if fraction is None:
            fraction = DEFAULT_VALIDATION_FRACTION
        if not 0 < fraction < 1:
            raise ValueError(
                f"`validation_fraction` must lie in (0, 1), got {fraction}."
            )
        splits["validation"] = _draw_validation(
            splits["train"], fraction, split_seed
        )
    return FolderLayout(class_names, splits, sorted(ignored), drawn)


def _encode(item):
    """`images.encode_image_item` that never opens a pipe or a device,
    whose read could wait forever."""
    if os.path.exists(item.path) and not os.path.isfile(item.path):
        return None, "not a regular file (a pipe or device); not read"
    return images.encode_image_item(item)


def _check_classes(layout, reports):
    """`({split: {class: records}}, warnings)` of a conversion.

    A class whose every training image was skipped fails the conversion;
    one left without images in another split is a warning. Both name the
    files and reasons.
    """
    counts, problems, warnings = {}, [], []
    for split, classes in layout.splits.items():
        skipped = dict(reports[split].skipped)
        counts[split] = {}
        for name in layout.class_names:
            reasons = [
                f"{path}: {skipped[path]}"
                for path in classes[name]
                if path in skipped
            ]
            counts[split][name] = len(classes[name]) - len(reasons)
            if len(reasons) == len(classes[name]):
                more = "; ..." if len(reasons) > 3 else ""
                message = (
                    f"class '{name}' has no readable image in {split} "
                    f"({'; '.join(reasons[:3])}{more})"
                )
                (problems if split == "train" else warnings).append(message)
    if problems:
        raise common_flags.RawLayoutError(
            f"{'. '.join(problems)}. Replace or remove those files and "
            "convert again."
        )
    return counts, warnings


def convert(
    raw_dir,
    output_dir,
    dataset_name=None,
    validation_fraction=None,
    split_seed=0,
    num_shards=None,
    augmentation="imagenet",
    max_smaller_side=None,
    **writer_options,
):
    """Converts a folder of class sub-folders into a self-describing
    record folder.

    Args:
        raw_dir, validation_fraction, split_seed: see `read_layout`.
        output_dir: the record folder (created if missing).
        dataset_name: the dataset's name (default: `output_dir`'s name).
        num_shards: `{split: shards}`; a missing or `None` count means one
            shard per `IMAGES_PER_SHARD` images.
        augmentation: the training augmentation of its `DatasetSpec`.
        max_smaller_side: downscale images whose smaller side is longer.
        **writer_options: passed to `shards.write_sharded`
            (`show_progress=False` silences its `shards.progress_bar`).

    Returns:
        `(reports, layout, spec)`: `{split: ConversionReport}`, the
        `FolderLayout` read and the `DatasetSpec` written into
        `output_dir/dataset.json` (with the class names, records per class,
        image format) next to `classes.txt`.

    Raises:
        common_flags.RawLayoutError: see `read_layout`, or a class left
            without readable training images (dataset.json is then not
            written; a class left without images in another split is only
            a warning).
        ValueError: `output_dir` inside `raw_dir`.
    """
    raw_dir, output_dir = os.fspath(raw_dir), os.fspath(output_dir)
    if not shards.outside_folder(output_dir, raw_dir):
        raise ValueError(
            f"The output folder {output_dir!r} lies inside the raw folder "
            f"{raw_dir!r}, where it would read as a class: choose another."
        )
    layout = read_layout(raw_dir, validation_fraction, split_seed)
    name = dataset_name or os.path.basename(os.path.abspath(output_dir))
    os.makedirs(output_dir, exist_ok=True)
    # Until this conversion ends, the folder describes nothing.
    for stale in (datasets.FOLDER_SPEC_FILE, CLASS_NAMES_FILE):
        if os.path.exists(os.path.join(output_dir, stale)):
            os.remove(os.path.join(output_dir, stale))
    reports = {}
    for split, classes in layout.splits.items():
        items = [
            images.ImageItem(
                path=path,
                label=label,
                text=class_name,
                max_smaller_side=max_smaller_side,
            )
            for label, class_name in enumerate(layout.class_names)
            for path in classes[class_name]
        ]
        count = (num_shards or {}).get(split) or math.ceil(
            len(items) / IMAGES_PER_SHARD
        )
        reports[split] = shards.write_sharded(
            items,
            output_dir,
            split,
            count,
            encode=_encode,
            num_classes=len(layout.class_names),
            **writer_options,
        )
    counts, warnings = _check_classes(layout, reports)
    for warning in warnings:
        print(f"WARNING: {warning}.", file=sys.stderr)
    spec = datasets.DatasetSpec(
        name=name,
        num_classes=len(layout.class_names),
        splits={split: report.written for split, report in reports.items()},
        augmentation=augmentation,
        description=(
            f"{len(layout.class_names)} classes of images from {raw_dir} "
            "(data_prep.image_folder)."
        ),
    )
    shards.write_class_names(output_dir, layout.class_names)
    with open(os.path.join(output_dir, CLASS_NAMES_FILE), "w") as file:
        file.writelines(f"{class_name}\n" for class_name in layout.class_names)
    datasets.write_folder_spec(
        output_dir,
        spec,
        class_names=layout.class_names,
        class_counts=counts,
        image_format="JPEG",
        colorspace="RGB",
        converter="data_prep.image_folder",
        raw_dir=os.path.abspath(raw_dir),
        validation_drawn=layout.drawn,
    )
    return reports, layout, spec


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    common_flags.check_paths(folders=[common_flags.RAW_DIR])
    raw_dir = common_flags.RAW_DIR.value
    output_dir = common_flags.OUTPUT_DIR.value
    if not shards.outside_folder(output_dir, raw_dir):
        raise app.UsageError(
            f"--output_dir: {output_dir!r} lies inside --raw_dir, where it "
            "would read as a class; choose another folder."
        )
    name = DATASET_NAME.value or os.path.basename(os.path.abspath(output_dir))
    if name in datasets.names():
        raise app.UsageError(
            f"--dataset_name: '{name}' is a built-in dataset; pass another "
            "name."
        )
    fraction = VALIDATION_FRACTION.value
    if fraction is not None and not 0 < fraction < 1:
        raise app.UsageError(
            f"--validation_fraction must lie in (0, 1), got {fraction}."
        )
    eval_shards = common_flags.EVAL_SHARDS.value
    with common_flags.layout_errors_as_usage():
        reports, layout, spec = convert(
            raw_dir,
            output_dir,
            dataset_name=name,
            validation_fraction=fraction,
            split_seed=SPLIT_SEED.value,
            num_shards={
                "train": common_flags.TRAIN_SHARDS.value,
                "validation": eval_shards,
                "test": eval_shards,
            },
            augmentation=AUGMENTATION.value,
            max_smaller_side=MAX_SMALLER_SIDE.value,
            **common_flags.writer_options(),
        )
    common_flags.print_reports(reports)
    if layout.ignored:
        examples = ", ".join(layout.ignored[:3])
        print(
            f"Ignored {len(layout.ignored)} files without an image extension "
            f"({examples}{', ...' if len(layout.ignored) > 3 else ''}).",
            file=sys.stderr,
        )
    shown = ", ".join(layout.class_names[:10])
    more = ", ..." if len(layout.class_names) > 10 else ""
    print(f"{spec.num_classes} classes: {shown}{more}")
    print(
        f"Wrote {os.path.join(output_dir, datasets.FOLDER_SPEC_FILE)} and "
        f"{CLASS_NAMES_FILE}. Train a preset on it:\n"
        f"  python -m experiments.train --preset PRESET --data_dir "
        f"{output_dir} --workdir runs/{name}"
    )


def run():
    """Runs the app on sys.argv (as `python -m`, or a console script)."""
    flags.mark_flags_as_required(["raw_dir", "output_dir"])
    common_flags.run_app(main, __name__)


if __name__ == "__main__":
    run()
