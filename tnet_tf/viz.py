"""Pictures and tables of what TNet attended, and the accuracy-vs-FLOPs plot.

Every function takes the model's output dict (`TNet.__call__`) or the dict of
an exported serving endpoint (`tnet_tf.export`), as tensors or NumPy arrays:
both use the keys `logits` / `probabilities`, `attended_boxes`,
`attended_levels`, `attended_cells`, `attended_log_probs` and
`feature_weights`.

- `draw_attention`: the attended boxes drawn on one image as a uint8 array,
  one colour per level. The boxes are drawn with NumPy alone; matplotlib is
  needed only for text.
- `save_attention_png` / `attention_grid_png`: PNG pictures with a caption
  (top-k classes, each box's location probability).
- `location_probability_png`: each image with its most probable level-1
  cell outlined, beside a heat map of the location module's probabilities
  of every cell (takes the probabilities, not the output dict).
- `accuracy_vs_flops_png`: accuracy against multiply-adds per image, one
  line per TNet over its location settings and one point per baseline, as
  the paper's Fig. 1b and Fig. 3.
- `attention_rows` / `attention_csv`: one CSV row per image with the
  attended cells and the probabilities of every cell of every grid at every
  level. The release's "advanced evaluation" wrote the attended-cell flags in
  the probability column of levels after the second; here each level's
  column holds its location module's probabilities.

matplotlib is imported only by the functions that draw text or plots, and
only through its object-oriented Agg canvas: no pyplot, no global backend.
"""

import csv

import numpy as np

from tnet_tf import geometry

# Outline colours (RGB) of boxes of levels 2, 3, ...; level 1 is the whole
# image and is not drawn. Deeper levels than listed reuse the list.
LEVEL_COLOURS = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (240, 50, 230),
)
OUTLINE_WIDTH = 2
# Text layout of the PNGs, in pixels at DPI.
DPI = 100
FONT_SIZE = 8
LINE_HEIGHT = 14
CAPTION_MARGIN = 6
# The lowest probability the location heat map tells apart (log scale).
PROBABILITY_FLOOR = 1e-4


def level_colour(level):
    """RGB outline colour of a box of `level` (2 = first attended level)."""
    if level < 2:
        raise ValueError(
            f"Level 1 is the whole image and has no colour, got {level}."
        )
    return LEVEL_COLOURS[(level - 2) % len(LEVEL_COLOURS)]


