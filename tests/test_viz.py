"""Attention pictures, the accuracy-vs-FLOPs plot and the attention CSV."""

import csv

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import geometry
from tnet_tf import presets
from tnet_tf import viz


def _outline_mask(height, width, top, left, bottom, right, thickness=2):
    """The `thickness`-wide outline inside `[top, bottom) x [left, right)`."""
    rows, cols = np.mgrid[0:height, 0:width]
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    near_edge = (
        (rows < top + thickness)
        | (rows >= bottom - thickness)
        | (cols < left + thickness)
        | (cols >= right - thickness)
    )
    return inside & near_edge


@pytest.fixture(scope="module")
def model_outputs():
    model = presets.build("tiny_test")
    images = tf.random.stateless_uniform((3, 96, 96, 3), (4, 2), -1.0, 1.0)
    outputs = model(images, training=False, locations_per_level=[2, 1])
    outputs = {
        key: (
            tuple(np.asarray(p) for p in value)
            if key == "location_probs"
            else np.asarray(value)
        )
        for key, value in outputs.items()
    }
    return np.asarray(images), outputs


def test_boxes_are_drawn_exactly_on_their_outline():
    height, width = 40, 60
    black = -np.ones((height, width, 3), np.float32)  # black in [-1, 1]
    boxes = [
        [0.0, 0.0, 1.0, 1.0],  # level 1: the whole image, not drawn
        [0.25, 0.1, 0.75, 0.5],  # rows 10..30, cols 6..30
        [-0.1, 0.6, 0.3, 1.2],  # padded cell: rows 0..12, cols 36..60
    ]
    levels = [1, 2, 3]
    drawn = viz.draw_attention(black, boxes, levels)
    assert drawn.dtype == np.uint8 and drawn.shape == (height, width, 3)

    level_2 = _outline_mask(height, width, 10, 6, 30, 30)
    level_3 = _outline_mask(height, width, 0, 36, 12, 60)
    assert not (level_2 & level_3).any()
    for level, mask in ((2, level_2), (3, level_3)):
        colours = np.broadcast_to(viz.level_colour(level), (mask.sum(), 3))
        np.testing.assert_array_equal(drawn[mask], colours)
    # Nothing else changed: level 1 is not drawn, box interiors stay black.
    assert (drawn[~(level_2 | level_3)] == 0).all()


def test_deeper_levels_are_drawn_on_top():
    white = np.full((20, 20, 3), 255, np.uint8)
    box = [0.0, 0.0, 1.0, 1.0]
    drawn = viz.draw_attention(white, [box, box], [3, 2])
    assert tuple(drawn[0, 0]) == viz.level_colour(3)
    assert tuple(drawn[10, 10]) == (255, 255, 255)


def test_draw_attention_with_text_keeps_the_size():
    image = np.zeros((64, 80, 3), np.uint8)
    drawn = viz.draw_attention(
        image,
        [[0.0, 0.0, 0.5, 0.5]],
        [2],
        probabilities=[0.4],
        labels_text="class 3",
    )
    assert drawn.shape == (64, 80, 3) and drawn.dtype == np.uint8
    assert drawn.any()


def test_level_colour_rejects_level_one():
    with pytest.raises(ValueError, match="whole image"):
        viz.level_colour(1)


def _decoded_shape(path):
    image = tf.io.decode_png(tf.io.read_file(str(path)))
    return tuple(image.shape)


def test_attention_png_has_the_returned_size(tmp_path, model_outputs):
    images, outputs = model_outputs
    path = tmp_path / "one.png"
    size = viz.save_attention_png(
        path,
        images[0],
        viz.outputs_for_image(outputs, 0),
        class_names=[f"class {i}" for i in range(10)],
        top_k=5,
        width=300,
    )
    height, width = size
    assert width == 300
    # The 96 x 96 image at 300 px wide, plus a caption of at least 6 lines.
    assert height >= 300 + 6 * viz.LINE_HEIGHT
    assert _decoded_shape(path) == (height, width, 4)


