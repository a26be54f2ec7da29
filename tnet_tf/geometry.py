"""Grid geometry: candidate cells of an `n x n` grid and cropping of chosen ones.

The rule is the release's (`original_implementation_detail.md` §4), on each
axis of a region of side `S`, grid side `n` and cell fraction `o`:

- cell size `p = round(S * o)` (round half to even);
- stride `t = ceil((S - p) / (n - 1))`;
- the grid spans `(n - 1) * t + p >= S` pixels: zero padding of
  `ceil(extra / 2)` before and the rest after;
- cell `i` starts at `i * t - pad_before` in the region's own pixels.

Children are cut from their parent region at full resolution; only the chosen
cells are cropped, never the whole grid. Every function accepts Python ints
(static shapes: the result is Python ints) or integer tensors (dynamic
shapes), so one formula serves tests, profiling and exported models.
"""

import collections

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


def crop_cells(regions, cells, grid_size, cell_fraction):
    """Crops the chosen cells of every region at the region's resolution.

    Args:
        regions: float tensor `(b, H, W, C)`.
        cells: int tensor `(b, k)` of row-major cell indices per region.

    Returns:
        `(crops, boxes)`: crops `(b * k, p_h, p_w, C)` ordered region-major
        then as in `cells`, and their pixel boxes `(b, k, 4)` in the parents.
        Pixels outside the parent (grid padding) are zero.
    """
    height, width = spatial_size(regions)
    boxes = chosen_cell_boxes(cells, height, width, grid_size, cell_fraction)
    rows = cell_layout(height, grid_size, cell_fraction)
    cols = cell_layout(width, grid_size, cell_fraction)
    # crop_and_resize samples at y0 + i * (y1 - y0) / (crop - 1) in units of
    # (H - 1): with corners on pixel centres and crop = cell size, every
    # sample lands on an input pixel, so the crop is the box's pixels (up to
    # float32 rounding of the positions, ~1e-4 at 896 px) and only the
    # chosen cells are materialised (the release cut the whole grid).
    scale = tf.cast(
        tf.stack([height - 1, width - 1, height - 1, width - 1]), tf.float32
    )
    corners = boxes - tf.constant([0.0, 0.0, 1.0, 1.0])
    normalized = tf.reshape(corners / tf.maximum(scale, 1.0), [-1, 4])
    k = tf.shape(cells)[1]
    region_index = tf.repeat(tf.range(tf.shape(regions)[0]), k)
    crops = tf.image.crop_and_resize(
        regions,
        normalized,
        region_index,
        crop_size=tf.stack([rows.cell_size, cols.cell_size]),
        method="bilinear",
        extrapolation_value=0.0,
    )
    if _is_static(rows.cell_size, cols.cell_size):
        crops = tf.ensure_shape(
            crops, [None, rows.cell_size, cols.cell_size, regions.shape[-1]]
        )
    return crops, boxes


def spatial_size(images):
    """Static `(H, W)` ints when known, else int32 scalar tensors."""
    height, width = images.shape[1], images.shape[2]
    dynamic = tf.shape(images)
    return (
        height if height is not None else dynamic[1],
        width if width is not None else dynamic[2],
    )

