"""Checks a folder of converted records and prints a summary per split.

For every split with shards in `--data_dir` it counts the records, parses
and validates each one (`tnet_tf.data.records.validate_example`: label in
range, boxes inside the image), decodes every image and compares its size
with the stored one, and flags a count that differs from the dataset's
split size when the dataset knows it.

    python -m data_prep.verify --data_dir OUT --dataset imagenet

Exits with status 1 when a record has a problem (a count mismatch alone is
only flagged: partial conversions are legitimate).
"""

import concurrent.futures
import dataclasses
import os
import re
import sys

import tensorflow as tf
from absl import app
from absl import flags

from data_prep import common_flags
from tnet_tf.data import datasets
from tnet_tf.data import records

DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder of the TFRecord shards."
)

_SHARD = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.tfrecord$")

# The shared flags this converter reads, listed by its --help.
common_flags.declare_key_flags(__name__, "dataset", "num_workers")


@dataclasses.dataclass
class SplitSummary:
    """What `verify_split` found.

    Attributes:
        split: the split name.
        records: number of records read.
        expected: the dataset's number of records, or `None` if unknown.
        label_counts: `{stored label: records}`.
        problems: `["<shard>#<record> <filename>: <problem>", ...]`.
    """

    split: str
    records: int = 0
    expected: int = None
    label_counts: dict = dataclasses.field(default_factory=dict)
    problems: list = dataclasses.field(default_factory=list)

    def line(self):
        labels = sorted(self.label_counts)
        label_range = (
            f"labels {labels[0]}..{labels[-1]}" if labels else "no labels"
        )
        expected = ""
        if self.expected is not None and self.expected != self.records:
            expected = f" (the dataset has {self.expected}: MISMATCH)"
        return (
            f"{self.split}: {self.records} records{expected}, {label_range} "
            f"({len(labels)} distinct), {len(self.problems)} problems"
        )


def _check_record(serialized, num_classes, label_offset):
    """`(label, filename, problems)` of one record; decodes its image."""
    example = records.parse_example(serialized)
    problems = records.validate_example(example, num_classes, label_offset)
    try:
        image = tf.io.decode_jpeg(example["image"], channels=3)
        stored = (int(example["height"]), int(example["width"]))
        if tuple(image.shape[:2]) != stored:
            problems.append(
                f"decoded size {tuple(image.shape[:2])} != stored {stored}"
            )
    except tf.errors.InvalidArgumentError as error:
        problems.append(
            f"image does not decode: {error.message.splitlines()[0]}"
        )
    return (
        int(example["label"]),
        example["filename"].numpy().decode(),
        problems,
    )


def verify_split(
    data_dir,
    split,
    num_classes=None,
    label_offset=0,
    expected=None,
    num_workers=8,
):
    """Reads every record of `split`; returns a `SplitSummary`."""
    summary = SplitSummary(split, expected=expected)
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        for path in records.list_shards(data_dir, split):
            serialized, unreadable = [], []
            # A plain reader: records.shard_records traces a tf.data
            # function per call, 0.1 s a shard (70 s on fMoW's 768 shards).
            try:
                for record in tf.data.TFRecordDataset(path):
                    serialized.append(record.numpy())
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError):
                # Listed, not raised; the records before it are checked.
                unreadable.append(
                    f"{os.path.basename(path)}#{len(serialized)}: truncated "
                    "or corrupt record; the rest of the shard is unreadable"
                )
            checks = pool.map(
                lambda s: _check_record(s, num_classes, label_offset),
                serialized,
            )
            for index, (label, filename, problems) in enumerate(checks):
                summary.records += 1
                counts = summary.label_counts
                counts[label] = counts.get(label, 0) + 1
                where = f"{os.path.basename(path)}#{index} {filename}"
                summary.problems += [
                    f"{where}: {problem}" for problem in problems
                ]
            summary.problems += unreadable
    return summary


def find_splits(data_dir):
    """Names of the splits with shards in `data_dir`, sorted."""
    matches = (_SHARD.match(name) for name in os.listdir(data_dir))
    return sorted({match.group("split") for match in matches if match})


def verify(data_dir, dataset=None, num_workers=8):
    """Verifies every split in `data_dir`; returns `{split: SplitSummary}`.

    Args:
        dataset: a registered dataset name or `DatasetSpec`, giving the
            class count, label offset and expected split sizes; `None`
            checks only what needs no dataset knowledge.
    """
    spec = datasets.get_spec(dataset) if dataset is not None else None
    splits = find_splits(data_dir)
    if not splits:
        raise ValueError(f"No TFRecord shards in {data_dir!r}.")
    return {
        split: verify_split(
            data_dir,
            split,
            num_classes=spec.num_classes if spec else None,
            label_offset=spec.label_offset if spec else 0,
            expected=spec.splits.get(split) if spec else None,
            num_workers=num_workers,
        )
        for split in splits
    }


def main(argv):
    del argv
    common_flags.check_paths(folders=[DATA_DIR])
    if not find_splits(DATA_DIR.value):
        raise app.UsageError(
            f"--data_dir: no TFRecord shards in {DATA_DIR.value!r}."
        )
    if common_flags.DATASET.value is not None:
        try:
            datasets.get_spec(common_flags.DATASET.value)
        except ValueError as error:
            raise app.UsageError(f"--dataset: {error}") from None
    summaries = verify(
        DATA_DIR.value,
        common_flags.DATASET.value,
        common_flags.NUM_WORKERS.value,
    )
    for summary in summaries.values():
        print(summary.line())
        for problem in summary.problems:
            print(f"  {problem}")
    if any(summary.problems for summary in summaries.values()):
        sys.exit(1)


def run():
    """Runs the app on sys.argv: the console script (setup.py)."""
    flags.mark_flags_as_required(["data_dir"])
    common_flags.run_app(main, __name__)


if __name__ == "__main__":
    run()
