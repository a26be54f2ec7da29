"""Backbones: feature extraction networks and where TNet taps them.

`build_backbone(name, ...)` returns a `BackboneSpec`: a functional Keras model
taking images with pixels in [-1, 1], the layer whose output is pooled into
the feature vector `V`, and the layer + slice giving the spatial map `F` that
the location module scores (one position per grid cell).

Registered names (`backbone_names()`):
- `"bagnet77"`: BagNet-77, written here (ImageNet TNet; grid 5 at 77 px).
- `"efficientnet_b0"` ... `"efficientnet_b4"`: `keras.applications`
  EfficientNets (fMoW / CUB / NABirds TNets; grids 3 and 5 at 224 px).
- `"tiny_cnn"`: a very small CNN for tests and the demo (grids 2..5).
Any `"keras.applications.<ClassName>"` (e.g.
`"keras.applications.MobileNetV2"`) also works; such generic backbones have
no default tap, so a grid needs an explicit tap layer and slice (see
`tnet_tf.layers.FeatureExtractor`).

Weights are never downloaded: `weights=None` starts from random
initialization (with a logged warning), or pass a local weights file (for
EfficientNets also a TF-TPU EfficientNet checkpoint).

Reference: original_implementation_detail.md §2.
"""

import contextlib
import dataclasses
import os
import sys

import keras
from absl import logging

from tnet_tf import checkpoints
from tnet_tf import config as config_lib
from tnet_tf.backbones import bagnet
from tnet_tf.backbones import efficientnet
from tnet_tf.backbones import tiny
from tnet_tf.registry import Registry

