"""Drawing primitives every picture of `tnet_tf.viz` is made of.

Boxes are drawn on uint8 images with NumPy alone (`draw_attention`, one
outline colour per level). Text, captions and PNG files go through
matplotlib's object-oriented Agg canvas (`new_figure`, `show_image`,
`write_caption`, `label_boxes`, `save_png`), imported only when called: no
pyplot, no global backend.
"""

import numpy as np

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


def label_boxes(axes, outputs, image_shape):
    """Writes each attended box's location probability at its top-left
    corner, on the box's level colour (boxes of level 2 and deeper, when
    `outputs` has `attended_log_probs`)."""
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


def write_caption(figure, x, y, lines):
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


def new_figure(height, width):
    """A matplotlib `Figure` of `height x width` pixels on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Agg truncates width * dpi to an int; the small excess keeps e.g.
    # 29 / 100 * 100 = 28.999... from losing a pixel.
    figure = Figure(
        figsize=((width + 0.01) / DPI, (height + 0.01) / DPI), dpi=DPI
    )
    FigureCanvasAgg(figure)
    return figure


def show_image(axes, image):
    """Fills `axes` with `image`, one data unit per pixel, without axes."""
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


def save_png(figure, path):
    """Writes `figure` as a PNG of the pixel size it was made with."""
    figure.savefig(path, dpi=DPI, format="png")


def _render_text(canvas, boxes, levels, probabilities, labels_text):
    height, width = canvas.shape[:2]
    figure = new_figure(height, width)
    axes = figure.add_axes([0.0, 0.0, 1.0, 1.0])
    show_image(axes, canvas)
    if probabilities is not None:
        label_boxes(
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
