"""SavedModel serving signatures and `.keras` files for TNet and its baselines.

`export_saved_model` writes a SavedModel that runs with TensorFlow alone
(`tf.saved_model.load(path).signatures["serve"]`), without `tnet_tf`. The
number of attended locations changes the traversal graph, so each location
setting is its own endpoint; the weights are shared by all of them.

Endpoints (every model answers the same call, so a baseline has the same
ones; it takes only the empty setting `[]` and attends its whole image):

- `serve` (also `serving_default`): float32 images `(batch, H, W, 3)` in
  [-1, 1] of any size at least `base_resolution`, at the config's
  `locations_per_level`.
- `serve_locations_<k1>_<k2>...`: the same input at another setting, e.g.
  `serve_locations_2_1`, `serve_locations_0` (the location module runs,
  nothing is attended) and `serve_locations_none` (`[]`: level 1 only).
- `serve_uint8`: uint8 images `(batch, H, W, 3)` in [0, 255], any size,
  scaled to [-1, 1] and not resized.
- `serve_image_bytes`: a batch of encoded images (JPEG, PNG, ...), each
  decoded and preprocessed as in evaluation (`tnet_tf.data.augment`:
  bilinear resize to `image_size` without keeping the aspect, scale to
  [-1, 1]), so images of different sizes share a batch.
- `serve_jpeg_lazy` (TNet only): a batch of JPEGs of any size, each read
  lazily at full resolution, one after another: only the boxes TNet
  attends are decoded, each at the coarsest DCT ratio that keeps the base
  resolution (`tnet_tf.lazy_reading`, `max_ratio` 8; the same traced call
  as `lazy_reading.classify_file`), never the whole image at full size.
- `serve_image_lazy` (TNet only): a batch of encoded images of any size and
  format, each read at full resolution as `lazy_reading.classify_file`
  reads a file: a JPEG lazily as `serve_jpeg_lazy`, any other format (PNG,
  GIF, BMP) decoded once to uint8 and every region sampled from that array,
  never a full-size float copy.
- `serve_anytime` (TNet attending cells by default): anytime inference,
  `images` as `serve` and a float32 scalar `threshold` in (0, 1]: each
  image attends the default setting's top-level locations one at a time
  (each with its subtree) and stops once its top softmax probability
  reaches the threshold; each step reads only the images still undecided
  (`tnet_tf.models.anytime.traced_anytime`, the outputs of
  `model.predict_anytime(images, threshold=...)`). It returns `logits`,
  `probabilities`, `confidence`, `locations_used` int32 and
  `multiply_adds` int64 (counted at `image_size`) per image, and
  `attended_cells`, `attended_levels` and `attended_boxes` with level 0
  and cell -1 in the slots of locations not attended.

Every other endpoint returns a dict: `logits` `(batch, classes)`,
`probabilities` (their softmax), `image_is_finite` bool `(batch,)`,
`attended_boxes` `(batch, T, 4)` normalised `y0, x0, y1, x1`,
`attended_levels` int32 `(batch, T)`, `attended_cells` int32 `(batch, T)`,
`attended_log_probs` `(batch, T)` and, with feature weighting,
`feature_weights` `(batch, T)`. The names are those of the model's output
dict, so `tnet_tf.viz` draws either.

Non-finite pixels (NaN or infinite) do not fail the batch, since a served
batch may gather several clients' requests: the images holding any are
`False` in `image_is_finite` and their `logits` and `probabilities` are NaN;
every other image of the batch gets the outputs it gets alone. An input of
the wrong rank or channel count (e.g. one `(height, width, 3)` image without
its batch axis) fails with `InvalidArgumentError`: "Shape of tensor images
[96,96,3] is not compatible with expected shape [?,?,?,3]".

A JSON description of the endpoints is written to
`<path>/assets/signature_info.json`.

Reference: the serving input types follow TF Model Garden's
`serving/image_classification.py` (`image_tensor`, `image_bytes`).
"""

import json
import os
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tnet_tf.data import augment
from tnet_tf.export_inputs import ATTENTION_OUTPUTS
from tnet_tf.export_inputs import decode_batch
from tnet_tf.export_inputs import lazy_batch
from tnet_tf.export_inputs import uint8_to_model_range
from tnet_tf.models import anytime

