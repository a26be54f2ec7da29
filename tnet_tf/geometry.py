"""Grid geometry: candidate cells of an `n x n` grid and cropping of chosen ones.

The rule is the release's (`original_implementation_detail.md` §4), on each
axis of a region of side `S`, grid side `n` and cell fraction `o`:

- cell size `p = round(S * o)` (round half to even);
- stride `t = ceil((S - p) / (n - 1))`;
- the grid spans `(n - 1) * t + p >= S` pixels: zero padding of
  `ceil(extra / 2)` before and the rest after;
- cell `i` starts at `i * t - pad_before` in the region's own pixels.

A level's regions reach the base resolution one of two ways (the model's
`region_sampling`):

- `crop_cells` cuts the chosen cells from their parent region at full
  resolution (only the chosen cells, never the whole grid), then they are
  resized: exact, any grid, but the copies grow with the input's size;
- `resample_regions` reads each region's base-resolution samples straight
  from the input image, whatever its size (`resample_obstacle` says when that
  is equivalent).

Every layout function accepts Python ints (static shapes: the result is Python
ints) or integer tensors (dynamic shapes), so one formula serves tests,
profiling and exported models.
"""

import collections
import itertools

import numpy as np
import tensorflow as tf

CellLayout = collections.namedtuple(
    "CellLayout", ["cell_size", "stride", "pad_before", "pad_after"]
)


def _is_static(*values):
    return all(isinstance(v, int) for v in values)


