"""PNG pictures of the regions TNet attended, with their captions.

`save_attention_png`: one image with its boxes, the top-k classes and each
box's level, cell, location probability and feature weight.
`attention_grid_png`: a grid of images with their boxes, each captioned
with the prediction (and the true label).
"""

import numpy as np

from tnet_tf.viz import drawing
from tnet_tf.viz import outputs as outputs_lib


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
    image = drawing.to_uint8_image(image)
    drawn = drawing.draw_attention(
        image, outputs["attended_boxes"], outputs["attended_levels"]
    )
    class_lines = _top_classes_lines(outputs, class_names, top_k)
    box_lines = _box_lines(outputs)
    lines = max(len(class_lines), len(box_lines))
    image_height = round(width * image.shape[0] / image.shape[1])
    caption_height = lines * drawing.LINE_HEIGHT + 2 * drawing.CAPTION_MARGIN
    height = image_height + caption_height

    figure = drawing.new_figure(height, width)
    axes = figure.add_axes(
        [0.0, caption_height / height, 1.0, image_height / height]
    )
    drawing.show_image(axes, drawn)
    drawing.label_boxes(axes, outputs, image.shape[:2])
    top = (caption_height - drawing.CAPTION_MARGIN) / height
    for column, column_lines in ((0.02, class_lines), (0.52, box_lines)):
        figure.text(
            column,
            top,
            "\n".join(column_lines),
            va="top",
            ha="left",
            fontsize=drawing.FONT_SIZE,
            family="monospace",
            linespacing=drawing.LINE_HEIGHT
            / (drawing.FONT_SIZE * drawing.DPI / 72.0),
        )
    drawing.save_png(figure, path)
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
    caption_height = 2 * drawing.LINE_HEIGHT + drawing.CAPTION_MARGIN
    panel_height = image_height + caption_height
    height, width = rows * panel_height, columns * panel_width

    figure = drawing.new_figure(height, width)
    probabilities = outputs_lib.class_probabilities(outputs)
    for index in range(count):
        row, column = divmod(index, columns)
        one = outputs_lib.outputs_for_image(outputs, index)
        bottom = height - row * panel_height - image_height
        axes = figure.add_axes(
            [
                column * panel_width / width,
                bottom / height,
                panel_width / width,
                image_height / height,
            ]
        )
        image = drawing.to_uint8_image(images[index])
        drawing.show_image(
            axes,
            drawing.draw_attention(
                image, one["attended_boxes"], one["attended_levels"]
            ),
        )
        predicted = int(np.argmax(probabilities[index]))
        caption = [
            f"pred {outputs_lib.class_name(predicted, class_names)} "
            f"{probabilities[index, predicted]:.2f}"
        ]
        if labels is not None:
            true_name = outputs_lib.class_name(int(labels[index]), class_names)
            caption.append(f"true {true_name}")
        drawing.write_caption(
            figure,
            (column * panel_width + 4) / width,
            (bottom - 2) / height,
            caption,
        )
    drawing.save_png(figure, path)
    return height, width


def _top_classes_lines(outputs, class_names, top_k):
    probabilities = outputs_lib.class_probabilities(outputs)
    ranked = np.argsort(-probabilities, kind="stable")[:top_k]
    return [f"top-{top_k} classes"] + [
        f"{outputs_lib.class_name(int(c), class_names)[:18]:<18} "
        f"{probabilities[c]:.3f}"
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
