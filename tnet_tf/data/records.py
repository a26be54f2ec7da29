"""The one TFRecord schema shared by every dataset.

Records are `tf.train.Example` protos with the Inception-style keys of the
original release (see `original_implementation_detail.md` §11.2): the encoded
image, its size and colour space, the class label with its text and synset,
the basename of the source file and, where the dataset has them, normalised
object boxes. Converters write them with `encode_example`; pipelines read them
with `parse_example`; both converters and `data_prep.verify` check them with
`validate_example`.

Shards are named `<split>-<index>-of-<count>.tfrecord` (0-based, 5 digits).
`shard_records` reads one shard with each record's index, and fails naming
the shard and the record where a truncated or corrupt shard stops being
readable (TensorFlow's own error names neither).
"""

import os
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

KEYS = (
    "image/encoded",
    "image/format",
    "image/height",
    "image/width",
    "image/channels",
    "image/colorspace",
    "image/class/label",
    "image/class/text",
    "image/class/synset",
    "image/filename",
    "image/object/bbox/xmin",
    "image/object/bbox/ymin",
    "image/object/bbox/xmax",
    "image/object/bbox/ymax",
    "image/object/bbox/label",
)
# Box coordinates are stored per key, in the order of the release's writers;
# `parse_example` stacks them as (ymin, xmin, ymax, xmax), the order of
# `tf.image.sample_distorted_bounding_box`.
BOX_KEYS = ("ymin", "xmin", "ymax", "xmax")

SHARD_SUFFIX = ".tfrecord"
# The TFRecord framing around each record's data: its length (8 bytes), the
# length's CRC (4) and the data's CRC (4).
RECORD_FRAMING_BYTES = 16
# Records per chunk whose bytes `shard_records` sums in one step.
_CHUNK = 16
_SHARD_PATTERN = re.compile(
    r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$"
)


