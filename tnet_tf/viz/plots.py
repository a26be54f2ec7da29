"""Accuracy against multiply-adds per image, as the paper's Fig. 1b and 3.

`accuracy_vs_flops_png`: one line per TNet over its location settings and
one point per baseline.
"""

from tnet_tf.viz import drawing


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
    figure = drawing.new_figure(height, width)
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
                fontsize=drawing.FONT_SIZE,
            )
    if log_x:
        axes.set_xscale("log")
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=drawing.FONT_SIZE)
    figure.tight_layout()
    drawing.save_png(figure, path)
    return height, width
