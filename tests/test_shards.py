"""The sharded writer: balance, determinism, atomic shards, resume."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from tests import fake_raw_data
from tnet_tf.data import images
from tnet_tf.data import records
from tnet_tf.data import shards

NUM_SHARDS = 3


def _items(root, broken=True):
    """Twelve image items, the first ones of every broken kind."""
    items = []
    for index, kind in enumerate(fake_raw_data._kinds(12, broken)):
        path = os.path.join(root, f"image_{index}.jpg")
        fake_raw_data.write_image_file(
            path, kind, fake_raw_data.quadrant_image(index)
        )
        items.append(images.ImageItem(path=path, label=index % 5))
    return items


def _write(items, output_dir, **options):
    options.setdefault("show_progress", False)
    return shards.write_sharded(
        items, output_dir, "train", NUM_SHARDS, **options
    )


def _contents(directory):
    """`{file name: bytes}` of the shards in `directory`."""
    return {
        os.path.basename(path): open(path, "rb").read()
        for path in records.list_shards(directory, "train")
    }


def test_report_balances_and_names_every_skip(tmp_path):
    items = _items(tmp_path / "raw")
    report = _write(items, tmp_path / "out")
    kinds = fake_raw_data.BROKEN_KINDS
    skipped = [k for k, v in kinds.items() if v == "skipped"]
    assert report.inputs == 12
    assert len(report.skipped) == len(skipped)
    assert report.written == 12 - len(skipped)
    assert len(report.converted) == list(kinds.values()).count("converted")
    reasons = dict(report.skipped)
    for index, kind in enumerate(kinds):
        path = str(tmp_path / "raw" / f"image_{index}.jpg")
        if kind in fake_raw_data.SKIP_REASONS:
            assert fake_raw_data.SKIP_REASONS[kind] in reasons[path]
    assert "skipped" in report.summary() and str(tmp_path) in report.summary()
    written = sum(
        1
        for path in records.list_shards(tmp_path / "out", "train")
        for _ in tf.data.TFRecordDataset(path)
    )
    assert written == report.written
    saved = open(tmp_path / "out" / "conversion" / "train-report.json").read()
    assert '"written": %d' % report.written in saved


def test_output_does_not_depend_on_workers(tmp_path):
    items = _items(tmp_path / "raw")
    _write(items, tmp_path / "one", num_workers=1)
    _write(items, tmp_path / "four", num_workers=4)
    assert _contents(tmp_path / "one") == _contents(tmp_path / "four")


def test_interrupted_conversion_resumes_to_identical_output(tmp_path):
    items = _items(tmp_path / "raw")
    _write(items, tmp_path / "reference")
    calls = []

    def failing_encode(item):
        calls.append(item)
        if len(calls) == 6:  # inside the second shard
            raise KeyboardInterrupt
        return images.encode_image_item(item)

    with pytest.raises(KeyboardInterrupt):
        _write(items, tmp_path / "out", encode=failing_encode, num_workers=1)
    # The finished first shard stays; the interrupted one left nothing.
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == ["conversion", records.shard_name("train", 0, 3)]
    report = _write(items, tmp_path / "out")
    assert report.reused_shards == 1
    assert report.inputs == 12 and report.written + len(report.skipped) == 12
    assert _contents(tmp_path / "out") == _contents(tmp_path / "reference")


def test_leftover_temporary_shard_is_ignored_and_cleaned(tmp_path):
    """What a killed run leaves (a half-written `.tmp-<pid>`) is harmless."""
    items = _items(tmp_path / "raw", broken=False)
    _write(items, tmp_path / "reference")
    reference = _contents(tmp_path / "reference")
    os.makedirs(tmp_path / "out")
    name = records.shard_name("train", 1, NUM_SHARDS)
    with open(tmp_path / "out" / f"{name}.tmp-999999", "wb") as file:
        file.write(reference[name][:100])
    with pytest.raises(ValueError, match="No complete 'train' shards"):
        records.list_shards(tmp_path / "out", "train")
    _write(items, tmp_path / "out")
    assert not [n for n in os.listdir(tmp_path / "out") if ".tmp-" in n]
    assert _contents(tmp_path / "out") == reference


@pytest.mark.slow
def test_killed_conversion_leaves_no_partial_shard(tmp_path):
    """A real SIGKILL mid-shard; slow because the child imports TensorFlow."""
    items = _items(tmp_path / "raw", broken=False)
    script = textwrap.dedent(
        f"""
        import os, signal
        from tnet_tf.data import images, shards
        items = [images.ImageItem(path=p, label=0) for p in {[i.path for i in items]!r}]
        count = []
        def encode(item):
            count.append(item)
            if len(count) == 6:
                os.kill(os.getpid(), signal.SIGKILL)
            return images.encode_image_item(item)
        shards.write_sharded(items, {str(tmp_path / "out")!r}, "train", 3,
                             encode=encode, num_workers=1, show_progress=False)
        """
    )
    process = subprocess.run(
        [sys.executable, "-c", script], capture_output=True
    )
    assert process.returncode == -signal.SIGKILL
    leftovers = sorted(os.listdir(tmp_path / "out"))
    assert records.shard_name("train", 1, 3) + ".tmp-" in " ".join(leftovers)
    with pytest.raises(ValueError, match="incomplete"):
        records.list_shards(tmp_path / "out", "train")
    items = [images.ImageItem(path=item.path, label=0) for item in items]
    report = _write(items, tmp_path / "out")
    assert report.reused_shards == 1
    assert not [
        name for name in os.listdir(tmp_path / "out") if ".tmp-" in name
    ]
    _write(items, tmp_path / "reference")
    assert _contents(tmp_path / "out") == _contents(tmp_path / "reference")


def test_changed_inputs_rewrite_their_shards(tmp_path):
    items = _items(tmp_path / "raw", broken=False)
    _write(items, tmp_path / "out")
    report = _write(items, tmp_path / "out")
    assert report.reused_shards == NUM_SHARDS
    relabelled = [images.ImageItem(path=item.path, label=9) for item in items]
    report = _write(relabelled, tmp_path / "out")
    assert report.reused_shards == 0
    labels = {
        int(records.parse_example(serialized)["label"])
        for path in records.list_shards(tmp_path / "out", "train")
        for serialized in tf.data.TFRecordDataset(path)
    }
    assert labels == {9}
    # Another shard count replaces the old shards instead of mixing with them.
    shards.write_sharded(
        items, tmp_path / "out", "train", 2, show_progress=False
    )
    assert len(records.list_shards(tmp_path / "out", "train")) == 2


def test_examples_rejections_and_label_checks(tmp_path):
    examples = [
        records.encode_example(
            image_bytes=b"\xff\xd8\xff",
            label=label,
            height=1,
            width=1,
            filename=f"{label}.jpg",
        )
        for label in range(5)
    ]
    report = _write(
        examples,
        tmp_path / "out",
        num_classes=3,
        label_offset=1,
        rejected=[("raw/x.jpg", "no label")],
    )
    assert (report.inputs, report.written) == (6, 3)
    reasons = [reason for _, reason in report.skipped]
    assert reasons.count("invalid record: label 0 outside [1, 3]") == 1
    assert reasons.count("invalid record: label 4 outside [1, 3]") == 1
    assert ("raw/x.jpg", "no label") in report.skipped
    # A factory of items works too; shards may be empty.
    report = shards.write_sharded(
        lambda: iter(examples[:1]),
        tmp_path / "few",
        "test",
        2,
        show_progress=False,
    )
    assert report.written == 1
    assert len(records.list_shards(tmp_path / "few", "test")) == 2


def test_report_check():
    report = shards.ConversionReport(split="x", inputs=2, written=1)
    with pytest.raises(AssertionError, match="Unbalanced"):
        report.check()


def test_progress_in_a_log(tmp_path, capsys):
    # Not a terminal (captured stdout): one Keras Progbar line a split,
    # opened by the split's label, no carriage returns; nothing on stderr.
    items = _items(tmp_path / "raw", broken=False)
    _write(items, tmp_path / "out", show_progress=True, num_workers=1)
    _write(items, tmp_path / "out", show_progress=True)  # shards kept
    captured = capsys.readouterr()
    line = "train: 12 images into 3 shards 12/12 - "
    lines = captured.out.splitlines()
    assert len(lines) == 2 and all(x.startswith(line) for x in lines)
    assert lines[0].endswith("/image") and "\r" not in captured.out
    assert captured.err == ""
    _write([], tmp_path / "empty", show_progress=True)
    assert capsys.readouterr().out == "train: 0 images into 3 shards\n"
    silent = shards.progress_bar(5, "train", enabled=False)
    silent.add(5)
    assert capsys.readouterr().out == ""
