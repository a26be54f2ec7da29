"""Anytime inference: attend locations one at a time, stop when sure.

TNet's call attends the same `k` cells on every image. Anytime inference
attends the top-level cells one at a time, in the policy's rank order
(greedy: the most probable cell first), and stops per image:

- **threshold**: once the top softmax probability of the image's
  aggregate prediction reaches `threshold` (or `max_locations` cells);
- **budget**: a total number of locations for the batch, handed out in
  rounds to the images whose current prediction is the least certain.

Only the images still undecided are read at each step (the region reader
is narrowed to them with `RegionReader.keep`), so the saving is time, not
only counted multiply-adds. The model's own layers do the work and the
aggregate is recomputed exactly (the feature weighting's softmax over the
image's vectors so far), so with `k` locations and a threshold that is
never reached the result is `model(images, locations_per_level=[k])`'s.

Models with more than one level transition (e.g. `[2, 1]`) are supported:
one step is a top-level cell plus its subtree, attended with the deeper
levels' fixed counts (`subtree`, by default the rest of the model's
`locations_per_level`), so `k` steps equal `[k, *subtree]`.

Multiply-adds per image come from `tnet_tf.profiling` (conv and dense
layers, as everywhere in the project): level 1 with the location module,
plus the cost of a step times the steps taken, plus every aggregation the
image went through (an image that checks its prediction after each step
pays the small aggregate-and-classify cost each time).

`predict_anytime` decides its stops eagerly, per batch; `traced_anytime` is
the threshold mode as TensorFlow ops (a `tf.while_loop` over the
locations), traceable into a SavedModel endpoint (`serve_anytime`).
"""

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf.models import traversal_limits
from tnet_tf.models.anytime_cost import AnytimeCost
from tnet_tf.models.anytime_cost import anytime_cost
from tnet_tf.models.anytime_steps import AnytimePrediction
from tnet_tf.models.anytime_steps import StepProgram
from tnet_tf.models.anytime_steps import StepTraversal
from tnet_tf.models.anytime_steps import program

__all__ = [
    "AnytimeCost",
    "AnytimePrediction",
    "anytime_cost",
    "predict_anytime",
    "traced_anytime",
]


def _positive_int(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not hasattr(value, "__index__")
        or int(value) < 1
    ):
        raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    return int(value)


def _check_arguments(model, threshold, max_locations, min_locations, subtree):
    """The call's `(locations, min_locations)`, validated."""
    try:
        model.resolve_locations([1])
    except config_lib.LocationSettingError:
        raise ValueError(
            f"'{model.name}' attends no regions (a whole-image "
            "classifier): anytime inference needs a model that attends "
            "locations, such as TNet."
        ) from None
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0.0 < threshold <= 1.0
    ):
        raise ValueError(
            f"`threshold` must be in (0, 1] or None, got {threshold!r}."
        )
    default = tuple(model.config.locations_per_level)
    if max_locations is None:
        max_locations = default[0] if default and default[0] else None
        if max_locations is None:
            raise ValueError(
                f"'{model.name}' attends no cells by default "
                f"(locations_per_level={list(default)}): pass "
                "`max_locations`."
            )
    max_locations = _positive_int("max_locations", max_locations, False)
    if subtree is None:
        subtree = default[1:]
    subtree = tuple(subtree)
    # The model's own depth rule: levels stop at the first 0.
    if 0 in subtree:
        subtree = subtree[: subtree.index(0)]
    locations = model.resolve_locations((max_locations, *subtree))
    if (
        isinstance(min_locations, bool)
        or not hasattr(min_locations, "__index__")
        or not 0 <= int(min_locations) <= max_locations
    ):
        raise ValueError(
            f"`min_locations` must be an int in [0, max_locations="
            f"{max_locations}], got {min_locations!r}."
        )
    return locations, int(min_locations)


