"""The TFRecord schema: encode -> parse round trips, validation, shard names."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.data import records

BOXES = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]], np.float32)


def _serialized(**overrides):
    fields = dict(
        image_bytes=b"\xff\xd8\xffjpeg",
        label=7,
        height=32,
        width=64,
        filename="a.JPEG",
        text="tench",
        synset="n01440764",
        boxes=BOXES,
    )
    fields.update(overrides)
    return records.encode_example(**fields).SerializeToString()


def _numpy(parsed):
    return {key: value.numpy() for key, value in parsed.items()}


def test_every_key_is_written():
    example = tf.train.Example.FromString(_serialized())
    assert sorted(example.features.feature) == sorted(records.KEYS)
    feature = example.features.feature
    assert feature["image/object/bbox/label"].int64_list.value == [7, 7]
    assert feature["image/colorspace"].bytes_list.value == [b"RGB"]
    assert feature["image/channels"].int64_list.value == [3]
    assert feature["image/format"].bytes_list.value == [b"JPEG"]


def test_round_trip_eager():
    parsed = _numpy(records.parse_example(tf.constant(_serialized())))
    assert parsed["image"] == b"\xff\xd8\xffjpeg"
    assert parsed["label"] == 7
    assert (parsed["height"], parsed["width"]) == (32, 64)
    assert parsed["filename"] == b"a.JPEG"
    assert parsed["text"] == b"tench"
    assert parsed["synset"] == b"n01440764"
    np.testing.assert_allclose(parsed["boxes"], BOXES)


def test_round_trip_inside_tf_data():
    serialized = [_serialized(), _serialized(boxes=None, label=3)]
    dataset = tf.data.Dataset.from_tensor_slices(serialized)
    dataset = dataset.map(records.parse_example)
    assert dataset.element_spec["boxes"].shape.as_list() == [None, 4]
    first, second = [_numpy(element) for element in dataset]
    np.testing.assert_allclose(first["boxes"], BOXES)
    assert second["boxes"].shape == (0, 4)
    assert second["label"] == 3


@pytest.mark.parametrize("boxes", [None, [], np.zeros((0, 4))])
def test_no_boxes(boxes):
    parsed = records.parse_example(_serialized(boxes=boxes))
    assert parsed["boxes"].shape == (0, 4)


def test_bad_box_shape_raises():
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        _serialized(boxes=[[0.1, 0.2, 0.3]])


def test_validate_example():
    parsed = records.parse_example(_serialized())
    assert records.validate_example(parsed, num_classes=10) == []
    assert (
        records.validate_example(parsed, num_classes=7, label_offset=1) == []
    )
    assert "label 7 outside [0, 6]" in records.validate_example(parsed, 7)
    bad = records.parse_example(
        _serialized(image_bytes=b"", height=0, boxes=[[0.5, 0.0, 0.4, 1.2]])
    )
    problems = records.validate_example(bad, num_classes=10)
    assert len(problems) == 3
    assert problems[0] == "empty image bytes"
    assert problems[1].startswith("bad image size")
    assert problems[2].startswith("bad box")
    negative = records.parse_example(_serialized(label=0))
    assert records.validate_example(negative, label_offset=1) == [
        "label 0 below 1"
    ]


def test_shard_name():
    assert records.shard_name("train", 0, 4) == "train-00000-of-00004.tfrecord"
    assert records.shard_name("validation", 127, 128) == (
        "validation-00127-of-00128.tfrecord"
    )
    with pytest.raises(ValueError, match="outside"):
        records.shard_name("train", 4, 4)


def _touch(directory, *names):
    for name in names:
        open(os.path.join(directory, name), "wb").close()


def test_list_shards(tmp_path):
    names = [records.shard_name("train", i, 3) for i in range(3)]
    _touch(tmp_path, *reversed(names))
    # Temporary files and other splits are never listed.
    _touch(tmp_path, names[0] + ".tmp-123", records.shard_name("test", 0, 1))
    listed = records.list_shards(tmp_path, "train")
    assert [os.path.basename(path) for path in listed] == names


def test_list_shards_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        records.list_shards(tmp_path / "missing", "train")
    _touch(tmp_path, records.shard_name("test", 0, 1))
    with pytest.raises(
        ValueError, match="No complete 'train'.*Splits found: test"
    ):
        records.list_shards(tmp_path, "train")
    _touch(tmp_path, records.shard_name("train", 0, 2))
    with pytest.raises(ValueError, match="incomplete: 1 of 2 shards missing"):
        records.list_shards(tmp_path, "train")
    _touch(tmp_path, records.shard_name("train", 0, 3))
    with pytest.raises(ValueError, match="mix shard counts"):
        records.list_shards(tmp_path, "train")