BACKBONES = Registry("backbone")
FAMILIES = ("bagnet", "efficientnet", "generic")
GENERIC_PREFIX = "keras.applications."


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A built backbone and the places TNet reads it.

    Attributes:
        model: functional `keras.Model`; input `(H, W, 3)` float pixels in
            [-1, 1] (any conversion `input_normalization` asks for is
            inside).
        feature_layer: name of the layer whose output `(batch, h, w, D)` is
            globally average-pooled into the feature vector `V`.
        tap_layer: name of the layer whose output is the spatial map `F`
            before slicing; `None` when no grid is tapped.
        tap_slice: `(start, stop, step)` applied to both spatial axes of the
            tap output to get the `n x n` map; `None` when no grid is tapped.
        family: `"bagnet"`, `"efficientnet"` or `"generic"`; selects the
            location-module / positional-encoding variants and initializers.
    """

    model: keras.Model
    feature_layer: str
    tap_layer: str | None
    tap_slice: tuple | None
    family: str


def backbone_names():
    """Sorted names of the registered backbones (generic names excluded)."""
    return BACKBONES.names()


def build_backbone(
    name,
    *,
    input_shape,
    grid_size=None,
    weights=None,
    dropout_rate=0.0,
    drop_connect_rate=None,
    input_normalization="backbone",
):
    """Builds a backbone and returns its `BackboneSpec`.

    Args:
        name: a registered name (`backbone_names()`) or
            `"keras.applications.<ClassName>"`.
        input_shape: `(H, W, 3)`, the base resolution. `H`/`W` may be `None`
            (e.g. baselines on full images) only when `grid_size` is `None`.
        grid_size: int `n` or `None`. `None` means no tap (baselines). A grid
            the backbone does not support raises `ValueError` listing the
            supported ones; generic backbones return no tap (`tap_layer`
            `None`) for any grid.
        weights: `None` (random initialization, logged as a warning) or the
            path of a local weights file for `model.load_weights` (e.g. saved
            with `spec.model.save_weights(...)`, or a `keras.applications`
            `*_notop.h5` file). EfficientNets also take the prefix of a
            TF-TPU EfficientNet checkpoint (`efficientnet.load_tpu_checkpoint`).
            Nothing is ever downloaded.
        dropout_rate: float in [0, 1), channel-wise dropout before pooling
            (BagNet-77: after part 6, the release's site; also `tiny_cnn` and
            generic backbones). EfficientNets have no such site and require 0.
        drop_connect_rate: `None` or float in [0, 1); EfficientNets only.
            Block `b` (1-based, of `N`) gets `drop_connect_rate * b / N`;
            `None` keeps the `keras.applications` default.
        input_normalization: `"backbone"`: the network's own convention
            (`keras.applications` models map [-1, 1] to what their
            pretrained weights expect; BagNet-77 and `tiny_cnn` take the
            pixels as they are). `"none"`: every network gets the [-1, 1]
            pixels unchanged (the release's EfficientNet).

    Returns:
        A `BackboneSpec`.

    Raises:
        ValueError: unknown name, bad argument, unsupported grid, or weights
            that cannot be loaded into the model.
        FileNotFoundError: `weights` names no file or TF checkpoint.

    Example:
    >>> spec = build_backbone("bagnet77", input_shape=(77, 77, 3), grid_size=5)
    >>> spec.tap_layer, spec.tap_slice
    ('part4_block6_out', (None, None, 2))

    Reference: original_implementation_detail.md §2.
    """
    input_shape = _check_input_shape(input_shape)
    if grid_size is not None:
        if not config_lib.is_positive_int(grid_size):
            raise ValueError(
                "`grid_size` must be a positive int or None. "
                f"Received: grid_size={grid_size!r}"
            )
        if None in input_shape[:2]:
            raise ValueError(
                "A grid needs a fixed base resolution, but input_shape has "
                f"unknown sides. Received: input_shape={input_shape}, "
                f"grid_size={grid_size}"
            )
    _check_rate("dropout_rate", dropout_rate)
    if drop_connect_rate is not None:
        _check_rate("drop_connect_rate", drop_connect_rate)
    _check_weights(weights)
    if input_normalization not in config_lib.INPUT_NORMALIZATIONS:
        raise ValueError(
            f"`input_normalization` must be one of "
            f"{config_lib.INPUT_NORMALIZATIONS}. "
            f"Received: input_normalization={input_normalization!r}"
        )

    if isinstance(name, str) and name.startswith(GENERIC_PREFIX):
        builder = _build_keras_application
    else:
        try:
            builder = BACKBONES.get(name)
        except ValueError as error:
            raise ValueError(f"{error}, or 'keras.applications.<ClassName>'.") from None
    spec = builder(
        name,
        input_shape=input_shape,
        grid_size=grid_size,
        weights=weights,
        dropout_rate=dropout_rate,
        drop_connect_rate=drop_connect_rate,
        input_normalization=input_normalization,
    )
    if spec.tap_layer is not None:
        check_tap(spec, grid_size, name)
    return spec


def check_tap(spec, grid_size, name):
    """Checks that the sliced tap of `spec` is exactly `grid_size` square.

    Args:
        spec: a `BackboneSpec` with `tap_layer` set; its model must have a
            fixed input size.
        grid_size: int, the grid side `n`.
        name: the backbone's name, for the error message.

    Returns:
        The tap layer's output map size `(h, w)` before slicing.

    Raises:
        ValueError: unknown tap layer, bad slice, or a sliced map that is not
            `grid_size x grid_size`.
    """
    try:
        layer = spec.model.get_layer(spec.tap_layer)
    except ValueError:
        raise ValueError(
            f"Backbone '{name}' has no layer named '{spec.tap_layer}' "
            "(see `spec.model.summary()` for the layer names)."
        ) from None
    shape = layer.output.shape
    if len(shape) != 4:
        raise ValueError(
            f"The tap layer '{spec.tap_layer}' of backbone '{name}' must "
            f"output a 4-D map (batch, h, w, c); its output shape is {shape}."
        )
    map_size = tuple(shape[1:3])
    sliced = tuple(
        len(range(*slice(*spec.tap_slice).indices(side))) for side in map_size
    )
    if sliced != (grid_size, grid_size):
        raise ValueError(
            f"The tap layer '{spec.tap_layer}' of backbone '{name}' gives a "
            f"{map_size[0]}x{map_size[1]} map at input size "
            f"{tuple(spec.model.input.shape[1:3])}; tap_slice "
            f"{spec.tap_slice} turns it into {sliced[0]}x{sliced[1]}, not "
            f"the {grid_size}x{grid_size} grid. Use the backbone's base "
            "resolution or pass a matching tap_layer/tap_slice."
        )
    return map_size


def check_tap_slice(tap_slice):
    """Returns `tap_slice` as a 3-tuple of ints/None or raises ValueError."""
    if not (
        isinstance(tap_slice, (tuple, list))
        and len(tap_slice) == 3
        and all(
            value is None or (isinstance(value, int) and not isinstance(value, bool))
            for value in tap_slice
        )
        and tap_slice[2] != 0
    ):
        raise ValueError(
            "`tap_slice` must be (start, stop, step) with ints or None "
            f"and a non-zero step. Received: tap_slice={tap_slice!r}"
        )
    return tuple(tap_slice)


# ---------------------------------------------------------------------------
# Registered builders. Each takes the validated arguments of `build_backbone`
# and returns a `BackboneSpec` with its weights loaded. BagNet-77 and the
# tiny CNN take [-1, 1] pixels as they are under either input_normalization.


@BACKBONES.register("bagnet77")
def _build_bagnet77(
    name,
    *,
    input_shape,
    grid_size,
    weights,
    dropout_rate,
    drop_connect_rate,
    input_normalization,
):
    _reject_drop_connect(name, drop_connect_rate)
    taps = {n: (bagnet.TAP_LAYER, s) for n, s in bagnet.TAP_SLICES.items()}
    tap_layer, tap_slice = _default_tap(name, grid_size, taps)
    model = bagnet.bagnet77(input_shape, dropout_rate=dropout_rate)
    _load_weights(model, weights, name)
    return BackboneSpec(
        model=model,
        feature_layer=bagnet.FEATURE_LAYER,
        tap_layer=tap_layer,
        tap_slice=tap_slice,
        family="bagnet",
    )


def _build_efficientnet(
    name,
    *,
    input_shape,
    grid_size,
    weights,
    dropout_rate,
    drop_connect_rate,
    input_normalization,
):
    if dropout_rate:
        raise ValueError(
            f"Backbone '{name}' has no dropout before pooling (the release "
            "uses drop-connect inside and dropout in the classifier); use "
            "drop_connect_rate, and dropout in the classification module. "
            f"Received: dropout_rate={dropout_rate}"
        )
    tap_layer, tap_slice = _default_tap(name, grid_size, efficientnet.TAPS[name])

    def build(normalization):
        return efficientnet.efficientnet(
            name,
            input_shape,
            drop_connect_rate=drop_connect_rate,
            input_normalization=normalization,
        )

    model = build(input_normalization)
    if weights is not None and checkpoints.is_tf_checkpoint(weights):
        efficientnet.load_tpu_checkpoint(model, weights, name)
    elif input_normalization == "none" and _is_whole_model_h5(weights):
        # keras.applications files hold the input Normalization layer this
        # model lacks: load into the full model, copy the rest by name.
        full = build("backbone")
        _load_weights(full, weights, name)
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())
    else:
        _load_weights(model, weights, name)
    if input_normalization == "backbone":
        # Loaded files may hold other normalization statistics (see the
        # function).
        efficientnet.set_imagenet_normalization(model)
    return BackboneSpec(
        model=model,
        feature_layer=efficientnet.FEATURE_LAYER,
        tap_layer=tap_layer,
        tap_slice=tap_slice,
        family="efficientnet",
    )


for _variant in efficientnet.APPLICATIONS:
    BACKBONES.register(_variant, _build_efficientnet)
del _variant


@BACKBONES.register("tiny_cnn")
def _build_tiny_cnn(
    name,
    *,
    input_shape,
    grid_size,
    weights,
    dropout_rate,
    drop_connect_rate,
    input_normalization,
):
    _reject_drop_connect(name, drop_connect_rate)
    taps = {}
    if grid_size is not None:
        height, width = input_shape[:2]
        if height != width:
            raise ValueError(
                f"Backbone '{name}' taps grids only for square inputs. "
                f"Received: input_shape={input_shape}"
            )
        map_size = -(-height // tiny.TAP_STRIDE)
        taps = {
            n: (tiny.TAP_LAYER, tiny.grid_slice(map_size, n))
            for n in tiny.SUPPORTED_GRIDS
            if n <= map_size
        }
    tap_layer, tap_slice = _default_tap(name, grid_size, taps)
    model = tiny.tiny_cnn(input_shape, dropout_rate=dropout_rate)
    _load_weights(model, weights, name)
    # BatchNorm + a small C suit the EfficientNet-style location module and
    # positional encoding (the BagNet variant assumes a 512-d V).
    return BackboneSpec(
        model=model,
        feature_layer=tiny.FEATURE_LAYER,
        tap_layer=tap_layer,
        tap_slice=tap_slice,
        family="efficientnet",
    )


class _ApplicationPreprocessing(keras.layers.Layer):
    """Maps [-1, 1] pixels to what a `keras.applications` model expects.

    Rescales to [0, 255], then applies the application module's own
    `preprocess_input` (e.g. back to [-1, 1] for MobileNetV2, caffe-style
    mean subtraction for ResNet50, identity for models that normalise
    internally).
    """

    def __init__(self, application, **kwargs):
        super().__init__(**kwargs)
        self.application = application
        module = sys.modules[getattr(keras.applications, application).__module__]
        self._preprocess_input = getattr(module, "preprocess_input", None)

    def call(self, images):
        pixels = images * 127.5 + 127.5
        if self._preprocess_input is None:
            return pixels
        return self._preprocess_input(pixels)

    def get_config(self):
        return {**super().get_config(), "application": self.application}


def _build_keras_application(
    name,
    *,
    input_shape,
    grid_size,
    weights,
    dropout_rate,
    drop_connect_rate,
    input_normalization,
):
    _reject_drop_connect(name, drop_connect_rate)
    class_name = name[len(GENERIC_PREFIX) :]
    application = getattr(keras.applications, class_name, None)
    if not class_name or not callable(application) or class_name[0].islower():
        raise ValueError(
            f"Unknown backbone '{name}': keras.applications has no model "
            f"class '{class_name}' (e.g. 'keras.applications.MobileNetV2')."
        )
    inputs = keras.Input(shape=input_shape, name="images")
    pixels = inputs
    if input_normalization == "backbone":
        pixels = _ApplicationPreprocessing(class_name, name="preprocessing")(
            inputs
        )
    model = application(
        include_top=False,
        weights=None,
        input_tensor=pixels,
        input_shape=input_shape,
    )
    feature_layer = model.layers[-1].name
    features = model.output
    if dropout_rate:
        features = keras.layers.SpatialDropout2D(dropout_rate, name="features_dropout")(
            features
        )
        feature_layer = "features_dropout"
    # keras.applications wraps `input_tensor`'s source in a list; a model on
    # the bare input takes a plain tensor without a structure warning.
    model = keras.Model(inputs, features, name=model.name)
    _load_weights(model, weights, name)
    # No default tap: the caller names one (FeatureExtractor's tap_layer).
    return BackboneSpec(
        model=model,
        feature_layer=feature_layer,
        tap_layer=None,
        tap_slice=None,
        family="generic",
    )


# ---------------------------------------------------------------------------
# Helpers.


def _check_input_shape(input_shape):
    if not (
        isinstance(input_shape, (tuple, list))
        and len(input_shape) == 3
        and input_shape[2] == 3
        and all(
            side is None or config_lib.is_positive_int(side)
            for side in input_shape[:2]
        )
    ):
        raise ValueError(
            "`input_shape` must be (H, W, 3) with positive ints or None for "
            f"H and W. Received: input_shape={input_shape!r}"
        )
    return tuple(input_shape)


def _check_rate(argument, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < 1
    ):
        raise ValueError(
            f"`{argument}` must be a float in [0, 1). "
            f"Received: {argument}={value!r}"
        )


def _check_weights(weights):
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None or the path of a local weights file. "
            f"Received: weights={weights!r}"
        )
    if os.fspath(weights) == "imagenet":
        raise ValueError(
            "weights='imagenet' is not supported: nothing is downloaded. "
            "Pass the path of a local weights file (e.g. a keras.applications "
            "'*_notop.h5' file), or None for random initialization."
        )
    if not (os.path.isfile(weights) or checkpoints.is_tf_checkpoint(weights)):
        raise FileNotFoundError(
            f"Backbone weights not found: '{os.fspath(weights)}' is neither a "
            "file nor a TensorFlow checkpoint prefix."
        )


def _is_whole_model_h5(weights):
    """A legacy whole-model `.h5` file (keras.applications' format), loaded
    layer by layer in order, unlike Keras 3 `.weights.h5` files."""
    path = os.fspath(weights or "")
    return path.endswith((".h5", ".hdf5")) and not path.endswith(".weights.h5")


def _reject_drop_connect(name, drop_connect_rate):
    if drop_connect_rate is not None:
        raise ValueError(
            f"Backbone '{name}' has no drop-connect; drop_connect_rate is for "
            f"EfficientNets. Received: drop_connect_rate={drop_connect_rate}"
        )


def _default_tap(name, grid_size, taps):
    """(tap_layer, tap_slice) for `grid_size` from `taps`, or (None, None)."""
    if grid_size is None:
        return None, None
    if grid_size not in taps:
        raise ValueError(
            f"Backbone '{name}' does not support grid_size={grid_size}. "
            "Supported grid sizes: "
            f"{', '.join(str(n) for n in sorted(taps)) or 'none'}."
        )
    return taps[grid_size]


_RANDOM_INIT_WARNING = {"enabled": True}


@contextlib.contextmanager
def loading_saved_weights():
    """Silences the random-initialization warning while a saved model loads.

    A `.keras` file rebuilds its backbones without weights and then
    restores them, so "starts from random initialization" would be false.
    """
    previous = _RANDOM_INIT_WARNING["enabled"]
    _RANDOM_INIT_WARNING["enabled"] = False
    try:
        yield
    finally:
        _RANDOM_INIT_WARNING["enabled"] = previous


def _load_weights(model, weights, name):
    if weights is None:
        if not _RANDOM_INIT_WARNING["enabled"]:
            return
        logging.warning(
            "Backbone '%s' starts from random initialization (weights=None); "
            "pass a local weights file path to load pretrained weights.",
            name,
        )
        return
    path = os.fspath(weights)
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises several types; re-raise one.
        raise ValueError(
            f"Could not load the weights file '{path}' into backbone "
            f"'{name}': {error}"
        ) from error
