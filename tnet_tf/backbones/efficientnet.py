"""EfficientNet-B0..B4 from `keras.applications`, set up for TNet.

`keras.applications.EfficientNetB*` is the architecture of the release's
hand-written TPU-style EfficientNet (same block table, swish, SE with
`int(c_in * 0.25)`, BN momentum 0.99 / epsilon 1e-3, head 1x1 conv used).
Three things are adjusted here:

- Input range: TNet feeds pixels in [-1, 1]; the Keras model expects [0, 255]
  and rescales/normalises internally, so a `Rescaling` layer maps [-1, 1] to
  [0, 255] in front of it.
- The built-in `Normalization` layer is set to the ImageNet mean and standard
  deviation explicitly (see `set_imagenet_normalization`).
- Drop-connect rates follow the release's 1-based block index.

Reference: original_implementation_detail.md §2.2, quirks Q11 and Q12.
"""

import re

import keras
import numpy as np

APPLICATIONS = {
    "efficientnet_b0": "EfficientNetB0",
    "efficientnet_b1": "EfficientNetB1",
    "efficientnet_b2": "EfficientNetB2",
    "efficientnet_b3": "EfficientNetB3",
    "efficientnet_b4": "EfficientNetB4",
}
BASE_RESOLUTION = 224

# The head's activation, average-pooled into V (1280 / 1280 / 1408 / 1536 /
# 1792 dims for B0..B4).
FEATURE_LAYER = "top_activation"

# grid size -> (tap layer, (start, stop, step)) at the 224-px base resolution.
# Keras names block j of block group i "block{i}{letter}"; group i is the
# release's "part i+1". The taps are the release's hard-coded ones:
# - 3x3 (fMoW): part-5 block-3 output, 14x14, rows/cols 2, 6, 10.
# - 5x5, B0 (CUB/NABirds): part-5 block-1 output (no residual add, stride 2),
#   14x14, rows/cols 2, 4, 6, 8, 10.
# - 5x5, B1..B4: part-4 block-2 output (the second block, not the last one),
#   28x28, rows/cols 5, 9, 13, 17, 21.
_TAP_3X3 = ("block4c_add", (2, None, 4))
TAPS = {
    "efficientnet_b0": {3: _TAP_3X3, 5: ("block4a_project_bn", (2, 12, 2))},
    "efficientnet_b1": {3: _TAP_3X3, 5: ("block3b_add", (5, 22, 4))},
    "efficientnet_b2": {3: _TAP_3X3, 5: ("block3b_add", (5, 22, 4))},
    "efficientnet_b3": {3: _TAP_3X3, 5: ("block3b_add", (5, 22, 4))},
    "efficientnet_b4": {3: _TAP_3X3, 5: ("block3b_add", (5, 22, 4))},
}

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)

_BLOCK_NAME = re.compile(r"^(block\d+[a-z])_")


def set_imagenet_normalization(model):
    """Sets the model's `Normalization` layer to ImageNet mean/std.

    With `weights=None`, `keras.applications` leaves the layer at mean 0 and
    variance 1, while its ImageNet weight files store the standard deviation
    (not its square) as the variance and compensate with an extra `Rescaling`
    layer that only exists when `weights="imagenet"`. Setting mean and
    variance = std**2 here, after any weight loading, gives
    `(x / 255 - mean) / std` on every path, so random-init and loaded-weights
    models see identically scaled inputs, which the pretrained EfficientNet
    checkpoints expect (original_implementation_detail.md Q11).

    Args:
        model: a `keras.Model` containing exactly one `Normalization` layer.
    """
    layers = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)
    ]
    if len(layers) != 1:
        raise ValueError(
            f"Expected one Normalization layer in model '{model.name}', "
            f"found {len(layers)}."
        )
    layer = layers[0]
    layer.adapt_mean.assign(np.asarray(IMAGENET_MEAN_RGB, "float32"))
    layer.adapt_variance.assign(np.square(np.asarray(IMAGENET_STDDEV_RGB, "float32")))
    # The layer caches mean/variance as tensors; refresh them.
    layer.finalize_state()


def block_names(model):
    """Names of the model's MBConv blocks (e.g. `"block2b"`), in order."""
    names = []
    for layer in model.layers:
        match = _BLOCK_NAME.match(layer.name)
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


def set_drop_connect_rates(model, drop_connect_rate):
    """Sets drop-connect rates with the release's 1-based block index.

    Block `b` (counted from 1 to the number of blocks `N`) gets
    `drop_connect_rate * b / N`; `keras.applications` counts from 0, so its
    first block has rate 0 and its last one never reaches the full rate
    (original_implementation_detail.md Q12). Only blocks with a residual add
    have a drop-connect `Dropout` layer (`"{block}_drop"`).

    Args:
        model: a `keras.applications` EfficientNet built with a non-zero
            drop-connect rate (otherwise it has no drop-connect layers).
        drop_connect_rate: float in [0, 1).
    """
    names = block_names(model)
    for index, block in enumerate(names):
        try:
            layer = model.get_layer(f"{block}_drop")
        except ValueError:
            continue  # no residual connection in this block
        layer.rate = drop_connect_rate * (index + 1) / len(names)


def efficientnet(variant, input_shape, drop_connect_rate=None):
    """Builds a `keras.applications` EfficientNet that takes [-1, 1] pixels.

    The returned model maps images `(batch, H, W, 3)` in [-1, 1] to the head
    activation `(batch, h, w, D)` (`FEATURE_LAYER`); there is no pooling,
    dropout or classifier. Weights are random (load them afterwards) and the
    `Normalization` layer is set to ImageNet mean/std.

    Args:
        variant: one of `APPLICATIONS` (`"efficientnet_b0"` ...
            `"efficientnet_b4"`).
        input_shape: `(H, W, 3)`; `H`/`W` may be `None`. Sides must be at
            least 32 px.
        drop_connect_rate: `None` keeps the `keras.applications` default
            (0.2, 0-based block index); a float in [0, 1) sets block `b`'s
            rate to `drop_connect_rate * b / N` with `b` counted from 1.

    Returns:
        A `keras.Model`.

    Reference: original_implementation_detail.md §2.2.
    """
    application = getattr(keras.applications, APPLICATIONS[variant])
    inputs = keras.Input(shape=input_shape, name="images")
    # [-1, 1] -> [0, 255], the range keras.applications EfficientNets expect.
    pixels = keras.layers.Rescaling(scale=127.5, offset=127.5, name="to_0_255")(inputs)
    # The B0..B4 constructors fix drop_connect_rate at 0.2, which creates a
    # drop-connect layer in every residual block; their rates are reset below.
    model = application(
        include_top=False,
        weights=None,
        input_tensor=pixels,
        input_shape=tuple(input_shape),
    )
    # keras.applications wraps `input_tensor`'s source in a list; a model on
    # the bare input takes a plain tensor without a structure warning.
    model = keras.Model(inputs, model.output, name=model.name)
    if drop_connect_rate is not None:
        set_drop_connect_rates(model, drop_connect_rate)
    set_imagenet_normalization(model)
    return model