def _bytes(values):
    values = [
        v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values
    ]
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _ints(values):
    values = [int(v) for v in values]
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _floats(values):
    values = [float(v) for v in values]
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def encode_example(
    *,
    image_bytes: bytes,
    label: int,
    height: int,
    width: int,
    filename: str,
    text: str = "",
    synset: str = "",
    boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
    image_format: str = "JPEG",
    colorspace: str = "RGB",
    channels: int = 3,
) -> tf.train.Example:
    """Builds one record.

    Args:
        image_bytes: the encoded image (`bytes`).
        label: int, the class label as the dataset stores it (ImageNet and
            CUB 1-based, others 0-based; the reader subtracts the offset).
        height, width: ints, the size of the encoded image in pixels.
        filename: str, the basename of the source file.
        text: str, the human-readable class name.
        synset: str, the WordNet id (ImageNet only).
        boxes: optional float array `(n, 4)` of `(ymin, xmin, ymax, xmax)`
            normalised to [0, 1]. Every box gets `label` as its box label.
        image_format, colorspace, channels: the encoding description.

    Returns:
        A `tf.train.Example`.
    """
    boxes = np.asarray([] if boxes is None else boxes, np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)  # [] and None both mean "no boxes"
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"`boxes` must have shape (n, 4), got {boxes.shape}.")
    feature = {
        "image/encoded": _bytes([image_bytes]),
        "image/format": _bytes([image_format]),
        "image/height": _ints([height]),
        "image/width": _ints([width]),
        "image/channels": _ints([channels]),
        "image/colorspace": _bytes([colorspace]),
        "image/class/label": _ints([label]),
        "image/class/text": _bytes([text]),
        "image/class/synset": _bytes([synset]),
        "image/filename": _bytes([filename]),
        "image/object/bbox/label": _ints([label] * len(boxes)),
    }
    for column, name in enumerate(BOX_KEYS):
        feature[f"image/object/bbox/{name}"] = _floats(boxes[:, column])
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _feature_spec():
    string = tf.io.FixedLenFeature([], tf.string, default_value="")
    integer = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/height": integer,
        "image/width": integer,
        "image/class/label": integer,
        "image/class/text": string,
        "image/class/synset": string,
        "image/filename": string,
    }
    for name in BOX_KEYS:
        spec[f"image/object/bbox/{name}"] = tf.io.VarLenFeature(tf.float32)
    return spec


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialized record (a scalar string tensor).

    Works eagerly and inside `tf.data.Dataset.map`. Missing optional keys
    read as "" (strings) or -1 (ints); boxes read as shape `(0, 4)`.

    Returns:
        A dict: `image` (encoded bytes, tf.string), `label` (int64, as
        stored), `height`, `width` (int64), `filename`, `text`, `synset`
        (tf.string) and `boxes` (float32 `(n, 4)`, ymin, xmin, ymax, xmax).
    """
    parsed = tf.io.parse_single_example(serialized, _feature_spec())
    coordinates = [
        tf.sparse.to_dense(parsed[f"image/object/bbox/{name}"])
        for name in BOX_KEYS
    ]
    return {
        "image": parsed["image/encoded"],
        "label": parsed["image/class/label"],
        "height": parsed["image/height"],
        "width": parsed["image/width"],
        "filename": parsed["image/filename"],
        "text": parsed["image/class/text"],
        "synset": parsed["image/class/synset"],
        "boxes": tf.stack(coordinates, axis=-1),  # (n, 4)
    }


def _numpy(value):
    return value.numpy() if hasattr(value, "numpy") else value


def validate_example(
    example_dict: dict[str, Any],
    num_classes: int | None = None,
    label_offset: int = 0,
) -> list[str]:
    """Checks a parsed record (the output of `parse_example`, run eagerly).

    Does not decode the image (`data_prep.verify` does that); checks that
    the image bytes are present, the size is positive, the label minus
    `label_offset` lies in `[0, num_classes)` when `num_classes` is given,
    and every box is ordered and inside [0, 1].

    Returns:
        A list of human-readable problems; empty when the record is fine.
    """
    problems = []
    if len(_numpy(example_dict["image"])) == 0:
        problems.append("empty image bytes")
    height = int(_numpy(example_dict["height"]))
    width = int(_numpy(example_dict["width"]))
    if height <= 0 or width <= 0:
        problems.append(f"bad image size {height}x{width}")
    label = int(_numpy(example_dict["label"]))
    if num_classes is None:
        if label < label_offset:
            problems.append(f"label {label} below {label_offset}")
    elif not label_offset <= label < label_offset + num_classes:
        problems.append(
            f"label {label} outside [{label_offset}, "
            f"{label_offset + num_classes - 1}]"
        )
    boxes = _numpy(example_dict.get("boxes", np.zeros((0, 4))))
    boxes = np.asarray(boxes, np.float32)
    for ymin, xmin, ymax, xmax in boxes.reshape(-1, 4):
        if not (0 <= ymin <= ymax <= 1 and 0 <= xmin <= xmax <= 1):
            problems.append(
                f"bad box {[float(v) for v in (ymin, xmin, ymax, xmax)]}"
            )
    return problems


def shard_name(split: str, index: int, num_shards: int) -> str:
    """The file name of shard `index` (0-based) of `num_shards`.

    Example:
    >>> shard_name("train", 0, 4)
    'train-00000-of-00004.tfrecord'
    """
    if not 0 <= index < num_shards:
        raise ValueError(f"Shard index {index} outside [0, {num_shards}).")
    return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def list_shards(directory: str | os.PathLike, split: str) -> list[str]:
    """The sorted paths of the complete shards of `split` in `directory`.

    Temporary files of an interrupted conversion are never listed.

    Raises:
        ValueError: when the split has no shards, when shards of different
            counts are mixed, or when some shards are missing.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"Record directory {directory!r} does not exist.")
    found = {}
    for name in os.listdir(directory):
        match = _SHARD_PATTERN.match(name)
        if match and match.group("split") == split:
            found[name] = int(match.group("count"))
    if not found:
        matches = map(_SHARD_PATTERN.match, os.listdir(directory))
        available = sorted(
            {match.group("split") for match in matches if match}
        )
        raise ValueError(
            f"No complete '{split}' shards ({split}-NNNNN-of-NNNNN{SHARD_SUFFIX}) "
            f"in {directory!r}. Splits found: {', '.join(available) or 'none'}."
        )
    counts = sorted(set(found.values()))
    if len(counts) > 1:
        raise ValueError(
            f"Shards of split '{split}' in {directory!r} mix shard counts "
            f"{counts}; remove the stale ones."
        )
    expected = [shard_name(split, i, counts[0]) for i in range(counts[0])]
    missing = [name for name in expected if name not in found]
    if missing:
        raise ValueError(
            f"Split '{split}' in {directory!r} is incomplete: {len(missing)} "
            f"of {counts[0]} shards missing (first: {missing[0]}). Re-run the "
            "converter."
        )
    return [os.path.join(directory, name) for name in expected]


