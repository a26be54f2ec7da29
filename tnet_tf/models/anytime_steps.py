"""The steps of anytime inference (`tnet_tf.models.anytime`): what they
cost, and the traversal that reads only the images still undecided.

`StepTraversal` reads level 1 for the whole batch, then moves images one
top-level cell (with its subtree) at a time and recomputes their aggregate
prediction; `anytime_cost` gives its multiply-adds from the profiler.
"""

import dataclasses
import math
import weakref
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import profiling
from tnet_tf import sampling
from tnet_tf.models import regions as regions_lib


@dataclasses.dataclass(frozen=True)
class AnytimeCost:
    """Multiply-adds of anytime inference on one image, from the profiler.

    An image that took `n` steps and was aggregated over `T_1, T_2, ...`
    vectors costs `level_one + n * per_step + sum(aggregation(T_i))`.

    Attributes:
        level_one: level 1 and its location module (no aggregation).
        per_step: one top-level cell with its subtree (no aggregation).
        aggregation_base, per_vector: aggregating `T` vectors and
            classifying the aggregate costs `aggregation_base + T *
            per_vector`.
        vectors_per_step: feature vectors a step adds.
    """

    level_one: int
    per_step: int
    aggregation_base: int
    per_vector: int
    vectors_per_step: int

    def aggregation(self, vectors: int) -> int:
        """Multiply-adds of one aggregate-and-classify over `vectors`."""
        return self.aggregation_base + self.per_vector * vectors

    def fixed(self, steps: int) -> int:
        """Multiply-adds of the model's own call at `steps` locations."""
        vectors = 1 + steps * self.vectors_per_step
        return (
            self.level_one + steps * self.per_step + self.aggregation(vectors)
        )


@dataclasses.dataclass(frozen=True)
class AnytimePrediction:
    """What `predict_anytime` returns, NumPy arrays over the batch.

    Slots follow the model's output layout for `[max_locations,
    *subtree]` (level 1, then level by level, parent by parent); the
    slots of locations an image did not attend hold level 0, cell -1 and
    a zero box.

    Attributes:
        logits: `(batch, num_classes)`, the final aggregate's logits.
        confidence: `(batch,)`, their top softmax probability.
        locations: int32 `(batch,)`, top-level locations attended.
        multiply_adds: int64 `(batch,)` (see `AnytimeCost`).
        attended_cells: int32 `(batch, slots)`, -1 at level 1.
        attended_levels: int32 `(batch, slots)`, 1 for the whole image.
        attended_boxes: `(batch, slots, 4)` normalised `y0, x0, y1, x1`.
        batch_sizes: images read at each step after level 1: the work
            shrinks as images are decided.
        cost: the `AnytimeCost` the multiply-adds come from.
    """

    logits: np.ndarray
    confidence: np.ndarray
    locations: np.ndarray
    multiply_adds: np.ndarray
    attended_cells: np.ndarray
    attended_levels: np.ndarray
    attended_boxes: np.ndarray
    batch_sizes: tuple[int, ...]
    cost: AnytimeCost


# Profiled costs per model and (height, width, locations): tracing a model
# takes seconds, and one model is usually run at one size.
_COSTS = weakref.WeakKeyDictionary()


def _aggregate(model, vectors):
    """`TNet._classify`'s aggregation: feature weighting or the mean."""
    if model.feature_weighting is not None:
        return model.feature_weighting(vectors)[0]
    return tf.reduce_mean(vectors, axis=1)


def _vectors_per_step(subtree):
    """A top-level cell and its subtree: `[2, 3]` gives 1 + 2 + 6."""
    return 1 + sum(math.prod(subtree[: d + 1]) for d in range(len(subtree)))


def anytime_cost(
    model: keras.Model, height: int, width: int, subtree: Sequence[int] = ()
) -> AnytimeCost:
    """The `AnytimeCost` of `model` on `height x width` images, from the
    profiler's counts of the model at 1 and 2 steps and of its
    aggregation over 1 and 2 vectors (all four are linear)."""
    subtree = tuple(subtree)
    key = (height, width, subtree)
    cached = _COSTS.setdefault(model, {})
    if key in cached:
        return cached[key]
    one, two = (
        profiling.profile(model, (height, width), [steps, *subtree])["flops"]
        for steps in (1, 2)
    )
    dim = model.feature_extractor.feature_dim

    def classify(vectors):
        return model.classification_module(
            _aggregate(model, vectors), training=False
        )

    single, double = (
        profiling.count_multiply_adds(
            classify,
            [tf.TensorSpec([1, count, dim], model.compute_dtype)],
        )
        for count in (1, 2)
    )
    per_vector = double - single
    vectors_per_step = _vectors_per_step(subtree)
    per_step = two - one - per_vector * vectors_per_step
    cost = AnytimeCost(
        level_one=one - per_step - single - per_vector * vectors_per_step,
        per_step=per_step,
        aggregation_base=single - per_vector,
        per_vector=per_vector,
        vectors_per_step=vectors_per_step,
    )
    cached[key] = cost
    return cost


