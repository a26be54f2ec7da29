"""The feature weighting module: a learned weighted mean of feature vectors."""

from typing import Any

import keras
import tensorflow as tf


def _dense_initializer():
    # The module only appears in the EfficientNet models (CUB, NABirds), which
    # use this dense initializer throughout (detail §2.2).
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_out", distribution="uniform"
    )


@keras.saving.register_keras_serializable(package="tnet_tf")
class FeatureWeighting(keras.layers.Layer):
    """Aggregates `T` feature vectors with softmax weights computed from them.

    Replaces the plain mean over the vectors that TNet extracted (CUB and
    NABirds). On `X` of shape `(batch, T, C)`:

    1. squeeze: the mean over `T`;
    2. `Dense(C // reduction)` -> swish -> `Dense(C)` -> sigmoid gives channel
       gates `g`;
    3. one logit per vector: `Dense(1)(X * g)`;
    4. softmax over `T` gives the weights `w`;
    5. the aggregate is `sum_t w_t X_t`, over the *un-gated* vectors.

    Any `T` is accepted, so a model trained with 5 locations can be evaluated
    with 3. Dense kernels use `VarianceScaling(1/3, "fan_out", "uniform")`.
    `C = 1280` gives 822,081 parameters, `C = 1408` 994,401.

    Args:
        reduction: int, the squeeze-and-excitation bottleneck divisor.
            Defaults to `4`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        vectors: float tensor `(batch, T, C)`.

    Returns:
        A tuple `(aggregate, weights)`: `aggregate` of shape `(batch, C)`, and
        `weights` of shape `(batch, T)`, summing to one over `T`. Gradients flow
        through the weights into `aggregate`; the returned `weights` are a
        stop-gradient copy for inspection (as in the release).

    Example:
    >>> weighting = FeatureWeighting()
    >>> aggregate, weights = weighting(np.ones((2, 6, 32)))
    >>> aggregate.shape, weights.shape
    (TensorShape([2, 32]), TensorShape([2, 6]))

    Reference:
        original_implementation_detail.md §7 (layer `feat_weighting`).
    """

    def __init__(self, reduction: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(reduction, bool)
            or not isinstance(reduction, int)
            or reduction < 1
        ):
            raise ValueError(
                "`reduction` must be a positive integer. "
                f"Received: reduction={reduction!r}"
            )

        # === Config ===
        self.reduction = reduction

        # === Layers ===
        # The squeeze and excite widths depend on C, so those two layers are
        # created in `build`.
        self.score = keras.layers.Dense(
            1,
            kernel_initializer=_dense_initializer(),
            dtype=self.dtype_policy,
            name="score",
        )

    def build(self, vectors_shape):
        if len(vectors_shape) != 3 or vectors_shape[-1] is None:
            raise ValueError(
                "`vectors` must have shape (batch, vectors, channels) with "
                "known channels. "
                f"Received: vectors.shape={tuple(vectors_shape)}"
            )
        channels = vectors_shape[-1]
        self.squeeze = keras.layers.Dense(
            max(1, channels // self.reduction),
            kernel_initializer=_dense_initializer(),
            dtype=self.dtype_policy,
            name="squeeze",
        )
        self.excite = keras.layers.Dense(
            channels,
            kernel_initializer=_dense_initializer(),
            dtype=self.dtype_policy,
            name="excite",
        )
        self.squeeze.build((None, channels))
        self.excite.build((None, self.squeeze.units))
        self.score.build((None, None, channels))

    def call(self, vectors: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        squeezed = keras.ops.mean(vectors, axis=1)  # (b, C)
        gates = keras.activations.sigmoid(
            self.excite(keras.activations.silu(self.squeeze(squeezed)))
        )  # (b, C)
        gated = vectors * gates[:, None, :]  # (b, T, C)
        scores = keras.ops.squeeze(self.score(gated), axis=-1)  # (b, T)
        # Softmax over T written out: keras.ops.softmax warns when T == 1
        # (level 1 only), where the single weight is rightly 1.
        scores = scores - keras.ops.max(scores, axis=-1, keepdims=True)
        exponentials = keras.ops.exp(scores)
        weights = exponentials / keras.ops.sum(
            exponentials, axis=-1, keepdims=True
        )  # (b, T)
        # The un-gated vectors are weighted (detail §7, step 6).
        aggregate = keras.ops.sum(vectors * weights[:, :, None], axis=1)
        return aggregate, keras.ops.stop_gradient(weights)

    def compute_output_shape(self, vectors_shape):
        return (
            (vectors_shape[0], vectors_shape[2]),
            (vectors_shape[0], vectors_shape[1]),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config