def assert_record(
    condition: tf.Tensor, message: Callable[[], Sequence[Any]]
) -> tf.Tensor:
    """An assertion for graph code that names the record at fault.

    `message` is a function returning the parts of the message: strings
    and scalar tensors (string or numeric), joined into one line. It is
    called inside the failing branch only, so a passing check costs one
    condition, and the message may index tensors that are empty when the
    check passes. Works eagerly and inside `tf.data` functions; the failure
    is an `InvalidArgumentError` whose text holds the message.

    Returns:
        A bool tensor (`condition`, once checked): make the guarded value
        depend on it, e.g.
        `with tf.control_dependencies([check]): x = tf.identity(x)`.
    """

    def fail():
        parts = [
            part
            if isinstance(part, str) or part.dtype == tf.string
            else tf.strings.as_string(part)
            for part in map(tf.convert_to_tensor, message())
        ]
        line = tf.strings.join(parts)
        with tf.control_dependencies([tf.debugging.Assert(False, [line])]):
            return tf.constant(False)

    # One cond on the passing path: `tf.debugging.Assert` alone would add a
    # second (its own guard) and format the message every time.
    return tf.cond(condition, lambda: tf.constant(True), fail)


def shard_records(
    path: str | tf.Tensor,
    size: int | tf.Tensor,
    check_chunk: Callable[[dict], Iterable[tf.Tensor]] | None = None,
) -> tf.data.Dataset:
    """The serialized records of one shard; errors name the shard and record.

    TensorFlow reports a shard cut mid-record only as "truncated record at
    <offset>", without the file. Here reading stops at the first unreadable
    record and, at the end of the shard, the bytes read are compared with
    the file's `size`: a shortfall fails with the shard's path, the index
    of the record that could not be read and the byte offset. Nothing is
    read twice. The work is done per chunk of 16 records, since a tf.data
    function call costs more than reading a record.

    Args:
        path: the shard's path (a string or a scalar string tensor, e.g.
            inside `interleave`).
        size: the shard's size in bytes (`os.path.getsize`), taken when the
            shard is listed.
        check_chunk: optional; called on each chunk of records with a
            dict: `shard` (the path), `index` (int64 vector, 0-based, the
            records' indices in the shard) and `serialized` (string
            vector; empty at the end of the shard). Returns the checks
            (e.g. `assert_record`s) that the chunk's records wait for.

    Returns:
        A `tf.data.Dataset` of the serialized records (scalar strings).
    """
    path = tf.convert_to_tensor(path, tf.string)
    size = tf.cast(size, tf.int64)
    # An error in TFRecordDataset ends the shard there (it moves on to the
    # next file, and there is none). An empty chunk, which `batch` never
    # makes, marks the end of the shard.
    chunks = tf.data.TFRecordDataset(path).ignore_errors().batch(_CHUNK)
    end = tf.data.Dataset.from_tensors(tf.constant([], tf.string))

    def step(state, chunk):
        count, offset = state
        at_end = tf.equal(tf.size(chunk), 0)
        complete = tf.logical_or(
            tf.logical_not(at_end), tf.equal(offset, size)
        )
        assertion = assert_record(
            complete,
            lambda: (
                path,
                "#",
                count,
                ": truncated or corrupt record; the shard "
                "cannot be read past byte ",
                offset,
                " of its ",
                size,
            ),
        )
        chunk_size = tf.size(chunk, out_type=tf.int64)
        checks = [assertion]
        if check_chunk is not None:
            named = {
                "shard": path,
                "index": tf.range(count, count + chunk_size),
                "serialized": chunk,
            }
            checks += list(check_chunk(named))
        lengths = tf.cast(tf.strings.length(chunk, unit="BYTE"), tf.int64)
        with tf.control_dependencies(checks):
            chunk = tf.identity(chunk)
            count = count + chunk_size
            offset = offset + tf.reduce_sum(lengths + RECORD_FRAMING_BYTES)
        return (count, offset), chunk

    start = (tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    # Whole chunks are split by unbatch: no function call per record.
    return chunks.concatenate(end).scan(start, step).unbatch()
