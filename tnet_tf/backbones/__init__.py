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

The builders of each family are in `builders`, `BackboneSpec` and the tap
checks in `spec`, weight loading in `weights`; the names imported from them
below are this package's API.

Reference: original_implementation_detail.md §2.
"""

from tnet_tf import config as config_lib
from tnet_tf.backbones import builders
from tnet_tf.backbones import efficientnet
from tnet_tf.backbones.builders import GENERIC_PREFIX
from tnet_tf.backbones.spec import FAMILIES
from tnet_tf.backbones.spec import BackboneSpec
from tnet_tf.backbones.spec import check_tap
from tnet_tf.backbones.spec import check_tap_slice
from tnet_tf.backbones.weights import check_weights
from tnet_tf.backbones.weights import loading_saved_weights
from tnet_tf.registry import Registry

BACKBONES = Registry("backbone")
BACKBONES.register("bagnet77", builders.build_bagnet77)
for _variant in efficientnet.APPLICATIONS:
    BACKBONES.register(_variant, builders.build_efficientnet)
del _variant
BACKBONES.register("tiny_cnn", builders.build_tiny_cnn)


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
    check_weights(weights)
    if input_normalization not in config_lib.INPUT_NORMALIZATIONS:
        raise ValueError(
            f"`input_normalization` must be one of "
            f"{config_lib.INPUT_NORMALIZATIONS}. "
            f"Received: input_normalization={input_normalization!r}"
        )

    if isinstance(name, str) and name.startswith(GENERIC_PREFIX):
        builder = builders.build_keras_application
    else:
        try:
            builder = BACKBONES.get(name)
        except ValueError as error:
            raise ValueError(
                f"{error}, or 'keras.applications.<ClassName>'."
            ) from None
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
