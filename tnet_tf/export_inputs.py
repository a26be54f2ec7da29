"""What the SavedModel's endpoints (`tnet_tf.export`) do with their inputs
before TNet's call, or instead of the dense call: uint8 scaling, decoding
and resizing, and the lazy reading of encoded images one at a time.
"""

import tensorflow as tf

from tnet_tf import lazy_reading
from tnet_tf.data import augment
from tnet_tf.models import traversal_limits

# Per-location outputs passed through from the model's dict, in this order.
ATTENTION_OUTPUTS = (
    "attended_boxes",
    "attended_levels",
    "attended_cells",
    "attended_log_probs",
    "feature_weights",
)


def uint8_to_model_range(images):
    """uint8 images in [0, 255] as float32 in [-1, 1]."""
    # The same scaling as the data pipeline: [0, 255] -> [0, 1] -> [-1, 1].
    images = tf.image.convert_image_dtype(images, tf.float32)
    return augment.scale_to_minus_one_one(images)


def decode_batch(image_bytes, image_size):
    """Encoded images decoded and preprocessed as in evaluation, each
    resized to `image_size`: float32 `(batch, height, width, 3)`."""
    height, width = image_size
    return tf.map_fn(
        lambda one: augment.preprocess_for_evaluation(one, image_size),
        image_bytes,
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
    )


def lazy_batch(model, contents, locations, any_format=False):
    """TNet's outputs for a batch of JPEG bytes, each read lazily
    (`lazy_reading.call_lazy`, one image at a time); with `any_format`, of
    encoded images of any format, those not JPEG decoded once to uint8 (as
    `lazy_reading.open_image` opens a file)."""
    keys = ("logits",) + ATTENTION_OUTPUTS[:-1]
    if model.feature_weighting is not None:
        keys += ("feature_weights",)

    def read(image):
        outputs = lazy_reading.call_lazy(model, image, locations)
        # float32 whatever the compute dtype, as the signature says.
        return {
            key: tf.cast(outputs[key][0], tf.float32)
            if outputs[key].dtype.is_floating
            else outputs[key][0]
            for key in keys
        }

    def one(content):
        jpeg = lambda: read(lazy_reading.EncodedImage(content))
        if not any_format:
            return jpeg()
        magic = lazy_reading.JPEG_MAGIC
        return tf.cond(
            tf.strings.substr(content, 0, len(magic)) == magic,
            jpeg,
            lambda: read(
                lazy_reading.DecodedImage(
                    tf.io.decode_image(
                        content,
                        channels=3,
                        dtype=tf.uint8,
                        expand_animations=False,
                    )
                )
            ),
        )

    # Vectors per image: the whole image, then each level's regions.
    vectors = regions = 1
    for count in locations[: traversal_limits.cell_levels(locations)]:
        regions *= count
        vectors += regions
    specs = {"logits": tf.TensorSpec([model.config.num_classes], tf.float32)}
    for key in keys[1:]:
        integer = key in ("attended_levels", "attended_cells")
        specs[key] = tf.TensorSpec(
            [vectors, 4] if key == "attended_boxes" else [vectors],
            tf.int32 if integer else tf.float32,
        )
    return tf.map_fn(one, contents, fn_output_signature=specs)
