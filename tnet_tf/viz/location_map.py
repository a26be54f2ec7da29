"""The location module's probability map, drawn beside each image.

`location_probability_png` takes the probabilities of the level-1 grid's
cells (not the output dict): each image with its most probable cell
outlined, and a heat map of every cell's probability.
"""

import numpy as np

from tnet_tf import geometry
from tnet_tf.viz import drawing

# The lowest probability the location heat map tells apart (log scale).
PROBABILITY_FLOOR = 1e-4


def location_probability_png(
    path,
    images,
    location_probs,
    grid_size,
    cell_fraction,
    labels=None,
    predictions=None,
    columns=4,
    panel_width=240,
):
    """Writes each image beside its location module's probability map.

    Each panel shows the image with its most probable level-1 grid cell
    outlined (the level-2 colour of `draw_attention`) and, to its right, an
    `n x n` heat map of the cells' probabilities at the same height (colour
    on a log scale from `PROBABILITY_FLOOR` to 1; the three most probable
    cells carry their value when the squares are large enough). The caption
    gives the largest probability and its cell `row,col`, then `true` /
    `pred` when `labels` / `predictions` are given. Cells are those of
    `geometry.grid_boxes`, the model's own; a 1 x 1 grid is one centred cell.
    The image is resampled (nearest neighbour) to the panel before the
    outline is drawn, so the outline keeps `OUTLINE_WIDTH` pixels.

    Args:
        path: output `.png` path.
        images: `(N, H, W, 3)` square images, uint8 or float in [-1, 1].
        location_probs: `(N, grid_size ** 2)` probabilities of the level-1
            grid's cells, row-major (`outputs["location_probs"][0][:, 0]`).
        grid_size: `n`, cells per side of the grid.
        cell_fraction: the cell side as a fraction of the image side.
        labels: optional `(N,)` true class indices.
        predictions: optional `(N,)` predicted class indices.
        columns: panels per row.
        panel_width: width of one panel (image and heat map) in pixels.

    Returns:
        `(height, width)` of the PNG in pixels.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"`images` must be (N, H, W, 3), got shape {images.shape}."
        )
    count = len(images)
    if count == 0:
        raise ValueError("`images` is empty.")
    side = images.shape[1]
    if images.shape[2] != side:
        raise ValueError(
            f"The images must be square, got {images.shape[1]}x"
            f"{images.shape[2]} (height x width)."
        )
    cells = grid_size * grid_size
    location_probs = np.asarray(location_probs, dtype=np.float64)
    if location_probs.shape != (count, cells):
        raise ValueError(
            f"`location_probs` must have shape (N, grid_size ** 2) = "
            f"({count}, {cells}) for {count} images and a {grid_size}x"
            f"{grid_size} grid, got {location_probs.shape}."
        )
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values is not None and len(values) != count:
            raise ValueError(
                f"`{name}` must have one entry per image ({count}), got "
                f"{len(values)}."
            )
    margin = drawing.CAPTION_MARGIN
    image_side = (panel_width - 3 * margin) // 2
    if image_side < 1:
        raise ValueError(f"`panel_width` {panel_width} is too small.")
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    lines = 1 + (labels is not None or predictions is not None)
    caption_height = lines * drawing.LINE_HEIGHT + margin
    panel_height = margin + image_side + caption_height
    height, width = rows * panel_height, columns * panel_width
    boxes = (
        np.asarray(
            _cell_boxes(side, grid_size, cell_fraction), dtype=np.float64
        )
        / side
    )
    square = image_side / grid_size  # heat-map square in pixels

    figure = drawing.new_figure(height, width)
    for index in range(count):
        row, column = divmod(index, columns)
        left = column * panel_width + margin
        bottom = height - row * panel_height - margin - image_side
        probs = location_probs[index]
        best = int(np.argmax(probs))

        image = _resize_nearest(
            drawing.to_uint8_image(images[index]), image_side, image_side
        )
        axes = figure.add_axes(
            [
                left / width,
                bottom / height,
                image_side / width,
                image_side / height,
            ]
        )
        drawing.show_image(
            axes, drawing.draw_attention(image, boxes[best : best + 1], [2])
        )

        heat = figure.add_axes(
            [
                (left + image_side + margin) / width,
                bottom / height,
                image_side / width,
                image_side / height,
            ]
        )
        top_probability = float(probs[best])
        # A log scale: a trained policy puts nearly all its mass on one
        # cell, and on a linear scale the ranking of the others (which
        # decides the cells after the first) would not show.
        log_probs = np.log10(np.maximum(probs, PROBABILITY_FLOOR))
        heat.imshow(
            log_probs.reshape(grid_size, grid_size),
            cmap="viridis",
            vmin=np.log10(PROBABILITY_FLOOR),
            vmax=0.0,
            interpolation="nearest",
            extent=(0, grid_size, grid_size, 0),
            aspect="auto",
        )
        heat.set_axis_off()
        if square >= 20:
            for cell in np.argsort(-probs, kind="stable")[:3]:
                cell_row, cell_column = divmod(int(cell), grid_size)
                heat.text(
                    cell_column + 0.5,
                    cell_row + 0.5,
                    f"{probs[cell]:.2f}",
                    color="black" if log_probs[cell] > -1.0 else "white",
                    fontsize=drawing.FONT_SIZE - 1,
                    va="center",
                    ha="center",
                )

        best_row, best_column = divmod(best, grid_size)
        caption = [
            f"max p {top_probability:.2f} (cell {best_row},{best_column})"
        ]
        if lines > 1:
            caption.append(
                "  ".join(
                    f"{name} {int(values[index])}"
                    for name, values in (
                        ("true", labels),
                        ("pred", predictions),
                    )
                    if values is not None
                )
            )
        drawing.write_caption(
            figure, left / width, (bottom - 2) / height, caption
        )
    drawing.save_png(figure, path)
    return height, width


def _cell_boxes(side, grid_size, cell_fraction):
    # Pixel boxes of the cells of a square image: the model's grid, or one
    # centred cell for a 1 x 1 grid (the grid's stride needs n >= 2).
    if grid_size == 1:
        cell = round(side * cell_fraction)
        start = (side - cell) // 2
        return [[start, start, start + cell, start + cell]]
    return geometry.grid_boxes(side, side, grid_size, cell_fraction)


def _resize_nearest(image, height, width):
    rows = (np.arange(height) + 0.5) * image.shape[0] / height
    cols = (np.arange(width) + 0.5) * image.shape[1] / width
    rows = np.minimum(rows.astype(np.int64), image.shape[0] - 1)
    cols = np.minimum(cols.astype(np.int64), image.shape[1] - 1)
    return image[rows][:, cols]
