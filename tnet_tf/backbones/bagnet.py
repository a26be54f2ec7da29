"""BagNet-77: the ImageNet feature extraction network of TNet.

A ResNet-50-like bottleneck network whose receptive field is capped at 77
pixels by using mostly 1x1 convolutions. It has no normalization layers, uses
leaky ReLU (slope 0.2) everywhere and biased convolutions with Glorot-normal
kernels. Written by hand from original_implementation_detail.md §2.1.
"""

import keras

LEAKY_RELU_SLOPE = 0.2
# Bottleneck widths of parts 2..5; each block outputs EXPANSION times as many.
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
# (kernel_size, strides, padding) of every bottleneck block, part by part.
# The first blocks of parts 4 and 5 use VALID padding; that is what keeps the
# receptive field at 77 px and makes the part-4 map 9x9 at 77 px.
PARTS = (
    ("part2", ((3, 2, "same"), (3, 1, "same"), (1, 1, "same"))),
    (
        "part3",
        ((3, 2, "same"), (3, 1, "same"), (1, 1, "same"), (1, 1, "same")),
    ),
    (
        "part4",
        (
            (3, 2, "valid"),
            (3, 1, "same"),
            (1, 1, "same"),
            (1, 1, "same"),
            (1, 1, "same"),
            (1, 1, "same"),
        ),
    ),
    ("part5", ((3, 1, "valid"), (3, 1, "same"), (1, 1, "same"))),
)
# Width of the part-6 projection, i.e. of the feature vector V. The release
# hard-codes 512 (its `ls_dim`).
FEATURE_DIM = 512
BASE_RESOLUTION = 77

# The output of part-4 block 6 is the tapped map F (before any dropout).
TAP_LAYER = "part4_block6_out"
# The layer whose output is average-pooled into V (dropout after part 6).
FEATURE_LAYER = "part6_dropout"
# grid size -> (start, stop, step) on both spatial axes of the tap:
# 9x9 at 77 px, every second position -> 5x5.
TAP_SLICES = {5: (None, None, 2)}


def _conv(filters, kernel_size, name, strides=1, padding="valid"):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=True,
        kernel_initializer="glorot_normal",
        bias_initializer="zeros",
        name=name,
    )


def _leaky_relu(name):
    return keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE, name=name)


def bottleneck_block(x, filters, kernel_size, strides, padding, name):
    """Applies one BagNet bottleneck block to the symbolic tensor `x`.

    1x1 conv `filters` -> leaky ReLU -> `kernel_size` conv `filters` (with
    `strides` and `padding`) -> leaky ReLU -> 1x1 conv `4 * filters` -> add the
    shortcut -> leaky ReLU. With VALID padding the shortcut is first cropped by
    `(k - 1) // 2` pixels top/left and `k // 2` bottom/right so that it lines
    up with the main path; it is then projected by a strided 1x1 conv when the
    stride or the width changes.

    Args:
        x: symbolic input tensor `(batch, h, w, c)`.
        filters: int, bottleneck width `c`; the block outputs `4 * c`.
        kernel_size: int, the middle convolution's kernel size.
        strides: int, the middle convolution's stride.
        padding: `"same"` or `"valid"`, the middle convolution's padding.
        name: prefix of the block's layer names (e.g. `"part4_block1"`).

    Returns:
        The block's symbolic output tensor.

    Reference: original_implementation_detail.md §2.1.
    """
    output_filters = EXPANSION * filters
    shortcut = x
    x = _conv(filters, 1, name=f"{name}_conv1")(x)
    x = _leaky_relu(f"{name}_relu1")(x)
    x = _conv(
        filters,
        kernel_size,
        name=f"{name}_conv2",
        strides=strides,
        padding=padding,
    )(x)
    x = _leaky_relu(f"{name}_relu2")(x)
    x = _conv(output_filters, 1, name=f"{name}_conv3")(x)

    if padding == "valid" and kernel_size > 1:
        crop = ((kernel_size - 1) // 2, kernel_size // 2)
        shortcut = keras.layers.Cropping2D((crop, crop), name=f"{name}_crop")(
            shortcut
        )
    if strides > 1 or shortcut.shape[-1] != output_filters:
        shortcut = _conv(
            output_filters,
            1,
            name=f"{name}_shortcut",
            strides=strides,
            padding="same",
        )(shortcut)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return _leaky_relu(f"{name}_out")(x)


def output_size(size):
    """Spatial side of the part-5 output for an input side `size` (or None)."""
    if size is None:
        return None
    size -= 2  # part 1, 3x3 VALID
    size = -(-size // 2)  # part 2, stride 2 SAME
    size = -(-size // 2)  # part 3, stride 2 SAME
    size = (size - 3) // 2 + 1  # part 4, 3x3 stride 2 VALID
    return size - 2  # part 5, 3x3 VALID


def bagnet77(input_shape, dropout_rate=0.0, name="bagnet77"):
    """Builds BagNet-77 as a functional model without its classifier.

    The model maps images `(batch, H, W, 3)` with pixels in [-1, 1] to the
    part-6 map `(batch, h, w, 512)` after channel-wise (spatial) dropout; the
    feature extractor average-pools that map into the feature vector `V`.
    At 77 px the part-4 map (`TAP_LAYER`) is 9x9x1024 and the output 7x7x512;
    at 224 px they are 27x27 and 25x25. 20,033,664 parameters.

    Args:
        input_shape: `(H, W, 3)`; `H`/`W` may be `None`. The sides must be at
            least 27 px.
        dropout_rate: float in [0, 1), rate of the channel-wise dropout after
            part 6 (the release's single dropout site, `1 - keep_prob`).
        name: the model's name.

    Returns:
        A `keras.Model`.

    Reference: original_implementation_detail.md §2.1.
    """
    for side in input_shape[:2]:
        if side is not None and output_size(side) < 1:
            raise ValueError(
                "BagNet-77 needs images of at least 27x27 px. "
                f"Received: input_shape={tuple(input_shape)}"
            )
    inputs = keras.Input(shape=input_shape, name="images")
    x = _conv(WIDTHS[0], 3, name="part1_conv")(inputs)
    x = _leaky_relu("part1_out")(x)
    for (part, blocks), filters in zip(PARTS, WIDTHS):
        for index, (kernel_size, strides, padding) in enumerate(blocks):
            x = bottleneck_block(
                x,
                filters,
                kernel_size,
                strides,
                padding,
                name=f"{part}_block{index + 1}",
            )
    x = _conv(FEATURE_DIM, 1, name="part6_conv")(x)
    x = _leaky_relu("part6_out")(x)
    x = keras.layers.SpatialDropout2D(dropout_rate, name=FEATURE_LAYER)(x)
    return keras.Model(inputs, x, name=name)
