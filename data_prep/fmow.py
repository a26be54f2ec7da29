"""Functional Map of the World (fMoW-rgb) to TFRecords.

Raw layout read (fMoW-rgb as published):

    <raw_dir>/train/<category>/<category>_<k>/<category>_<k>_<n>_rgb.jpg
                                               ... <category>_<k>_<n>_rgb.json
    <raw_dir>/val/<category>/...                (same layout; split "validation")
    <raw_dir>/test/<sequence>/<sequence>_<n>_rgb.jpg        unlabelled images
    <raw_dir>/test_gt/<category>/<category>_<k>/<category>_<k>_<n>_rgb.json
    <raw_dir>/test_gt_mapping.json    [{"input": "test_gt/<category>/<category>_<k>",
                                        "output": "test/<sequence>"}, ...]

Test labels and boxes come from the ground-truth JSON that the mapping names
(what the release's `match_test_gt.py` did by copying files); the test
images are read where they are. Each JSON gives `img_width`, `img_height`
and `bounding_boxes` (`box` = [x, y, w, h] pixels, `category`, `ID`); boxes
of the image's own category with `ID != -1` are kept, normalised and clipped.

Labels 0..61 follow `CATEGORIES`, the official fMoW order (§11.2).

Full images (default): the smaller side is capped at --max_smaller_side
(default 1000; 275 for the 224-px EN-B0 baseline; 0 keeps the full size).
With --crops, the record set of box crops of the fMoW baseline is written
instead: one record per kept box wider and taller than 2 px, widened by the
release's context rule (`context_multiplier`), smaller side capped at 224.
Splits: train (512 shards), validation (128), test (128).
"""

import glob
import json
import os

from absl import flags

from data_prep import common_flags
from tnet_tf.data import images
from tnet_tf.data import shards

# Alphabetical except `impoverished_settlement`, which the official list
# places between `recreational_facility` and `road_bridge`.
CATEGORIES = (
    "airport airport_hangar airport_terminal amusement_park aquaculture "
    "archaeological_site barn border_checkpoint burial_site car_dealership "
    "construction_site crop_field dam debris_or_rubble educational_institution "
    "electric_substation factory_or_powerplant fire_station flooded_road "
    "fountain gas_station golf_course ground_transportation_station helipad "
    "hospital interchange lake_or_pond lighthouse military_facility "
    "multi-unit_residential nuclear_powerplant office_building "
    "oil_or_gas_facility park parking_lot_or_garage place_of_worship "
    "police_station port prison race_track railway_bridge "
    "recreational_facility impoverished_settlement road_bridge runway "
    "shipyard shopping_mall single-unit_residential smokestack solar_farm "
    "space_facility stadium storage_tank surface_mine swimming_pool "
    "toll_booth tower tunnel_opening waste_disposal water_treatment_facility "
    "wind_farm zoo"
).split()
DEFAULT_SHARDS = {"train": 512, "validation": 128, "test": 128}
FULL_IMAGE_SMALLER_SIDE = 1000
CROP_SMALLER_SIDE = 224
SPLIT_FOLDERS = {"train": "train", "validation": "val"}

CROPS = flags.DEFINE_boolean(
    "crops", False, "Write the bounding-box crop record set instead."
)
# Default 1000, or 224 with --crops (see the docstring).
MAX_SMALLER_SIDE = common_flags.MAX_SMALLER_SIDE
TEST_GT_MAPPING = flags.DEFINE_string(
    "test_gt_mapping",
    None,
    "test_gt_mapping.json (default: <raw_dir>/test_gt_mapping.json).",
)

# The shared flags this converter reads, listed by its --help.
common_flags.declare_key_flags(
    __name__, *common_flags.CONVERTER_FLAGS, "max_smaller_side"
)