def cell_layout(side, grid_size, cell_fraction):
    """Cell size, stride and padding on one axis.

    Args:
        side: the region's side in pixels (int or int32 scalar tensor).
        grid_size: `n`.
        cell_fraction: `o`, the cell side as a fraction of `side`.

    Returns:
        `CellLayout(cell_size, stride, pad_before, pad_after)`, Python ints
        when `side` is an int, int32 tensors otherwise.
    """
    if _is_static(side):
        cell_size = round(side * cell_fraction)
    else:
        side = tf.cast(side, tf.int32)
        scaled = tf.cast(side, tf.float64) * cell_fraction
        cell_size = tf.cast(tf.round(scaled), tf.int32)
    # Integer ceil division, written with floor division so that the same
    # expression works on Python ints and on tensors.
    stride = -((cell_size - side) // (grid_size - 1))
    extra = (grid_size - 1) * stride + cell_size - side
    pad_before = -(-extra // 2)
    return CellLayout(cell_size, stride, pad_before, extra - pad_before)


def cell_origins(side, grid_size, cell_fraction):
    """First pixel of every cell on one axis, in the region's coordinates.

    Example:
    >>> cell_origins(224, 5, 0.34375)
    [-1, 36, 73, 110, 147]
    """
    layout = cell_layout(side, grid_size, cell_fraction)
    return [i * layout.stride - layout.pad_before for i in range(grid_size)]


def grid_boxes(height, width, grid_size, cell_fraction):
    """Pixel boxes `[y0, x0, y1, x1)` of all `n * n` cells, row-major.

    Only for inspection and tests: the model crops chosen cells with
    `crop_cells` and never builds the full grid of crops.
    """
    rows = cell_layout(height, grid_size, cell_fraction)
    cols = cell_layout(width, grid_size, cell_fraction)
    boxes = []
    for r in range(grid_size):
        for c in range(grid_size):
            y0 = r * rows.stride - rows.pad_before
            x0 = c * cols.stride - cols.pad_before
            boxes.append([y0, x0, y0 + rows.cell_size, x0 + cols.cell_size])
    return boxes


def region_sizes(image_size, grid_size, cell_fraction, num_levels):
    """`(height, width)` of the regions processed at each level.

    Level 1 is the whole image; level `l + 1` regions are cells of level `l`.
    """
    height, width = image_size
    sizes = [(height, width)]
    for _ in range(num_levels - 1):
        height = cell_layout(height, grid_size, cell_fraction).cell_size
        width = cell_layout(width, grid_size, cell_fraction).cell_size
        sizes.append((height, width))
    return sizes


def chosen_cell_boxes(cells, height, width, grid_size, cell_fraction):
    """Pixel boxes of chosen cells inside their parent regions.

    Args:
        cells: int tensor `(regions, k)` of row-major cell indices.
        height, width: the parent regions' size (ints or scalar tensors).

    Returns:
        float32 tensor `(regions, k, 4)`: `y0, x0, y1, x1` in pixels of the
        parent (`y0` may be negative where the grid is padded).
    """
    rows = cell_layout(height, grid_size, cell_fraction)
    cols = cell_layout(width, grid_size, cell_fraction)
    cells = tf.cast(cells, tf.int32)
    y0 = (cells // grid_size) * rows.stride - rows.pad_before
    x0 = (cells % grid_size) * cols.stride - cols.pad_before
    boxes = tf.stack(
        [y0, x0, y0 + rows.cell_size, x0 + cols.cell_size], axis=-1
    )
    return tf.cast(boxes, tf.float32)


def child_regions(origins, region_size, cells, grid_size, cell_fraction):
    """The chosen cells of regions, as regions of the input image.

    Args:
        origins: `(R, 2)` float `y0, x0` of the regions in input pixels.
        region_size: their `(height, width)` (ints or scalar tensors).
        cells: int tensor `(R, k)` of row-major cell indices per region.

    Returns:
        `(origins, size)`: the children's `(R * k, 2)` origins, region-major
        as `crop_cells` orders its crops, and their `(height, width)`.
    """
    height, width = region_size
    boxes = chosen_cell_boxes(cells, height, width, grid_size, cell_fraction)
    origins = tf.reshape(origins[:, None, :] + boxes[..., :2], [-1, 2])
    size = tuple(
        cell_layout(side, grid_size, cell_fraction).cell_size
        for side in (height, width)
    )
    return origins, size


def crop_cells(regions, cells, grid_size, cell_fraction, parents=None):
    """Crops the chosen cells of every region at the region's resolution.

    Args:
        regions: float tensor `(b, H, W, C)`.
        cells: int tensor `(b, k)` of row-major cell indices per region.
        parents: optional int32 `(m,)`: `cells` is then `(m, k)`, the cells
            of regions `parents` (as `tf.gather(regions, parents)` but
            without copying those regions whole).

    Returns:
        `(crops, boxes)`: crops `(b * k, p_h, p_w, C)` ordered region-major
        then as in `cells`, and their pixel boxes `(b, k, 4)` in the parents.
        Pixels outside the parent (grid padding) are zero.
    """
    height, width = spatial_size(regions)
    boxes = chosen_cell_boxes(cells, height, width, grid_size, cell_fraction)
    rows = cell_layout(height, grid_size, cell_fraction)
    cols = cell_layout(width, grid_size, cell_fraction)
    ys, y_inside = _pixel_indices(boxes[..., 0], rows.cell_size, height)
    xs, x_inside = _pixel_indices(boxes[..., 1], cols.cell_size, width)
    if parents is None:
        parents = tf.range(tf.shape(cells)[0])
    parents = tf.broadcast_to(parents[:, None], tf.shape(cells))
    crops = _gather_pixels(regions, parents, ys, xs)  # (b, k, p_h, p_w, C)
    pads = (rows.pad_before, rows.pad_after, cols.pad_before, cols.pad_after)
    if not _is_static(*pads) or any(pads):
        # Padding cells gathered clamped edge pixels: zero them.
        inside = y_inside[..., :, None] & x_inside[..., None, :]
        crops *= tf.cast(inside, crops.dtype)[..., None]
    crops = tf.reshape(
        crops,
        tf.stack([-1, rows.cell_size, cols.cell_size, tf.shape(regions)[3]]),
    )
    if _is_static(rows.cell_size, cols.cell_size):
        crops = tf.ensure_shape(
            crops, [None, rows.cell_size, cols.cell_size, regions.shape[-1]]
        )
    return crops, boxes


def _gather_pixels(images, image_index, ys, xs):
    """`images[image_index, ys][..., xs]`: `(..., h, w, C)` for `image_index`
    `(...)`, `ys` `(..., h)` and `xs` `(..., w)`, all indices in range.

    Two gathers (whole rows, then columns) copy exactly the boxes' pixels and
    only those (the release cut the whole grid); unlike crop_and_resize's
    bilinear arithmetic they are exact in any dtype, and XLA compiles them.
    """
    height = tf.shape(images)[1]
    rows = tf.reshape(images, tf.concat([[-1], tf.shape(images)[2:]], 0))
    strips = tf.gather(rows, image_index[..., None] * height + ys)
    return tf.gather(strips, xs, axis=-2, batch_dims=len(xs.shape) - 1)


def _pixel_indices(starts, cell_size, side):
    """Clamped pixel indices `(b, k, cell_size)` of cells starting at `starts`
    on one axis, and whether each lies inside `[0, side)`."""
    positions = tf.cast(starts, tf.int32)[..., None] + tf.range(cell_size)
    inside = (positions >= 0) & (positions < side)
    return tf.clip_by_value(positions, 0, side - 1), inside


def spatial_size(images):
    """Static `(H, W)` ints when known, else int32 scalar tensors."""
    height, width = images.shape[1], images.shape[2]
    dynamic = tf.shape(images)
    return (
        height if height is not None else dynamic[1],
        width if width is not None else dynamic[2],
    )


# A crop_and_resize sample lands up to ~6 * side * 2**-24 px away from where
# tf.image.resize puts it (float32 box coordinates normalised by the image
# side). Resampling needs the outermost samples at least this many times
# that error inside the region, or one could fall outside the image and read
# as zero.
_SAMPLE_SAFETY = 4 * 6 * 2.0**-24


def resample_obstacle(
    height, width, grid_size, cell_fraction, locations_per_level, side
):
    """Why `resample_regions` cannot replace crop-then-resize, or `None`.

    Args:
        height, width: the input image's size.
        grid_size, cell_fraction: the grid.
        locations_per_level: the call's cells per level; levels of cells
            stop at the first 0.
        side: the base resolution.

    Returns:
        `None` when, at every level of cells, the grid needs no padding and
        each cell is either exactly `side` on both axes (copied) or larger
        on both with room for float32 rounding (resampled); otherwise a
        short reason.
    """
    if not _is_static(height, width):
        return "the image size is not known when the model is traced"
    depth = len(list(itertools.takewhile(bool, locations_per_level)))
    size = (height, width)
    for level in range(2, depth + 2):
        layouts = [cell_layout(s, grid_size, cell_fraction) for s in size]
        if any(layout.pad_before or layout.pad_after for layout in layouts):
            return (
                f"the grid over the {size[0]}x{size[1]} px regions is padded"
            )
        size = tuple(layout.cell_size for layout in layouts)
        if size == (side, side):
            continue
        margin = min(s - side for s in size) / (2 * side)
        if margin <= _SAMPLE_SAFETY * max(height, width):
            return (
                f"level {level} regions ({size[0]}x{size[1]} px) are neither "
                f"the base resolution {side} nor larger on both sides by "
                "enough for float32 sample positions"
            )
    return None


def resample_regions(images, image_index, origins, region_size, side):
    """Regions of `images` at `side x side`, read straight from the input.

    Region `r` is the `region_size` box at pixel `origins[r]` of image
    `image_index[r]`; it lies inside the image and is at least `side` on both
    sides (see `resample_obstacle`). The result equals cropping the region and
    resizing it with `tf.image.resize` (bilinear, half-pixel centres, no
    antialiasing): a region of exactly `side` is copied bit for bit; a larger
    one is sampled by `tf.image.crop_and_resize` at the same points, up to
    float32 rounding of the coordinates (~6 * image side * 2**-24 px). No
    full-resolution crop is made, so the cost does not grow with the image.

    Args:
        images: `(B, H, W, C)`.
        image_index: int `(R,)`, each region's image.
        origins: `(R, 2)` integer-valued `y0, x0` in pixels.
        region_size: static `(h, w)`.
        side: the output side.

    Returns:
        `(R, side, side, C)`: the images' dtype for copies, float32 for
        resampled regions (as `tf.image.resize`).
    """
    region_height, region_width = region_size
    origins = tf.cast(origins, tf.int32)
    if (region_height, region_width) == (side, side):
        offsets = tf.range(side)
        return _gather_pixels(
            images,
            image_index,
            origins[:, :1] + offsets,
            origins[:, 1:] + offsets,
        )
    # tf.image.resize samples row `y0 + (i + 0.5) * h / side - 0.5` of the
    # image; crop_and_resize samples `y1 * (H - 1) + i * (y2 - y1) * (H - 1) /
    # (side - 1)`: solve for the box (float64, then one float32 rounding).
    height, width = spatial_size(images)
    scale = np.array([region_height, region_width], np.float64) / side
    first = tf.cast(origins, tf.float64) + (0.5 * scale - 0.5)
    last = first + (side - 1) * scale
    extent = tf.cast(tf.stack([height - 1, width - 1] * 2), tf.float64)
    boxes = tf.cast(tf.concat([first, last], axis=1) / extent, tf.float32)
    if images.dtype == tf.bfloat16:  # no bfloat16 kernel
        images = tf.cast(images, tf.float32)
    return tf.image.crop_and_resize(
        images, boxes, tf.cast(image_index, tf.int32), (side, side)
    )
