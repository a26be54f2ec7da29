"""TNet: the multi-scale hard-attention classifier as a Keras model."""

import itertools

import keras
import tensorflow as tf

from tnet_tf import backbones
from tnet_tf import config as config_lib
from tnet_tf import fine_tuning
from tnet_tf import geometry
from tnet_tf import losses
from tnet_tf import sampling
from tnet_tf.layers import ClassificationModule
from tnet_tf.layers import FeatureExtractor
from tnet_tf.layers import FeatureWeighting
from tnet_tf.layers import LocationModule
from tnet_tf.layers import PositionalEncoding
from tnet_tf.layers import classifier_initializer

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


def _cell_levels(locations):
    """Levels of attended cells below the whole image: they stop at the
    first 0 (the location module runs, nothing is attended)."""
    return len(list(itertools.takewhile(bool, locations)))


@keras.saving.register_keras_serializable(package="tnet_tf")
class TNet(fine_tuning.FineTuningModel):
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

    def __init__(self, config, load_backbone_weights=True, **kwargs):
        if isinstance(config, dict):
            config = config_lib.TNetConfig.from_dict(config)
        if not isinstance(config, config_lib.TNetConfig):
            raise ValueError(
                f"`config` must be a TNetConfig or dict, got {type(config)}."
            )
        kwargs.setdefault("name", config.name)
        super().__init__(**kwargs)
        # === Config ===
        self.config = config
        self.load_backbone_weights = load_backbone_weights

        # === Layers ===
        self.feature_extractor = FeatureExtractor(
            backbone=config.backbone,
            base_resolution=config.base_resolution,
            grid_size=config.grid_size,
            weights=config.backbone_weights if load_backbone_weights else None,
            dropout_rate=config.backbone_dropout_rate,
            drop_connect_rate=config.drop_connect_rate,
            tap_layer=config.tap_layer,
            tap_slice=config.tap_slice,
            input_normalization=config.input_normalization,
            name="feature_extractor",
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
        self.classification_module = ClassificationModule(
            num_classes=config.num_classes,
            dropout_rate=config.dropout_rate,
            kernel_initializer=classifier_initializer(family),
            name="classification_module",
        )
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

        # === Training state ===
        self.loss_variant = "paper"
        self.evaluation_locations = None
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
        images,
        training=None,
        locations_per_level=None,
        selection=None,
    ):
        config = self.config
        locations = self.resolve_locations(locations_per_level)
        images = self._check_images(images, locations)
        if selection is None:
            selection = config.selection if training else "greedy"
        if selection not in config_lib.SELECTION_MODES:
            raise ValueError(
                f"`selection` must be one of {config_lib.SELECTION_MODES}, "
                f"got {selection!r}."
            )
        resample = self.region_sampling_mode(images, locations) == "resample"
        # The crop path copies pixels at full resolution, cheaper in the
        # compute dtype; resampling reads each region's few samples straight
        # from the float32 input, so the whole image is not cast (copied).
        if not resample:
            images = tf.cast(images, self.compute_dtype)
        height, width = geometry.spatial_size(images)
        batch = tf.shape(images)[0]
        grid = config.grid_size
        image_scale = tf.cast(tf.stack([height, width] * 2), tf.float32)

        # === Traversal ===
        # A level's regions (batch * per_image of them, per_image = product
        # of the k's so far) are boxes of region_size input pixels at
        # `origins`. The crop path keeps their full-resolution pixels in
        # `regions`; resampling reads them from `images` (of `image_index`).
        regions = images
        image_index = tf.range(batch)
        region_size = (height, width)
        per_image = 1
        origins = tf.zeros((batch, 2))  # (regions, 2) in input pixels
        positions = tf.zeros((batch, 3))  # (regions, 3): y, x, level - 1
        cells = -tf.ones((batch,), tf.int32)  # (regions,)
        cell_log_probs = tf.zeros((batch,))  # (regions,)
        per_level = {
            "vectors": [],
            "boxes": [],
            "levels": [],
            "cells": [],
            "log_probs": [],
        }
        location_probs = []
        location_log_prob = tf.zeros((batch,))
        for level, k in enumerate(list(locations) + [None]):
            if resample and level > 0:
                resized = geometry.resample_regions(
                    images,
                    image_index,
                    origins,
                    region_size,
                    config.base_resolution,
                )
            else:
                resized = self._resize_to_base(regions)
            features, feature_map = self.feature_extractor(
                resized, training=training
            )
            encoded = self.positional_encoding(features, positions)
            extent = tf.cast(tf.stack(region_size), tf.float32)
            boxes = tf.concat([origins, origins + extent], axis=-1)
            per_level["vectors"].append(
                tf.reshape(encoded, [batch, per_image, encoded.shape[-1]])
            )
            per_level["boxes"].append(
                tf.reshape(boxes / image_scale, [batch, per_image, 4])
            )
            per_level["levels"].append(
                tf.fill([batch, per_image], level + 1)
            )
            per_level["cells"].append(tf.reshape(cells, [batch, per_image]))
            per_level["log_probs"].append(
                tf.reshape(cell_log_probs, [batch, per_image])
            )
            if k is None:
                break
            logits = self.location_module(feature_map, features)
            log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
            location_probs.append(
                tf.reshape(tf.exp(log_probs), [batch, per_image, grid * grid])
            )
            if k == 0:
                break
            chosen = sampling.select_cells(
                log_probs, k, selection, seed=self.seed_generator
            )  # (regions, k)
            draw_log_probs = sampling.draw_log_probs(
                log_probs, chosen, config.log_prob
            )  # (regions, k)
            location_log_prob += tf.reduce_sum(
                tf.reshape(draw_log_probs, [batch, -1]), axis=1
            )
            # Children are regions of the input: (regions * k, .), and
            # inherit the parent's position.
            if resample:
                image_index = tf.repeat(image_index, k)
            else:
                regions, _ = geometry.crop_cells(
                    regions, chosen, grid, config.cell_fraction
                )
            origins, region_size = geometry.child_regions(
                origins, region_size, chosen, grid, config.cell_fraction
            )
            rows = tf.cast(chosen // grid, tf.float32)
            cols = tf.cast(chosen % grid, tf.float32)
            positions = tf.reshape(
                tf.stack(
                    [
                        positions[:, None, 0] * grid + rows,
                        positions[:, None, 1] * grid + cols,
                        tf.fill(tf.shape(rows), float(level + 1)),
                    ],
                    axis=-1,
                ),
                [-1, 3],
            )
            cells = tf.reshape(chosen, [-1])
            cell_log_probs = tf.reshape(draw_log_probs, [-1])
            per_image *= k

        # === Aggregation and classification ===
        vectors = tf.concat(per_level["vectors"], axis=1)  # (batch, T, D)
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
            location_probs=tuple(location_probs),
            attended_boxes=tf.concat(per_level["boxes"], axis=1),
            attended_levels=tf.concat(per_level["levels"], axis=1),
            attended_cells=tf.concat(per_level["cells"], axis=1),
            attended_log_probs=tf.concat(per_level["log_probs"], axis=1),
            location_log_prob=location_log_prob,
            features=aggregate,
        )
        return outputs

    def resolve_locations(self, locations_per_level):
        """Validated tuple of locations per level (config default for None)."""
        if locations_per_level is None:
            return self.config.locations_per_level
        if isinstance(locations_per_level, int):
            raise config_lib.LocationSettingError(
                "`locations_per_level` must be a list with one value per level "
                f"transition (e.g. [2, 1]), got {locations_per_level!r}."
            )
        # NumPy integers are fine; floats, strings and bools are not.
        locations = tuple(
            int(k) if hasattr(k, "__index__") and not isinstance(k, bool) else k
            for k in locations_per_level
        )
        config_lib.validate_locations(locations, self.config.grid_size)
        return locations

    @property
    def input_dtype(self):
        # Keras would cast (copy) the full-resolution images to the compute
        # dtype before `call`; `call` casts only where the crop path needs it.
        return "float32"

    def region_sampling_mode(self, images, locations_per_level=None):
        """`"crop"` or `"resample"`: how a call on `images` (a tensor or its
        shape) brings levels 2 and deeper to the base resolution.

        Follows `config.region_sampling`; `"auto"` resamples where
        `geometry.resample_obstacle` finds nothing in the way and the model
        is not XLA-compiled (`self.jit_compile`: `crop_and_resize` has no XLA
        kernel). Set `model.jit_compile = True` before tracing a call inside
        your own `tf.function(jit_compile=True)`.
        """
        config = self.config
        requested = config.region_sampling
        if requested == "crop" or config.antialias:
            return "crop"
        shape = getattr(images, "shape", images)
        locations = self.resolve_locations(locations_per_level)
        obstacle = geometry.resample_obstacle(
            shape[1],
            shape[2],
            config.grid_size,
            config.cell_fraction,
            locations,
            config.base_resolution,
        )
        attends_cells = bool(locations) and locations[0] > 0
        if obstacle is None and attends_cells and self.jit_compile:
            obstacle = "XLA has no crop_and_resize kernel (jit_compile is on)"
        if obstacle is None:
            return "resample"
        if requested == "resample":
            raise ValueError(
                f"region_sampling='resample' does not apply: {obstacle}. "
                "Use 'auto' (resample where it applies) or 'crop'."
            )
        return "crop"

    def _resize_to_base(self, regions):
        side = self.config.base_resolution
        if regions.shape[1] == side and regions.shape[2] == side:
            return regions
        # Bilinear, without antialiasing by default as the release (detail
        # §1); antialiasing only matters when downscaling.
        return tf.image.resize(
            regions,
            (side, side),
            method="bilinear",
            antialias=self.config.antialias,
        )

    def check_traversal_depth(self, locations_per_level, height, width):
        """Raises `LocationSettingError` if `locations_per_level` goes
        deeper than `height x width` px images allow.

        Each level of cells shrinks the regions' sides by about
        `cell_fraction`; a level whose cells would be under 1 px cannot be
        cut. Levels of cells stop at the first 0 of `locations_per_level`.
        The message names the deepest valid setting for this size and the
        smallest image side the requested depth needs.
        """
        locations = self.resolve_locations(locations_per_level)
        depth = _cell_levels(locations)
        valid = self._deepest_cell_levels(height, width, depth)
        if valid < depth:
            config = self.config
            raise config_lib.LocationSettingError(
                f"`locations_per_level`={list(locations)} attends cells "
                f"{depth} levels below the whole image, but {height}x{width} "
                f"px images allow at most {valid} with a {config.grid_size}x"
                f"{config.grid_size} grid of cell_fraction "
                f"{config.cell_fraction} (deeper cells would be under 1 px): "
                f"the deepest valid setting is {list(locations[:valid])}, or "
                f"use images of at least {self._smallest_side(depth)} px on "
                "both sides."
            )

    def _deepest_cell_levels(self, height, width, depth):
        """How many of `depth` levels of cells (at most) a `height x width`
        image has before its cells fall under 1 px."""
        config = self.config
        sides = (height, width)
        for level in range(depth):
            sides = tuple(
                geometry.cell_layout(
                    side, config.grid_size, config.cell_fraction
                ).cell_size
                for side in sides
            )
            if min(sides) < 1:
                return level
        return depth

    def _smallest_side(self, depth):
        """The smallest image side with `depth` levels of cells of >= 1 px
        (cell sizes grow with the side, so a bisection finds it)."""
        def fits(side):
            return self._deepest_cell_levels(side, side, depth) == depth

        high = 1
        while not fits(high):
            high *= 2
        low = high // 2  # does not fit, or is 0
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if fits(middle) else (middle, high)
        return high

    def _check_images(self, images, locations):
        """`images`, checked: `(batch, height, width, 3)`, at least the base
        resolution, and large enough for `locations`' levels of cells.

        Where the size is only known when run (a traced signature), the size
        checks are assertions in the graph.
        """
        shape = images.shape
        if shape.rank is None:
            images = tf.ensure_shape(images, [None, None, None, 3])
        elif shape.rank != 4 or shape[-1] not in (3, None):
            hint = (
                ": add the batch axis (e.g. `images[None]`) for one image"
                if shape.rank == 3
                else ""
            )
            raise ValueError(
                f"'{self.name}' takes a batch of images (batch, height, "
                f"width, 3), got a tensor of shape {tuple(shape)} (rank "
                f"{shape.rank}){hint}."
            )
        side = self.config.base_resolution
        height, width = geometry.spatial_size(images)
        if isinstance(height, int) and isinstance(width, int):
            if height < side or width < side:
                raise ValueError(
                    f"Images of {height}x{width} px are smaller than the base "
                    f"resolution {side} of '{self.name}'; upsample them or use "
                    "a smaller base_resolution."
                )
            self.check_traversal_depth(locations, height, width)
            return images
        shortest = tf.minimum(
            tf.cast(height, tf.int32), tf.cast(width, tf.int32)
        )
        checks = [
            tf.debugging.assert_greater_equal(
                shortest,
                side,
                message=f"images are smaller than the base resolution {side}",
            )
        ]
        needed = self._smallest_side(_cell_levels(locations))
        if needed > side:
            checks.append(
                tf.debugging.assert_greater_equal(
                    shortest,
                    needed,
                    message=(
                        f"locations_per_level={list(locations)} needs images "
                        f"of at least {needed} px on both sides (deeper "
                        "cells would be under 1 px)"
                    ),
                )
            )
        with tf.control_dependencies(checks):
            return tf.identity(images)

    # === Learning rule (paper Section 4) ===

    def compile(self, optimizer="adam", loss_variant="paper", **kwargs):
        """Configures training.

        Args:
            optimizer: the optimizer (see `FineTuningModel.compile` for
                `backbone_optimizer`, a second one for the backbone).
            loss_variant: `"paper"` (eq. 3) or `"release"` (per-feature
                cross-entropy including the level-1 vector and a mixed
                baseline target; see `tnet_tf.losses`).
            **kwargs: `backbone_optimizer` and `keras.Model.compile`
                arguments (e.g. `jit_compile`). No `loss`: the loss is the
                model's own.
        """
        if loss_variant not in losses.LOSS_VARIANTS:
            raise ValueError(
                f"`loss_variant` must be one of {losses.LOSS_VARIANTS}, "
                f"got {loss_variant!r}."
            )
        self.loss_variant = loss_variant
        super().compile(optimizer=optimizer, **kwargs)

    def compute_loss_terms(self, images, labels, training):
        """Forward pass and every loss term for one replica's batch.

        Returns the output dict and a dict of scalar terms, `loss` being
        the total of eq. (3) plus the L2 and contrastive terms.
        """
        locations = None if training else self.evaluation_locations
        outputs = self(images, training=training, locations_per_level=locations)
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
        """One training step on one replica: the math shared by `train_step`
        and `tnet_tf.distributed.train_loop`.

        Monte Carlo samples tile the batch `num_samples` times; gradients of
        the replica-scaled loss are applied, then the baseline moves. A step
        with non-finite terms or gradients on any replica changes nothing
        and is counted in `skipped_steps` (see `FineTuningModel.minimize`).
        """
        samples = self.config.num_samples
        if samples > 1:
            images = tf.tile(images, [samples, 1, 1, 1])
            labels = tf.tile(labels, [samples])
        momentum = self.config.baseline_momentum

        def move_baseline(terms):
            self.reward_baseline.assign(
                momentum * self.reward_baseline
                + (1.0 - momentum) * terms["baseline_target"]
            )

        outputs, terms = self.minimize(
            lambda: self.compute_loss_terms(images, labels, True),
            update_state=move_baseline,
        )
        return self._update_metrics(labels, outputs, terms)

    def train_step(self, data):
        images, labels = fine_tuning.unpack_batch(data)
        return self.replica_step(images, labels)

    def test_step(self, data):
        images, labels = fine_tuning.unpack_batch(data)
        outputs, terms = self.compute_loss_terms(images, labels, False)
        return self._update_metrics(labels, outputs, terms)

    def _update_metrics(self, labels, outputs, terms):
        logs = self.update_metrics(labels, outputs["logits"], terms)
        logs["baseline"] = tf.identity(self.reward_baseline)
        return logs

    def evaluate(self, *args, locations_per_level=None, **kwargs):
        """`keras.Model.evaluate`, optionally at another `locations_per_level`.

        The weights do not depend on the number of locations, so one model
        is evaluated at any setting without rebuilding.
        """
        previous = self.evaluation_locations
        self.evaluation_locations = (
            None
            if locations_per_level is None
            else self.resolve_locations(locations_per_level)
        )
        self.test_function = None  # retrace for the new setting
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.evaluation_locations = previous
            self.test_function = None

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
    def from_preset(cls, name, **overrides):
        """Builds the TNet preset `name`, with config fields overridden."""
        from tnet_tf import presets

        return cls(presets.get(name).replace(**overrides))

