"""The location module: scores the cells of a grid for attention."""

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import config as config_lib

VARIANTS = ("bagnet", "efficientnet")


@keras.saving.register_keras_serializable(package="tnet_tf")
class LocationModule(keras.layers.Layer):
    """Predicts one attention logit per cell of an `n x n` grid.

    The feature extractor taps a spatial map `F` of shape `(n, n, C)` whose
    positions line up with the grid cells. This module turns `F` (and, in the
    BagNet variant, the global feature vector `V`) into `n * n` logits, one per
    cell in row-major order; TNet picks the cells to attend from their
    softmax. Both inputs pass through a stop-gradient, so the feature
    extractor gets no gradient through this module: the module itself is
    trained by the REINFORCE terms only.

    Two learned "meshgrid" channels tell the 1x1 convolutions where each cell
    sits: `h = linspace(-1, 1, n)` along rows and `w = linspace(-1, 1, n)`
    along columns, each through its own scalar affine map (weight initialised
    to 1, bias to 0; 4 parameters), appended as the last two channels, `h`
    first.

    - `"bagnet"` (ImageNet): `concat([F, tile(V), h, w])` -> 1x1 conv
      `hidden_channels` (default 512) -> leaky ReLU (slope 0.2) -> 1x1 conv to
      1. Glorot-normal kernels. `F` 5x5x1024 and 512-d `V` give 788,485
      parameters.
    - `"efficientnet"` (fMoW, CUB, NABirds): 1x1 conv `hidden_channels`
      (default `C`) -> swish -> squeeze-and-excitation over the grid (ratio
      `se_ratio`) -> `concat([., h, w])` -> 1x1 conv `hidden_channels` ->
      swish -> 1x1 conv to 1. Kernels use the EfficientNet conv initializer
      `VarianceScaling(2.0, "fan_out", "truncated_normal")`. `V` is not used.
      `C` = 80 / 40 / 48 / 56 give 19,725 / 5,065 / 7,229 / 9,777 parameters.

    Args:
        variant: `"bagnet"` or `"efficientnet"`, see above.
        grid_size: int, the grid side `n`; `F` must be `n x n`.
        hidden_channels: int or `None`, width of the hidden 1x1 convolutions.
            `None` means 512 for `"bagnet"` and the channel count `C` of `F`
            for `"efficientnet"` (the release's choices).
        se_ratio: float in `(0, 1]`, squeeze-and-excitation bottleneck ratio of
            the `"efficientnet"` variant (`int(hidden_channels * se_ratio)`
            units). Defaults to `0.5`.
        normalize_logits: bool. `True` L2-normalises the `n * n` logits of each
            grid, which the release does before its softmax (a quirk the paper
            does not mention; original_implementation.md, "Location module",
            and original_implementation_detail.md Q3). `False` (default) follows
            the paper.
        uniform_initial_policy: bool. `True` zero-initialises the output
            convolution, so every cell starts equally likely and only the
            REINFORCE terms shape the policy. `False` (default) uses the
            release's initializer.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        feature_map: float tensor `(batch, n, n, C)`, the tapped map `F`.
        features: float tensor `(batch, D)`, the pooled vector `V`. Required
            by `"bagnet"`, ignored (may be `None`) by `"efficientnet"`.

    Returns:
        Logits of shape `(batch, n * n)`, cell `(row, column)` at index
        `row * n + column`.

    Example:
    >>> module = LocationModule("efficientnet", grid_size=3)
    >>> module(np.zeros((2, 3, 3, 8)), np.zeros((2, 16))).shape
    TensorShape([2, 9])

    Reference:
        Paper §3 ("location module"); original_implementation_detail.md §3.
    """

    def __init__(
        self,
        variant: str,
        grid_size: int,
        hidden_channels: int | None = None,
        se_ratio: float = 0.5,
        normalize_logits: bool = False,
        uniform_initial_policy: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(
                f"`variant` must be one of {VARIANTS}. "
                f"Received: variant={variant!r}"
            )
        if not config_lib.is_positive_int(grid_size):
            raise ValueError(
                "`grid_size` must be a positive integer. "
                f"Received: grid_size={grid_size!r}"
            )
        if hidden_channels is not None and not config_lib.is_positive_int(
            hidden_channels
        ):
            raise ValueError(
                "`hidden_channels` must be a positive integer or None. "
                f"Received: hidden_channels={hidden_channels!r}"
            )
        if (
            isinstance(se_ratio, bool)
            or not isinstance(se_ratio, (int, float))
            or not 0 < se_ratio <= 1
        ):
            raise ValueError(
                "`se_ratio` must be a number in (0, 1]. "
                f"Received: se_ratio={se_ratio!r}"
            )
        if not isinstance(normalize_logits, bool):
            raise ValueError(
                "`normalize_logits` must be a bool. "
                f"Received: normalize_logits={normalize_logits!r}"
            )

        if not isinstance(uniform_initial_policy, bool):
            raise ValueError(
                "`uniform_initial_policy` must be a bool. "
                f"Received: uniform_initial_policy={uniform_initial_policy!r}"
            )

        # === Config ===
        self.variant = variant
        self.grid_size = grid_size
        self.hidden_channels = hidden_channels
        self.se_ratio = se_ratio
        self.normalize_logits = normalize_logits
        self.uniform_initial_policy = uniform_initial_policy

        # === Layers ===
        if variant == "bagnet":
            self.hidden_conv = self._conv(
                hidden_channels or 512, "hidden_conv"
            )
        # The efficientnet convolutions default to the width of `F`, which is
        # only known in `build`, so they are created there.
        self.output_conv = self._conv(
            1, "output_conv", zeros=uniform_initial_policy
        )

    def _conv(self, filters, name, zeros=False):
        if zeros:
            # Equal logits everywhere: the policy starts uniform and only
            # the REINFORCE terms move it away.
            kernel_initializer = keras.initializers.Zeros()
        elif self.variant == "bagnet":
            kernel_initializer = keras.initializers.GlorotNormal()
        else:
            kernel_initializer = keras.initializers.VarianceScaling(
                scale=2.0, mode="fan_out", distribution="truncated_normal"
            )
        return keras.layers.Conv2D(
            filters,
            1,
            kernel_initializer=kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, feature_map_shape, features_shape=None):
        n = self.grid_size
        spatial = tuple(feature_map_shape[1:3])
        if len(feature_map_shape) != 4 or spatial != (n, n):
            raise ValueError(
                f"`feature_map` must have shape (batch, {n}, {n}, channels) "
                f"for grid_size={n}. "
                f"Received: feature_map.shape={tuple(feature_map_shape)}"
            )
        channels = feature_map_shape[-1]
        if channels is None:
            raise ValueError(
                "The channel axis of `feature_map` must be known. "
                f"Received: feature_map.shape={tuple(feature_map_shape)}"
            )
        if self.variant == "bagnet":
            if features_shape is None or len(features_shape) != 2:
                raise ValueError(
                    "The bagnet variant needs `features` of shape "
                    "(batch, features_dim). "
                    f"Received: features.shape={features_shape}"
                )
            hidden = self.hidden_channels or 512
            input_channels = channels + features_shape[-1] + 2
            self.hidden_conv.build((None, n, n, input_channels))
        else:
            hidden = self.hidden_channels or channels
            self.input_conv = self._conv(hidden, "input_conv")
            self.squeeze_conv = self._conv(
                max(1, int(hidden * self.se_ratio)), "squeeze_conv"
            )
            self.excite_conv = self._conv(hidden, "excite_conv")
            self.hidden_conv = self._conv(hidden, "hidden_conv")
            self.input_conv.build((None, n, n, channels))
            self.squeeze_conv.build((None, 1, 1, hidden))
            self.excite_conv.build((None, 1, 1, self.squeeze_conv.filters))
            self.hidden_conv.build((None, n, n, hidden + 2))
        self.output_conv.build((None, n, n, hidden))
        # Scalar affine maps of the row (index 0) and column (index 1)
        # coordinate channels, initialised to the identity.
        self.coordinate_kernel = self.add_weight(
            shape=(2,), initializer="ones", name="coordinate_kernel"
        )
        self.coordinate_bias = self.add_weight(
            shape=(2,), initializer="zeros", name="coordinate_bias"
        )

    def _coordinate_channels(self, feature_map):
        n = self.grid_size
        line = np.linspace(-1.0, 1.0, n)
        rows, columns = np.meshgrid(line, line, indexing="ij")
        grid = keras.ops.convert_to_tensor(
            np.stack([rows, columns], axis=-1), dtype=self.compute_dtype
        )  # (n, n, 2)
        grid = grid * self.coordinate_kernel + self.coordinate_bias
        batch = keras.ops.shape(feature_map)[0]
        return keras.ops.broadcast_to(grid, (batch, n, n, 2))

    def call(
        self, feature_map: tf.Tensor, features: tf.Tensor | None = None
    ) -> tf.Tensor:
        n = self.grid_size
        # Detail §3: the feature extractor must get no gradient from the
        # location module, which only the REINFORCE terms train.
        feature_map = keras.ops.stop_gradient(feature_map)
        coordinates = self._coordinate_channels(feature_map)  # (b, n, n, 2)
        if self.variant == "bagnet":
            if features is None:
                raise ValueError(
                    "The bagnet variant needs `features` (the pooled vector V)."
                )
            features = keras.ops.stop_gradient(features)
            batch = keras.ops.shape(feature_map)[0]
            tiled = keras.ops.broadcast_to(
                features[:, None, None, :], (batch, n, n, features.shape[-1])
            )  # (b, n, n, D)
            x = keras.ops.concatenate(
                [feature_map, tiled, coordinates], axis=-1
            )
            x = keras.ops.leaky_relu(self.hidden_conv(x), negative_slope=0.2)
        else:
            x = keras.activations.silu(self.input_conv(feature_map))
            # Squeeze-and-excitation over the grid: the cells' shared context.
            squeezed = keras.ops.mean(
                x, axis=(1, 2), keepdims=True
            )  # (b,1,1,h)
            gates = keras.activations.sigmoid(
                self.excite_conv(
                    keras.activations.silu(self.squeeze_conv(squeezed))
                )
            )
            x = keras.ops.concatenate([x * gates, coordinates], axis=-1)
            x = keras.activations.silu(self.hidden_conv(x))
        logits = self.output_conv(x)  # (b, n, n, 1)
        logits = keras.ops.reshape(logits, (-1, n * n))  # (b, cells) row-major
        if self.normalize_logits:
            # Release quirk (original_implementation_detail.md Q3): unit-norm
            # logits keep the softmax near uniform. Keras' epsilon guards the
            # all-zero vector, which gives NaN in the release.
            logits = keras.ops.normalize(logits, axis=-1, order=2)
        return logits

    def compute_output_shape(self, feature_map_shape, features_shape=None):
        return (feature_map_shape[0], self.grid_size * self.grid_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "variant": self.variant,
                "grid_size": self.grid_size,
                "hidden_channels": self.hidden_channels,
                "se_ratio": self.se_ratio,
                "normalize_logits": self.normalize_logits,
                "uniform_initial_policy": self.uniform_initial_policy,
            }
        )
        return config
