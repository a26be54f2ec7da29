"""The feature extraction module: a backbone read at two places."""

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf.backbones import build_backbone
from tnet_tf.backbones import check_tap
from tnet_tf.backbones import check_tap_slice


@keras.saving.register_keras_serializable(package="tnet_tf")
class FeatureExtractor(keras.layers.Layer):
    """Extracts TNet's feature vector `V` and spatial map `F` from images.

    Wraps a backbone (see `tnet_tf.backbones`) built at the base resolution.
    `V` is the global average of the backbone's feature layer (e.g. BagNet-77's
    part 6, EfficientNet's head activation); `F` is an intermediate map,
    sliced so that it has one position per grid cell, which the location
    module scores. Without a grid (`grid_size=None`, baselines) only `V` is
    returned and the input size may be left open.

    The default taps are the release's: BagNet-77 at 77 px gives a 5x5x1024
    `F`; EfficientNet-B0..B4 at 224 px give 3x3 or 5x5 maps. `tap_layer` and
    `tap_slice` override them, which also turns any
    `"keras.applications.<ClassName>"` model into a TNet backbone. The sliced
    tap must be exactly `grid_size x grid_size` at `base_resolution`, else a
    `ValueError` is raised.

    Args:
        backbone: str, a registered backbone name (`"bagnet77"`,
            `"efficientnet_b0"` ... `"efficientnet_b4"`, `"tiny_cnn"`) or
            `"keras.applications.<ClassName>"`. Defaults to `"bagnet77"`.
        base_resolution: int, `(height, width)` or `None`: the backbone's input
            size (every level's images are resized to it). `None` accepts any
            size and requires `grid_size=None`.
        grid_size: int `n` or `None`. With a grid, the layer also returns the
            `n x n` map `F`.
        weights: `None` (random initialization, logged as a warning) or the
            path of a local backbone weights file, e.g. written by
            `extractor.backbone_model.save_weights(path)` or a
            `keras.applications` `*_notop.h5` file. Stored as
            `backbone_weights` (`weights` is a `keras.layers.Layer` property)
            and not serialized: saved models carry their weights.
        dropout_rate: float in [0, 1), channel-wise dropout before pooling
            (BagNet-77, `tiny_cnn`, generic backbones; must be 0 for
            EfficientNets).
        drop_connect_rate: `None` or float in [0, 1), EfficientNet drop-connect
            (block `b` of `N`, 1-based, gets `drop_connect_rate * b / N`).
        tap_layer: str or `None`, overrides the backbone's tap layer; required
            for a grid on generic backbones.
        tap_slice: `(start, stop, step)` or `None`, overrides the slice applied
            to both spatial axes of the tap (with `tap_layer` alone: the whole
            map).
        input_normalization: `"backbone"` (the backbone's own input
            convention) or `"none"` (pixels go in unchanged, the release's
            EfficientNet); see `tnet_tf.backbones.build_backbone`.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, ...).

    Call arguments:
        images: float tensor `(batch, H, W, 3)` with pixels in [-1, 1], at the
            base resolution.
        training: bool or `None`; enables dropout / drop-connect and batch
            statistics.

    Returns:
        With a grid, a tuple `(features, feature_map)`: `(batch, D)` and
        `(batch, n, n, C)`. Without a grid, `features` only.

    Example:
    >>> extractor = FeatureExtractor("tiny_cnn", base_resolution=64, grid_size=3)
    >>> features, feature_map = extractor(keras.ops.zeros((2, 64, 64, 3)))
    >>> tuple(features.shape), tuple(feature_map.shape)
    ((2, 64), (2, 3, 3, 32))

    Reference: paper §3.1 (feature extraction module);
    original_implementation_detail.md §2.
    """

    def __init__(
        self,
        backbone: str = "bagnet77",
        base_resolution: int | None = None,
        grid_size: int | None = None,
        weights: str | None = None,
        dropout_rate: float = 0.0,
        drop_connect_rate: float | None = None,
        tap_layer: str | None = None,
        tap_slice: Sequence[int | None] | None = None,
        input_normalization: str = "backbone",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone
        self.base_resolution = self._check_base_resolution(base_resolution)
        self.grid_size = grid_size
        self.backbone_weights = weights
        self.dropout_rate = dropout_rate
        self.drop_connect_rate = drop_connect_rate
        self.tap_layer = tap_layer
        self.input_normalization = input_normalization
        self.tap_slice = (
            None if tap_slice is None else check_tap_slice(tap_slice)
        )

        if grid_size is not None and not config_lib.is_positive_int(grid_size):
            raise ValueError(
                "`grid_size` must be a positive int or None. "
                f"Received: grid_size={grid_size!r}"
            )
        if grid_size is not None and base_resolution is None:
            raise ValueError(
                "A grid needs a fixed `base_resolution`. "
                f"Received: base_resolution=None, grid_size={grid_size}"
            )
        if grid_size is None and (
            tap_layer is not None or tap_slice is not None
        ):
            raise ValueError(
                "`tap_layer`/`tap_slice` need a `grid_size`. "
                f"Received: tap_layer={tap_layer!r}, tap_slice={tap_slice!r}"
            )
        if tap_layer is not None and not isinstance(tap_layer, str):
            raise ValueError(
                f"`tap_layer` must be a layer name. Received: tap_layer={tap_layer!r}"
            )

        if self.base_resolution is None:
            input_shape = (None, None, 3)
        else:
            input_shape = (*self.base_resolution, 3)
        spec = build_backbone(
            backbone,
            input_shape=input_shape,
            # An explicit tap layer replaces the backbone's own tap, so the
            # backbone need not support this grid itself.
            grid_size=None if tap_layer is not None else grid_size,
            weights=weights,
            dropout_rate=dropout_rate,
            drop_connect_rate=drop_connect_rate,
            input_normalization=input_normalization,
        )
        if tap_layer is not None:
            spec = dataclasses.replace(
                spec,
                tap_layer=tap_layer,
                tap_slice=self.tap_slice or (None, None, None),
            )
        elif self.tap_slice is not None:
            spec = dataclasses.replace(spec, tap_slice=self.tap_slice)
        if grid_size is not None:
            if spec.tap_layer is None:
                raise ValueError(
                    f"Backbone '{backbone}' has no default tap; pass "
                    "`tap_layer` (and `tap_slice`) to use it with "
                    f"grid_size={grid_size}."
                )
            check_tap(spec, grid_size, backbone)
        self._spec = spec

        features = spec.model.get_layer(spec.feature_layer).output
        if len(features.shape) != 4:
            raise ValueError(
                f"The feature layer '{spec.feature_layer}' of backbone "
                f"'{backbone}' must output a 4-D map; its output shape is "
                f"{features.shape}."
            )
        features = keras.layers.GlobalAveragePooling2D(name="feature_pool")(
            features
        )
        outputs = features
        if grid_size is not None:
            tap = spec.model.get_layer(spec.tap_layer).output
            cells = slice(*spec.tap_slice)
            outputs = [features, tap[:, cells, cells, :]]
        self.extractor = keras.Model(
            spec.model.input, outputs, name=f"{spec.model.name}_extractor"
        )
        # Every weight exists now; building here makes `count_params()` and
        # `weights` usable before the first call.
        self.build((None, *input_shape))

    @staticmethod
    def _check_base_resolution(base_resolution):
        if base_resolution is None:
            return None
        if config_lib.is_positive_int(base_resolution):
            return (base_resolution, base_resolution)
        if (
            isinstance(base_resolution, (tuple, list))
            and len(base_resolution) == 2
            and all(
                config_lib.is_positive_int(side) for side in base_resolution
            )
        ):
            return tuple(base_resolution)
        raise ValueError(
            "`base_resolution` must be an int, (height, width) or None. "
            f"Received: base_resolution={base_resolution!r}"
        )

    @property
    def backbone_model(self):
        """The backbone `keras.Model` (images in [-1, 1] -> feature map)."""
        return self._spec.model

    @property
    def family(self):
        """`"bagnet"`, `"efficientnet"` or `"generic"` (see BackboneSpec)."""
        return self._spec.family

    @property
    def feature_dim(self):
        """int `D`, the size of the feature vector `V`."""
        outputs = self.extractor.outputs
        return int(outputs[0].shape[-1])

    @property
    def tap_channels(self):
        """int `C`, the channels of the map `F`; `None` without a grid."""
        if self.grid_size is None:
            return None
        return int(self.extractor.outputs[1].shape[-1])

    def build(self, input_shape):
        # Nothing to create: the backbone is built in __init__.
        self.built = True

    def call(
        self, images: tf.Tensor, training: bool | None = None
    ) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
        outputs = self.extractor(images, training=training)
        if self.grid_size is None:
            return outputs
        return tuple(outputs)

    def compute_output_shape(self, input_shape):
        features_shape = (input_shape[0], self.feature_dim)
        if self.grid_size is None:
            return features_shape
        n = self.grid_size
        return features_shape, (input_shape[0], n, n, self.tap_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": self.backbone,
                "base_resolution": (
                    None
                    if self.base_resolution is None
                    else list(self.base_resolution)
                ),
                "grid_size": self.grid_size,
                # Not the path: a deserialized layer gets its weights from the
                # saved model, and the original file may no longer exist.
                "weights": None,
                "dropout_rate": self.dropout_rate,
                "drop_connect_rate": self.drop_connect_rate,
                "tap_layer": self.tap_layer,
                "tap_slice": None
                if self.tap_slice is None
                else list(self.tap_slice),
                "input_normalization": self.input_normalization,
            }
        )
        return config
