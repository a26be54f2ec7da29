"""The classification module shared by the aggregate and every feature."""

from typing import Any

import keras
import tensorflow as tf
from keras.initializers import Initializer

# Dense initializer of the EfficientNet family (release §8); BagNet uses
# glorot_normal everywhere.
_EFFICIENTNET_DENSE_INIT = {
    "class_name": "VarianceScaling",
    "config": {
        "scale": 1.0 / 3.0,
        "mode": "fan_out",
        "distribution": "uniform",
    },
}


def classifier_initializer(family: str) -> str | dict[str, Any]:
    """The release's classifier kernel initializer for a backbone family."""
    return "glorot_normal" if family == "bagnet" else _EFFICIENTNET_DENSE_INIT


@keras.saving.register_keras_serializable(package="tnet_tf")
class ClassificationModule(keras.layers.Layer):
    """Dropout followed by one dense layer to class logits.

    TNet applies one classification module (shared weights) to the aggregated
    feature vector and to each single feature vector (the per-feature
    predictions of the learning rule). Dropout is active in training only and
    draws a fresh mask on every call.

    Args:
        num_classes: int, number of classes.
        dropout_rate: float in `[0, 1)`, dropout rate before the dense layer.
            Defaults to `0.0` (the ImageNet setting; the EfficientNet
            recipes use 0.3 to 0.75).
        kernel_initializer: initializer of the dense kernel (name, config dict
            or `keras.initializers.Initializer`). Defaults to
            `"glorot_normal"` (ImageNet); the EfficientNet models use
            `VarianceScaling(1/3, "fan_out", "uniform")`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`...).

    Call arguments:
        inputs: float tensor `(..., D)`.
        training: bool or `None`, whether dropout is active.

    Returns:
        Logits of shape `(..., num_classes)`.

    Example:
    >>> head = ClassificationModule(num_classes=10, dropout_rate=0.5)
    >>> head(np.zeros((2, 4, 32)), training=False).shape
    TensorShape([2, 4, 10])

    Reference:
        original_implementation_detail.md §8 (layer `logits_layer`).
    """

    def __init__(
        self,
        num_classes: int,
        dropout_rate: float = 0.0,
        kernel_initializer: str | dict | Initializer = "glorot_normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, int)
            or num_classes < 1
        ):
            raise ValueError(
                "`num_classes` must be a positive integer. "
                f"Received: num_classes={num_classes!r}"
            )
        if (
            isinstance(dropout_rate, bool)
            or not isinstance(dropout_rate, (int, float))
            or not 0 <= dropout_rate < 1
        ):
            raise ValueError(
                "`dropout_rate` must be a number in [0, 1). "
                f"Received: dropout_rate={dropout_rate!r}"
            )
        try:
            initializer = keras.initializers.get(kernel_initializer)
        except (ValueError, TypeError) as error:
            raise ValueError(
                "`kernel_initializer` must name or describe a Keras "
                f"initializer. Received: kernel_initializer="
                f"{kernel_initializer!r}"
            ) from error

        # === Config ===
        self.num_classes = num_classes
        self.dropout_rate = dropout_rate
        self.kernel_initializer = initializer

        # === Layers ===
        self.dropout = keras.layers.Dropout(
            dropout_rate, dtype=self.dtype_policy, name="dropout"
        )
        self.dense = keras.layers.Dense(
            num_classes,
            kernel_initializer=initializer,
            dtype=self.dtype_policy,
            name="dense",
        )

    def build(self, inputs_shape):
        if inputs_shape[-1] is None:
            raise ValueError(
                "The last axis of the inputs must be known. "
                f"Received: inputs.shape={tuple(inputs_shape)}"
            )
        self.dense.build(inputs_shape)

    def call(
        self, inputs: tf.Tensor, training: bool | None = None
    ) -> tf.Tensor:
        return self.dense(self.dropout(inputs, training=training))

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "dropout_rate": self.dropout_rate,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