DEFAULT_ENDPOINT = "serve"
UINT8_ENDPOINT = "serve_uint8"
IMAGE_BYTES_ENDPOINT = "serve_image_bytes"
LAZY_JPEG_ENDPOINT = "serve_jpeg_lazy"
LAZY_IMAGE_ENDPOINT = "serve_image_lazy"
ANYTIME_ENDPOINT = "serve_anytime"
SIGNATURE_INFO_FILE = "signature_info.json"
FINITE_OUTPUT = "image_is_finite"


def endpoint_name(locations_per_level: Sequence[int]) -> str:
    """The endpoint name of a location setting.

    Example:
    >>> endpoint_name([2, 1])
    'serve_locations_2_1'
    >>> endpoint_name([])
    'serve_locations_none'
    """
    if not locations_per_level:
        return "serve_locations_none"
    return "serve_locations_" + "_".join(str(k) for k in locations_per_level)


def export_saved_model(
    model: keras.Model,
    path: str | os.PathLike,
    locations_settings: Sequence[Sequence[int]] | None = None,
    image_size: int | Sequence[int] | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Writes `model` as a SavedModel, one endpoint per input type and setting.

    Args:
        model: a `tnet_tf.TNet` or `tnet_tf.BaselineClassifier`.
        path: output directory.
        locations_settings: optional list of extra `locations_per_level`
            settings, each a list such as `[2, 1]`, `[0]` or `[]`; one
            `serve_locations_...` endpoint each. Checked against the grid
            before anything is traced: a bad setting raises `ValueError`.
            A baseline takes `[]` only.
        image_size: int or `(height, width)` the `serve_image_bytes` endpoint
            resizes to; defaults to `model.config.image_size`.
        verbose: print the exported variables (Keras' `write_out`).

    Returns:
        The signature description written to
        `<path>/assets/signature_info.json`: a dict with `model`,
        `image_size`, `default_endpoint`, `outputs` (the keys every endpoint
        returns) and `endpoints`, mapping each endpoint name to its `input`
        and `locations_per_level`.

    Raises:
        ValueError: for a bad entry of `locations_settings`, or a setting
        (default included) that goes deeper than images of `image_size`
        allow (the message names the deepest valid setting). Images smaller
        than `base_resolution`, or too small for an endpoint's depth, are
        rejected when served, by the model's own check
        (`InvalidArgumentError`).

    Example:
    >>> model = tnet_tf.presets.build("tiny_test")
    >>> export_saved_model(model, "/tmp/tiny", [[0], [], [3]])
    >>> served = tf.saved_model.load("/tmp/tiny")
    >>> served.signatures["serve_locations_3"](images=images)["logits"]
    """
    image_size = augment.image_size_pair(
        model.config.image_size if image_size is None else image_size
    )
    settings = _resolve_settings(model, locations_settings)
    default_locations = model.resolve_locations(None)
    # `serve_image_bytes` feeds images of `image_size`, the size the model
    # is served at: every endpoint must be able to traverse them.
    for locations in (default_locations,) + settings:
        model.check_traversal_depth(locations, *image_size)
    # The keys the endpoints return, as traced.
    served_keys = []

    def forward(images, locations, outputs=None):
        if outputs is None:
            outputs = model(
                images, training=False, locations_per_level=locations
            )
            finite = tf.reduce_all(tf.math.is_finite(images), axis=[1, 2, 3])
        else:  # decoded from bytes: finite
            finite = tf.ones_like(outputs["logits"][:, 0], tf.bool)
        logits = tf.cast(outputs["logits"], tf.float32)
        # A non-finite image's outputs are NaN whatever the model made of
        # them, so that none passes for a prediction.
        logits = tf.where(finite[:, None], logits, float("nan"))
        served = {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits),
            FINITE_OUTPUT: finite,
        }
        for key in ATTENTION_OUTPUTS:
            if key in outputs:
                value = outputs[key]
                # float32 whatever the compute dtype (mixed precision).
                if value.dtype.is_floating:
                    value = tf.cast(value, tf.float32)
                served[key] = value
        served_keys[:] = list(served)
        return served

    float_images = tf.TensorSpec([None, None, None, 3], tf.float32)
    archive = keras.export.ExportArchive()
    archive.track(model)
    endpoints = {}

    def add(name, fn, spec, input_kind, locations):
        endpoints[name] = {
            "input": input_kind,
            "locations_per_level": (
                None if locations is None else list(locations)
            ),
        }

        def checked(images):
            # A loaded signature passes on inputs of any shape; without this
            # a (96, 96, 3) image reads as 96 images of 96x3 px.
            return fn(tf.ensure_shape(images, spec.shape))

        return archive.add_endpoint(name, checked, input_signature=[spec])

    # Tracing the traversal is the slow part of the export, so the model is
    # traced once per setting and the other input types call that function.
    # `serve` is registered first, so Keras also publishes it as
    # `serving_default`.
    float_input = "float32 (batch, height, width, 3) in [-1, 1]"
    serve = add(
        DEFAULT_ENDPOINT,
        lambda images: forward(images, default_locations),
        float_images,
        float_input,
        default_locations,
    )
    for locations in settings:
        add(
            endpoint_name(locations),
            (
                serve
                if locations == default_locations
                else lambda images, locations=locations: forward(
                    images, locations
                )
            ),
            float_images,
            float_input,
            locations,
        )
    add(
        UINT8_ENDPOINT,
        lambda images: serve(uint8_to_model_range(images)),
        tf.TensorSpec([None, None, None, 3], tf.uint8),
        "uint8 (batch, height, width, 3) in [0, 255], not resized",
        default_locations,
    )
    add(
        IMAGE_BYTES_ENDPOINT,
        lambda images: serve(decode_batch(images, image_size)),
        tf.TensorSpec([None], tf.string),
        f"string (batch,) encoded images, resized to {list(image_size)}",
        default_locations,
    )
    if hasattr(model, "region_reader"):
        add(
            LAZY_JPEG_ENDPOINT,
            lambda images: forward(
                None,
                default_locations,
                lazy_batch(model, images, default_locations),
            ),
            tf.TensorSpec([None], tf.string),
            "string (batch,) JPEGs of any size, read lazily at full "
            "resolution",
            default_locations,
        )
        add(
            LAZY_IMAGE_ENDPOINT,
            lambda images: forward(
                None,
                default_locations,
                lazy_batch(model, images, default_locations, any_format=True),
            ),
            tf.TensorSpec([None], tf.string),
            "string (batch,) encoded images of any size and format, read at "
            "full resolution (JPEGs lazily, others from one uint8 decode)",
            default_locations,
        )
    attends = bool(default_locations) and default_locations[0] > 0
    if hasattr(model, "region_reader") and attends:
        _add_anytime(archive, endpoints, model, image_size, default_locations)
    archive.write_out(str(path), verbose=verbose)

    outputs = list(served_keys)
    info = {
        "model": model.name,
        "image_size": list(image_size),
        "default_endpoint": DEFAULT_ENDPOINT,
        "outputs": outputs,
        "endpoints": endpoints,
    }
    assets = os.path.join(str(path), "assets")
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, SIGNATURE_INFO_FILE), "w") as file:
        json.dump(info, file, indent=2)
    return info


def _add_anytime(archive, endpoints, model, image_size, locations):
    """Registers `serve_anytime` (`anytime.traced_anytime`), its
    multiply-adds counted at `image_size`."""
    cost = anytime.anytime_cost(model, *image_size, locations[1:])

    def serve_anytime(images, threshold):
        outputs = anytime.traced_anytime(model, images, threshold, cost)
        outputs["probabilities"] = tf.nn.softmax(outputs["logits"])
        return outputs

    image_spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    archive.add_endpoint(
        ANYTIME_ENDPOINT,
        # As `checked` in `export_saved_model`: a loaded signature takes
        # inputs of any shape.
        lambda images, threshold: serve_anytime(
            tf.ensure_shape(images, image_spec.shape),
            tf.ensure_shape(threshold, []),
        ),
        input_signature=[image_spec, tf.TensorSpec([], tf.float32)],
    )
    endpoints[ANYTIME_ENDPOINT] = {
        "input": "float32 (batch, height, width, 3) in [-1, 1] and a "
        "float32 threshold in (0, 1]",
        "locations_per_level": list(locations),
    }


def save_keras(model: keras.Model, path: str | os.PathLike) -> str:
    """Saves `model` as a `.keras` file (architecture, config and weights).

    Reload with `keras.saving.load_model(path)` after `import tnet_tf`, which
    registers the custom classes.
    """
    path = str(path)
    if not path.endswith(".keras"):
        raise ValueError(f"`path` must end with '.keras', got {path!r}.")
    model.save(path)
    return path


def _resolve_settings(model, locations_settings):
    """Validated, de-duplicated tuple of location settings."""
    settings = []
    for setting in locations_settings or ():
        if not isinstance(setting, (list, tuple)):
            raise ValueError(
                "Each entry of `locations_settings` must be a list such as "
                f"[2, 1], [0] or [], got {setting!r}."
            )
        locations = model.resolve_locations(setting)
        if locations not in settings:
            settings.append(locations)
    return tuple(settings)
