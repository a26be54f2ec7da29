"""Positional encoding of a feature vector's place in the attention tree."""

from typing import Any

import keras
import numpy as np
import tensorflow as tf

VARIANTS = ("bagnet", "efficientnet")


def _check_encoding_args(encoding_dim, max_inverse_frequency):
    if (
        isinstance(encoding_dim, bool)
        or not isinstance(encoding_dim, int)
        or encoding_dim < 6
    ):
        raise ValueError(
            "`encoding_dim` must be an integer >= 6 (one sine and one cosine "
            "for each of y, x and scale). "
            f"Received: encoding_dim={encoding_dim!r}"
        )
    if (
        isinstance(max_inverse_frequency, bool)
        or not isinstance(max_inverse_frequency, (int, float))
        or not max_inverse_frequency > 0
    ):
        raise ValueError(
            "`max_inverse_frequency` must be a positive number. "
            f"Received: max_inverse_frequency={max_inverse_frequency!r}"
        )


def sinusoidal_encoding(
    positions: tf.Tensor,
    encoding_dim: int,
    max_inverse_frequency: float = 100.0,
) -> tf.Tensor:
    """Encodes `(y, x, scale)` position triplets with sinusoids.

    With `K = encoding_dim // 6` frequencies
    `w_j = max_inverse_frequency ** (-j / (K - 1))` for `j = 0 .. K - 1`
    (from 1 down to `1 / max_inverse_frequency`), each triplet becomes
    `[sin(y w), cos(y w), sin(x w), cos(x w), sin(s w), cos(s w)]`, each block
    `K` long, followed by `encoding_dim - 6 K` zeros. With a single frequency
    (`6 <= encoding_dim < 12`) that frequency is 1.

    Args:
        positions: float tensor of shape `(..., 3)` holding `[y, x, scale]`:
            integer grid indices of the attended cell and its level minus one
            (level 1, the whole image, is `(0, 0, 0)`).
        encoding_dim: int, size of the encoding (the release's `D`).
        max_inverse_frequency: float, the inverse of the lowest frequency.
            Defaults to `100.0`, the release's value.

    Returns:
        A tensor of shape `(..., encoding_dim)` with the dtype of `positions`
        (float32 when `positions` is not floating point).

    Example:
    >>> sinusoidal_encoding([[0.0, 0.0, 0.0]], 12).shape
    TensorShape([1, 12])

    Reference:
        original_implementation_detail.md §6 (`create_positional_vectors`).
    """
    _check_encoding_args(encoding_dim, max_inverse_frequency)
    positions = keras.ops.convert_to_tensor(positions)
    if not keras.backend.is_float_dtype(positions.dtype):
        positions = keras.ops.cast(positions, "float32")
    shape = tuple(positions.shape)
    if len(shape) < 1 or shape[-1] not in (None, 3):
        raise ValueError(
            "`positions` must have shape (..., 3) holding [y, x, scale]. "
            f"Received: positions.shape={shape}"
        )
    num_frequencies = encoding_dim // 6
    # Frequencies are computed in float64 and cast once, so float32 callers
    # get the correctly rounded value of every frequency.
    exponents = np.arange(num_frequencies) / max(num_frequencies - 1, 1)
    frequencies = keras.ops.convert_to_tensor(
        float(max_inverse_frequency) ** -exponents, dtype=positions.dtype
    )
    blocks = []
    for axis in range(3):
        angles = positions[..., axis : axis + 1] * frequencies  # (..., K)
        blocks += [keras.ops.sin(angles), keras.ops.cos(angles)]
    encoding = keras.ops.concatenate(blocks, axis=-1)  # (..., 6 K)
    padding = encoding_dim - 6 * num_frequencies
    if padding:
        rank = len(encoding.shape)
        encoding = keras.ops.pad(
            encoding, [[0, 0]] * (rank - 1) + [[0, padding]]
        )
    return encoding