def predict_anytime(
    model: keras.Model,
    images: tf.Tensor | np.ndarray,
    threshold: float | None = None,
    max_locations: int | None = None,
    budget: int | None = None,
    min_locations: int = 1,
    round_size: int | None = None,
    subtree: Sequence[int] | None = None,
) -> AnytimePrediction:
    """Anytime inference of `model` on one batch (see the module
    docstring); `ImageClassifier.predict_anytime` calls this.

    Args:
        model: a TNet (a model that attends no region raises).
        images: float `(batch, height, width, 3)` in [-1, 1], as the call,
            or one lazy image (`lazy_reading.EncodedImage`, read only
            where it is attended).
        threshold: stop an image once its top softmax probability reaches
            it, in (0, 1]; None: never (every image takes `max_locations`
            without a budget).
        max_locations: top-level locations per image at most; defaults to
            the model's first `locations_per_level`.
        budget: total top-level locations for the batch (a positive int,
            at least `min_locations * batch`). After `min_locations` each,
            the rest go in rounds to the least certain images not yet at
            `max_locations` (nor at `threshold`, when given).
        min_locations: locations every image takes before any stop (0
            lets level 1 alone decide).
        round_size: locations handed out per budget round, each to a
            different image (default: a quarter of the batch); 1 is the
            strict one-at-a-time order, larger rounds read more images
            per step.
        subtree: locations per deeper level under each top-level cell;
            defaults to the rest of the model's `locations_per_level`.

    Returns:
        An `AnytimePrediction`.

    Raises:
        ValueError: bad arguments, or a model that attends no regions.
        RuntimeError: called inside a `tf.function` (stops are decided in
            Python, per batch).
    """
    locations, min_locations = _check_arguments(
        model, threshold, max_locations, min_locations, subtree
    )
    budget = _positive_int("budget", budget)
    round_size = _positive_int("round_size", round_size)
    if not tf.executing_eagerly():
        raise RuntimeError(
            "predict_anytime decides its stops eagerly: call it outside "
            "tf.function."
        )
    if not isinstance(images, tf.SparseTensor):  # else a lazy image
        images = tf.convert_to_tensor(images, tf.float32)
    images = traversal_limits.check_images(
        model.config, model.name, images, locations
    )
    batch, height, width = (int(side) for side in images.shape[:3])
    if budget is not None and budget < min_locations * batch:
        raise ValueError(
            f"`budget`={budget} cannot give each of the {batch} images its "
            f"min_locations={min_locations}."
        )
    cost = anytime_cost(model, height, width, locations[1:])
    traversal = StepTraversal(
        program(model, locations, height, width, images), images, cost
    )
    everyone = np.arange(batch)
    if budget is None:
        _until_sure(traversal, everyone, threshold, min_locations)
    else:
        _within_budget(
            traversal,
            everyone,
            threshold,
            min_locations,
            budget - min_locations * batch,
            round_size or max(1, batch // 4),
        )
    return traversal.result()


def _until_sure(traversal, active, threshold, min_locations):
    """Every image attends cells until `threshold` or the last one."""
    for step in range(traversal.locations[0]):
        if threshold is not None and step >= min_locations:
            traversal.aggregate(active)
            unsure = np.asarray(traversal.confidence)[active] < threshold
            active = active[unsure]
        if not len(active):
            return
        traversal.advance(active)
    traversal.aggregate(active)


def _within_budget(traversal, active, threshold, minimum, left, round_size):
    """`minimum` cells each, then rounds of `round_size` cells to the least
    certain images until `left` cells are spent."""
    for _ in range(minimum):
        traversal.advance(active)
    traversal.aggregate(active)
    most = traversal.locations[0]
    while left > 0:
        confidence = np.asarray(traversal.confidence)
        open_ = np.asarray(traversal.steps) < most
        if threshold is not None:
            open_ &= confidence < threshold
        candidates = np.flatnonzero(open_)
        if not len(candidates):
            return
        # Least certain first; stable, so ties go to the lower index.
        order = np.argsort(confidence[candidates], kind="stable")
        chosen = np.sort(candidates[order[: min(left, round_size)]])
        traversal.advance(chosen)
        traversal.aggregate(chosen)
        left -= len(chosen)


def traced_anytime(
    model: keras.Model,
    images: tf.Tensor,
    threshold: tf.Tensor,
    cost: AnytimeCost,
) -> dict[str, tf.Tensor]:
    """`predict_anytime(model, images, threshold)` with the model's default
    setting as TensorFlow ops, traceable: the stops are a `tf.while_loop`
    over the top-level locations, each step reading only the images still
    undecided (what the SavedModel endpoint `serve_anytime` serves).

    Args:
        model: a TNet.
        images: float32 `(batch, height, width, 3)` in [-1, 1], any size
            (checked in the graph where it is only known when run).
        threshold: a float32 scalar in (0, 1] (asserted in the graph).
        cost: the `AnytimeCost` the multiply-adds are counted with
            (`anytime_cost` at the size served).

    Returns:
        A dict of tensors: `logits`, `confidence`, `locations_used`
        (int32), `multiply_adds` (int64) per image, and the
        `attended_cells`, `attended_levels` and `attended_boxes` of the
        model's output layout (`AnytimePrediction`).
    """
    locations, _ = _check_arguments(model, None, None, 1, None)
    images = traversal_limits.check_images(
        model.config, model.name, images, locations
    )
    threshold = tf.convert_to_tensor(threshold, tf.float32)
    checks = [
        tf.debugging.assert_greater(
            threshold, 0.0, message="threshold must be in (0, 1]"
        ),
        tf.debugging.assert_less_equal(
            threshold, 1.0, message="threshold must be in (0, 1]"
        ),
    ]
    with tf.control_dependencies(checks):
        images = tf.identity(images)
    # The pieces traced inline: the served images have no static size.
    pieces = StepProgram(model, locations, lambda fn, *specs: fn)
    traversal = StepTraversal(pieces, images, cost)

    # As `_until_sure` with `min_locations` 1: every image takes a step,
    # then those not yet sure take the next.
    def body(step, active, state):
        traversal.state = state
        traversal.advance(active)
        traversal.aggregate_group(active, step + 1)
        unsure = tf.gather(traversal.confidence, active) < threshold
        return step + 1, tf.boolean_mask(active, unsure), traversal.state

    _, _, traversal.state = tf.while_loop(
        lambda step, active, state: (step < locations[0])
        & (tf.size(active) > 0),
        body,
        (tf.constant(0), tf.range(tf.shape(images)[0]), traversal.state),
    )
    return {
        "logits": traversal.logits,
        "confidence": traversal.confidence,
        "locations_used": traversal.steps,
        "multiply_adds": traversal.macs,
        "attended_cells": traversal.cells,
        "attended_levels": traversal.levels,
        "attended_boxes": traversal.boxes,
    }