def _take(regions, indices):
    """The regions `indices` of a level with one region per image."""
    return dataclasses.replace(
        regions,
        origins=tf.gather(regions.origins, indices),
        positions=tf.gather(regions.positions, indices),
        cells=tf.gather(regions.cells, indices),
        log_probs=tf.gather(regions.log_probs, indices),
    )


def _scored(model, regions, reader, score=True):
    """Reads and encodes `regions`: their per-image outputs, and the
    log-probabilities of their cells (None without `score`)."""
    features, feature_map = model.feature_extractor(
        reader.read(regions), training=False
    )
    level = regions.per_image_outputs(
        model.positional_encoding(features, regions.positions)
    )
    if not score:  # the deepest level: no cell of it is chosen
        return level, None
    log_probs = tf.nn.log_softmax(
        tf.cast(model.location_module(feature_map, features), tf.float32)
    )
    return level, log_probs


class StepProgram:
    """The compiled pieces of anytime inference for one model, setting and
    image size: level 1 of a batch, one step of a subset, and the aggregate
    prediction. Compiled once (`program`: `compile(fn, *specs)` compiles
    `fn(images, *args)`) and reused, so a call pays no eager per-layer
    overhead and is timed like the model's own compiled call."""

    def __init__(self, model, locations, compile):
        self.model, self.locations = model, locations
        self.level_one = compile(self._level_one)
        index, column = [None], [None, 1]
        self.step = compile(
            self._step,
            tf.TensorSpec(index, tf.int32),
            tf.TensorSpec(column, tf.int32),
            tf.TensorSpec(column, tf.float32),
        )
        dim = model.feature_extractor.feature_dim
        self.classify = tf.function(
            self._classify,
            input_signature=[
                tf.TensorSpec([None, None, dim], model.compute_dtype)
            ],
        )

    def _reader(self, images):
        reader = self.model.region_reader(images, self.locations)
        reader.start(images)
        return reader

    def _level_one(self, images):
        model = self.model
        whole = regions_lib.Regions.whole_images(images)
        level, log_probs = _scored(model, whole, self._reader(images))
        # The rank order: the first k of the top max_locations are the
        # model's greedy top k (ties to the lower index in both).
        ranked = sampling.greedy_cells(log_probs, self.locations[0])
        return (
            level,
            ranked,
            sampling.draw_log_probs(log_probs, ranked, model.config.log_prob),
        )

    def _step(self, images, indices, cells, cell_log_probs):
        """Images `indices` read their cells `(m, 1)` and the subtrees
        below: the per-image outputs of each level."""
        config = self.model.config
        reader = self._reader(images)
        reader.keep(indices)
        reader.descend(cells)
        regions = _take(
            regions_lib.Regions.whole_images(images), indices
        ).children(
            cells, cell_log_probs, config.grid_size, config.cell_fraction
        )
        outputs = []
        for count in self.locations[1:] + (None,):
            level, log_probs = _scored(
                self.model, regions, reader, score=count is not None
            )
            outputs.append(level)
            if count is None:
                return outputs
            chosen = sampling.greedy_cells(log_probs, count)
            reader.descend(chosen)
            regions = regions.children(
                chosen,
                sampling.draw_log_probs(log_probs, chosen, config.log_prob),
                config.grid_size,
                config.cell_fraction,
            )

    def _classify(self, vectors):
        model = self.model
        return tf.cast(
            model.classification_module(
                _aggregate(model, vectors), training=False
            ),
            tf.float32,
        )


# Compiled programs per model and (locations, height, width).
_PROGRAMS = weakref.WeakKeyDictionary()


def program(
    model: keras.Model,
    locations: Sequence[int],
    height: int,
    width: int,
    images: tf.Tensor | None = None,
) -> StepProgram:
    """The model's `StepProgram` for this setting and size (cached), or
    for a lazy image's type, any size (`lazy_reading.LazyImage.function`)."""
    cached, key = _PROGRAMS.setdefault(model, {}), (tuple(locations), height)
    compile = getattr(images, "function", None)
    if compile is not None:
        key = (key[0], type(images), *images.static_arguments().items())
    else:
        key += (width,)
        spec = tf.TensorSpec([None, height, width, 3], tf.float32)

        def compile(fn, *specs):
            return tf.function(fn, input_signature=[spec, *specs])

    if key not in cached:
        cached[key] = StepProgram(model, tuple(locations), compile)
    return cached[key]