def context_multiplier(ratio):
    """Context added around a box, from its size relative to the image."""
    steps = ((0.5, 0.15), (0.4, 0.2), (0.3, 0.3), (0.2, 0.5), (0.1, 1.0))
    for threshold, multiplier in steps:
        if ratio >= threshold:
            return multiplier
    return 2.0


def crop_window(box, image_height, image_width):
    """`(top, left, height, width)` of a box `[x, y, w, h]` with context."""
    x, y, w, h = box
    width_buffer = int(w * context_multiplier(w / image_width) / 2)
    height_buffer = int(h * context_multiplier(h / image_height) / 2)
    top, left = max(0, y - height_buffer), max(0, x - width_buffer)
    bottom = min(image_height, y + h + height_buffer)
    right = min(image_width, x + w + width_buffer)
    return (top, left, bottom - top, right - left)


def _own_boxes(metadata, category):
    boxes = metadata["bounding_boxes"]
    boxes = boxes if isinstance(boxes, list) else [boxes]
    return [
        box
        for box in boxes
        if box.get("category") == category and box.get("ID", -1) != -1
    ]


def _items(
    raw_dir, image_path, metadata_path, category, crops, max_smaller_side
):
    """Work items of one image (several in crop mode), and rejections."""
    if category not in CATEGORIES:
        return [], [(image_path, f"unknown category {category!r}")]
    outside = shards.outside_folder(metadata_path, raw_dir)
    if outside:
        return [], [(image_path, f"metadata {metadata_path} {outside}")]
    try:
        with open(metadata_path) as file:
            metadata = json.load(file)
        height, width = int(metadata["img_height"]), int(metadata["img_width"])
        own = _own_boxes(metadata, category)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [], [(image_path, f"bad metadata {metadata_path}: {error!r}")]
    label = CATEGORIES.index(category)
    if not crops:
        boxes = []
        for box in own:
            x, y, w, h = box["box"]
            corners = (
                y / height,
                x / width,
                (y + h) / height,
                (x + w) / width,
            )
            boxes.append(tuple(min(max(v, 0.0), 1.0) for v in corners))
        item = images.ImageItem(
            path=image_path,
            label=label,
            text=category,
            boxes=tuple(boxes),
            max_smaller_side=max_smaller_side,
        )
        return [item], []
    items, rejected = [], []
    if not own:
        rejected.append((image_path, f"no box of category {category}"))
    stem = os.path.splitext(os.path.basename(image_path))[0]
    for box in own:
        x, y, w, h = (int(v) for v in box["box"])
        if w <= 2 or h <= 2:
            reason = f"box {box['ID']} of {w}x{h} px is too small to crop"
            rejected.append((f"{image_path}#{box['ID']}", reason))
            continue
        items.append(
            images.ImageItem(
                path=image_path,
                label=label,
                text=category,
                boxes=((0.0, 0.0, 1.0, 1.0),),
                filename=f"{stem}_{box['ID']}.jpg",
                crop=crop_window((x, y, w, h), height, width),
                max_smaller_side=max_smaller_side,
            )
        )
    return items, rejected


def _labelled_split(raw_dir, folder, crops, cap):
    items, rejected = [], []
    pattern = os.path.join(folder, "*", "*", "*_rgb.jpg")
    for image_path in sorted(glob.glob(pattern)):
        category = image_path.split(os.sep)[-3]
        metadata_path = image_path[: -len(".jpg")] + ".json"
        found = _items(
            raw_dir, image_path, metadata_path, category, crops, cap
        )
        items += found[0]
        rejected += found[1]
    return items, rejected


