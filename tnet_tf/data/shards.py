"""The one sharded TFRecord writer: atomic, resumable, with a report.

Converters turn their raw layout into a list of work items and hand it to
`write_sharded`. The writer assigns items to shards deterministically, turns
each item into a record (`images.encode_image_item` for `images.ImageItem`),
validates it, and writes each shard to `<name>.tmp-<pid>` before renaming it
into place, so a shard file either is complete or does not exist. A small
JSON sidecar per shard (in `<output_dir>/conversion/`) records what went into
the shard; on a re-run, shards whose sidecar matches the items are kept as
they are, so an interrupted conversion resumes and ends with the same bytes
as an uninterrupted one. Every input ends up either written or skipped with
its path and reason: `inputs == written + len(skipped)`.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import random
import re
import sys

import keras
import tensorflow as tf

from tnet_tf.data import images
from tnet_tf.data import records

REPORT_FOLDER = "conversion"
CLASS_NAMES_FILE = "class_names.json"


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did with each input.

    Attributes:
        split: the split name.
        inputs: number of work items.
        written: number of records written.
        skipped: `[(path, reason), ...]` for inputs not written.
        converted: `[(path, note), ...]` for inputs written after a
            conversion (CMYK, grayscale, PNG, truncated ...).
        reused_shards: shards kept from an earlier run.
    """

    split: str = ""
    inputs: int = 0
    written: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    converted: list = dataclasses.field(default_factory=list)
    reused_shards: int = 0

    def check(self):
        """Raises `AssertionError` unless inputs == written + skipped."""
        if self.inputs != self.written + len(self.skipped):
            raise AssertionError(
                f"Unbalanced conversion of '{self.split}': {self.inputs} inputs "
                f"!= {self.written} written + {len(self.skipped)} skipped."
            )

    def add(self, other):
        """Adds the counts and lists of `other` (e.g. one shard's report)."""
        self.inputs += other.inputs
        self.written += other.written
        self.skipped += [tuple(pair) for pair in other.skipped]
        self.converted += [tuple(pair) for pair in other.converted]

    def summary(self):
        """A human-readable summary that lists every skipped file."""
        lines = [
            f"{self.split}: {self.inputs} inputs = {self.written} written + "
            f"{len(self.skipped)} skipped ({len(self.converted)} converted, "
            f"{self.reused_shards} shards kept from an earlier run)"
        ]
        lines += [
            f"  skipped {path}: {reason}" for path, reason in self.skipped
        ]
        return "\n".join(lines)


def _identity(item):
    if isinstance(item, tf.train.Example):
        serialized = item.SerializeToString(deterministic=True)
        return hashlib.sha256(serialized).hexdigest()
    return repr(item)


def _fingerprint(shard_items, index, num_shards):
    digest = hashlib.sha256(f"{index}/{num_shards}".encode())
    for item in shard_items:
        digest.update(
            _identity(item).encode("utf-8", "surrogateescape") + b"\0"
        )
    return digest.hexdigest()


