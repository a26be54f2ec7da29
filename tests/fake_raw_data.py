"""Tiny fake raw datasets in each dataset's exact on-disk layout.

Every builder writes a handful of small images, one of every broken-file
kind in `BROKEN_KINDS`, and the dataset's index files, and returns a
`FakeDataset` saying what the converter must produce: the records expected
per split (label, boxes, pixels) and the files it must skip. Images are
encoded with TF ops; the CMYK JPEG, which TF cannot encode, is hand-built
by `cmyk_jpeg_bytes`.
"""

import dataclasses
import json
import os
import struct

import numpy as np
import tensorflow as tf

HEIGHT, WIDTH = 32, 64

# kind -> what the converter does with it ("kept", "converted", "skipped")
BROKEN_KINDS = {
    "grayscale_jpeg": "converted",
    "cmyk_jpeg": "converted",
    "png_as_jpeg": "converted",
    "missing_end_marker": "converted",
    "truncated_jpeg": "skipped",
    "corrupt_bytes": "skipped",
    "corrupt_jpeg_header": "skipped",
    "zero_byte": "skipped",
    "unreadable": "skipped",
}
# Words each skip reason must contain.
SKIP_REASONS = {
    "truncated_jpeg": "truncated",
    "corrupt_bytes": "not a known image format",
    "corrupt_jpeg_header": "JPEG header",
    "zero_byte": "zero-byte",
    "unreadable": "unreadable",
}


