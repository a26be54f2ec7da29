"""EfficientNet-B0..B4 from `keras.applications`, set up for TNet.

`keras.applications.EfficientNetB*` is the architecture of the release's
hand-written TPU-style EfficientNet (same block table, swish, SE with
`int(c_in * 0.25)`, BN momentum 0.99 / epsilon 1e-3, head 1x1 conv used).
Three things are adjusted here:

- Input convention (`input_normalization`): TNet feeds pixels in [-1, 1].
  With `"backbone"` a `Rescaling` layer maps them to the [0, 255] the Keras
  model expects, and its built-in `Normalization` layer is set to the ImageNet
  mean and standard deviation (see `set_imagenet_normalization`). With
  `"none"` the model is rebuilt without its input rescaling and
  normalization, so the pixels reach the stem unchanged, as in the release.
- Drop-connect rates follow the release's 1-based block index.
- `load_tpu_checkpoint` reads the TF-TPU EfficientNet checkpoints the release
  fine-tuned from.

Reference: original_implementation_detail.md §2.2, quirks Q11 and Q12.
"""

import re

import keras
import numpy as np

from tnet_tf import checkpoints

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

# The layers of one MBConv block by role, with the suffix Keras gives their
# names ("block2a_" + suffix). Blocks with expansion ratio 1 have no expand
# layers.
BLOCK_ROLES = {
    "expand_conv": "expand_conv",
    "expand_bn": "expand_bn",
    "depthwise_conv": "dwconv",
    "depthwise_bn": "bn",
    "se_reduce": "se_reduce",
    "se_expand": "se_expand",
    "project_conv": "project_conv",
    "project_bn": "project_bn",
}


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
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Normalization)
    ]
    if len(layers) != 1:
        raise ValueError(
            f"Expected one Normalization layer in model '{model.name}', "
            f"found {len(layers)}."
        )
    layer = layers[0]
    layer.adapt_mean.assign(np.asarray(IMAGENET_MEAN_RGB, "float32"))
    layer.adapt_variance.assign(
        np.square(np.asarray(IMAGENET_STDDEV_RGB, "float32"))
    )
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


def block_layers(model):
    """The MBConv blocks of `model` as `(group, index, layers)` triples.

    `group` is Keras' 1-based block group (the release's part `group + 1`),
    `index` the 0-based block within it, and `layers` maps each role of
    `BLOCK_ROLES` the block has to its layer, in block order.
    """
    blocks = []
    for block in block_names(model):
        layers = {}
        for role, suffix in BLOCK_ROLES.items():
            try:
                layers[role] = model.get_layer(f"{block}_{suffix}")
            except ValueError:
                continue  # no expansion in this block
        group, letter = int(block[len("block") : -1]), block[-1]
        blocks.append((group, ord(letter) - ord("a"), layers))
    return blocks


def tpu_checkpoint_variables(model, scope):
    """`{checkpoint name: variable}` of a TF-TPU EfficientNet checkpoint.

    The official TPU code names its layers in creation order within each
    scope (`conv2d`, `conv2d_1`, `tpu_batch_normalization`, ...), blocks
    `blocks_0 ... blocks_{N-1}` over all groups; the checkpoint keeps the
    exponential moving average of every variable (BN statistics included)
    under `<name>/ExponentialMovingAverage`, which the release restored.
    The classifier (`head/dense`) is not mapped: TNet trains its own.

    Args:
        model: a backbone built by `efficientnet`.
        scope: the checkpoint's model scope, e.g. `"efficientnet-b0"`.
    """

    def names(prefix, *layers):
        # TF 1 layer names count up per type within a scope: conv2d,
        # conv2d_1, ...; depthwise convs have their own name.
        variables = {}
        counts = {"conv2d": 0, "tpu_batch_normalization": 0}
        for layer in layers:
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                name = "depthwise_conv2d"
            else:
                kind = (
                    "tpu_batch_normalization"
                    if isinstance(layer, keras.layers.BatchNormalization)
                    else "conv2d"
                )
                name = kind + (f"_{counts[kind]}" if counts[kind] else "")
                counts[kind] += 1
            variables.update(
                checkpoints.layer_variables(f"{prefix}/{name}", layer)
            )
        return variables

    variables = names(
        "stem", model.get_layer("stem_conv"), model.get_layer("stem_bn")
    )
    for number, (_, _, layers) in enumerate(block_layers(model)):
        prefix = f"blocks_{number}"
        main = [
            layers[role]
            for role in BLOCK_ROLES
            if role in layers and not role.startswith("se_")
        ]
        variables.update(names(prefix, *main))
        variables.update(
            names(f"{prefix}/se", layers["se_reduce"], layers["se_expand"])
        )
    variables.update(
        names("head", model.get_layer("top_conv"), model.get_layer("top_bn"))
    )
    return {
        f"{scope}/{name}/ExponentialMovingAverage": variable
        for name, variable in variables.items()
    }