def to_uint8_image(image):
    """uint8 `(H, W, 3)` from a uint8 image or a float image in [-1, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"Expected one (H, W, 3) image, got shape {image.shape}."
        )
    if image.dtype == np.uint8:
        return image.copy()
    scaled = (np.clip(image.astype(np.float32), -1.0, 1.0) + 1.0) * 127.5
    return np.round(scaled).astype(np.uint8)


def box_pixels(box, height, width):
    """Pixel box `(top, left, bottom, right)` of a normalised box, clipped.

    Cells of padded grids reach slightly outside the image; clipping keeps
    their outline visible on the image border.
    """
    y0, x0, y1, x1 = (float(v) for v in box)
    top = int(np.clip(round(y0 * height), 0, height))
    bottom = int(np.clip(round(y1 * height), 0, height))
    left = int(np.clip(round(x0 * width), 0, width))
    right = int(np.clip(round(x1 * width), 0, width))
    return top, left, bottom, right


def draw_attention(image, boxes, levels, probabilities=None, labels_text=None):
    """Draws the attended boxes of one image, one colour per level.

    Boxes are drawn as `OUTLINE_WIDTH`-pixel outlines inside their pixel
    extent, clipped to the image, shallow levels first so deeper boxes stay
    on top. Level-1 entries (the whole image) are skipped.

    Args:
        image: `(H, W, 3)` uint8, or float in [-1, 1] (the model's input).
        boxes: `(T, 4)` normalised `y0, x0, y1, x1` (`attended_boxes` of one
            image).
        levels: `(T,)` ints (`attended_levels` of one image).
        probabilities: optional `(T,)` location probability of each box,
            written next to it (needs matplotlib).
        labels_text: optional caption written in the top-left corner
            (needs matplotlib).

    Returns:
        uint8 array `(H, W, 3)`.
    """
    canvas = to_uint8_image(image)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    levels = np.asarray(levels).reshape(-1)
    if len(boxes) != len(levels):
        raise ValueError(
            f"`boxes` and `levels` must have one entry per vector, got "
            f"{len(boxes)} boxes and {len(levels)} levels."
        )
    height, width = canvas.shape[:2]
    for index in np.argsort(levels, kind="stable"):
        if levels[index] < 2:
            continue
        top, left, bottom, right = box_pixels(boxes[index], height, width)
        if bottom <= top or right <= left:
            continue
        outline = OUTLINE_WIDTH
        colour = level_colour(int(levels[index]))
        canvas[top : min(top + outline, bottom), left:right] = colour
        canvas[max(bottom - outline, top) : bottom, left:right] = colour
        canvas[top:bottom, left : min(left + outline, right)] = colour
        canvas[top:bottom, max(right - outline, left) : right] = colour
    if probabilities is None and labels_text is None:
        return canvas
    return _render_text(canvas, boxes, levels, probabilities, labels_text)


def outputs_for_image(outputs, index):
    """The entries of a batch output dict for image `index`, as NumPy arrays.

    `location_probs` (a tuple of `(batch, grids, cells)`) becomes a tuple of
    `(grids, cells)` arrays.
    """
    single = {}
    for key, value in outputs.items():
        if key == "location_probs":
            single[key] = tuple(np.asarray(p)[index] for p in value)
        else:
            value = np.asarray(value)
            if value.ndim >= 1:
                single[key] = value[index]
    return single


def save_attention_png(
    path, image, outputs_for_one_image, class_names=None, top_k=5, width=480
):
    """Writes one image with its attended boxes and a caption as a PNG.

    The caption lists the top-k classes with their probabilities and, for
    each attended box, its level, cell and location probability (and its
    feature weight when the model has feature weighting).

    Args:
        path: output `.png` path.
        image: `(H, W, 3)` uint8 or float in [-1, 1].
        outputs_for_one_image: one image's outputs (`outputs_for_image`).
        class_names: optional list of class names.
        top_k: classes listed.
        width: PNG width in pixels; the height follows the image's aspect
            plus the caption.

    Returns:
        `(height, width)` of the PNG in pixels.
    """
    outputs = {
        key: np.asarray(value)
        for key, value in outputs_for_one_image.items()
        if key != "location_probs"
    }
    image = to_uint8_image(image)
    drawn = draw_attention(
        image, outputs["attended_boxes"], outputs["attended_levels"]
    )
    class_lines = _top_classes_lines(outputs, class_names, top_k)
    box_lines = _box_lines(outputs)
    lines = max(len(class_lines), len(box_lines))
    image_height = round(width * image.shape[0] / image.shape[1])
    caption_height = lines * LINE_HEIGHT + 2 * CAPTION_MARGIN
    height = image_height + caption_height

    figure = _figure(height, width)
    axes = figure.add_axes(
        [0.0, caption_height / height, 1.0, image_height / height]
    )
    _show(axes, drawn)
    _label_boxes(axes, outputs, image.shape[:2])
    top = (caption_height - CAPTION_MARGIN) / height
    for column, column_lines in ((0.02, class_lines), (0.52, box_lines)):
        figure.text(
            column,
            top,
            "\n".join(column_lines),
            va="top",
            ha="left",
            fontsize=FONT_SIZE,
            family="monospace",
            linespacing=LINE_HEIGHT / (FONT_SIZE * DPI / 72.0),
        )
    _save(figure, path)
    return height, width


def attention_grid_png(
    path,
    images,
    outputs,
    class_names=None,
    labels=None,
    columns=4,
    panel_width=240,
):
    """Writes a grid of images with their attended boxes as one PNG.

    Each panel shows one image with its boxes and a two-line caption: the
    predicted class with its probability, and the true label when `labels`
    is given.

    Args:
        path: output `.png` path.
        images: `(N, H, W, 3)` uint8 or float in [-1, 1].
        outputs: the batch output dict of those images.
        class_names: optional list of class names.
        labels: optional `(N,)` true class indices.
        columns: panels per row.
        panel_width: width of one panel in pixels.

    Returns:
        `(height, width)` of the PNG in pixels.
    """
    images = np.asarray(images)
    count = len(images)
    if count == 0:
        raise ValueError("`images` is empty.")
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    image_height = round(panel_width * images.shape[1] / images.shape[2])
    caption_height = 2 * LINE_HEIGHT + CAPTION_MARGIN
    panel_height = image_height + caption_height
    height, width = rows * panel_height, columns * panel_width

    figure = _figure(height, width)
    probabilities = _probabilities(outputs)
    for index in range(count):
        row, column = divmod(index, columns)
        one = outputs_for_image(outputs, index)
        bottom = height - row * panel_height - image_height
        axes = figure.add_axes(
            [
                column * panel_width / width,
                bottom / height,
                panel_width / width,
                image_height / height,
            ]
        )
        image = to_uint8_image(images[index])
        _show(
            axes,
            draw_attention(
                image, one["attended_boxes"], one["attended_levels"]
            ),
        )
        predicted = int(np.argmax(probabilities[index]))
        caption = [
            f"pred {_class_name(predicted, class_names)} "
            f"{probabilities[index, predicted]:.2f}"
        ]
        if labels is not None:
            caption.append(
                f"true {_class_name(int(labels[index]), class_names)}"
            )
        _caption(
            figure, (column * panel_width + 4) / width, (bottom - 2) / height,
            caption,
        )
    _save(figure, path)
    return height, width


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
    margin = CAPTION_MARGIN
    image_side = (panel_width - 3 * margin) // 2
    if image_side < 1:
        raise ValueError(f"`panel_width` {panel_width} is too small.")
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    lines = 1 + (labels is not None or predictions is not None)
    caption_height = lines * LINE_HEIGHT + margin
    panel_height = margin + image_side + caption_height
    height, width = rows * panel_height, columns * panel_width
    boxes = np.asarray(
        _cell_boxes(side, grid_size, cell_fraction), dtype=np.float64
    ) / side
    square = image_side / grid_size  # heat-map square in pixels

    figure = _figure(height, width)
    for index in range(count):
        row, column = divmod(index, columns)
        left = column * panel_width + margin
        bottom = height - row * panel_height - margin - image_side
        probs = location_probs[index]
        best = int(np.argmax(probs))

        image = _resize_nearest(
            to_uint8_image(images[index]), image_side, image_side
        )
        axes = figure.add_axes(
            [
                left / width,
                bottom / height,
                image_side / width,
                image_side / height,
            ]
        )
        _show(axes, draw_attention(image, boxes[best : best + 1], [2]))

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
                    fontsize=FONT_SIZE - 1,
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
        _caption(figure, left / width, (bottom - 2) / height, caption)
    _save(figure, path)
    return height, width


def accuracy_vs_flops_png(
    path,
    series,
    title=None,
    x_label="multiply-adds per image (GFLOPs)",
    y_label="top-1 accuracy (%)",
    log_x=False,
    size=(640, 480),
):
    """Plots accuracy against computation, as the paper's Fig. 1b and Fig. 3.

    Args:
        path: output `.png` path.
        series: list of dicts, one per model: `name`; `flops` and `accuracy`,
            lists of equal length; optional `annotations`, one string per
            point (e.g. the location setting `"2,1"`); optional `kind`,
            `"line"` (a TNet over its location settings) or `"points"` (a
            baseline), by default a line when there are several points.
        title: optional plot title.
        x_label, y_label: axis labels.
        log_x: logarithmic FLOPs axis.
        size: `(width, height)` of the PNG in pixels.

    Returns:
        `(height, width)` of the PNG in pixels.
    """
    if not series:
        raise ValueError("`series` is empty.")
    width, height = size
    figure = _figure(height, width)
    axes = figure.add_subplot(1, 1, 1)
    for number, entry in enumerate(series):
        # One colour per series: lines and scatter points would otherwise
        # draw from separate colour cycles and repeat colours.
        colour = f"C{number % 10}"
        flops = list(entry["flops"])
        accuracy = list(entry["accuracy"])
        if len(flops) != len(accuracy) or not flops:
            raise ValueError(
                f"Series {entry.get('name')!r} needs as many `flops` as "
                f"`accuracy` values (at least one), got {len(flops)} and "
                f"{len(accuracy)}."
            )
        kind = entry.get("kind", "line" if len(flops) > 1 else "points")
        if kind not in ("line", "points"):
            raise ValueError(
                f"`kind` must be 'line' or 'points', got {kind!r}."
            )
        if kind == "line":
            axes.plot(
                flops, accuracy, marker="o", color=colour, label=entry["name"]
            )
        else:
            axes.scatter(
                flops, accuracy, marker="s", color=colour, label=entry["name"]
            )
        for x, y, text in zip(flops, accuracy, entry.get("annotations") or []):
            axes.annotate(
                str(text),
                (x, y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=FONT_SIZE,
            )
    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=FONT_SIZE)
    figure.tight_layout()
    _save(figure, path)
    return height, width


def attention_rows(outputs, filenames, labels, class_names=None, top_k=5):
    """One dict per image: prediction, attended cells, all cell probabilities.

    Columns, in order:
    - `filename`, `label`, `predicted`: class names when `class_names` is
      given, else indices.
    - `top5` (named after `top_k`): the `top_k` classes, `;`-separated, and
      `top5_probabilities` their probabilities.
    - `attended_cells_level_<L>` for each attended level `L >= 2`: the cells
      chosen in each grid of level `L - 1`, `;`-separated within a grid and
      `|` between grids (grids in the order of their parent regions).
    - `cell_probabilities_level_<L>`: the location module's probabilities of
      every cell of those grids, same separators; present whenever the
      module ran, even with 0 locations attended.
    - `feature_weights`: `;`-separated, one per attended vector (level 1
      first), when the model has feature weighting.

    Args:
        outputs: the model's batch output dict (needs `location_probs`,
            `attended_cells`, `attended_levels` and `logits` or
            `probabilities`).
        filenames: `(N,)` names of the images.
        labels: `(N,)` true class indices.
        class_names: optional list of class names.
        top_k: classes listed in the top-k column.

    Returns:
        A list of `N` dicts with string values (see `attention_csv`).
    """
    if "location_probs" not in outputs:
        raise ValueError(
            "`outputs` must be the model's output dict with `location_probs`; "
            f"got keys {sorted(outputs)}."
        )
    probabilities = _probabilities(outputs)
    location_probs = [np.asarray(p) for p in outputs["location_probs"]]
    cells = np.asarray(outputs["attended_cells"])
    levels = np.asarray(outputs["attended_levels"])
    weights = outputs.get("feature_weights")
    count = len(probabilities)
    if len(filenames) != count or len(labels) != count:
        raise ValueError(
            f"Got {len(probabilities)} images, {len(filenames)} filenames and "
            f"{len(labels)} labels."
        )
    top_column = f"top{top_k}"
    rows = []
    for index in range(len(probabilities)):
        ranked = np.argsort(-probabilities[index], kind="stable")[:top_k]
        row = {
            "filename": str(filenames[index]),
            "label": _class_name(int(labels[index]), class_names),
            "predicted": _class_name(int(ranked[0]), class_names),
            top_column: ";".join(
                _class_name(int(c), class_names) for c in ranked
            ),
            f"{top_column}_probabilities": ";".join(
                _number(probabilities[index, c]) for c in ranked
            ),
        }
        for depth, grid_probs in enumerate(location_probs):
            level = depth + 2
            grids = grid_probs[index]  # (grids, cells)
            chosen = cells[index][levels[index] == level]
            per_grid = (
                np.array_split(chosen, len(grids)) if len(chosen) else []
            )
            row[f"attended_cells_level_{level}"] = "|".join(
                ";".join(str(int(c)) for c in grid) for grid in per_grid
            )
            row[f"cell_probabilities_level_{level}"] = "|".join(
                ";".join(_number(p) for p in grid) for grid in grids
            )
        if weights is not None:
            row["feature_weights"] = ";".join(
                _number(w) for w in np.asarray(weights)[index]
            )
        rows.append(row)
    return rows


def attention_csv(path, rows):
    """Writes `attention_rows` output as a CSV file with a header row.

    Columns are the union of the rows' keys in first-seen order, so rows of
    models with different depths can share one file (missing cells empty).
    """
    fieldnames = []
    for row in rows:
        for key in row:
            if key not in fieldnames:
                fieldnames.append(key)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fieldnames, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


# === Helpers ===


def _number(value):
    # 7 significant digits: float32 precision, short enough to read.
    return f"{float(value):.7g}"


def _class_name(index, class_names):
    return class_names[index] if class_names is not None else str(index)


def _probabilities(outputs):
    if "probabilities" in outputs:
        return np.asarray(outputs["probabilities"], dtype=np.float64)
    logits = np.asarray(outputs["logits"], dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _top_classes_lines(outputs, class_names, top_k):
    probabilities = _probabilities(outputs)
    ranked = np.argsort(-probabilities, kind="stable")[:top_k]
    return [f"top-{top_k} classes"] + [
        f"{_class_name(int(c), class_names)[:18]:<18} {probabilities[c]:.3f}"
        for c in ranked
    ]


def _box_lines(outputs):
    levels = outputs["attended_levels"]
    cells = outputs.get("attended_cells")
    log_probs = outputs.get("attended_log_probs")
    weights = outputs.get("feature_weights")
    header = "boxes: level cell p(cell)"
    if weights is not None:
        header += " weight"
    lines = [header]
    for index, level in enumerate(levels):
        if level < 2:
            continue
        text = f"L{int(level)}"
        if cells is not None:
            text += f" cell {int(cells[index])}"
        if log_probs is not None:
            text += f" p={np.exp(float(log_probs[index])):.3f}"
        if weights is not None:
            text += f" w={float(weights[index]):.3f}"
        lines.append(text)
    return lines


def _label_boxes(axes, outputs, image_shape):
    height, width = image_shape
    log_probs = outputs.get("attended_log_probs")
    for index, level in enumerate(outputs["attended_levels"]):
        if level < 2 or log_probs is None:
            continue
        top, left, _, _ = box_pixels(
            outputs["attended_boxes"][index], height, width
        )
        colour = np.array(level_colour(int(level))) / 255.0
        axes.text(
            left + OUTLINE_WIDTH + 1,
            top + OUTLINE_WIDTH + 1,
            f"{np.exp(float(log_probs[index])):.2f}",
            color="white",
            fontsize=FONT_SIZE - 1,
            va="top",
            ha="left",
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0},
        )


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


def _caption(figure, x, y, lines):
    """Caption `lines` with their top-left corner at figure fraction
    `(x, y)`, one `LINE_HEIGHT` apart."""
    figure.text(
        x,
        y,
        "\n".join(lines),
        va="top",
        ha="left",
        fontsize=FONT_SIZE,
        linespacing=LINE_HEIGHT / (FONT_SIZE * DPI / 72.0),
    )


def _figure(height, width):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Agg truncates width * dpi to an int; the small excess keeps e.g.
    # 29 / 100 * 100 = 28.999... from losing a pixel.
    figure = Figure(
        figsize=((width + 0.01) / DPI, (height + 0.01) / DPI), dpi=DPI
    )
    FigureCanvasAgg(figure)
    return figure


def _show(axes, image):
    height, width = image.shape[:2]
    axes.imshow(
        image,
        interpolation="nearest",
        extent=(0, width, height, 0),
        aspect="auto",
    )
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_axis_off()


def _save(figure, path):
    figure.savefig(path, dpi=DPI, format="png")


def _render_text(canvas, boxes, levels, probabilities, labels_text):
    height, width = canvas.shape[:2]
    figure = _figure(height, width)
    axes = figure.add_axes([0.0, 0.0, 1.0, 1.0])
    _show(axes, canvas)
    if probabilities is not None:
        _label_boxes(
            axes,
            {
                "attended_boxes": boxes,
                "attended_levels": levels,
                "attended_log_probs": np.log(
                    np.maximum(np.asarray(probabilities, np.float64), 1e-30)
                ),
            },
            (height, width),
        )
    if labels_text is not None:
        axes.text(
            2,
            2,
            str(labels_text),
            color="white",
            fontsize=FONT_SIZE,
            va="top",
            ha="left",
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.0},
        )
    figure.canvas.draw()
    rendered = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    return np.ascontiguousarray(rendered[:height, :width], dtype=np.uint8)
