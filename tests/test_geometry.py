"""Grid geometry: exact cells of the reference configurations and exact crops."""

import numpy as np
import pytest
import tensorflow as tf

from tests import numpy_reference
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
    dynamic = [
        geometry.cell_layout(tf.constant(s), grid, fraction) for s in sides
    ]
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
    ys, xs = (
        slice(max(y0, 0), min(y1, height)),
        slice(max(x0, 0), min(x1, width)),
    )
    out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = image[
        ys, xs
    ]
    return out


@pytest.mark.parametrize(
    "height,width,grid,fraction",
    [
        (224, 224, 5, 0.34375),
        (448, 448, 5, 0.35),
        (96, 160, 3, 0.5),
        (77, 90, 5, 0.34375),
    ],
)
def test_crops_equal_box_pixels(height, width, grid, fraction):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, height, width, 3)).astype(np.float32)
    cells = np.array(
        [[0, grid * grid - 1, grid + 1], [grid - 1, 1, grid * (grid - 1)]]
    )
    crops, boxes = geometry.crop_cells(
        tf.constant(images), tf.constant(cells), grid, fraction
    )
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
        tf.cast(compiled, tf.float32).numpy(),
        tf.cast(eager, tf.float32).numpy(),
    )
    boxes = geometry.grid_boxes(77, 90, 5, 0.34375)
    expected = numpy_crop(tf.cast(images[1], tf.float32).numpy(), boxes[4])
    np.testing.assert_array_equal(
        tf.cast(eager[3], tf.float32).numpy(), expected
    )


# === Resampling regions straight from the input ===


def resample_reference(images, image_index, origins, size, side):
    """Crop (NumPy) then bilinear resize (independent NumPy reference)."""
    out = []
    for index, (y0, x0) in zip(image_index, origins):
        crop = numpy_crop(images[index], [y0, x0, y0 + size[0], x0 + size[1]])
        out.append(numpy_reference.bilinear_resize(crop, side, side))
    return np.stack(out)


@pytest.mark.parametrize(
    "image_size,size,side",
    [
        ((896, 896), (448, 448), 224),  # fMoW 896, level 2
        ((600, 640), (300, 320), 224),  # non-square regions
        ((3584, 3584), (1792, 1792), 224),  # fMoW 3584, level 2
        ((120, 96), (64, 50), 48),  # odd scale factors
    ],
)
def test_resampled_regions_match_crop_then_resize(image_size, size, side):
    rng = np.random.default_rng(3)
    height, width = image_size
    images = rng.uniform(-1, 1, (2, height, width, 3)).astype(np.float32)
    # Corners and an interior box, so the outermost samples are exercised.
    origins = [
        (0, 0),
        (height - size[0], width - size[1]),
        ((height - size[0]) // 3, (width - size[1]) // 2),
    ]
    image_index = [1, 0, 1]
    out = geometry.resample_regions(
        tf.constant(images),
        tf.constant(image_index),
        tf.constant(origins),
        size,
        side,
    ).numpy()
    expected = resample_reference(images, image_index, origins, size, side)
    assert out.shape == (3, side, side, 3)
    # float32 sample coordinates: within ~1e-4 px on these sides, so pixels of
    # random noise (neighbours up to 2 apart) move by well under 1e-3.
    np.testing.assert_allclose(out, expected, atol=1e-3)
    # The same images through tf.image.resize of the crops (the crop path).
    crops = tf.constant(
        np.stack(
            [
                numpy_crop(images[i], [y, x, y + size[0], x + size[1]])
                for i, (y, x) in zip(image_index, origins)
            ]
        )
    )
    resized = tf.image.resize(crops, (side, side), antialias=False).numpy()
    np.testing.assert_allclose(out, resized, atol=1e-3)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_resampled_regions_of_base_size_are_exact_copies(dtype):
    images = tf.cast(tf.random.uniform((2, 96, 80, 3), -1, 1), dtype)
    origins = tf.constant([[0, 48], [64, 0], [10, 17]])
    out = geometry.resample_regions(
        images, tf.constant([0, 1, 1]), origins, (32, 32), 32
    )
    assert out.dtype == dtype
    expected = np.stack(
        [
            numpy_crop(
                tf.cast(images[i], tf.float32).numpy(), [y, x, y + 32, x + 32]
            )
            for i, (y, x) in zip([0, 1, 1], origins.numpy())
        ]
    )
    np.testing.assert_array_equal(tf.cast(out, tf.float32).numpy(), expected)


def test_resampled_regions_accept_bfloat16_images():
    images = tf.random.uniform((1, 128, 128, 3), -1, 1)
    origins, index = tf.constant([[32, 64]]), tf.constant([0])
    low = geometry.resample_regions(
        tf.cast(images, tf.bfloat16), index, origins, (64, 64), 32
    )
    full = geometry.resample_regions(images, index, origins, (64, 64), 32)
    np.testing.assert_allclose(low.numpy(), full.numpy(), atol=2e-2)


@pytest.mark.parametrize(
    "height,width,grid,fraction,locations,side,reason",
    [
        (896, 896, 3, 0.5, (2, 1), 224, None),  # 448, then 224 (copied)
        (3584, 3584, 3, 0.5, (2, 1), 224, None),
        (1200, 896, 3, 0.5, (1,), 224, None),  # 600 x 448
        (896, 896, 3, 0.5, (2, 1, 1), 224, "neither"),  # level 4: 112 px
        (896, 896, 3, 0.5, (2, 1, 0), 224, None),  # no level 4 after a 0
        (896, 896, 3, 0.5, (0, 1, 1), 224, None),  # no cells at all
        (224, 224, 5, 0.34375, (3,), 77, "padded"),  # ImageNet
        (448, 448, 5, 0.35, (2,), 224, "padded"),  # CUB
        (448, 896, 3, 0.5, (1,), 224, "neither"),  # 224 x 448: one side equal
        (450, 450, 2, 0.5, (1,), 224, None),  # 225 px: room enough at 450
        (4500, 4500, 2, 0.05, (1,), 224, "neither"),  # 225 px: not at 4500
    ],
)
def test_resample_obstacles(
    height, width, grid, fraction, locations, side, reason
):
    obstacle = geometry.resample_obstacle(
        height, width, grid, fraction, locations, side
    )
    if reason is None:
        assert obstacle is None
    else:
        assert reason in obstacle


def test_resample_needs_a_static_image_size():
    size = tf.constant(896)
    assert "not known" in geometry.resample_obstacle(
        size, size, 3, 0.5, (1,), 224
    )
