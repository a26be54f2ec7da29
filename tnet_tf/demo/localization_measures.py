"""How often TNet attends the digit, and how often chance would.

- `centres_inside`: which boxes contain which digit centres (the one test,
  also used by `bench/demo_policy.py`).
- `attended_centre_fraction`: the fraction of images where an attended cell
  contains the digit's centre; `localization` of TNet on canvases.
- `chance_localization`: the same fraction expected of cells drawn
  uniformly at random, the level a policy must beat.
"""

import math

import numpy as np

from tnet_tf import geometry
from tnet_tf.demo.data import model_inputs


def centres_inside(boxes, centres):
    """`(N, T)` bool: whether box `[n, t]` (normalised `(ymin, xmin, ymax,
    xmax)`, `(N or 1, T, 4)`) contains centre `n` (`(N, 2)`, `(y, x)`)."""
    y, x = centres[:, None, 0], centres[:, None, 1]
    return (
        (boxes[..., 0] <= y)
        & (y < boxes[..., 2])
        & (boxes[..., 1] <= x)
        & (x < boxes[..., 3])
    )


def attended_centre_fraction(boxes, levels, centres):
    """Fraction of images where an attended cell contains the digit centre.

    Args:
        boxes: `(N, T, 4)` normalised `(ymin, xmin, ymax, xmax)`, TNet's
            `attended_boxes`; level-1 boxes (the whole image) do not count.
        levels: `(N, T)` TNet's `attended_levels`.
        centres: `(N, 2)` normalised `(y, x)` of each image's digit.
    """
    inside = (np.asarray(levels) >= 2) & centres_inside(boxes, centres)
    return float(np.mean(np.any(inside, axis=1)))


def chance_localization(centres, locations, grid_size, cell_fraction, side):
    """`attended_centre_fraction` expected of `locations` distinct cells of
    the grid over a `side` px image, drawn uniformly at random: the level a
    policy must beat."""
    cells = (
        np.asarray(
            geometry.grid_boxes(side, side, grid_size, cell_fraction),
            np.float64,
        )
        / side
    )
    covering = np.sum(centres_inside(cells[None], centres), axis=1)
    total = grid_size * grid_size
    missing = [
        math.comb(total - int(m), locations) / math.comb(total, locations)
        for m in covering
    ]
    return float(1.0 - np.mean(missing))


def localization(model, canvases, centres, setting, batch_size=100):
    """`attended_centre_fraction` of TNet at `setting` on `canvases`."""
    found = 0.0
    for start in range(0, len(canvases), batch_size):
        part = slice(start, start + batch_size)
        outputs = model(
            model_inputs(canvases[part]),
            training=False,
            locations_per_level=setting,
        )
        found += attended_centre_fraction(
            np.asarray(outputs["attended_boxes"]),
            np.asarray(outputs["attended_levels"]),
            centres[part],
        ) * len(canvases[part])
    return found / len(canvases)
