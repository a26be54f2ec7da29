"""Plain CNN classifiers run on the whole image: the paper's baselines."""

import keras

from tnet_tf import config as config_lib
from tnet_tf.layers import ClassificationModule
from tnet_tf.layers import FeatureExtractor
from tnet_tf.model import _EFFICIENTNET_DENSE_INIT


@keras.saving.register_keras_serializable(package="tnet_tf")
class BaselineClassifier(keras.Model):
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
            name="feature_extractor",
        )
        bagnet = self.feature_extractor.family == "bagnet"
        self.classification_module = ClassificationModule(
            num_classes=config.num_classes,
            dropout_rate=config.dropout_rate,
            kernel_initializer=(
                "glorot_normal" if bagnet else _EFFICIENTNET_DENSE_INIT
            ),
            name="classification_module",
        )
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

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(
            config.pop("config"), load_backbone_weights=False, **config
        )