def test_attention_grid_png_size(tmp_path, model_outputs):
    images, outputs = model_outputs
    path = tmp_path / "grid.png"
    size = viz.attention_grid_png(
        path, images, outputs, labels=[1, 2, 3], columns=2, panel_width=150
    )
    panel_height = 150 + 2 * viz.LINE_HEIGHT + viz.CAPTION_MARGIN
    assert size == (2 * panel_height, 2 * 150)
    assert _decoded_shape(path) == (2 * panel_height, 300, 4)


def test_accuracy_vs_flops_png(tmp_path):
    path = tmp_path / "accuracy.png"
    series = [
        {
            "name": "TNet-B0",
            "flops": [1.2, 2.5, 3.9],
            "accuracy": [70.1, 72.0, 73.5],
            "annotations": ["1", "2", "2,1"],
        },
        {"name": "EN-B0 448", "flops": [3.1], "accuracy": [69.0]},
    ]
    size = viz.accuracy_vs_flops_png(path, series, size=(500, 400))
    assert size == (400, 500)
    assert _decoded_shape(path) == (400, 500, 4)
    with pytest.raises(ValueError, match="as many"):
        viz.accuracy_vs_flops_png(
            path, [{"name": "x", "flops": [1.0], "accuracy": []}]
        )


def _parse_grids(text, cast=float):
    return [[cast(v) for v in grid.split(";")] for grid in text.split("|")]


def test_attention_csv_round_trip(tmp_path, model_outputs):
    _, outputs = model_outputs
    names = [f"image_{i}.jpg" for i in range(3)]
    labels = [4, 0, 9]
    path = tmp_path / "attention.csv"
    viz.attention_csv(path, viz.attention_rows(outputs, names, labels))
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))

    assert [row["filename"] for row in rows] == names
    assert [row["label"] for row in rows] == ["4", "0", "9"]
    level_2_probs, level_3_probs = outputs["location_probs"]
    for index, row in enumerate(rows):
        probabilities = outputs["logits"][index]
        ranked = np.argsort(-probabilities, kind="stable")
        assert row["predicted"] == str(ranked[0])
        assert row["top5"].split(";") == [str(c) for c in ranked[:5]]
        # Every grid's probabilities, not the attended-cell flags.
        got_2 = _parse_grids(row["cell_probabilities_level_2"])
        got_3 = _parse_grids(row["cell_probabilities_level_3"])
        np.testing.assert_allclose(got_2, level_2_probs[index], rtol=1e-6)
        np.testing.assert_allclose(got_3, level_3_probs[index], rtol=1e-6)
        assert np.array(got_3).shape == (2, 9)
        assert not set(np.ravel(got_3)) <= {0.0, 1.0}
        np.testing.assert_allclose(np.sum(got_3, axis=1), 1.0, rtol=1e-5)
        # Attended cells per grid, in the model's order.
        cells = outputs["attended_cells"][index]
        levels = outputs["attended_levels"][index]
        assert _parse_grids(row["attended_cells_level_2"], int) == [
            cells[levels == 2].tolist()
        ]
        assert _parse_grids(row["attended_cells_level_3"], int) == [
            [c] for c in cells[levels == 3].tolist()
        ]
        # Greedy selection picks each grid's most probable cells.
        assert cells[levels == 2][0] == np.argmax(level_2_probs[index, 0])
    assert "feature_weights" not in rows[0]


def test_attention_rows_with_zero_locations_and_feature_weights():
    outputs = {
        "logits": np.array([[0.1, 2.0, -1.0]]),
        "location_probs": (np.full((1, 1, 4), 0.25),),
        "attended_cells": np.array([[-1]]),
        "attended_levels": np.array([[1]]),
        "feature_weights": np.array([[1.0]]),
    }
    (row,) = viz.attention_rows(
        outputs, ["a.png"], [1], class_names=["cat", "dog", "owl"], top_k=2
    )
    assert row["predicted"] == "dog" and row["label"] == "dog"
    assert row["top2"] == "dog;cat"
    assert row["attended_cells_level_2"] == ""
    assert row["cell_probabilities_level_2"] == "0.25;0.25;0.25;0.25"
    assert row["feature_weights"] == "1"