def _test_split(raw_dir, mapping_file, crops, cap):
    """The test images, labelled through the ground-truth mapping."""
    with open(mapping_file) as file:
        mapping = json.load(file)
    items, rejected = [], []
    for entry in sorted(mapping, key=lambda entry: entry["output"]):
        truth_dir = os.path.join(raw_dir, entry["input"])
        category = entry["input"].strip("/").split("/")[1]
        image_prefix = os.path.basename(entry["output"].rstrip("/"))
        truth_prefix = os.path.basename(entry["input"].rstrip("/"))
        image_dir = os.path.join(raw_dir, entry["output"])
        outside = shards.outside_folder(image_dir, raw_dir) or (
            shards.outside_folder(truth_dir, raw_dir)
        )
        if outside:
            # Not listed: the folder's files are never looked at.
            rejected.append((f"{mapping_file}: {entry}", outside))
            continue
        for image_path in sorted(
            glob.glob(os.path.join(image_dir, "*_rgb.jpg"))
        ):
            name = os.path.basename(image_path)
            # test/<seq>/<seq>_<n>_rgb.jpg <-> test_gt/.../<cat>_<k>_<n>_rgb.json
            truth_name = truth_prefix + name[len(image_prefix) : -len(".jpg")]
            metadata_path = os.path.join(truth_dir, truth_name + ".json")
            found = _items(
                raw_dir, image_path, metadata_path, category, crops, cap
            )
            items += found[0]
            rejected += found[1]
    return items, rejected


def work_items(
    raw_dir, crops=False, max_smaller_side=None, test_gt_mapping=None
):
    """`{split: (items, rejected)}` read from the raw fMoW-rgb layout."""
    cap = max_smaller_side
    if cap is None:
        cap = CROP_SMALLER_SIDE if crops else FULL_IMAGE_SMALLER_SIDE
    splits = {}
    for split, folder in SPLIT_FOLDERS.items():
        if os.path.isdir(os.path.join(raw_dir, folder)):
            path = os.path.join(raw_dir, folder)
            splits[split] = _labelled_split(raw_dir, path, crops, cap)
    mapping = test_gt_mapping or os.path.join(raw_dir, "test_gt_mapping.json")
    if os.path.exists(mapping):
        splits["test"] = _test_split(raw_dir, mapping, crops, cap)
    if not splits:
        raise common_flags.RawLayoutError(
            f"No train/, val/ or test_gt_mapping.json in {raw_dir!r}."
        )
    return splits


def convert(
    raw_dir,
    output_dir,
    crops=False,
    max_smaller_side=None,
    test_gt_mapping=None,
    num_shards=None,
    **writer_options,
):
    """Converts fMoW-rgb (or its box crops); returns `{split: report}`.

    Args:
        max_smaller_side: cap on the smaller side; `None` for the default
            of the mode, 0 for no cap.
        test_gt_mapping: path of `test_gt_mapping.json` (default: in
            `raw_dir`); the test split is written when it exists.
        num_shards: `{split: shards}`; default `DEFAULT_SHARDS`.
        **writer_options: passed to `shards.write_sharded`.

    `CATEGORIES` go to `conversion/class_names.json` as the class names.
    """
    splits = work_items(raw_dir, crops, max_smaller_side, test_gt_mapping)
    num_shards = {**DEFAULT_SHARDS, **(num_shards or {})}
    reports = shards.write_splits(
        splits,
        output_dir,
        num_shards,
        num_classes=len(CATEGORIES),
        raw_dir=raw_dir,  # entries resolving outside it are not read
        **writer_options,
    )
    shards.write_class_names(output_dir, CATEGORIES)
    return reports


def main(argv):
    del argv
    common_flags.check_paths(
        folders=[common_flags.RAW_DIR], files=[TEST_GT_MAPPING]
    )
    with common_flags.layout_errors_as_usage():
        reports = convert(
            common_flags.RAW_DIR.value,
            common_flags.OUTPUT_DIR.value,
            crops=CROPS.value,
            max_smaller_side=MAX_SMALLER_SIDE.value,
            test_gt_mapping=TEST_GT_MAPPING.value,
            num_shards=common_flags.shard_counts(DEFAULT_SHARDS),
            **common_flags.writer_options(),
        )
    common_flags.print_reports(reports)


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["raw_dir", "output_dir"])
    common_flags.run_app(main, __name__)


if __name__ == "__main__":
    run()
