"""Grid geometry: exact cells of the reference configurations and exact crops."""

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import geometry

# (side, grid, cell fraction) -> (cell size, stride, pad before, pad after,
# origins), from original_implementation_detail.md §4.
REFERENCE = {
    (224, 5, 0.34375): (77, 37, 1, 0, [-1, 36, 73, 110, 147]),
    (448, 3, 0.5): (224, 112, 0, 0, [0, 112, 224]),
    (896, 3, 0.5): (448, 224, 0, 0, [0, 224, 448]),
    (448, 5, 0.35): (157, 73, 1, 0, [-1, 72, 145, 218, 291]),
    (224, 3, 0.5): (112, 56, 0, 0, [0, 56, 112]),
}


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_reference_layouts(key):
    side, grid, fraction = key
    size, stride, before, after, origins = REFERENCE[key]
    layout = geometry.cell_layout(side, grid, fraction)
    assert tuple(layout) == (size, stride, before, after)
    assert geometry.cell_origins(side, grid, fraction) == origins
    # The grid covers the padded side exactly and its last cell ends flush.
    assert origins[-1] + size == side + after


def independent_layout(side, grid, fraction):
    """A second, literal reading of the rule with NumPy floats."""
    cell = int(np.round(side * fraction))
    stride = int(np.ceil((side - cell) / (grid - 1)))
    padded = (grid - 1) * stride + cell
    before = int(np.ceil((padded - side) / 2))
    return cell, stride, before, padded - side - before


@pytest.mark.parametrize("grid", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("fraction", [0.25, 0.34375, 0.35, 0.5, 0.6])
def test_layout_matches_independent_rule_static_and_dynamic(grid, fraction):
    sides = list(range(40, 300, 7)) + [448, 896, 1792]
    dynamic = [geometry.cell_layout(tf.constant(s), grid, fraction) for s in sides]
    for side, tensors in zip(sides, dynamic):
        static = geometry.cell_layout(side, grid, fraction)
        assert tuple(static) == independent_layout(side, grid, fraction), side
        assert tuple(int(t) for t in tensors) == tuple(static), side


def test_nested_levels_of_fmow_896():
    sizes = geometry.region_sizes((896, 896), 3, 0.5, 3)
    assert sizes == [(896, 896), (448, 448), (224, 224)]
    # Level-3 cell (r3, c3) of level-2 cell (r2, c2) starts at
    # 224 * r2 + 112 * r3 in the input (detail §4).
    level2 = geometry.grid_boxes(896, 896, 3, 0.5)
    level3 = geometry.grid_boxes(448, 448, 3, 0.5)
    assert level2[5][:2] == [224, 448]
    assert level3[7][:2] == [224, 112]


def test_grid_boxes_row_major_non_square():
    boxes = geometry.grid_boxes(224, 448, 5, 0.34375)
    assert len(boxes) == 25
    assert boxes[0] == [-1, -1 + 0, 76, -1 + 154]  # 448 -> cell 154
    assert boxes[1][0] == boxes[0][0] and boxes[5][1] == boxes[0][1]
    cols = geometry.cell_layout(448, 5, 0.34375)
    assert boxes[1][1] - boxes[0][1] == cols.stride


def numpy_crop(image, box):
    """Pixels of `box` = [y0, x0, y1, x1) with zeros outside the image."""
    y0, x0, y1, x1 = box
    height, width = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, image.shape[2]), image.dtype)
    ys, xs = slice(max(y0, 0), min(y1, height)), slice(max(x0, 0), min(x1, width))
    out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = image[ys, xs]
    return out


@pytest.mark.parametrize(
    "height,width,grid,fraction",
    [(224, 224, 5, 0.34375), (448, 448, 5, 0.35), (96, 160, 3, 0.5), (77, 90, 5, 0.34375)],
)
def test_crops_equal_box_pixels(height, width, grid, fraction):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, height, width, 3)).astype(np.float32)
    cells = np.array([[0, grid * grid - 1, grid + 1], [grid - 1, 1, grid * (grid - 1)]])
    crops, boxes = geometry.crop_cells(tf.constant(images), tf.constant(cells), grid, fraction)
    all_boxes = geometry.grid_boxes(height, width, grid, fraction)
    crops = crops.numpy().reshape(2, 3, *crops.shape[1:])
    for b in range(2):
        for j, cell in enumerate(cells[b]):
            assert boxes[b, j].numpy().tolist() == all_boxes[cell]
            expected = numpy_crop(images[b], all_boxes[cell])
            # Gathered, not interpolated: the exact pixels.
            np.testing.assert_array_equal(crops[b, j], expected)


def test_crops_with_dynamic_shapes_match_static():
    images = tf.random.uniform((1, 120, 100, 3))
    cells = tf.constant([[4, 0]])
    static, _ = geometry.crop_cells(images, cells, 3, 0.5)
    fn = tf.function(
        lambda x, c: geometry.crop_cells(x, c, 3, 0.5)[0],
        input_signature=[
            tf.TensorSpec([None, None, None, 3]),
            tf.TensorSpec([None, None], tf.int32),
        ],
    )
    np.testing.assert_array_equal(fn(images, cells).numpy(), static.numpy())


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_crops_compile_with_xla_and_stay_exact_in_low_precision(dtype):
    images = tf.cast(tf.random.uniform((2, 77, 90, 3), -1, 1), dtype)
    cells = tf.constant([[0, 24], [12, 4]])
    eager, _ = geometry.crop_cells(images, cells, 5, 0.34375)
    compiled = tf.function(
        lambda x, c: geometry.crop_cells(x, c, 5, 0.34375)[0], jit_compile=True
    )(images, cells)
    assert compiled.dtype == dtype
    np.testing.assert_array_equal(
        tf.cast(compiled, tf.float32).numpy(), tf.cast(eager, tf.float32).numpy()
    )
    boxes = geometry.grid_boxes(77, 90, 5, 0.34375)
    expected = numpy_crop(tf.cast(images[1], tf.float32).numpy(), boxes[4])
    np.testing.assert_array_equal(
        tf.cast(eager[3], tf.float32).numpy(), expected
    )
