"""Plain CNN classifiers run on the whole image: the paper's baselines."""

from typing import Any

import keras
import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf.models import image_classifier

METRIC_TERMS = ("loss", "cross_entropy", "l2", "contrastive")


@keras.saving.register_keras_serializable(package="tnet_tf")
class BaselineClassifier(image_classifier.ImageClassifier):
    """A backbone, global average pooling and a linear classifier.

    The baselines TNet is compared against: BagNet-77 on 224 px ImageNet
    images (Table 1) and EfficientNet-B0..B4 at 224-896 px (Table 2, Fig. 3).
    The backbone is fully convolutional and runs on the whole image at its
    own resolution, so its cost grows with the input area.

    Args:
        config: a `tnet_tf.BaselineConfig` (or its `to_dict()` form).
        load_backbone_weights: load `config.backbone_weights` when set.
        **kwargs: passed to `keras.Model`.

    Call arguments (TNet's, see `ImageClassifier`):
        images: float tensor `(batch, height, width, 3)` in [-1, 1].
        training: training mode.
        locations_per_level: `None` or `[]` (it attends no region).
        selection: ignored (nothing is selected).

    Returns:
        TNet's output dict with the whole image as the one attended
        region (`T = 1`): `logits` `(batch, num_classes)`,
        `per_feature_logits` `(batch, 1, num_classes)`, `features`
        `(batch, D)`, `location_probs` `()`, `attended_boxes`
        `(batch, 1, 4)` all `0, 0, 1, 1`, `attended_levels` ones,
        `attended_cells` -1, `attended_log_probs` and `location_log_prob`
        zeros.

    Training (`compile` then `fit`) minimises the cross-entropy plus the
    config's L2 and contrastive terms (the release's baseline loss, §14),
    optionally with a second optimizer for the backbone
    (`compile(optimizer, backbone_optimizer=...)`); `fit` and `evaluate`
    report `loss`, `cross_entropy`, `l2`, `contrastive`, `top1` and `top5`.

    Example:
    >>> model = tnet_tf.presets.build("fmow_en_b0_448")
    >>> logits = model(images)["logits"]
    """

    config_class = config_lib.BaselineConfig

    def __init__(
        self,
        config: config_lib.BaselineConfig | dict[str, Any],
        load_backbone_weights: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, load_backbone_weights, **kwargs)
        self.feature_extractor = self.build_feature_extractor(
            base_resolution=None, grid_size=None
        )
        self.classification_module = self.build_classification_module()
        self.track_metrics(METRIC_TERMS)
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        self.feature_extractor.build((None, None, None, 3))
        self.classification_module.build(
            (None, self.feature_extractor.feature_dim)
        )
        self.built = True

    def call(
        self,
        images: tf.Tensor,
        training: bool | None = None,
        locations_per_level: image_classifier.Locations = None,
        selection: str | None = None,
    ) -> image_classifier.Outputs:
        self.resolve_locations(locations_per_level)
        features = self.feature_extractor(images, training=training)
        logits = self.classification_module(features, training=training)
        batch = tf.shape(images)[0]
        zeros = tf.zeros((batch, 1))
        return {
            "logits": logits,
            "per_feature_logits": logits[:, None],
            "location_probs": (),
            "attended_boxes": tf.tile(
                tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), [batch, 1, 1]
            ),
            "attended_levels": tf.ones((batch, 1), tf.int32),
            "attended_cells": -tf.ones((batch, 1), tf.int32),
            "attended_log_probs": zeros,
            "location_log_prob": zeros[:, 0],
            "features": features,
        }

    def compute_loss_terms(self, images, labels, training):
        """The output dict and the loss terms of one replica's batch."""
        outputs = self(
            images,
            training=training,
            locations_per_level=None
            if training
            else self.evaluation_locations,
        )
        terms = {
            "cross_entropy": tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels,
                    logits=tf.cast(outputs["logits"], tf.float32),
                )
            )
        }
        terms.update(self.regularization_terms(outputs["features"], labels))
        terms["loss"] = (
            terms["cross_entropy"] + terms["l2"] + terms["contrastive"]
        )
        return outputs, terms