class StepTraversal:
    """The state of one `predict_anytime` call: level 1 read for the whole
    batch, the vectors of every attended region, and each image's steps,
    multiply-adds and current prediction.

    Args:
        program: the model's `StepProgram` for the call.
        images: the checked batch.
        cost: the model's `AnytimeCost` at this size.

    `advance(indices)` moves images one step, `aggregate(indices)`
    recomputes their predictions, `result()` is the `AnytimePrediction`.
    """

    def __init__(self, program, images, cost):
        self.program, self.images, self.cost = program, images, cost
        locations = self.locations = program.locations
        level, self.ranked, self.ranked_log_probs = program.level_one(images)
        # Slot offsets of each level in the model's output layout.
        self.offsets, self.per_step = [1], []
        regions_per_level = 1
        for count in locations:
            regions_per_level *= count
            self.per_step.append(regions_per_level // locations[0])
            self.offsets.append(self.offsets[-1] + regions_per_level)
        batch, slots = int(images.shape[0]), self.offsets[-1]
        self.vectors = tf.pad(
            level["vectors"], [[0, 0], [0, slots - 1], [0, 0]]
        )
        self.cells = np.full((batch, slots), -1, np.int32)
        self.levels = np.zeros((batch, slots), np.int32)
        self.levels[:, 0] = 1
        self.boxes = np.zeros((batch, slots, 4), np.float32)
        self.boxes[:, 0] = level["boxes"][:, 0]
        self.steps = np.zeros(batch, np.int32)
        self.macs = np.full(batch, cost.level_one, np.int64)
        num_classes = program.model.config.num_classes
        self.logits = np.zeros((batch, num_classes), np.float32)
        self.confidence = np.zeros(batch, np.float32)
        self.batch_sizes = []

    def advance(self, indices):
        """Images `indices` attend their next top-level cell (and its
        subtree): only their regions are read."""
        steps = self.steps[indices]
        where = np.stack([indices, steps], axis=1)
        levels = self.program.step(
            self.images,
            tf.constant(indices, tf.int32),
            tf.gather_nd(self.ranked, where)[:, None],
            tf.gather_nd(self.ranked_log_probs, where)[:, None],
        )
        for depth, level in enumerate(levels):
            self._store(indices, steps, depth, level)
        self.steps[indices] += 1
        self.macs[indices] += self.cost.per_step
        self.batch_sizes.append(len(indices))

    def _store(self, indices, steps, depth, level):
        per_step = self.per_step[depth]
        slots = (
            self.offsets[depth]
            + steps[:, None] * per_step
            + np.arange(per_step)[None]
        )
        rows = np.repeat(indices[:, None], per_step, axis=1)
        self.vectors = tf.tensor_scatter_nd_update(
            self.vectors,
            np.stack([rows, slots], axis=-1),
            tf.cast(level["vectors"], self.vectors.dtype),
        )
        self.cells[rows, slots] = level["cells"]
        self.levels[rows, slots] = level["levels"]
        self.boxes[rows, slots] = level["boxes"]

    def slots(self, steps):
        """The filled slots of an image that took `steps` steps."""
        filled = [0]
        for offset, per_step in zip(self.offsets, self.per_step):
            filled.extend(range(offset, offset + steps * per_step))
        return filled

    def aggregate(self, indices):
        """Recomputes the predictions of images `indices` over the
        vectors they have so far (grouped by count: exact, no mask)."""
        for steps in np.unique(self.steps[indices]):
            group = indices[self.steps[indices] == steps]
            slots = self.slots(int(steps))
            logits = self.program.classify(
                tf.gather(tf.gather(self.vectors, group), slots, axis=1)
            ).numpy()
            self.logits[group] = logits
            # Softmax in float64: the confidence compared to a threshold.
            shifted = np.exp(logits - logits.max(-1, keepdims=True))
            self.confidence[group] = 1.0 / shifted.sum(-1)
            self.macs[group] += self.cost.aggregation(len(slots))

    def result(self):
        return AnytimePrediction(
            logits=self.logits,
            confidence=self.confidence,
            locations=self.steps,
            multiply_adds=self.macs,
            attended_cells=self.cells,
            attended_levels=self.levels,
            attended_boxes=self.boxes,
            batch_sizes=tuple(self.batch_sizes),
            cost=self.cost,
        )