def load_tpu_checkpoint(model, path, variant):
    """Loads a TF-TPU EfficientNet ImageNet checkpoint into a backbone.

    Reads the `/ExponentialMovingAverage` variables of every backbone layer
    (`tpu_checkpoint_variables`), as the release's `restore_dicts` did; other
    variables of the checkpoint (the raw weights, the classifier, the step)
    are ignored.

    Args:
        model: a backbone built by `efficientnet(variant, ...)`.
        path: the checkpoint prefix (e.g. `.../efficientnet-b0/model.ckpt`).
        variant: e.g. `"efficientnet_b0"`; the checkpoint scope is
            `"efficientnet-b0"`.

    Raises:
        ValueError: naming every missing or mis-shaped checkpoint variable.
    """
    scope = variant.replace("_", "-")
    checkpoints.load_variables(
        path,
        tpu_checkpoint_variables(model, scope),
        description=f"TF-TPU {scope} checkpoint",
        allow_unexpected=True,
    )


def efficientnet(
    variant,
    input_shape,
    drop_connect_rate=None,
    input_normalization="backbone",
):
    """Builds a `keras.applications` EfficientNet that takes [-1, 1] pixels.

    The returned model maps images `(batch, H, W, 3)` in [-1, 1] to the head
    activation `(batch, h, w, D)` (`FEATURE_LAYER`); there is no pooling,
    dropout or classifier. Weights are random (load them afterwards).

    Args:
        variant: one of `APPLICATIONS` (`"efficientnet_b0"` ...
            `"efficientnet_b4"`).
        input_shape: `(H, W, 3)`; `H`/`W` may be `None`. Sides must be at
            least 32 px.
        drop_connect_rate: `None` keeps the `keras.applications` default
            (0.2, 0-based block index); a float in [0, 1) sets block `b`'s
            rate to `drop_connect_rate * b / N` with `b` counted from 1.
        input_normalization: `"backbone"`: [-1, 1] is mapped to [0, 255]
            and normalised with the ImageNet mean/std (the `Normalization`
            layer is set here; set it again after loading weights).
            `"none"`: the model has no input rescaling or normalization
            layers at all, so no loaded file can bring them back.

    Returns:
        A `keras.Model`.

    Reference: original_implementation_detail.md §2.2, Q11.
    """
    application = getattr(keras.applications, APPLICATIONS[variant])
    inputs = keras.Input(shape=input_shape, name="images")
    pixels = inputs
    if input_normalization == "backbone":
        # [-1, 1] -> [0, 255], the range keras.applications EfficientNets
        # expect.
        pixels = keras.layers.Rescaling(
            scale=127.5, offset=127.5, name="to_0_255"
        )(inputs)
    # The B0..B4 constructors fix drop_connect_rate at 0.2, which creates a
    # drop-connect layer in every residual block; their rates are reset below.
    model = application(
        include_top=False,
        weights=None,
        input_tensor=pixels,
        input_shape=tuple(input_shape),
    )
    if input_normalization == "none":
        model = _without_input_preprocessing(model)
    # keras.applications wraps `input_tensor`'s source in a list; a model on
    # the bare input takes a plain tensor without a structure warning.
    model = keras.Model(model.inputs[0], model.output, name=model.name)
    if drop_connect_rate is not None:
        set_drop_connect_rates(model, drop_connect_rate)
    if input_normalization == "backbone":
        set_imagenet_normalization(model)
    return model


def _without_input_preprocessing(model):
    """A copy of `model` (same layer names, fresh weights) whose input skips
    the application's own `Rescaling(1 / 255)` and `Normalization` layers,
    which the copy, and its weights, do not have."""
    skipped = {
        layer.name
        for layer in model.layers
        if isinstance(
            layer, (keras.layers.Rescaling, keras.layers.Normalization)
        )
    }
    if len(skipped) != 2:
        raise ValueError(
            f"Expected the input Rescaling and Normalization layers in "
            f"'{model.name}', found {len(skipped)} such layers."
        )

    def call(layer, *args, **kwargs):
        if layer.name in skipped:
            return args[0]
        return layer(*args, **kwargs)

    # Fresh layers (the default clone), so each one has a single node and
    # `layer.output` is the copy's tensor.
    return keras.models.clone_model(model, call_function=call)
