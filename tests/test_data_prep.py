"""Converters: fake raw layouts (with broken files) -> records -> read back."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from data_prep import birds
from data_prep import fmow
from data_prep import imagenet
from data_prep import verify
from tests import fake_raw_data
from tnet_tf.data import images
from tnet_tf.data import records

FEW_SHARDS = {"train": 2, "validation": 2, "test": 1}


def read_split(directory, split):
    """`{filename: parsed record as numpy}` of every record of `split`."""
    found = {}
    for path in records.list_shards(directory, split):
        for serialized in tf.data.TFRecordDataset(path):
            parsed = records.parse_example(serialized)
            example = {key: value.numpy() for key, value in parsed.items()}
            example["pixels"] = tf.io.decode_jpeg(example["image"]).numpy()
            found[example["filename"].decode()] = example
    return found


def assert_converted(fake, reports, output_dir):
    """Every expected record survives; every skip is reported with its reason."""
    assert sorted(reports) == sorted(fake.inputs)
    for split, report in reports.items():
        report.check()
        assert report.inputs == fake.inputs[split]
        reasons = dict(report.skipped)
        expected_skips = fake.skipped.get(split, {})
        assert sorted(reasons) == sorted(expected_skips)
        for path, kind in expected_skips.items():
            assert fake_raw_data.SKIP_REASONS.get(kind, kind) in reasons[path]
        found = read_split(output_dir, split)
        expected = fake.records[split]
        assert sorted(found) == sorted(expected)
        assert report.written == len(expected)
        for name, record in expected.items():
            example = found[name]
            assert example["label"] == record.label, name
            assert example["text"].decode() == record.text
            np.testing.assert_allclose(
                example["boxes"], np.reshape(record.boxes, (-1, 4)), atol=1e-6
            )
            assert (example["height"], example["width"]) == record.image.shape[
                :2
            ]
            fake_raw_data.assert_pixels_close(example["pixels"], record.image)


@pytest.mark.parametrize("layout", ["flat", "folders"])
def test_imagenet(tmp_path, layout):
    fake = fake_raw_data.make_imagenet(str(tmp_path / "raw"), layout)
    reports = imagenet.convert(
        fake.root,
        str(tmp_path / "out"),
        synsets_file=os.path.join(fake.root, "synsets.txt"),
        metadata_file=os.path.join(fake.root, "metadata.txt"),
        bounding_boxes_csv=os.path.join(fake.root, "bounding_boxes.csv"),
        validation_labels_file=os.path.join(
            fake.root, "validation_labels.txt"
        ),
        num_shards=FEW_SHARDS,
        show_progress=False,
    )
    assert_converted(fake, reports, str(tmp_path / "out"))
    example = read_split(str(tmp_path / "out"), "train")["n01484850_1.JPEG"]
    assert example["synset"] == b"n01484850"


def test_imagenet_flat_validation_needs_labels(tmp_path):
    fake = fake_raw_data.make_imagenet(str(tmp_path / "raw"), broken=False)
    with pytest.raises(ValueError, match="validation labels"):
        imagenet.work_items(fake.root, os.path.join(fake.root, "synsets.txt"))


def test_fmow(tmp_path):
    fake = fake_raw_data.make_fmow(str(tmp_path / "raw"))
    reports = fmow.convert(
        fake.root,
        str(tmp_path / "out"),
        num_shards=FEW_SHARDS,
        show_progress=False,
    )
    assert_converted(fake, reports, str(tmp_path / "out"))
    assert fmow.CATEGORIES.index("impoverished_settlement") == 42
    assert len(fmow.CATEGORIES) == len(set(fmow.CATEGORIES)) == 62


def test_fmow_smaller_side_cap(tmp_path):
    fake = fake_raw_data.make_fmow(str(tmp_path / "raw"), broken=False)
    fmow.convert(
        fake.root,
        str(tmp_path / "out"),
        max_smaller_side=16,
        num_shards=FEW_SHARDS,
        show_progress=False,
    )
    found = read_split(str(tmp_path / "out"), "validation")
    for name, record in fake.records["validation"].items():
        assert found[name]["pixels"].shape == (16, 32, 3)
        expected = tf.image.resize(record.image, (16, 32)).numpy()
        assert np.abs(found[name]["pixels"] - expected).mean() < 8


def test_fmow_crops(tmp_path):
    fake = fake_raw_data.make_fmow(str(tmp_path / "raw"), broken=False)
    reports = fmow.convert(
        fake.root,
        str(tmp_path / "out"),
        crops=True,
        max_smaller_side=0,
        num_shards=FEW_SHARDS,
        show_progress=False,
    )
    sources = {
        split: {
            name: os.path.join(folder, name)
            for folder, _, names in os.walk(
                os.path.join(fake.root, raw_folder)
            )
            for name in names
        }
        for split, raw_folder in (
            ("train", "train"),
            ("validation", "val"),
            ("test", "test"),
        )
    }
    validation = reports["validation"]
    # One image has two own boxes plus one of 2x2 px, too small to crop.
    assert (validation.inputs, validation.written) == (5, 4)
    assert "too small" in validation.skipped[0][1]
    for split, report in reports.items():
        report.check()
        found = read_split(str(tmp_path / "out"), split)
        assert len(found) == report.written
        for name, example in found.items():
            np.testing.assert_allclose(example["boxes"], [[0, 0, 1, 1]])
            source = name.rsplit("_", 1)[0] + ".jpg"
            record = fake.records[split][source]
            assert example["label"] == record.label
            box_id = int(name.rsplit("_", 1)[1][:-4])
            x, y, w, h = (
                fake_raw_data.FMOW_BOX if box_id == 7 else (40, 10, 20, 12)
            )
            top, left, height, width = fmow.crop_window(
                (x, y, w, h), fake_raw_data.HEIGHT, fake_raw_data.WIDTH
            )
            # Against the decoded source. The crop adds one JPEG round trip
            # whose 4:2:0 chroma blocks no longer align with the colour
            # edges (error ~6); a misplaced window errs by ~50.
            with open(sources[split][source], "rb") as file:
                decoded = tf.io.decode_jpeg(file.read()).numpy()
            crop = decoded[top : top + height, left : left + width]
            assert example["pixels"].shape == crop.shape
            assert np.abs(example["pixels"].astype(int) - crop).mean() < 10


def test_fmow_context_rule():
    ratios = (0.6, 0.45, 0.35, 0.25, 0.15, 0.05)
    multipliers = [fmow.context_multiplier(ratio) for ratio in ratios]
    assert multipliers == [0.15, 0.2, 0.3, 0.5, 1.0, 2.0]
    # A 20x10 box in a 100x100 image: ratios 0.2 and 0.1 -> buffers 5 and 5.
    assert fmow.crop_window((10, 50, 20, 10), 100, 100) == (45, 5, 20, 30)


@pytest.mark.parametrize("dataset", ["cub", "nabirds"])
def test_birds(tmp_path, dataset):
    fake = fake_raw_data.make_birds(str(tmp_path / "raw"), dataset)
    reports = birds.convert(
        fake.root,
        str(tmp_path / "out"),
        dataset,
        num_shards=FEW_SHARDS,
        show_progress=False,
    )
    assert_converted(fake, reports, str(tmp_path / "out"))


def test_nabirds_labels_follow_first_appearance(tmp_path):
    fake = fake_raw_data.make_birds(
        str(tmp_path / "raw"), "nabirds", broken=False
    )
    labels = birds.class_labels("nabirds", birds.read_index(fake.root))
    # Not sorted by class id: 817 comes first in images.txt.
    assert labels == {
        "817": (0, "Barn Owl"),
        "295": (1, "Mallard"),
        "1000": (2, "Snowy Egret"),
    }


def test_rerun_keeps_shards_and_interruption_resumes(tmp_path, monkeypatch):
    fake = fake_raw_data.make_birds(str(tmp_path / "raw"), "cub")
    convert = lambda out: birds.convert(  # noqa: E731
        fake.root,
        str(tmp_path / out),
        "cub",
        num_shards=FEW_SHARDS,
        show_progress=False,
        num_workers=1,
    )
    convert("reference")
    original, calls = images.encode_image_item, []

    def failing(item):
        calls.append(item)
        if len(calls) == 8:  # in the second train shard (5 + 6 items)
            raise RuntimeError("interrupted")
        return original(item)

    monkeypatch.setattr(images, "encode_image_item", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        convert("out")
    monkeypatch.setattr(images, "encode_image_item", original)
    reports = convert("out")
    assert reports["train"].reused_shards == 1
    for split in ("train", "validation"):
        for name in (records.shard_name(split, i, 2) for i in range(2)):
            with (
                open(tmp_path / "out" / name, "rb") as a,
                open(tmp_path / "reference" / name, "rb") as b,
            ):
                assert a.read() == b.read()
    assert all(r.reused_shards == 2 for r in convert("out").values())


def test_verify(tmp_path, capsys):
    fake = fake_raw_data.make_birds(str(tmp_path / "raw"), "cub", broken=False)
    birds.convert(fake.root, str(tmp_path / "out"), "cub", show_progress=False)
    summaries = verify.verify(str(tmp_path / "out"), "cub")
    assert sorted(summaries) == ["train", "validation"]
    train = summaries["train"]
    assert train.records == len(fake.records["train"]) and not train.problems
    assert "MISMATCH" in train.line()  # 5,994 in the real dataset
    # A record with an out-of-range label and undecodable bytes.
    bad = records.encode_example(
        image_bytes=b"\xff\xd8\xffbroken",
        label=201,
        height=2,
        width=2,
        filename="bad.jpg",
    )
    path = tmp_path / "bad" / records.shard_name("train", 0, 1)
    os.makedirs(path.parent)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(bad.SerializeToString())
    problems = verify.verify(str(tmp_path / "bad"), "cub")["train"].problems
    assert len(problems) == 2
    assert "label 201 outside [1, 200]" in problems[0]
    assert "does not decode" in problems[1]
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(data_dir=str(tmp_path / "bad"), dataset="cub"):
        with pytest.raises(SystemExit):
            verify.main([])
    assert "train: 1 records" in capsys.readouterr().out


@pytest.mark.slow
def test_entry_points_import_together_without_side_effects(tmp_path):
    """One process imports every entry point: no flag clash, no output.

    Slow only because the child process imports TensorFlow.
    """
    code = (
        "import data_prep.imagenet, data_prep.fmow, data_prep.birds, "
        "data_prep.verify\n"
        "from absl import flags\n"
        "assert not flags.FLAGS.is_parsed()\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = {**os.environ, "PYTHONPATH": root}
    process = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert os.listdir(tmp_path) == []


def test_converters_run_from_flags(tmp_path, capsys):
    fake = fake_raw_data.make_birds(
        str(tmp_path / "raw"), "nabirds", broken=False
    )
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(
        raw_dir=fake.root,
        output_dir=str(tmp_path / "out"),
        dataset="nabirds",
        train_shards=1,
        eval_shards=1,
    ):
        birds.main([])
    assert "train: " in capsys.readouterr().out
    assert len(records.list_shards(str(tmp_path / "out"), "train")) == 1


def test_records_read_through_the_pipeline(tmp_path):
    from tnet_tf.data import pipelines

    fake = fake_raw_data.make_birds(str(tmp_path / "raw"), "cub")
    reports = birds.convert(
        fake.root,
        str(tmp_path / "out"),
        "cub",
        num_shards=FEW_SHARDS,
        show_progress=False,
    )
    dataset = pipelines.make_dataset(
        "cub",
        str(tmp_path / "out"),
        "train",
        training=False,
        batch_size=4,
        image_size=32,
    )
    images_seen, labels = [], []
    for batch_images, batch_labels in dataset:
        images_seen.append(batch_images.numpy())
        labels += batch_labels.numpy().tolist()
    pixels = np.concatenate(images_seen)
    assert pixels.shape == (reports["train"].written, 32, 32, 3)
    assert pixels.min() >= -1 and pixels.max() <= 1
    # CUB stores labels 1..200; the pipeline subtracts the offset.
    expected = [r.label - 1 for r in fake.records["train"].values()]
    assert sorted(labels) == sorted(expected)
    # The tfds metadata names the stored labels (CUB's 0 is unused).
    import tensorflow_datasets as tfds

    pipelines.write_tfds_metadata(str(tmp_path / "out"))
    builder = tfds.builder_from_directory(str(tmp_path / "out"))
    label = builder.info.features["image"]["class"]["label"]
    assert label.names == ["background"] + [
        name.split(".", 1)[1] for name in fake_raw_data.CUB_CLASSES
    ]
    through_tfds = pipelines.make_dataset(
        "cub",
        str(tmp_path / "out"),
        "train",
        training=False,
        batch_size=4,
        image_size=32,
        source="tfds",
    )
    tfds_labels = [y for _, ys in through_tfds for y in ys.numpy().tolist()]
    assert sorted(tfds_labels) == sorted(expected)


BAD_INPUTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    os.pardir,
    "shared",
    "reference",
    "bad_inputs",
)


@pytest.mark.skipif(
    not os.path.isdir(BAD_INPUTS), reason="shared/reference/bad_inputs absent"
)
def test_converter_finishes_on_the_jpeg_that_hung_the_decoder(tmp_path):
    """The truncated JPEG that made libjpeg's recovery spin forever.

    Placed in a CUB folder, `python -m data_prep.birds` must finish (well
    within the timeout; it hung for 10+ minutes before) and account for it
    as recovered, its missing rows in mid-grey.
    """
    import json
    import shutil

    fake = fake_raw_data.make_birds(str(tmp_path / "raw"), "cub", broken=False)
    name = sorted(fake.records["train"])[0]
    victim = next(
        os.path.join(folder, name)
        for folder, _, files in os.walk(fake.root)
        if name in files
    )
    shutil.copyfile(
        os.path.join(BAD_INPUTS, "truncated_hangs_decoder.jpg"), victim
    )
    output_dir = tmp_path / "records"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_prep.birds",
            f"--raw_dir={fake.root}",
            f"--output_dir={output_dir}",
            "--dataset=cub",
            "--train_shards=1",
            "--eval_shards=1",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    with open(output_dir / "conversion" / "train-report.json") as file:
        report = json.load(file)
    assert report["inputs"] == report["written"] + len(report["skipped"])
    notes = dict(map(tuple, report["converted"]))
    assert notes[victim].startswith("truncated JPEG recovered (1358 of 1400")
    recovered = read_split(str(output_dir), "train")[name]
    assert recovered["pixels"].shape == (1400, 1400, 3)
    missing = recovered["pixels"][-16:].astype(int)  # past the data
    assert np.abs(missing - 128).max() <= 2


def test_verify_lists_a_truncated_shard(tmp_path, capsys):
    """A shard cut mid-record is listed with its name and record, not raised."""
    folder = tmp_path / "records"
    folder.mkdir()
    jpeg = tf.io.encode_jpeg(np.zeros((4, 4, 3), np.uint8)).numpy()
    for shard in range(2):
        path = folder / records.shard_name("train", shard, 2)
        with tf.io.TFRecordWriter(str(path)) as writer:
            for index in range(3):
                example = records.encode_example(
                    image_bytes=jpeg,
                    label=index,
                    height=4,
                    width=4,
                    filename=f"{shard}_{index}.jpg",
                )
                writer.write(example.SerializeToString())
    cut = folder / records.shard_name("train", 1, 2)
    cut.write_bytes(cut.read_bytes()[:-40])  # inside record 2
    summary = verify.verify(str(folder))["train"]
    assert summary.records == 5  # the readable ones are still checked
    assert summary.problems == [
        "train-00001-of-00002.tfrecord#2: truncated or corrupt record; the "
        "rest of the shard is unreadable"
    ]


def test_converters_read_nothing_outside_the_raw_folder(tmp_path):
    """Absolute, `..` and symlinked entries are skipped unread, with a reason
    that shows no file content; a dangling link inside stays "unreadable"."""
    fake = fake_raw_data.make_birds(str(tmp_path / "raw"), "cub", broken=False)
    outside = tmp_path / "outside.jpg"  # a valid JPEG next to the raw folder
    fake_raw_data.write_image_file(
        str(outside), "rgb_jpeg", fake_raw_data.quadrant_image(1)
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CONTENT")
    images_dir = os.path.join(fake.root, "images")
    os.symlink(outside, os.path.join(images_dir, "linked_outside.jpg"))
    fake_raw_data.write_image_file(
        os.path.join(images_dir, "dangling.jpg"), "unreadable", None
    )
    entries = {
        "101": str(secret),  # absolute: os.path.join would drop raw_dir
        "102": "../../outside.jpg",
        "103": "linked_outside.jpg",
        "104": "dangling.jpg",
    }
    for name, lines in (
        ("images.txt", [f"{i} {path}" for i, path in entries.items()]),
        ("image_class_labels.txt", [f"{i} 1" for i in entries]),
        ("train_test_split.txt", [f"{i} 1" for i in entries]),
    ):
        with open(os.path.join(fake.root, name), "a") as file:
            file.write("".join(f"{line}\n" for line in lines))
    reports = birds.convert(
        fake.root,
        str(tmp_path / "out"),
        "cub",
        num_shards=FEW_SHARDS,
        show_progress=False,
    )
    train = reports["train"]
    assert train.written == len(fake.records["train"])
    skipped = {
        os.path.basename(path): reason for path, reason in train.skipped
    }
    raw = os.path.realpath(fake.root)
    assert skipped["secret.txt"].startswith(f"outside the raw folder {raw}")
    assert skipped["outside.jpg"].startswith("outside the raw folder")
    assert skipped["linked_outside.jpg"].startswith("outside the raw folder")
    assert skipped["dangling.jpg"].startswith("unreadable")
    summary = train.summary()
    assert "SECRET" not in summary and "53 45 43" not in summary
    _, _, _, reason = images.reencode_as_rgb_jpeg(b"SECRET-CONTENT")
    assert (
        reason == "not a known image format (not JPEG, PNG, GIF, BMP or WebP)"
    )
