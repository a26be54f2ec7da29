"""The steps of anytime inference (`tnet_tf.models.anytime`): the
traversal that reads only the images still undecided.

`StepTraversal` reads level 1 for the whole batch, then moves images one
top-level cell (with its subtree) at a time and recomputes their aggregate
prediction; `anytime_cost.anytime_cost` gives its multiply-adds. Its state
is tensors and its steps TensorFlow ops, so one traversal serves eager
calls (stops decided in Python) and a traced loop (`tf.while_loop`, the
SavedModel's `serve_anytime`).
"""

import dataclasses
import weakref
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import sampling
from tnet_tf.models import regions as regions_lib
from tnet_tf.models.anytime_cost import AnytimeCost
from tnet_tf.models.anytime_cost import aggregate_vectors


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
                aggregate_vectors(model, vectors), training=False
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
    """The state of one anytime call: level 1 read for the whole batch, the
    vectors of every attended region, and each image's steps,
    multiply-adds and current prediction, all tensors.

    Args:
        program: the model's `StepProgram` for the call.
        images: the checked batch.
        cost: the model's `AnytimeCost` at this size.

    `advance(indices)` moves images one step, `aggregate(indices)`
    recomputes their predictions, `result()` is the `AnytimePrediction`;
    `state` is every tensor that changes, for a traced loop's variables.
    """

    STATE = (
        "vectors",
        "cells",
        "levels",
        "boxes",
        "steps",
        "macs",
        "logits",
        "confidence",
    )

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
        batch, slots = tf.shape(images)[0], self.offsets[-1]
        self.vectors = tf.pad(
            level["vectors"], [[0, 0], [0, slots - 1], [0, 0]]
        )
        first = tf.one_hot(tf.zeros([batch], tf.int32), slots, dtype=tf.int32)
        self.cells = first * 0 - 1
        self.levels = first
        self.boxes = tf.pad(
            tf.cast(level["boxes"], tf.float32),
            [[0, 0], [0, slots - 1], [0, 0]],
        )
        self.steps = tf.zeros([batch], tf.int32)
        self.macs = tf.fill([batch], tf.constant(cost.level_one, tf.int64))
        num_classes = program.model.config.num_classes
        self.logits = tf.zeros([batch, num_classes], tf.float32)
        self.confidence = tf.zeros([batch], tf.float32)
        self.batch_sizes = []

    @property
    def state(self):
        """The tensors of `STATE`, in that order."""
        return tuple(getattr(self, name) for name in self.STATE)

    @state.setter
    def state(self, values):
        for name, value in zip(self.STATE, values, strict=True):
            setattr(self, name, value)

    def advance(self, indices):
        """Images `indices` attend their next top-level cell (and its
        subtree): only their regions are read."""
        indices = tf.cast(indices, tf.int32)
        steps = tf.gather(self.steps, indices)
        where = tf.stack([indices, steps], axis=1)
        levels = self.program.step(
            self.images,
            indices,
            tf.gather_nd(self.ranked, where)[:, None],
            tf.gather_nd(self.ranked_log_probs, where)[:, None],
        )
        for depth, level in enumerate(levels):
            self._store(indices, steps, depth, level)
        rows = indices[:, None]
        self.steps = tf.tensor_scatter_nd_add(
            self.steps, rows, tf.ones_like(indices)
        )
        self.macs = tf.tensor_scatter_nd_add(
            self.macs,
            rows,
            tf.fill(
                tf.shape(indices), tf.constant(self.cost.per_step, tf.int64)
            ),
        )
        if tf.executing_eagerly():
            self.batch_sizes.append(int(tf.size(indices)))

    def _store(self, indices, steps, depth, level):
        per_step = self.per_step[depth]
        slots = (
            self.offsets[depth]
            + steps[:, None] * per_step
            + tf.range(per_step)[None]
        )
        rows = tf.repeat(indices[:, None], per_step, axis=1)
        where = tf.stack([rows, slots], axis=-1)

        def update(state, values):
            return tf.tensor_scatter_nd_update(
                state, where, tf.cast(values, state.dtype)
            )

        self.vectors = update(self.vectors, level["vectors"])
        self.cells = update(self.cells, level["cells"])
        self.levels = update(self.levels, level["levels"])
        self.boxes = update(self.boxes, level["boxes"])

    def slots(self, steps):
        """The filled slots of an image that took `steps` steps (an int or
        an int32 scalar tensor), an int32 `(slots,)` tensor."""
        filled = [tf.zeros([1], tf.int32)]
        for offset, per_step in zip(self.offsets, self.per_step):
            filled.append(tf.range(offset, offset + steps * per_step))
        return tf.concat(filled, axis=0)

    def aggregate(self, indices):
        """Recomputes the predictions of images `indices` over the
        vectors they have so far (grouped by count: exact, no mask)."""
        indices = np.asarray(indices)
        steps = np.asarray(self.steps)[indices]
        for count in np.unique(steps):
            self.aggregate_group(indices[steps == count], int(count))

    def aggregate_group(self, indices, steps):
        """`aggregate` of images `indices` that all took `steps` steps
        (an int, or an int32 scalar tensor in a traced loop)."""
        indices = tf.cast(indices, tf.int32)
        slots = self.slots(steps)
        logits = self.program.classify(
            tf.gather(tf.gather(self.vectors, indices), slots, axis=1)
        )
        rows = indices[:, None]
        self.logits = tf.tensor_scatter_nd_update(self.logits, rows, logits)
        # The top softmax probability, compared to a threshold.
        shifted = tf.exp(logits - tf.reduce_max(logits, -1, keepdims=True))
        self.confidence = tf.tensor_scatter_nd_update(
            self.confidence, rows, 1.0 / tf.reduce_sum(shifted, -1)
        )
        macs = self.cost.aggregation(tf.size(slots, tf.int64))
        self.macs = tf.tensor_scatter_nd_add(
            self.macs, rows, tf.fill(tf.shape(indices), macs)
        )

    def result(self):
        """The `AnytimePrediction` of the calls so far (eager)."""
        return AnytimePrediction(
            logits=self.logits.numpy(),
            confidence=self.confidence.numpy(),
            locations=self.steps.numpy(),
            multiply_adds=self.macs.numpy(),
            attended_cells=self.cells.numpy(),
            attended_levels=self.levels.numpy(),
            attended_boxes=self.boxes.numpy(),
            batch_sizes=tuple(self.batch_sizes),
            cost=self.cost,
        )
