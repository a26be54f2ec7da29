"""TNet: the multi-scale hard-attention classifier as a Keras model."""

from typing import Any

import keras
import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf import losses
from tnet_tf import sampling
from tnet_tf.layers import FeatureWeighting
from tnet_tf.layers import LocationModule
from tnet_tf.layers import PositionalEncoding
from tnet_tf.models import image_classifier
from tnet_tf.models import regions as regions_lib
from tnet_tf.models import traversal_limits

Locations, Outputs = image_classifier.Locations, image_classifier.Outputs
METRIC_TERMS = (
    "loss",
    "aggregate_ce",
    "reinforce",
    "per_feature_ce",
    "per_feature_reinforce",
    "l2",
    "contrastive",
    "reward",
    "locations",
)


@keras.saving.register_keras_serializable(package="tnet_tf")
class TNet(image_classifier.ImageClassifier):
    """Traversal Network: classifies an image by attending a few of its regions.

    Level 1 processes the whole image downscaled to the base resolution. The
    location module scores the cells of an `n x n` grid over it; the chosen
    cells, taken from the full-resolution image at the base resolution
    (cropped then resized, or resampled straight from the input: see
    `config.region_sampling`), are processed at level 2, and so on down the
    levels. Every
    feature vector gets a positional encoding of its cell (row, column,
    level); their mean (or the feature weighting module's weighted sum) is
    classified.

    Args:
        config: a `tnet_tf.TNetConfig` (or its `to_dict()` form).
        load_backbone_weights: load `config.backbone_weights` when set;
            `from_config` passes `False` since saved weights follow.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    The levels' regions reach the base resolution through a
    `RegionReader` (`tnet_tf.models.regions`) chosen per call from
    `region_readers` by `region_sampling_mode`.

    Call arguments:
        images: float tensor `(batch, height, width, 3)`, pixels in [-1, 1],
            at least `base_resolution` on both sides; any size and aspect.
        training: training mode (dropout, batch-norm updates, and cell
            sampling when `selection` is `"sample"`).
        locations_per_level: cells attended per grid, one value per level
            transition, e.g. `[2, 1]` (3 levels); `[]` processes level 1 only;
            `[0]` runs the location module and attends nothing. Defaults to
            `config.locations_per_level`. No retraining is needed to change
            it.
        selection: `"sample"` or `"greedy"`; defaults to `config.selection`
            in training and `"greedy"` otherwise.

    Returns:
        A dict, with `T = 1 + k1 + k1*k2 + ...` feature vectors per image
        ordered level by level, parent by parent, in selection order:
        - `logits`: `(batch, num_classes)`.
        - `per_feature_logits`: `(batch, T, num_classes)`, the same
          classifier applied to each vector on its own.
        - `location_probs`: tuple, one `(batch, grids, n*n)` tensor per level
          whose location module ran (grids = regions at that level).
        - `attended_boxes`: `(batch, T, 4)` normalised `y0, x0, y1, x1` of
          each vector's region in the input image (level 1 is `0, 0, 1, 1`;
          padded grids reach slightly outside `[0, 1]`).
        - `attended_levels`: int32 `(batch, T)`, 1 for the whole image.
        - `attended_cells`: int32 `(batch, T)`, the cell index in its grid
          (-1 for level 1).
        - `attended_log_probs`: `(batch, T)`, the log-probability of
          choosing each cell in its own grid (0 for level 1): given the cells
          drawn before it when `config.log_prob` is `"sequential"`, its own
          probability for `"sum"` (the release). They sum, per image, to
          `location_log_prob`.
        - `location_log_prob`: `(batch,)`, log-probability of the whole
          attended set (`config.log_prob`).
        - `features`: `(batch, D)` aggregated feature vector.
        - `feature_weights`: `(batch, T)` when feature weighting is on.

    Example:
    >>> model = tnet_tf.TNet(tnet_tf.presets.get("fmow_tnet_b0"))
    >>> out = model(images, locations_per_level=[2, 1])

    Reference:
        Papadopoulos et al., "Hard-Attention for Scalable Image
        Classification", NeurIPS 2021, Sections 3 and 4.
    """

    config_class = config_lib.TNetConfig
    # How a level's regions reach the base resolution, by
    # `region_sampling_mode`; replace an entry to change how cells are read.
    region_readers = regions_lib.REGION_READERS

    def __init__(
        self,
        config: config_lib.TNetConfig | dict[str, Any],
        load_backbone_weights: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, load_backbone_weights, **kwargs)
        config = self.config
        # === Layers ===
        self.feature_extractor = self.build_feature_extractor(
            base_resolution=config.base_resolution,
            grid_size=config.grid_size,
            tap_layer=config.tap_layer,
            tap_slice=config.tap_slice,
        )
        family = self.feature_extractor.family
        variant = "bagnet" if family == "bagnet" else "efficientnet"
        feature_dim = self.feature_extractor.feature_dim
        self.location_module = LocationModule(
            variant=variant,
            grid_size=config.grid_size,
            hidden_channels=config.location_hidden_channels,
            normalize_logits=config.normalize_location_logits,
            uniform_initial_policy=config.uniform_initial_policy,
            name="location_module",
        )
        self.positional_encoding = PositionalEncoding(
            variant=variant,
            output_dim=feature_dim,
            encoding_dim=feature_dim // config.positional_encoding_divisor,
            max_inverse_frequency=config.max_inverse_frequency,
            name="positional_encoding",
        )
        self.classification_module = self.build_classification_module()
        self.feature_weighting = (
            FeatureWeighting(name="feature_weighting")
            if config.feature_weighting
            else None
        )
        self.seed_generator = keras.random.SeedGenerator(
            config.seed, name="location_sampler"
        )
        # The reward baseline b of eq. (2): state, not a parameter; MEAN
        # aggregation averages its per-replica updates across replicas.
        self.reward_baseline = self.add_weight(
            name="reward_baseline",
            shape=(),
            initializer=keras.initializers.Constant(
                config.baseline_initial_value
            ),
            trainable=False,
            aggregation="mean",
        )

        self.track_metrics(METRIC_TERMS)
        # Built at construction, like a functional model: count_params,
        # summary and saving work before the first call.
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        # The model accepts any image size, so sublayers are built by one
        # eager pass at the base resolution (level 1 plus the location
        # module); init_scope keeps variable creation out of any trace.
        with tf.init_scope():
            side = self.config.base_resolution
            self.call(
                tf.zeros((1, side, side, 3)),
                training=False,
                locations_per_level=[0],
            )
        self.built = True

    def call(
        self,
        images: tf.Tensor,
        training: bool | None = None,
        locations_per_level: Locations = None,
        selection: str | None = None,
    ) -> Outputs:
        config, grid = self.config, self.config.grid_size
        locations = self.resolve_locations(locations_per_level)
        images = traversal_limits.check_images(
            config, self.name, images, locations
        )
        selection = self._selection(selection, training)
        reader = self.region_reader(images, locations)
        reader.start(images)
        regions = regions_lib.Regions.whole_images(images)
        levels, location_probs = [], []
        location_log_prob = tf.zeros((tf.shape(images)[0],))
        # Encode the level, score its cells, select, descend.
        for k in list(locations) + [None]:
            features, feature_map = self.feature_extractor(
                reader.read(regions), training=training
            )
            levels.append(
                regions.per_image_outputs(
                    self.positional_encoding(features, regions.positions)
                )
            )
            if k is None:
                break
            log_probs = tf.nn.log_softmax(
                tf.cast(
                    self.location_module(feature_map, features), tf.float32
                )
            )
            location_probs.append(
                tf.reshape(
                    tf.exp(log_probs), [-1, regions.per_image, grid * grid]
                )
            )
            if k == 0:
                break
            chosen = sampling.select_cells(
                log_probs, k, selection, seed=self.seed_generator
            )
            draw_log_probs = sampling.draw_log_probs(
                log_probs, chosen, config.log_prob
            )
            location_log_prob += tf.reduce_sum(
                tf.reshape(draw_log_probs, [tf.shape(images)[0], -1]), axis=1
            )
            reader.descend(chosen)
            regions = regions.children(
                chosen, draw_log_probs, grid, config.cell_fraction
            )
        return self._classify(
            levels, tuple(location_probs), location_log_prob, training
        )

    def _classify(self, levels, location_probs, location_log_prob, training):
        """The output dict from the levels' vectors and attended regions."""

        def joined(key):
            return tf.concat([level[key] for level in levels], axis=1)

        vectors = joined("vectors")  # (batch, T, D)
        outputs = {}
        if self.feature_weighting is not None:
            aggregate, weights = self.feature_weighting(vectors)
            outputs["feature_weights"] = tf.stop_gradient(weights)
        else:
            aggregate = tf.reduce_mean(vectors, axis=1)
        outputs.update(
            logits=self.classification_module(aggregate, training=training),
            per_feature_logits=self.classification_module(
                vectors, training=training
            ),
            location_probs=location_probs,
            attended_boxes=joined("boxes"),
            attended_levels=joined("levels"),
            attended_cells=joined("cells"),
            attended_log_probs=joined("log_probs"),
            location_log_prob=location_log_prob,
            features=aggregate,
        )
        return outputs

    def _selection(self, selection, training):
        if selection is None:
            selection = self.config.selection if training else "greedy"
        if selection not in config_lib.SELECTION_MODES:
            raise ValueError(
                f"`selection` must be one of {config_lib.SELECTION_MODES}, "
                f"got {selection!r}."
            )
        return selection

    def resolve_locations(
        self, locations_per_level: Locations
    ) -> tuple[int, ...]:
        """Validated tuple of locations per level (config default for None)."""
        return traversal_limits.resolve_locations(
            self.config, locations_per_level
        )

    @property
    def input_dtype(self):
        # Keras would cast (copy) the full-resolution images to the compute
        # dtype before `call`; the crop reader casts where it needs to.
        return "float32"

    def region_sampling_mode(
        self,
        images: tf.Tensor | tf.TensorShape | tuple[int | None, ...],
        locations_per_level: Locations = None,
    ) -> str:
        """`"crop"` or `"resample"`: how a call on `images` (a tensor or its
        shape) brings levels 2 and deeper to the base resolution.

        Follows `config.region_sampling`; `"auto"` resamples where
        `geometry.resample_obstacle` finds nothing in the way and the model
        is not XLA-compiled (`self.jit_compile`: `crop_and_resize` has no XLA
        kernel). Set `model.jit_compile = True` before tracing a call inside
        your own `tf.function(jit_compile=True)`.
        """
        return traversal_limits.region_sampling_mode(
            self.config,
            getattr(images, "shape", images),
            self.resolve_locations(locations_per_level),
            jit_compile=bool(self.jit_compile),
        )

    def region_reader(self, images, locations_per_level=None):
        """A new `RegionReader` for a call on `images`; an input naming its
        own `reader_class` (`lazy_reading.EncodedImage`) gets that one."""
        config = self.config
        reader = getattr(images, "reader_class", None)
        if reader is None:
            mode = self.region_sampling_mode(images, locations_per_level)
            reader = self.region_readers[mode]
        return reader(
            config.base_resolution,
            config.grid_size,
            config.cell_fraction,
            antialias=config.antialias,
            compute_dtype=self.compute_dtype,
        )

    def check_traversal_depth(
        self, locations_per_level: Locations, height: int, width: int
    ) -> None:
        """Raises `LocationSettingError` if `locations_per_level` goes
        deeper than `height x width` px images allow.

        Each level of cells shrinks the regions' sides by about
        `cell_fraction`; a level whose cells would be under 1 px cannot be
        cut. Levels of cells stop at the first 0 of `locations_per_level`.
        The message names the deepest valid setting for this size and the
        smallest image side the requested depth needs.
        """
        traversal_limits.check_traversal_depth(
            self.config,
            self.resolve_locations(locations_per_level),
            height,
            width,
        )

    # === Learning rule (paper Section 4) ===

    def compute_loss_terms(self, images, labels, training):
        """Forward pass and every loss term for one replica's batch.

        Returns the output dict and a dict of scalar terms, `loss` being
        the total of eq. (3) plus the L2 and contrastive terms.
        """
        locations = None if training else self.evaluation_locations
        outputs = self(
            images, training=training, locations_per_level=locations
        )
        config = self.config
        terms = losses.hybrid_reinforce_loss(
            labels,
            outputs,
            self.reward_baseline,
            reinforce_weight=config.reinforce_weight,
            per_feature_ce_weight=config.per_feature_ce_weight,
            per_feature_reinforce_weight=config.per_feature_reinforce_weight,
            per_feature_level_cap=config.per_feature_level_cap,
            variant=self.loss_variant,
        )
        terms.update(self.regularization_terms(outputs["features"], labels))
        terms["loss"] = terms["loss"] + terms["l2"] + terms["contrastive"]
        terms["locations"] = tf.cast(
            tf.shape(outputs["attended_levels"])[1] - 1, tf.float32
        )
        return outputs, terms

    def replica_step(self, images, labels):
        """One training step on one replica (see
        `ImageClassifier.replica_step`): Monte Carlo samples tile the batch
        `num_samples` times; the reward baseline moves after an applied
        step."""
        samples = self.config.num_samples
        if samples > 1:
            images = tf.tile(images, [samples, 1, 1, 1])
            labels = tf.tile(labels, [samples])
        return super().replica_step(images, labels)

    def after_applied_step(self, terms):
        momentum = self.config.baseline_momentum
        self.reward_baseline.assign(
            momentum * self.reward_baseline
            + (1.0 - momentum) * terms["baseline_target"]
        )

    def step_logs(self, labels, outputs, terms):
        logs = super().step_logs(labels, outputs, terms)
        logs["baseline"] = tf.identity(self.reward_baseline)
        return logs