def quadrant_image(seed, height=HEIGHT, width=WIDTH):
    """A uint8 image of four flat colour quadrants (JPEG keeps them well)."""
    colors = np.random.default_rng(seed).integers(30, 225, (2, 2, 3))
    rows = np.repeat(colors, height // 2, axis=0)
    return np.repeat(rows, width // 2, axis=1).astype(np.uint8)


def assert_pixels_close(actual, expected):
    """JPEG tolerance: close on average; exact colours inside each quadrant.

    Quadrant edges blur (chroma subsampling), so the per-pixel bound is
    checked 4 pixels away from them.
    """
    actual, expected = actual.astype(int), expected.astype(int)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).mean() < 5
    height, width = expected.shape[:2]
    inner = np.ones((height, width), bool)
    for edge in (0, height // 2, height):
        inner[max(edge - 4, 0) : edge + 4] = False
    for edge in (0, width // 2, width):
        inner[:, max(edge - 4, 0) : edge + 4] = False
    assert np.abs(actual - expected)[inner].max() <= 8


# --- A hand-built CMYK JPEG ------------------------------------------------
# Annex K.3 luminance DC table: code-length counts and symbols (categories).
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
# Flat blocks only need the end-of-block symbol of the AC table.
_AC_BITS = (0, 2) + (0,) * 14
_AC_VALUES = (0x00, 0x01)


def _huffman_codes(bits, values):
    codes, code, index = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[index]] = (code, length)
            code, index = code + 1, index + 1
        code <<= 1
    return codes


def _segment(marker, payload):
    return (
        bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    )


def cmyk_jpeg_bytes(block_values):
    """A baseline 4-component JPEG (Adobe marker, inverted CMYK).

    Args:
        block_values: uint8 `(rows, cols, 4)`: the stored component values
            of each flat 8x8 block. Adobe CMYK is stored inverted, so
            `(255 - c, 255 - m, 255 - y, 255 - k)`; `(r, g, b, 255)` decodes
            to the RGB colour `(r, g, b)`.
    """
    block_values = np.asarray(block_values, np.uint8)
    rows, cols = block_values.shape[:2]
    dc_codes = _huffman_codes(_DC_BITS, _DC_VALUES)
    end_of_block = _huffman_codes(_AC_BITS, _AC_VALUES)[0x00]
    bits = []

    def put(code, length):
        bits.extend((code >> shift) & 1 for shift in range(length - 1, -1, -1))

    predictors = [0] * 4
    for row in range(rows):
        for col in range(cols):
            for component in range(4):
                # With a quantiser of 1 a flat block's DC is 8 * (value - 128).
                dc = 8 * (int(block_values[row, col, component]) - 128)
                diff, predictors[component] = dc - predictors[component], dc
                category = abs(diff).bit_length()
                put(*dc_codes[category])
                if category:
                    put(
                        diff if diff > 0 else diff + (1 << category) - 1,
                        category,
                    )
                put(*end_of_block)
    bits.extend([1] * (-len(bits) % 8))
    scan = bytearray()
    for start in range(0, len(bits), 8):
        scan.append(int("".join(map(str, bits[start : start + 8])), 2))
        if scan[-1] == 0xFF:
            scan.append(0)  # byte stuffing
    adobe = b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0)  # transform 0: CMYK
    frame = struct.pack(">BHHB", 8, rows * 8, cols * 8, 4)
    frame += b"".join(bytes([index, 0x11, 0]) for index in range(1, 5))
    tables = b"\x00" + bytes(_DC_BITS + _DC_VALUES)
    tables += b"\x10" + bytes(_AC_BITS + _AC_VALUES)
    scan_header = bytes([4]) + b"".join(bytes([i, 0]) for i in range(1, 5))
    return (
        b"\xff\xd8"
        + _segment(0xEE, adobe)
        + _segment(0xDB, b"\x00" + bytes([1] * 64))
        + _segment(0xC0, frame)
        + _segment(0xC4, tables)
        + _segment(0xDA, scan_header + bytes([0, 63, 0]))
        + bytes(scan)
        + b"\xff\xd9"
    )


def image_file_bytes(kind, image):
    """The bytes of a file of `kind` ("rgb_jpeg" or a `BROKEN_KINDS` key).

    Returns `(bytes, expected_rgb)`: `expected_rgb` is the image a record
    must hold (None for skipped kinds). "unreadable" is not bytes: see
    `write_image_file`.
    """
    jpeg = tf.io.encode_jpeg(image, quality=95).numpy()
    if kind == "rgb_jpeg":
        return jpeg, image
    if kind == "grayscale_jpeg":
        gray = image[..., :1]
        return tf.io.encode_jpeg(gray, quality=95).numpy(), np.repeat(
            gray, 3, -1
        )
    if kind == "cmyk_jpeg":
        blocks = image[::8, ::8]  # one colour per 8x8 block
        values = np.concatenate(
            [blocks, np.full(blocks.shape[:2] + (1,), 255)], -1
        )
        return cmyk_jpeg_bytes(values), image
    if kind == "png_as_jpeg":
        return tf.io.encode_png(image).numpy(), image
    if kind == "missing_end_marker":
        return jpeg[:-2], image
    if kind == "truncated_jpeg":
        scan = jpeg.index(b"\xff\xda")  # keep the header, cut the pixel data
        return jpeg[: scan + (len(jpeg) - scan) // 4], None
    if kind == "corrupt_bytes":
        return np.random.default_rng(0).bytes(300), None
    if kind == "corrupt_jpeg_header":
        return b"\xff\xd8\xff\xe0\x00\x10garbage-header", None
    if kind == "zero_byte":
        return b"", None
    raise ValueError(f"Unknown image kind {kind!r}.")


def write_image_file(path, kind, image):
    """Writes an image file of `kind`; returns the expected RGB or None."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "unreadable":
        # A dangling link: listed by the directory, unreadable when opened
        # (a chmod 000 file would still be readable by root).
        os.symlink(os.path.join(os.path.dirname(path), "missing-target"), path)
        return None
    data, expected = image_file_bytes(kind, image)
    with open(path, "wb") as file:
        file.write(data)
    return expected


@dataclasses.dataclass
class Expected:
    """One record a converter must write."""

    label: int
    image: np.ndarray
    text: str = ""
    boxes: tuple = ()


@dataclasses.dataclass
class FakeDataset:
    """What a fake raw dataset must convert to.

    Attributes:
        root: the raw folder.
        records: `{split: {filename: Expected}}` (filenames as stored).
        skipped: `{split: {path: kind}}` for files that must be skipped.
        inputs: `{split: number of inputs}`.
    """

    root: str
    records: dict = dataclasses.field(default_factory=dict)
    skipped: dict = dataclasses.field(default_factory=dict)
    inputs: dict = dataclasses.field(default_factory=dict)

    def add(
        self, split, path, kind, image, label, text="", boxes=(), name=None
    ):
        """Writes one file and records what must become of it."""
        expected = write_image_file(path, kind, image)
        self.inputs[split] = self.inputs.get(split, 0) + 1
        if BROKEN_KINDS.get(kind) == "skipped":
            self.skipped.setdefault(split, {})[path] = kind
        else:
            name = name or os.path.basename(path)
            self.records.setdefault(split, {})[name] = Expected(
                label, expected, text, tuple(map(tuple, boxes))
            )


def _write_text(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        file.write("".join(f"{line}\n" for line in lines))


def _kinds(count, broken):
    """`count` kinds: rgb_jpeg, then the broken kinds in turn if `broken`."""
    kinds = list(BROKEN_KINDS) if broken else []
    return kinds[:count] + ["rgb_jpeg"] * max(0, count - len(kinds))


# --- ImageNet ----------------------------------------------------------------
IMAGENET_SYNSETS = ("n01440764", "n01443537", "n01484850")
IMAGENET_TEXTS = ("tench, Tinca tinca", "goldfish", "great white shark")
BOX = (4, 8, 24, 48)  # ymin, xmin, ymax, xmax in pixels of a 32x64 image
NORMALISED_BOX = (4 / HEIGHT, 8 / WIDTH, 24 / HEIGHT, 48 / WIDTH)


def make_imagenet(root, validation_layout="flat", broken=True):
    """ILSVRC-2012 layout; `validation_layout` is "flat" or "folders"."""
    data = FakeDataset(root)
    _write_text(os.path.join(root, "synsets.txt"), IMAGENET_SYNSETS)
    _write_text(
        os.path.join(root, "metadata.txt"),
        [f"{s}\t{t}" for s, t in zip(IMAGENET_SYNSETS, IMAGENET_TEXTS)],
    )
    box_lines, kinds, seed = [], _kinds(12, broken), 0
    for label, (synset, text) in enumerate(
        zip(IMAGENET_SYNSETS, IMAGENET_TEXTS), 1
    ):
        for index in range(4):
            kind, seed = kinds[seed], seed + 1
            name = f"{synset}_{index}.JPEG"
            path = os.path.join(root, "train", synset, name)
            boxes = [NORMALISED_BOX] if index % 2 == 0 else []
            if index == 2:
                boxes.append((0.0, 0.0, 1.0, 1.0))
            for ymin, xmin, ymax, xmax in boxes:
                box_lines.append(f"{name},{xmin},{ymin},{xmax},{ymax}")
            data.add(
                "train", path, kind, quadrant_image(seed), label, text, boxes
            )
    # A folder whose synset the synsets file does not list.
    stray = os.path.join(root, "train", "n00000001", "n00000001_0.JPEG")
    write_image_file(stray, "rgb_jpeg", quadrant_image(99))
    data.inputs["train"] += 1
    data.skipped.setdefault("train", {})[stray] = "synset"
    _write_text(os.path.join(root, "bounding_boxes.csv"), box_lines)
    labels = []
    for index in range(5):
        synset_index = index % len(IMAGENET_SYNSETS)
        name = f"ILSVRC2012_val_{index + 1:08d}.JPEG"
        if validation_layout == "flat":
            path = os.path.join(root, "val", name)
        else:
            synset = IMAGENET_SYNSETS[synset_index]
            path = os.path.join(root, "validation", synset, name)
        labels.append(IMAGENET_SYNSETS[synset_index])
        data.add(
            "validation",
            path,
            "rgb_jpeg",
            quadrant_image(100 + index),
            synset_index + 1,
            IMAGENET_TEXTS[synset_index],
        )
    if validation_layout == "flat":
        _write_text(os.path.join(root, "validation_labels.txt"), labels)
        # An image beyond the labels file has no label.
        extra = os.path.join(root, "val", "ILSVRC2012_val_00000099.JPEG")
        write_image_file(extra, "rgb_jpeg", quadrant_image(7))
        data.inputs["validation"] += 1
        data.skipped.setdefault("validation", {})[extra] = "no line"
    return data


# --- fMoW --------------------------------------------------------------------
FMOW_CATEGORIES = ("airport", "impoverished_settlement", "zoo")
FMOW_LABELS = {"airport": 0, "impoverished_settlement": 42, "zoo": 61}
FMOW_BOX = [8, 4, 40, 20]  # x, y, w, h in pixels: NORMALISED_BOX
# A second own-category box, and one too small to crop, on one val image.
EXTRA_FMOW_BOXES = [
    {"box": [40, 10, 20, 12], "category": "airport", "ID": 9},
    {"box": [1, 1, 2, 2], "category": "airport", "ID": 10},
]
EXTRA_FMOW_BOX_NORMALISED = (10 / HEIGHT, 40 / WIDTH, 22 / HEIGHT, 60 / WIDTH)
SMALL_FMOW_BOX_NORMALISED = (1 / HEIGHT, 1 / WIDTH, 3 / HEIGHT, 3 / WIDTH)


def fmow_metadata(category, boxes=None):
    """A fMoW JSON: one own-category box, one other, one with ID -1."""
    boxes = boxes or [
        {"box": FMOW_BOX, "category": category, "ID": 7},
        {"box": [0, 0, 10, 10], "category": "not_" + category, "ID": 8},
        {"box": [0, 0, 30, 30], "category": category, "ID": -1},
    ]
    return {"img_width": WIDTH, "img_height": HEIGHT, "bounding_boxes": boxes}


def _write_json(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        json.dump(content, file)


def make_fmow(root, broken=True):
    """fMoW-rgb layout with train, val, and test matched via test_gt."""
    data = FakeDataset(root)
    kinds, seed = _kinds(12, broken), 0
    for split, folder, count in (
        ("train", "train", 12),
        ("validation", "val", 3),
    ):
        for index in range(count):
            category = FMOW_CATEGORIES[index % 3]
            instance = f"{category}_{index}"
            stem = os.path.join(
                root, folder, category, instance, f"{instance}_0_rgb"
            )
            kind = kinds[index] if split == "train" else "rgb_jpeg"
            seed += 1
            metadata, boxes = fmow_metadata(category), [NORMALISED_BOX]
            if split == "validation" and index == 0:
                metadata["bounding_boxes"] += EXTRA_FMOW_BOXES
                boxes += [EXTRA_FMOW_BOX_NORMALISED, SMALL_FMOW_BOX_NORMALISED]
            data.add(
                split,
                stem + ".jpg",
                kind,
                quadrant_image(seed),
                FMOW_LABELS[category],
                category,
                boxes,
            )
            _write_json(stem + ".json", metadata)
    # An image without its JSON is rejected.
    orphan = os.path.join(root, "train", "zoo", "zoo_99", "zoo_99_0_rgb.jpg")
    write_image_file(orphan, "rgb_jpeg", quadrant_image(98))
    data.inputs["train"] += 1
    data.skipped.setdefault("train", {})[orphan] = "metadata"
    mapping = []
    for index, category in enumerate(FMOW_CATEGORIES):
        sequence, instance = f"{index:07d}", f"{category}_{index + 50}"
        mapping.append(
            {
                "input": f"test_gt/{category}/{instance}",
                "output": f"test/{sequence}",
            }
        )
        for n in range(2):
            image = os.path.join(
                root, "test", sequence, f"{sequence}_{n}_rgb.jpg"
            )
            seed += 1
            data.add(
                "test",
                image,
                "rgb_jpeg",
                quadrant_image(seed),
                FMOW_LABELS[category],
                category,
                [NORMALISED_BOX],
            )
            # The test folder's own JSON carries no label; test_gt has it.
            _write_json(image[:-4] + ".json", fmow_metadata("unknown", [{}]))
            truth = f"{instance}_{n}_rgb.json"
            _write_json(
                os.path.join(root, "test_gt", category, instance, truth),
                fmow_metadata(category),
            )
    _write_json(os.path.join(root, "test_gt_mapping.json"), mapping)
    return data


# --- CUB-200-2011 and NABirds -----------------------------------------------
CUB_CLASSES = (
    "001.Black_footed_Albatross",
    "002.Laysan_Albatross",
    "003.Sooty_Albatross",
)
NABIRDS_CLASSES = {817: "Barn Owl", 295: "Mallard", 1000: "Snowy Egret"}
NABIRDS_INNER_NODES = {0: "Birds", 1: "Perching Birds"}


def make_birds(root, dataset="cub", broken=True):
    """CUB-200-2011 or NABirds index files and images."""
    data = FakeDataset(root)
    if dataset == "cub":
        class_ids = [1, 2, 3]
        classes = [f"{i} {name}" for i, name in zip(class_ids, CUB_CLASSES)]
        texts = {
            i: name.split(".", 1)[1] for i, name in zip(class_ids, CUB_CLASSES)
        }
    else:
        class_ids = list(NABIRDS_CLASSES)
        nodes = {**NABIRDS_INNER_NODES, **NABIRDS_CLASSES}
        classes = [f"{i} {name}" for i, name in sorted(nodes.items())]
        texts = dict(NABIRDS_CLASSES)
    lines = {name: [] for name in ("images", "labels", "split", "boxes")}
    labels, kinds = {}, _kinds(15, broken)
    for index in range(15):
        class_id = class_ids[index % 3]
        if dataset == "cub":
            image_id = str(index + 1)
            folder = CUB_CLASSES[class_ids.index(class_id)]
            relative = (
                f"{folder}/{folder.split('.')[1]}_{index:04d}_{index}.jpg"
            )
            label = class_id
        else:
            image_id = f"0000139e-21dc-4d0c-bfe1-4cae3c85c8{index:02d}"
            relative = f"{class_id:04d}/{image_id.replace('-', '')}.jpg"
            label = labels.setdefault(class_id, len(labels))
        split = "validation" if index % 5 == 0 else "train"
        path = os.path.join(root, "images", relative)
        lines["images"].append(f"{image_id} {relative}")
        lines["split"].append(f"{image_id} {int(split == 'train')}")
        lines["boxes"].append(f"{image_id} 8.0 4.0 40.0 20.0")
        if index == 14:
            # Listed without a class: rejected while reading the index.
            write_image_file(path, "rgb_jpeg", quadrant_image(index))
            data.inputs[split] = data.inputs.get(split, 0) + 1
            data.skipped.setdefault(split, {})[path] = "no class"
            continue
        lines["labels"].append(f"{image_id} {class_id}")
        data.add(
            split,
            path,
            kinds[index],
            quadrant_image(index),
            label,
            texts[class_id],
            [NORMALISED_BOX],
        )
    for name, file_name in (
        ("images", "images.txt"),
        ("labels", "image_class_labels.txt"),
        ("split", "train_test_split.txt"),
        ("boxes", "bounding_boxes.txt"),
    ):
        _write_text(os.path.join(root, file_name), lines[name])
    _write_text(os.path.join(root, "classes.txt"), classes)
    return data


def make_image_folder(
    root, classes=("circle", "square", "triangle"), per_class=6, seed=0
):
    """`root/<class>/<n>.png|jpg`, the layout of `data_prep.image_folder`:
    small noisy images with one colour channel saturated per class, PNG
    and JPEG in turn. Returns `root`."""
    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for n in range(per_class):
            image = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            image[..., index % 3] = 255
            if n % 2:
                data, extension = tf.io.encode_png(image), "png"
            else:
                data, extension = tf.io.encode_jpeg(image), "jpg"
            path = os.path.join(root, name, f"{n}.{extension}")
            with open(path, "wb") as file:
                file.write(data.numpy())
    return root