@keras.saving.register_keras_serializable(package="tnet_tf")
class PositionalEncoding(keras.layers.Layer):
    """Fuses a feature vector with the sinusoidal encoding of its position.

    Every feature vector `V` that TNet extracts (the whole image at level 1,
    then each attended cell) carries a position triplet `(y, x, scale)`; this
    layer encodes it with `sinusoidal_encoding` into `p` and merges `p` into
    `V`. The same layer (shared weights) serves every level.

    - `"bagnet"` (ImageNet): `Dense(output_dim)(concat([V, p]))`, linear,
      glorot-normal kernel. 512-d `V` and 512-d `p` give 524,800 parameters.
    - `"efficientnet"` (fMoW, CUB, NABirds): `swish(V + Dense(output_dim)(p))`
      with the EfficientNet dense initializer
      `VarianceScaling(1/3, "fan_out", "uniform")`; `V` must have `output_dim`
      channels. `p` of 320 dims into 1280 gives 410,880 parameters.

    Args:
        variant: `"bagnet"` or `"efficientnet"`, see above.
        output_dim: int, size of the returned vector (the release's `ls`).
        encoding_dim: int, size of the sinusoidal encoding: `ls` for BagNet,
            `ls // 4` for EfficientNet in the release.
        max_inverse_frequency: float, inverse of the lowest sinusoid frequency.
            Defaults to `100.0`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        features: float tensor `(..., D)`, the pooled feature vectors `V`.
        positions: float tensor `(..., 3)`, `[y, x, scale]` per vector.

    Returns:
        A tensor of shape `(..., output_dim)`.

    Example:
    >>> layer = PositionalEncoding("efficientnet", 16, encoding_dim=8)
    >>> layer(np.zeros((2, 16)), np.zeros((2, 3))).shape
    TensorShape([2, 16])

    Reference:
        Paper §3 ("positional encoding"); original_implementation_detail.md §6
        (layer `feature_posBurn`).
    """

    def __init__(
        self,
        variant: str,
        output_dim: int,
        encoding_dim: int,
        max_inverse_frequency: float = 100.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(
                f"`variant` must be one of {VARIANTS}. "
                f"Received: variant={variant!r}"
            )
        if (
            isinstance(output_dim, bool)
            or not isinstance(output_dim, int)
            or output_dim < 1
        ):
            raise ValueError(
                "`output_dim` must be a positive integer. "
                f"Received: output_dim={output_dim!r}"
            )
        _check_encoding_args(encoding_dim, max_inverse_frequency)

        # === Config ===
        self.variant = variant
        self.output_dim = output_dim
        self.encoding_dim = encoding_dim
        self.max_inverse_frequency = max_inverse_frequency

        # === Layers ===
        if variant == "bagnet":
            kernel_initializer = keras.initializers.GlorotNormal()
        else:
            kernel_initializer = keras.initializers.VarianceScaling(
                scale=1.0 / 3.0, mode="fan_out", distribution="uniform"
            )
        self.projection = keras.layers.Dense(
            output_dim,
            kernel_initializer=kernel_initializer,
            dtype=self.dtype_policy,
            name="projection",
        )

    def build(self, features_shape, positions_shape=None):
        features_dim = features_shape[-1]
        if features_dim is None:
            raise ValueError(
                "The last axis of `features` must be known. "
                f"Received: features.shape={tuple(features_shape)}"
            )
        if positions_shape is not None and positions_shape[-1] not in (
            None,
            3,
        ):
            raise ValueError(
                "`positions` must have shape (..., 3) holding [y, x, scale]. "
                f"Received: positions.shape={tuple(positions_shape)}"
            )
        if self.variant == "bagnet":
            self.projection.build((None, features_dim + self.encoding_dim))
        else:
            if features_dim != self.output_dim:
                raise ValueError(
                    "The efficientnet variant adds the projected encoding to "
                    f"`features`, which must have output_dim={self.output_dim} "
                    "channels. "
                    f"Received: features.shape={tuple(features_shape)}"
                )
            self.projection.build((None, self.encoding_dim))

    def call(self, features: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
        encoding = sinusoidal_encoding(
            keras.ops.cast(positions, self.compute_dtype),
            self.encoding_dim,
            self.max_inverse_frequency,
        )  # (..., encoding_dim)
        if self.variant == "bagnet":
            return self.projection(
                keras.ops.concatenate([features, encoding], axis=-1)
            )
        return keras.activations.silu(features + self.projection(encoding))

    def compute_output_shape(self, features_shape, positions_shape=None):
        return tuple(features_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "variant": self.variant,
                "output_dim": self.output_dim,
                "encoding_dim": self.encoding_dim,
                "max_inverse_frequency": self.max_inverse_frequency,
            }
        )
        return config
