"""`ImageClassifier`: what every model of the library shares.

TNet and the plain CNN baselines answer one contract, so that no caller
asks which kind of model it holds:

- built from a config (`TNetConfig`, `BaselineConfig`, or its dict form),
  saved and loaded through `get_config`/`from_config`, built from a preset
  name with `from_preset`;
- called as `model(images, training=..., locations_per_level=...,
  selection=...)` and returning one dict: `logits`, `per_feature_logits`,
  `features`, `location_probs`, `attended_boxes`, `attended_levels`,
  `attended_cells`, `attended_log_probs`, `location_log_prob` (and
  `feature_weights` with feature weighting). A model that attends no
  region (a baseline) returns its whole image as the one attended box and
  takes `locations_per_level` `None` or `[]` only;
- trained by `fit` with its own loss (`TrainingStep`, in
  `tnet_tf.models.training_step`); `evaluate` and `predict` take
  `locations_per_level` like the call; `export` writes the project's
  serving endpoints (`tnet_tf.export`);
- written to and read from a preset directory (`save_to_preset`,
  `from_preset`; `tnet_tf.models.preset_directory`).
"""

import contextlib
import os
import warnings
from collections.abc import Sequence
from typing import Any
from typing import Self

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import backbones
from tnet_tf import config as config_lib
from tnet_tf import export as export_lib
from tnet_tf import preset_configs
from tnet_tf.layers import ClassificationModule
from tnet_tf.layers import FeatureExtractor
from tnet_tf.layers import classifier_initializer
from tnet_tf.models import anytime
from tnet_tf.models import preset_directory
from tnet_tf.models.training_step import TrainingStep

# The type hints of the contract: a `locations_per_level` setting (None:
# the model's default), a config, the call's output dict, a path.
Locations = Sequence[int] | None
Config = config_lib.TNetConfig | config_lib.BaselineConfig | dict[str, Any]
Outputs = dict[str, tf.Tensor | tuple[tf.Tensor, ...]]
PathLike = str | os.PathLike


