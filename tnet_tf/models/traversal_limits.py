"""What a TNet call can traverse: input checks and the choice of reader.

Pure functions of a `TNetConfig` (and the call's images and locations),
used by `TNet` before it traverses: the images must be a batch at least
the base resolution, deep enough levels of cells must stay at least 1 px,
and the regions are resampled from the input only where that equals
cropping (`geometry.resample_obstacle`).
"""

import itertools

import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf import geometry


def resolve_locations(config, locations_per_level):
    """`locations_per_level` validated for `config`'s grid, as a tuple of
    ints; `config.locations_per_level` for `None`."""
    if locations_per_level is None:
        return config.locations_per_level
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
    config_lib.validate_locations(locations, config.grid_size)
    return locations


def cell_levels(locations):
    """Levels of attended cells below the whole image: they stop at the
    first 0 (the location module runs, nothing is attended)."""
    return len(list(itertools.takewhile(bool, locations)))


def deepest_cell_levels(config, height, width, depth):
    """How many of `depth` levels of cells (at most) a `height x width`
    image has before its cells fall under 1 px."""
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


def smallest_side(config, depth):
    """The smallest image side with `depth` levels of cells of >= 1 px
    (cell sizes grow with the side, so a bisection finds it)."""

    def fits(side):
        return deepest_cell_levels(config, side, side, depth) == depth

    high = 1
    while not fits(high):
        high *= 2
    low = high // 2  # does not fit, or is 0
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


def check_traversal_depth(config, locations, height, width):
    """Raises `LocationSettingError` if `locations` (resolved) goes deeper
    than `height x width` px images allow, naming the deepest valid
    setting and the smallest image side the requested depth needs."""
    depth = cell_levels(locations)
    valid = deepest_cell_levels(config, height, width, depth)
    if valid < depth:
        raise config_lib.LocationSettingError(
            f"`locations_per_level`={list(locations)} attends cells "
            f"{depth} levels below the whole image, but {height}x{width} "
            f"px images allow at most {valid} with a {config.grid_size}x"
            f"{config.grid_size} grid of cell_fraction "
            f"{config.cell_fraction} (deeper cells would be under 1 px): "
            f"the deepest valid setting is {list(locations[:valid])}, or "
            f"use images of at least {smallest_side(config, depth)} px on "
            "both sides."
        )


def check_images(config, model_name, images, locations):
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
            f"'{model_name}' takes a batch of images (batch, height, "
            f"width, 3), got a tensor of shape {tuple(shape)} (rank "
            f"{shape.rank}){hint}."
        )
    side = config.base_resolution
    height, width = geometry.spatial_size(images)
    if isinstance(height, int) and isinstance(width, int):
        if height < side or width < side:
            raise ValueError(
                f"Images of {height}x{width} px are smaller than the base "
                f"resolution {side} of '{model_name}'; upsample them or use "
                "a smaller base_resolution."
            )
        check_traversal_depth(config, locations, height, width)
        return images
    shortest = tf.minimum(tf.cast(height, tf.int32), tf.cast(width, tf.int32))
    checks = [
        tf.debugging.assert_greater_equal(
            shortest,
            side,
            message=f"images are smaller than the base resolution {side}",
        )
    ]
    needed = smallest_side(config, cell_levels(locations))
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
    if isinstance(images, tf.SparseTensor):
        # A lazy image (`tnet_tf.lazy_reading`) must reach its reader as
        # itself, which `tf.identity` would not keep; a traced function
        # runs its assertions anyway.
        return images
    with tf.control_dependencies(checks):
        return tf.identity(images)


def region_sampling_mode(config, shape, locations, jit_compile=False):
    """`"crop"` or `"resample"`: how a call on images of `shape` at
    `locations` (resolved) brings levels 2 and deeper to the base
    resolution.

    Follows `config.region_sampling`; `"auto"` resamples where
    `geometry.resample_obstacle` finds nothing in the way and the model is
    not XLA-compiled (`crop_and_resize` has no XLA kernel).
    """
    requested = config.region_sampling
    if requested == "crop" or config.antialias:
        return "crop"
    obstacle = geometry.resample_obstacle(
        shape[1],
        shape[2],
        config.grid_size,
        config.cell_fraction,
        locations,
        config.base_resolution,
    )
    attends_cells = bool(locations) and locations[0] > 0
    if obstacle is None and attends_cells and jit_compile:
        obstacle = "XLA has no crop_and_resize kernel (jit_compile is on)"
    if obstacle is None:
        return "resample"
    if requested == "resample":
        raise ValueError(
            f"region_sampling='resample' does not apply: {obstacle}. "
            "Use 'auto' (resample where it applies) or 'crop'."
        )
    return "crop"