def _write_json(path, content):
    """Writes JSON under a temporary name, then renames it into place."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as file:
        json.dump(content, file, indent=1, sort_keys=True)
    os.replace(temporary, path)


def _remove_stale_files(output_dir, split, num_shards):
    """Deletes leftover temporary shards and shards of another count."""
    pattern = re.compile(
        rf"^{re.escape(split)}-\d{{5}}-of-(\d{{5}})\.tfrecord(\.tmp-\d+)?$"
    )
    for name in os.listdir(output_dir):
        match = pattern.match(name)
        if match and (match.group(2) or int(match.group(1)) != num_shards):
            os.remove(os.path.join(output_dir, name))


def outside_folder(path, folder):
    """Why `path` lies outside `folder`, or "" when it is inside.

    Both are resolved first (symlinks, `..`, and an absolute path, which
    `os.path.join` would let replace the folder), so an entry of a raw
    dataset cannot make a converter open a file elsewhere. A dangling link
    to a path inside the folder counts as inside (reading it then fails
    as unreadable). The reason names the resolved path, never its content.
    """
    root = os.path.realpath(folder)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) == root:
        return ""
    return f"outside the raw folder {root} (resolves to {real}); not read"


def _encode(item, encode, raw_dir=None):
    if encode is None and isinstance(item, tf.train.Example):
        return item, ""
    path = getattr(item, "path", None)
    if raw_dir is not None and path is not None:
        reason = outside_folder(path, raw_dir)
        if reason:
            return None, reason
    result = (encode or images.encode_image_item)(item)
    return result if isinstance(result, tuple) else (result, "")


def _path_of(item):
    return str(getattr(item, "path", repr(item)))


def _convert_shard(
    shard_items, path, encode, num_workers, checks, progress, raw_dir
):
    """Writes one shard to `path` and returns its report."""
    report = ConversionReport(inputs=len(shard_items))
    chunk = 16 * num_workers  # bounds the decoded images held in memory
    with (
        tf.io.TFRecordWriter(path) as writer,
        concurrent.futures.ThreadPoolExecutor(num_workers) as pool,
    ):
        for start in range(0, len(shard_items), chunk):
            batch = shard_items[start : start + chunk]
            # `map` keeps the item order: shard bytes do not depend on timing.
            results = pool.map(
                lambda item: _encode(item, encode, raw_dir), batch
            )
            for item, (example, note) in zip(batch, results):
                progress.add(1)
                if example is not None:
                    # Deterministic: map order would otherwise vary by process.
                    serialized = example.SerializeToString(deterministic=True)
                    parsed = records.parse_example(serialized)
                    problems = records.validate_example(parsed, **checks)
                    if problems:
                        example, note = (
                            None,
                            "invalid record: " + "; ".join(problems),
                        )
                if example is None:
                    report.skipped.append((_path_of(item), note))
                    continue
                writer.write(serialized)
                report.written += 1
                if note:
                    report.converted.append((_path_of(item), note))
    return report


def write_sharded(
    items,
    output_dir,
    split,
    num_shards,
    *,
    encode=None,
    num_classes=None,
    label_offset=0,
    rejected=(),
    raw_dir=None,
    shuffle_seed=12345,
    num_workers=4,
    show_progress=True,
):
    """Writes `items` as `num_shards` TFRecord shards of `split`.

    Args:
        items: a list of work items, or a callable returning an iterable of
            them. Items are `ImageItem`s, ready `tf.train.Example`s, or
            anything `encode` accepts; `repr(item)` must identify the item
            (it decides whether a shard from an earlier run can be kept).
        output_dir: the record folder (created if missing).
        split: split name, e.g. "train".
        num_shards: number of shards; items are split into contiguous,
            near-equal runs after the shuffle (a shard may be empty).
        encode: `item -> tf.train.Example | (example | None, note)`;
            default `images.encode_image_item` (examples pass through).
        num_classes, label_offset: when `num_classes` is given, records
            whose label lies outside the range are skipped as invalid.
        rejected: `[(path, reason), ...]`: inputs the converter already
            rejected while reading the raw layout (e.g. no label); they
            count as inputs and as skipped.
        raw_dir: the raw dataset folder: an item whose `path` resolves
            outside it (`outside_folder`) is skipped unread.
        shuffle_seed: the items are shuffled with `random.Random(seed)`
            before sharding (the release uses 12345); `None` keeps the order.
        num_workers: threads that decode and encode images.
        show_progress: a `progress_bar` of the split on stdout.

    Returns:
        The `ConversionReport` of the split, also saved as
        `<output_dir>/conversion/<split>-report.json`.
    """
    items = list(items() if callable(items) else items)
    if num_shards < 1:
        raise ValueError(f"`num_shards` must be at least 1, got {num_shards}.")
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(items)
    os.makedirs(os.path.join(output_dir, REPORT_FOLDER), exist_ok=True)
    _remove_stale_files(output_dir, split, num_shards)
    checks = {"num_classes": num_classes, "label_offset": label_offset}
    report = ConversionReport(split=split)
    progress = progress_bar(
        len(items),
        f"{split}: {len(items)} images into {num_shards} shards",
        enabled=show_progress,
    )
    for index in range(num_shards):
        start = index * len(items) // num_shards
        shard_items = items[start : (index + 1) * len(items) // num_shards]
        name = records.shard_name(split, index, num_shards)
        path = os.path.join(output_dir, name)
        sidecar = os.path.join(output_dir, REPORT_FOLDER, name + ".json")
        fingerprint = _fingerprint(shard_items, index, num_shards)
        saved = {}
        if os.path.exists(path) and os.path.exists(sidecar):
            with open(sidecar) as file:
                saved = json.load(file)
        if saved.get("fingerprint") == fingerprint:
            report.add(ConversionReport(**saved["report"]))
            report.reused_shards += 1
            progress.add(len(shard_items))
            continue
        if os.path.exists(path):
            os.remove(path)  # never keep a shard whose sidecar does not match
        temporary = f"{path}.tmp-{os.getpid()}"
        try:
            shard_report = _convert_shard(
                shard_items,
                temporary,
                encode,
                num_workers,
                checks,
                progress,
                raw_dir,
            )
            # The sidecar lands first, so every shard file has its sidecar.
            content = {"fingerprint": fingerprint}
            content["report"] = dataclasses.asdict(shard_report)
            _write_json(sidecar, content)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        report.add(shard_report)
    report.inputs += len(rejected)
    report.skipped += [tuple(pair) for pair in rejected]
    report.check()
    summary = os.path.join(output_dir, REPORT_FOLDER, f"{split}-report.json")
    _write_json(summary, dataclasses.asdict(report))
    return report


def progress_bar(total, label, enabled=True, unit_name="image"):
    """The converters' progress: a `keras.utils.Progbar` of `total` units.

    Keras takes every POSIX process for a terminal; here the bar is redrawn
    in place (verbose 1) only when stdout is one, after `label` on a line of
    its own. In a log (verbose 2) a split is one line, written when it ends:
    `label` opens it, e.g. "train: 16 images into 1 shards 16/16 - 0s -
    3ms/image". Advance it with `add(n)`; `enabled=False` prints nothing.
    """
    if not enabled:
        return keras.utils.Progbar(total, verbose=0, unit_name=unit_name)
    terminal = getattr(sys.stdout, "isatty", lambda: False)()
    # Keras writes no line for an empty bar in a log: end the label here.
    print(label, end="\n" if terminal or not total else " ", flush=True)
    verbose = 1 if terminal else 2
    return keras.utils.Progbar(total, verbose=verbose, unit_name=unit_name)


def write_class_names(output_dir, names, label_offset=0):
    """Saves the class names of a record folder, indexed by stored label.

    `names[i]` names label `i + label_offset` as stored in the records;
    labels below the offset (ImageNet's and CUB's 0) are named
    "background". `write_tfds_metadata` reads the file
    (`<output_dir>/conversion/class_names.json`) into tfds' `ClassLabel`.
    """
    os.makedirs(os.path.join(output_dir, REPORT_FOLDER), exist_ok=True)
    stored = ["background"] * label_offset + [str(name) for name in names]
    path = os.path.join(output_dir, REPORT_FOLDER, CLASS_NAMES_FILE)
    _write_json(path, {"names": stored, "label_offset": label_offset})


def read_class_names(data_dir):
    """The names `write_class_names` saved (by stored label), or `None`."""
    path = os.path.join(os.fspath(data_dir), REPORT_FOLDER, CLASS_NAMES_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as file:
        return json.load(file)["names"]


def write_splits(splits, output_dir, num_shards, **options):
    """Writes `{split: (items, rejected)}` with `write_sharded`, one call a split.

    Args:
        splits: `{split: (items, rejected)}` from a converter.
        output_dir: the record folder.
        num_shards: `{split: number of shards}`.
        **options: passed to `write_sharded` (`num_classes`, `label_offset`,
            `num_workers`, ...).

    Returns:
        `{split: ConversionReport}`.
    """
    return {
        split: write_sharded(
            items,
            output_dir,
            split,
            num_shards[split],
            rejected=rejected,
            **options,
        )
        for split, (items, rejected) in splits.items()
    }
