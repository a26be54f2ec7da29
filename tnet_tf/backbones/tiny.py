"""A very small CNN backbone for fast tests and the Megapixel-MNIST demo.

Not from the paper: four 3x3 convolutions with group normalization and ReLU,
a tap at stride 4 (32 channels) and a 64-d feature vector. Group
normalization, not batch normalization: TNet runs the backbone once per
level, and batch-norm moving statistics would average levels whose
statistics differ (a whole canvas downscaled vs. a crop; release quirk Q6),
which breaks inference on sparse images such as Megapixel MNIST. A per-image
normalization behaves the same in training and inference at every level. A 64-px base
resolution gives a 16x16 tap, which `grid_slice` samples down to grids of
2x2..8x8 (32 px gives 8x8).
"""

import keras

# (filters, strides) of the four conv + norm + ReLU stages.

STAGES = ((16, 2), (32, 2), (64, 2), (64, 1))
FEATURE_DIM = STAGES[-1][0]
TAP_CHANNELS = STAGES[1][0]
# The tap is the stage-2 output, at 1/TAP_STRIDE of the input resolution.
TAP_LAYER = "stage2_relu"
TAP_STRIDE = 4
# Channel-wise dropout after the last stage, pooled into V.
FEATURE_LAYER = "features_dropout"
SUPPORTED_GRIDS = (2, 3, 4, 5, 6, 7, 8)
NORM_GROUPS = 8


def grid_slice(map_size, grid_size):
    """`(start, stop, step)` picking `grid_size` evenly spread positions.

    The positions sit as close as a constant step allows to the centres of
    `grid_size` equal cells covering `map_size` positions, e.g. 16 -> 5 gives
    1, 4, 7, 10, 13 and 16 -> 3 gives 2, 7, 12.

    Args:
        map_size: int, side of the tapped map.
        grid_size: int, the grid side `n`, at most `map_size`.

    Returns:
        A tuple `(start, stop, step)` of ints.
    """
    if not 1 <= grid_size <= map_size:
        raise ValueError(
            f"Cannot pick a {grid_size}x{grid_size} grid from a "
            f"{map_size}x{map_size} map."
        )
    if grid_size == 1:
        start = (map_size - 1) // 2
        return (start, start + 1, 1)
    widest_step = (map_size - 1) // (grid_size - 1)
    step = max(1, min(round(map_size / grid_size), widest_step))
    start = (map_size - 1 - step * (grid_size - 1)) // 2
    return (start, start + step * (grid_size - 1) + 1, step)


def tiny_cnn(input_shape, dropout_rate=0.0, name="tiny_cnn"):
    """Builds the tiny CNN as a functional model.

    Maps images `(batch, H, W, 3)` in [-1, 1] to `(batch, H/8, W/8, 64)`;
    the stage-2 output `(batch, H/4, W/4, 32)` is the tap. About 66k
    parameters.

    Args:
        input_shape: `(H, W, 3)`; `H`/`W` may be `None`.
        dropout_rate: float in [0, 1), channel-wise dropout before pooling.
        name: the model's name.

    Returns:
        A `keras.Model`.
    """
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for index, (filters, strides) in enumerate(STAGES):
        prefix = f"stage{index + 1}"
        x = keras.layers.Conv2D(
            filters,
            3,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            name=f"{prefix}_conv",
        )(x)
        x = keras.layers.GroupNormalization(
            groups=NORM_GROUPS, name=f"{prefix}_norm"
        )(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
    x = keras.layers.SpatialDropout2D(dropout_rate, name=FEATURE_LAYER)(x)
    return keras.Model(inputs, x, name=name)
