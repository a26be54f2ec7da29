"""TNet's building blocks as Keras layers."""

from tnet_tf.layers.classification_module import ClassificationModule
from tnet_tf.layers.classification_module import classifier_initializer
from tnet_tf.layers.feature_extractor import FeatureExtractor
from tnet_tf.layers.feature_weighting import FeatureWeighting
from tnet_tf.layers.location_module import LocationModule
from tnet_tf.layers.positional_encoding import PositionalEncoding
from tnet_tf.layers.positional_encoding import sinusoidal_encoding

__all__ = [
    "ClassificationModule",
    "classifier_initializer",
    "FeatureExtractor",
    "FeatureWeighting",
    "LocationModule",
    "PositionalEncoding",
    "sinusoidal_encoding",
]
