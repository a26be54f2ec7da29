"""The builder behind each backbone name, one per family.

Each takes the validated arguments of `tnet_tf.backbones.build_backbone` and
returns a `BackboneSpec` with its weights loaded: `build_bagnet77`,
`build_efficientnet` (every `efficientnet.APPLICATIONS` variant) and
`build_tiny_cnn` are registered under their names; `build_keras_application`
serves any `"keras.applications.<ClassName>"`. BagNet-77 and the tiny CNN
take [-1, 1] pixels as they are under either input_normalization.
"""

import sys

import keras

from tnet_tf import checkpoints
from tnet_tf.backbones import bagnet
from tnet_tf.backbones import efficientnet
from tnet_tf.backbones import tiny
from tnet_tf.backbones.spec import BackboneSpec
from tnet_tf.backbones.spec import default_tap
from tnet_tf.backbones.weights import is_whole_model_h5
from tnet_tf.backbones.weights import load_weights

GENERIC_PREFIX = "keras.applications."


def build_bagnet77(
    name,
    *,
    input_shape,
    grid_size,
    weights,
    dropout_rate,
    drop_connect_rate,
    input_normalization,
):
    _reject_drop_connect(name, drop_connect_rate)
    taps = {n: (bagnet.TAP_LAYER, s) for n, s in bagnet.TAP_SLICES.items()}
    tap_layer, tap_slice = default_tap(name, grid_size, taps)
    model = bagnet.bagnet77(input_shape, dropout_rate=dropout_rate)
    load_weights(model, weights, name)
    return BackboneSpec(
        model=model,
        feature_layer=bagnet.FEATURE_LAYER,
        tap_layer=tap_layer,
        tap_slice=tap_slice,
        family="bagnet",
    )


def build_efficientnet(
    name,
    *,
    input_shape,
    grid_size,
    weights,
    dropout_rate,
    drop_connect_rate,
    input_normalization,
):
    if dropout_rate:
        raise ValueError(
            f"Backbone '{name}' has no dropout before pooling (the release "
            "uses drop-connect inside and dropout in the classifier); use "
            "drop_connect_rate, and dropout in the classification module. "
            f"Received: dropout_rate={dropout_rate}"
        )
    tap_layer, tap_slice = default_tap(
        name, grid_size, efficientnet.TAPS[name]
    )

    def build(normalization):
        return efficientnet.efficientnet(
            name,
            input_shape,
            drop_connect_rate=drop_connect_rate,
            input_normalization=normalization,
        )

    model = build(input_normalization)
    if weights is not None and checkpoints.is_tf_checkpoint(weights):
        efficientnet.load_tpu_checkpoint(model, weights, name)
    elif input_normalization == "none" and is_whole_model_h5(weights):
        # keras.applications files hold the input Normalization layer this
        # model lacks: load into the full model, copy the rest by name.
        full = build("backbone")
        load_weights(full, weights, name)
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())
    else:
        load_weights(model, weights, name)
    if input_normalization == "backbone":
        # Loaded files may hold other normalization statistics (see the
        # function).
        efficientnet.set_imagenet_normalization(model)
    return BackboneSpec(
        model=model,
        feature_layer=efficientnet.FEATURE_LAYER,
        tap_layer=tap_layer,
        tap_slice=tap_slice,
        family="efficientnet",
    )


def build_tiny_cnn(
    name,
    *,
    input_shape,
    grid_size,
    weights,
    dropout_rate,
    drop_connect_rate,
    input_normalization,
):
    _reject_drop_connect(name, drop_connect_rate)
    taps = {}
    if grid_size is not None:
        height, width = input_shape[:2]
        if height != width:
            raise ValueError(
                f"Backbone '{name}' taps grids only for square inputs. "
                f"Received: input_shape={input_shape}"
            )
        map_size = -(-height // tiny.TAP_STRIDE)
        taps = {
            n: (tiny.TAP_LAYER, tiny.grid_slice(map_size, n))
            for n in tiny.SUPPORTED_GRIDS
            if n <= map_size
        }
    tap_layer, tap_slice = default_tap(name, grid_size, taps)
    model = tiny.tiny_cnn(input_shape, dropout_rate=dropout_rate)
    load_weights(model, weights, name)
    # BatchNorm + a small C suit the EfficientNet-style location module and
    # positional encoding (the BagNet variant assumes a 512-d V).
    return BackboneSpec(
        model=model,
        feature_layer=tiny.FEATURE_LAYER,
        tap_layer=tap_layer,
        tap_slice=tap_slice,
        family="efficientnet",
    )


class _ApplicationPreprocessing(keras.layers.Layer):
    """Maps [-1, 1] pixels to what a `keras.applications` model expects.

    Rescales to [0, 255], then applies the application module's own
    `preprocess_input` (e.g. back to [-1, 1] for MobileNetV2, caffe-style
    mean subtraction for ResNet50, identity for models that normalise
    internally).
    """

    def __init__(self, application, **kwargs):
        super().__init__(**kwargs)
        self.application = application
        module = sys.modules[
            getattr(keras.applications, application).__module__
        ]
        self._preprocess_input = getattr(module, "preprocess_input", None)

    def call(self, images):
        pixels = images * 127.5 + 127.5
        if self._preprocess_input is None:
            return pixels
        return self._preprocess_input(pixels)

    def get_config(self):
        return {**super().get_config(), "application": self.application}


def build_keras_application(
    name,
    *,
    input_shape,
    grid_size,
    weights,
    dropout_rate,
    drop_connect_rate,
    input_normalization,
):
    _reject_drop_connect(name, drop_connect_rate)
    class_name = name[len(GENERIC_PREFIX) :]
    application = getattr(keras.applications, class_name, None)
    if not class_name or not callable(application) or class_name[0].islower():
        raise ValueError(
            f"Unknown backbone '{name}': keras.applications has no model "
            f"class '{class_name}' (e.g. 'keras.applications.MobileNetV2')."
        )
    inputs = keras.Input(shape=input_shape, name="images")
    pixels = inputs
    if input_normalization == "backbone":
        pixels = _ApplicationPreprocessing(class_name, name="preprocessing")(
            inputs
        )
    model = application(
        include_top=False,
        weights=None,
        input_tensor=pixels,
        input_shape=input_shape,
    )
    feature_layer = model.layers[-1].name
    features = model.output
    if dropout_rate:
        features = keras.layers.SpatialDropout2D(
            dropout_rate, name="features_dropout"
        )(features)
        feature_layer = "features_dropout"
    # keras.applications wraps `input_tensor`'s source in a list; a model on
    # the bare input takes a plain tensor without a structure warning.
    model = keras.Model(inputs, features, name=model.name)
    load_weights(model, weights, name)
    # No default tap: the caller names one (FeatureExtractor's tap_layer).
    return BackboneSpec(
        model=model,
        feature_layer=feature_layer,
        tap_layer=None,
        tap_slice=None,
        family="generic",
    )


def _reject_drop_connect(name, drop_connect_rate):
    if drop_connect_rate is not None:
        raise ValueError(
            f"Backbone '{name}' has no drop-connect; drop_connect_rate is for "
            f"EfficientNets. Received: drop_connect_rate={drop_connect_rate}"
        )
