"""The rows of batch predict's CSV (`predict.run_batch_predict`)."""

import json
import os

import numpy as np

TOP_FIELDS = ("class", "name", "probability")
ATTENTION_COLUMNS = "attended_boxes attended_levels multiply_adds picture"


def csv_columns(top_k, anytime=False):
    """The columns of `run_batch_predict`'s CSV; with `anytime` (its
    `anytime_threshold`), `locations_used` too."""
    ranked = [f"top{r}_{f}" for r in range(1, top_k + 1) for f in TOP_FIELDS]
    used = ["locations_used"] if anytime else []
    return ["path", *ranked, *ATTENTION_COLUMNS.split(), *used]


def csv_row(path, one, top, top_k, multiply_adds, picture):
    """One image's row: `one` its outputs, `top` its `top_classes`; the
    image's own `multiply_adds` and `locations_used` when `one` has them
    (anytime inference), else `multiply_adds`, the model's."""
    row = {"path": path, "picture": picture or ""}
    if "locations_used" in one:
        row["locations_used"] = int(one["locations_used"])
        multiply_adds = int(one["multiply_adds"])
    for rank in range(1, top_k + 1):
        c, name, p = top[rank - 1] if rank <= len(top) else ("", "", "")
        values = (c, name, p if p == "" else f"{p:.8g}")
        row.update(zip((f"top{rank}_{f}" for f in TOP_FIELDS), values))
    boxes = np.asarray(one.get("attended_boxes", np.zeros((0, 4))))
    levels = np.asarray(one.get("attended_levels", np.zeros((0,))))
    row["attended_boxes"] = json.dumps(
        [[round(float(v), 6) for v in box] for box in boxes.reshape(-1, 4)]
    )
    row["attended_levels"] = json.dumps([int(v) for v in levels.ravel()])
    row["multiply_adds"] = "" if multiply_adds is None else multiply_adds
    return row


def picture_path(directory, path, used):
    """`<directory>/<stem>_attention.png`, numbered from the second file
    of a stem (`used` counts them)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    used[stem] = used.get(stem, 0) + 1  # photo.jpg, photo.png: photo_2
    suffix = f"_{used[stem]}" if used[stem] > 1 else ""
    return os.path.join(directory, f"{stem}{suffix}_attention.png")
