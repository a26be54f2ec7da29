"""What anytime inference (`tnet_tf.models.anytime`) costs: the
multiply-adds of level 1, of one step and of each aggregation, from the
profiler.
"""

import dataclasses
import math
import weakref
from collections.abc import Sequence

import keras
import tensorflow as tf

from tnet_tf import profiling


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


# Profiled costs per model and (height, width, locations): tracing a model
# takes seconds, and one model is usually run at one size.
_COSTS = weakref.WeakKeyDictionary()


def aggregate_vectors(model, vectors):
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
            aggregate_vectors(model, vectors), training=False
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
