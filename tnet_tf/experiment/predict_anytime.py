"""The predict verb's `--anytime_threshold` way: each batch classified by
anytime inference (`model.predict_anytime`), so that every image attends
locations one at a time and stops once its top class probability reaches
the threshold; each row reports the locations and multiply-adds it used.

- `anytime_predictor`: a `Predictor` whose `predict` runs anytime
  inference (a Keras TNet only).
- `attended_only`: one image's outputs without the slots of locations it
  did not attend.
"""

import dataclasses

import numpy as np

from tnet_tf import config as config_lib

# The per-image entries anytime inference adds to the output dict.
LOCATIONS_USED = "locations_used"
MULTIPLY_ADDS = "multiply_adds"


def anytime_predictor(predictor, threshold, lazy=False):
    """`predictor` with anytime inference at `threshold` (returned as is
    for a `threshold` of None).

    Its `predict(images, setting)` attends at most `setting` (default the
    model's own; its first count is the most top-level locations, the rest
    the subtree under each) and adds `locations_used` and `multiply_adds`
    per image to the outputs.

    Raises:
        ValueError: a SavedModel, a model that attends no region, a
            threshold outside (0, 1], or `lazy` (full-resolution reading
            goes one file at a time, anytime inference by batch).
    """
    if threshold is None:
        return predictor
    model = predictor.model
    if model is None or not hasattr(model, "predict_anytime"):
        raise ValueError(
            "--anytime_threshold needs a .keras checkpoint or a preset "
            f"directory, not a {predictor.kind}."
        )
    if not model.config.attends_regions:
        raise ValueError(
            f"--anytime_threshold: '{model.name}' attends no regions."
        )
    if not 0.0 < threshold <= 1.0:
        raise ValueError(
            f"--anytime_threshold must be in (0, 1], got {threshold}."
        )
    if lazy:
        raise ValueError("--anytime_threshold does not go with --lazy.")

    def predict(images, setting):
        limits = {}
        if setting is not None:
            setting = model.resolve_locations(setting)
            if not setting or not setting[0]:
                raise config_lib.LocationSettingError(
                    "anytime inference attends at least one location, got "
                    f"{list(setting)}."
                )
            limits = {"max_locations": setting[0], "subtree": setting[1:]}
        out = model.predict_anytime(images, threshold=threshold, **limits)
        return {
            "logits": out.logits,
            "attended_cells": out.attended_cells,
            "attended_levels": out.attended_levels,
            "attended_boxes": out.attended_boxes,
            LOCATIONS_USED: out.locations,
            MULTIPLY_ADDS: out.multiply_adds,
        }

    return dataclasses.replace(predictor, predict=predict)


def attended_only(one):
    """One image's outputs (`viz.outputs_for_image`) without the slots of
    the locations anytime inference did not attend (level 0); other
    outputs are returned as they are."""
    if LOCATIONS_USED not in one:
        return one
    attended = np.asarray(one["attended_levels"]) > 0
    return {
        key: (
            np.asarray(value)[attended]
            if key.startswith("attended_")
            else value
        )
        for key, value in one.items()
    }
