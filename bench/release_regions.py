"""The release's way of cutting cells, as a region reader TNet can use.

The release cut every cell of a grid with `tf.image.extract_patches`, then
kept the chosen ones; `ReleaseCropRegions` plugs that cropper into TNet's
traversal (`TNet.region_readers`), so the benchmarks time the release's
cropping inside the library's own `TNet.call`, not a copy of it.
"""

import tensorflow as tf

from tnet_tf import geometry
from tnet_tf.models import regions


def release_crop_cells(regions, cells, grid_size, cell_fraction, parents=None):
    """The release's cropping, with `geometry.crop_cells`' signature.

    Pads each region with zeros to the grid's span, cuts all
    `grid_size**2` cells with `tf.image.extract_patches` (VALID, cell-size
    patches at the grid stride), reshapes them to `(b * K, p_h, p_w, C)`
    and gathers the chosen ones. The release kept them with a boolean mask
    (ascending cell order); gathering by index keeps the caller's order, so
    the result is exactly what `crop_cells` returns, at the release's cost
    (every cell materialised, then copied once more).

    Args:
        regions: float tensor `(b, H, W, C)` with static `H`, `W`, `C`.
        cells: int tensor `(b, k)` of row-major cell indices.
        grid_size: `n`.
        cell_fraction: `o`.
        parents: optional int32 `(m,)`: `cells` is then `(m, k)`, the cells
            of regions `parents` (as `geometry.crop_cells`).

    Returns:
        `(crops, boxes)` as `geometry.crop_cells`.
    """
    if parents is not None:
        # The release had no anytime inference; gathering the kept regions
        # first, as the crop path did before `parents`, keeps its cost.
        regions = tf.gather(regions, parents)
    height, width, channels = regions.shape[1:4]
    if height is None or width is None or channels is None:
        raise ValueError("release_crop_cells needs static region sizes.")
    rows = geometry.cell_layout(height, grid_size, cell_fraction)
    cols = geometry.cell_layout(width, grid_size, cell_fraction)
    padded = tf.pad(
        regions,
        [
            [0, 0],
            [rows.pad_before, rows.pad_after],
            [cols.pad_before, cols.pad_after],
            [0, 0],
        ],
    )
    patches = tf.image.extract_patches(
        padded,
        sizes=[1, rows.cell_size, cols.cell_size, 1],
        strides=[1, rows.stride, cols.stride, 1],
        rates=[1, 1, 1, 1],
        padding="VALID",
    )  # (b, n, n, p_h * p_w * C)
    every_cell = tf.reshape(
        patches, [-1, rows.cell_size, cols.cell_size, channels]
    )
    cells = tf.cast(cells, tf.int32)
    flat = cells + tf.range(tf.shape(cells)[0])[:, None] * grid_size**2
    crops = tf.gather(every_cell, tf.reshape(flat, [-1]))
    boxes = geometry.chosen_cell_boxes(
        cells, height, width, grid_size, cell_fraction
    )
    return crops, boxes


class ReleaseCropRegions(regions.CropRegions):
    """The crop path with the release's cropper (`release_crop_cells`)."""

    crop = staticmethod(release_crop_cells)
