"""`check_records`: the label and image-format checks of both input sources
(`record_source`, `tfds_source`), made before a record is decoded."""

import tensorflow as tf

from tnet_tf.data import images
from tnet_tf.data import records

# What `images.image_format` recognises (its signature table, read here as
# it is there, and WebP's RIFF header): the formats the converters store,
# all of which `tf.io.decode_image` decodes.
_IMAGE_FORMATS = "JPEG, PNG, GIF, BMP or WebP"


def _is_known_image(image_bytes):
    """Graph version of `images.image_format(...) is not None`."""

    def starts_with(signature, at=0):
        head = tf.strings.substr(image_bytes, at, len(signature))
        return tf.equal(head, signature)

    known = [
        starts_with(signature) for signature, _ in images.IMAGE_SIGNATURES
    ]
    known.append(tf.logical_and(starts_with(b"RIFF"), starts_with(b"WEBP", 8)))
    return tf.reduce_any(tf.stack(known), axis=0)


def check_records(labels, image_bytes, name, spec):
    """Checks a vector of records' labels and image bytes.

    A label outside `[0, spec.num_classes)` (after the offset) or image
    bytes of no known format fail the pipeline, naming the first record at
    fault, instead of passing through silently or failing in the decoder
    with no file named.

    Args:
        labels: int64 vector, offset already subtracted.
        image_bytes: string vector, the encoded images.
        name: `index -> message parts` naming the record at that index of
            the vectors (its shard and index, or its tfds id).
        spec: the `DatasetSpec`.

    Returns:
        The checks (bool tensors) to make the records depend on.
    """
    label_ok = tf.logical_and(labels >= 0, labels < spec.num_classes)
    image_ok = _is_known_image(image_bytes)

    def first(ok):
        return tf.argmin(tf.cast(ok, tf.int32))

    label_check = records.assert_record(
        tf.reduce_all(label_ok),
        lambda: (
            *name(first(label_ok)),
            ": label ",
            labels[first(label_ok)],
            f" outside [0, {spec.num_classes}) of dataset {spec.name}",
        ),
    )
    image_check = records.assert_record(
        tf.reduce_all(image_ok),
        lambda: (
            *name(first(image_ok)),
            f": the image bytes are not {_IMAGE_FORMATS}",
        ),
    )
    return [label_check, image_check]