def test_attention_rows_needs_location_probs():
    with pytest.raises(ValueError, match="location_probs"):
        viz.attention_rows({"logits": np.zeros((1, 2))}, ["a"], [0])


def _decoded_rgb(path):
    return tf.io.decode_png(tf.io.read_file(str(path)), channels=3).numpy()


def _bounding_box(mask):
    """`(top, left, bottom, right)` of the True pixels, bottom/right
    exclusive."""
    rows, cols = np.nonzero(mask)
    return rows.min(), cols.min(), rows.max() + 1, cols.max() + 1


def test_location_probability_png_outlines_the_most_probable_cell(tmp_path):
    grid_size, cell_fraction, side = 4, 0.34375, 32
    # Blue appears nowhere else in the picture: not in the white
    # background, the black captions or viridis.
    blue = (0, 0, 255)
    images = np.broadcast_to(np.uint8(blue), (2, side, side, 3))
    probs = np.full((2, grid_size * grid_size), 0.02)
    probs[0, 6] = 0.7  # row 1, col 2
    probs[1, 13] = 0.7  # row 3, col 1
    path = tmp_path / "location.png"
    size = viz.location_probability_png(
        path,
        images,
        probs,
        grid_size,
        cell_fraction,
        labels=[3, 5],
        predictions=[3, 1],
        columns=1,
        panel_width=200,
    )
    picture = _decoded_rgb(path)
    assert picture.shape[:2] == size and size[1] == 200

    red = np.all(picture == viz.level_colour(2), axis=-1)
    blue_pixels = np.all(picture == blue, axis=-1)
    boxes = geometry.grid_boxes(side, side, grid_size, cell_fraction)
    panel_height = size[0] // 2
    for index, cell in enumerate((6, 13)):
        panel = slice(index * panel_height, (index + 1) * panel_height)
        # The image is where the blue and the outline are.
        drawn = blue_pixels[panel] | red[panel]
        top, left, bottom, right = _bounding_box(drawn)
        shown = bottom - top
        assert shown == right - left and shown > 2 * side
        scale = shown / side
        y0, x0, y1, x1 = boxes[cell]
        expected = np.array([y0, x0, y1, x1]) * scale + [top, left, top, left]
        outline = _bounding_box(red[panel])
        np.testing.assert_allclose(outline, expected, atol=1.5)
        # An outline, not a filled box: the cell's centre stays blue.
        centre = red[panel][
            round((expected[0] + expected[2]) / 2),
            round((expected[1] + expected[3]) / 2),
        ]
        assert not centre


def test_location_probability_png_size_and_one_cell_grid(tmp_path):
    path = tmp_path / "one_cell.png"
    images = np.zeros((3, 20, 20, 3), np.float32)
    size = viz.location_probability_png(
        path, images, np.ones((3, 1)), 1, 0.5, columns=2, panel_width=120
    )
    side = (120 - 3 * viz.CAPTION_MARGIN) // 2
    panel_height = side + viz.LINE_HEIGHT + 2 * viz.CAPTION_MARGIN
    assert size == (2 * panel_height, 240)
    assert _decoded_shape(path) == (2 * panel_height, 240, 4)


def test_location_probability_png_rejects_bad_inputs(tmp_path):
    path = tmp_path / "bad.png"
    images = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="empty"):
        viz.location_probability_png(
            path, images[:0], np.zeros((0, 9)), 3, 0.5
        )
    for probs in (np.zeros((2, 8)), np.zeros((1, 9)), np.zeros((2, 1, 9))):
        with pytest.raises(ValueError, match=r"\(2, 9\)"):
            viz.location_probability_png(path, images, probs, 3, 0.5)
    with pytest.raises(ValueError, match="square"):
        viz.location_probability_png(
            path, np.zeros((2, 16, 20, 3), np.uint8), np.zeros((2, 9)), 3, 0.5
        )
