"""Plain CNN classifiers run on the whole image: the paper's baselines."""

import keras
import tensorflow as tf

from tnet_tf import backbones
from tnet_tf import config as config_lib
from tnet_tf import fine_tuning
from tnet_tf.layers import ClassificationModule
from tnet_tf.layers import FeatureExtractor
from tnet_tf.layers import classifier_initializer

METRIC_TERMS = ("loss", "cross_entropy", "l2", "contrastive")


@keras.saving.register_keras_serializable(package="tnet_tf")
class BaselineClassifier(fine_tuning.FineTuningModel):
    """A backbone, global average pooling and a linear classifier.

    The baselines TNet is compared against: BagNet-77 on 224 px ImageNet
    images (Table 1) and EfficientNet-B0..B4 at 224-896 px (Table 2, Fig. 3).
    The backbone is fully convolutional and runs on the whole image at its
    own resolution, so its cost grows with the input area.

    Args:
        config: a `tnet_tf.BaselineConfig` (or its `to_dict()` form).
        load_backbone_weights: load `config.backbone_weights` when set.
        **kwargs: passed to `keras.Model`.

    Call arguments:
        images: float tensor `(batch, height, width, 3)` in [-1, 1].
        training: training mode.

    Returns:
        Logits `(batch, num_classes)`.

    Training (`compile` then `fit`) minimises the cross-entropy plus the
    config's L2 and contrastive terms (the release's baseline loss, §14),
    optionally with a second optimizer for the backbone
    (`compile(optimizer, backbone_optimizer=...)`); `fit` and `evaluate`
    report `loss`, `cross_entropy`, `l2`, `contrastive`, `top1` and `top5`.

    Example:
    >>> model = tnet_tf.presets.build("fmow_en_b0_448")
    >>> logits = model(images)
    """

    def __init__(self, config, load_backbone_weights=True, **kwargs):
        if isinstance(config, dict):
            config = config_lib.BaselineConfig.from_dict(config)
        if not isinstance(config, config_lib.BaselineConfig):
            raise ValueError(
                f"`config` must be a BaselineConfig or dict, got {type(config)}."
            )
        kwargs.setdefault("name", config.name)
        super().__init__(**kwargs)
        # === Config ===
        self.config = config
        self.load_backbone_weights = load_backbone_weights
        # === Layers ===
        self.feature_extractor = FeatureExtractor(
            backbone=config.backbone,
            base_resolution=None,
            grid_size=None,
            weights=config.backbone_weights if load_backbone_weights else None,
            dropout_rate=config.backbone_dropout_rate,
            drop_connect_rate=config.drop_connect_rate,
            input_normalization=config.input_normalization,
            name="feature_extractor",
        )
        self.classification_module = ClassificationModule(
            num_classes=config.num_classes,
            dropout_rate=config.dropout_rate,
            kernel_initializer=classifier_initializer(
                self.feature_extractor.family
            ),
            name="classification_module",
        )
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

    def call(self, images, training=None):
        features = self.feature_extractor(images, training=training)
        return self.classification_module(features, training=training)

    def compute_loss_terms(self, images, labels, training):
        """Logits and the loss terms of one replica's batch."""
        features = self.feature_extractor(images, training=training)
        logits = self.classification_module(features, training=training)
        terms = {
            "cross_entropy": tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=tf.cast(logits, tf.float32)
                )
            )
        }
        terms.update(self.regularization_terms(features, labels))
        terms["loss"] = (
            terms["cross_entropy"] + terms["l2"] + terms["contrastive"]
        )
        return logits, terms

    def train_step(self, data):
        images, labels = fine_tuning.unpack_batch(data)
        logits, terms = self.minimize(
            lambda: self.compute_loss_terms(images, labels, True)
        )
        return self.update_metrics(labels, logits, terms)

    def test_step(self, data):
        images, labels = fine_tuning.unpack_batch(data)
        logits, terms = self.compute_loss_terms(images, labels, False)
        return self.update_metrics(labels, logits, terms)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # The saved weights are restored next, backbone included.
        with backbones.loading_saved_weights():
            return cls(
                config.pop("config"), load_backbone_weights=False, **config
            )