class ImageClassifier(TrainingStep, keras.Model):
    """Base class of the library's models (see the module docstring).

    Subclasses set `config_class`, build their layers (a `feature_extractor`
    among them) after `super().__init__`, call `track_metrics` and implement
    `call`, `compute_loss_terms` and `train_step`.

    Args:
        config: an instance of `config_class` or its `to_dict()` form.
        load_backbone_weights: load `config.backbone_weights` when set;
            `from_config` passes `False` since saved weights follow.
        **kwargs: passed to `keras.Model` (e.g. `name`).
    """

    config_class = None

    def __init__(
        self,
        config: Config,
        load_backbone_weights: bool = True,
        **kwargs: Any,
    ) -> None:
        config_class = self.config_class
        if isinstance(config, dict):
            config = config_class.from_dict(config)
        if not isinstance(config, config_class):
            raise ValueError(
                f"`config` must be a {config_class.__name__} or dict, got "
                f"{type(config)}."
            )
        kwargs.setdefault("name", config.name)
        super().__init__(**kwargs)
        self.config = config
        self.load_backbone_weights = load_backbone_weights
        # The setting `evaluate` and `predict` run at (None: the default).
        self.evaluation_locations = None
        # The class names when known (from a preset directory), else None.
        self.class_names = None

    def build_feature_extractor(self, **grid: Any) -> FeatureExtractor:
        """The config's backbone as a `FeatureExtractor`; `grid` holds
        TNet's settings of the grid it feeds (`base_resolution`,
        `grid_size`, the tap)."""
        config = self.config
        return FeatureExtractor(
            backbone=config.backbone,
            weights=(
                config.backbone_weights if self.load_backbone_weights else None
            ),
            dropout_rate=config.backbone_dropout_rate,
            drop_connect_rate=config.drop_connect_rate,
            input_normalization=config.input_normalization,
            name="feature_extractor",
            **grid,
        )

    def build_classification_module(self) -> ClassificationModule:
        """The linear classifier, initialised for the backbone's family."""
        return ClassificationModule(
            num_classes=self.config.num_classes,
            dropout_rate=self.config.dropout_rate,
            kernel_initializer=classifier_initializer(
                self.feature_extractor.family
            ),
            name="classification_module",
        )

    # === One call contract ===

    def resolve_locations(
        self, locations_per_level: Locations
    ) -> tuple[int, ...]:
        """The call's locations per level, validated, as a tuple (the
        model's default for `None`). A model that attends no region takes
        `None` or `[]`."""
        if locations_per_level is None or (
            not isinstance(locations_per_level, int)
            and len(locations_per_level) == 0
        ):
            return ()
        raise config_lib.LocationSettingError(
            f"'{self.name}' attends no regions (a whole-image classifier): "
            "`locations_per_level` must be None or [], got "
            f"{locations_per_level!r}."
        )

    def check_traversal_depth(
        self, locations_per_level: Locations, height: int, width: int
    ) -> None:
        """Raises `LocationSettingError` when `locations_per_level` cannot
        be traversed on `height x width` px images."""
        self.resolve_locations(locations_per_level)

    @contextlib.contextmanager
    def _running_at(self, locations_per_level):
        """`evaluate`/`predict` at `locations_per_level` inside the block:
        the step functions are traced again for it, and after it."""
        previous = self.evaluation_locations
        self.evaluation_locations = (
            None
            if locations_per_level is None
            else self.resolve_locations(locations_per_level)
        )
        self.test_function = self.predict_function = None
        try:
            yield
        finally:
            self.evaluation_locations = previous
            self.test_function = self.predict_function = None

    def evaluate(
        self, *args: Any, locations_per_level: Locations = None, **kwargs: Any
    ) -> float | list[float] | dict[str, float]:
        """`keras.Model.evaluate`, optionally at another `locations_per_level`.

        The weights do not depend on the number of locations, so one model
        is evaluated at any setting without rebuilding.
        """
        with self._running_at(locations_per_level), warnings.catch_warnings():
            if kwargs.get("steps") is None:
                # Keras warns when a dataset of unknown length (records,
                # `take`) reaches its end, also inside `fit`'s validation;
                # with no `steps` asked for, that end is the expected one.
                warnings.filterwarnings(
                    "ignore", message="Your input ran out of data"
                )
            return super().evaluate(*args, **kwargs)

    def predict(
        self,
        x: np.ndarray | tf.Tensor | tf.data.Dataset | keras.utils.PyDataset,
        *args: Any,
        locations_per_level: Locations = None,
        **kwargs: Any,
    ) -> dict[str, np.ndarray | tuple[np.ndarray, ...]]:
        """`keras.Model.predict`, optionally at another `locations_per_level`.

        Returns the call's output dict (see the module docstring) with NumPy
        arrays over all of `x`, e.g. `predict(x)["logits"]`,
        `predict(x, locations_per_level=[3])["attended_boxes"]`;
        `location_probs` is a tuple, one array per level.
        """
        with self._running_at(locations_per_level):
            return super().predict(x, *args, **kwargs)

    def predict_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        return self(
            images,
            training=False,
            locations_per_level=self.evaluation_locations,
        )

    def predict_anytime(
        self,
        images: tf.Tensor | np.ndarray,
        threshold: float | None = None,
        max_locations: int | None = None,
        budget: int | None = None,
        **options: Any,
    ) -> anytime.AnytimePrediction:
        """Anytime inference on one batch: top-level locations attended
        one at a time in the policy's rank order, each image stopping once
        its top softmax probability reaches `threshold` (at most
        `max_locations`), or a `budget` of locations for the batch given
        to the least certain images; only undecided images are read.

        With `k` locations and a threshold never reached, the logits and
        cells are those of `self(images, locations_per_level=[k])`
        (`[k, *subtree]` for deeper models: a step is a cell with its
        subtree). Options (`min_locations`, `round_size`, `subtree`) and
        the result: `tnet_tf.models.anytime.predict_anytime`. A model
        that attends no region raises `ValueError`.

        Example:
        >>> out = model.predict_anytime(images, threshold=0.9)
        >>> out.logits, out.locations, out.multiply_adds
        """
        return anytime.predict_anytime(
            self, images, threshold, max_locations, budget, **options
        )

    def export(
        self,
        filepath: PathLike,
        format: str = "tf_saved_model",
        verbose: bool | None = None,
        input_signature: None = None,
        locations_settings: Sequence[Sequence[int]] | None = None,
        image_size: int | Sequence[int] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Writes a SavedModel with the project's serving endpoints.

        The same as `tnet_tf.export.export_saved_model(model, filepath,
        locations_settings, image_size)`: `serve` (float32 images),
        `serve_uint8`, `serve_image_bytes` and one `serve_locations_...`
        endpoint per extra setting, all returning the output dict's
        serving keys. Runs with TensorFlow alone.

        Args:
            filepath: the SavedModel folder.
            format: `"tf_saved_model"` only.
            verbose: print the exported variables.
            input_signature: not supported (every endpoint has its own);
                give `locations_settings` and `image_size` instead.
            locations_settings, image_size: see `export_saved_model`.
        """
        if format != "tf_saved_model" or input_signature is not None or kwargs:
            raise ValueError(
                f"{type(self).__name__}.export writes a SavedModel with its "
                "own endpoints (format='tf_saved_model', no input_signature); "
                f"got format={format!r}, input_signature={input_signature!r}, "
                f"{sorted(kwargs)}."
            )
        return export_lib.export_saved_model(
            self,
            filepath,
            locations_settings,
            image_size,
            verbose=bool(verbose),
        )

    # === Serialization and presets ===

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

    @classmethod
    def from_preset(cls, name: PathLike, **overrides: Any) -> Self:
        """Builds preset `name` (`tnet_tf.presets.names()`) with config
        fields overridden, or loads the preset directory `name` (written by
        `save_to_preset`: config, weights and class names)."""
        if preset_directory.is_preset_directory(name):
            return preset_directory.load(name, cls, **overrides)
        config = preset_configs.get(name)
        if not isinstance(config, cls.config_class):
            raise ValueError(
                f"Preset '{name}' is a {type(config).__name__}, not a "
                f"{cls.config_class.__name__}: build it with "
                f"`tnet_tf.presets.build('{name}')`."
            )
        return cls(config.replace(**overrides))

    def save_to_preset(
        self, directory: PathLike, class_names: Sequence[str] | None = None
    ) -> str:
        """Writes the model as a preset directory that `from_preset` and
        `tnet_tf.presets.build` load offline: its config, weights, class
        names (`class_names`, else the model's `class_names` if set) and
        preprocessing facts, as files a person can read (see
        `tnet_tf.models.preset_directory`). Returns the directory."""
        return preset_directory.save(self, directory, class_names)
