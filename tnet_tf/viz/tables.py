"""One CSV row per image: its prediction and where TNet looked.

`attention_rows` gives the attended cells and the probabilities of every
cell of every grid at every level; `attention_csv` writes them. The
release's "advanced evaluation" wrote the attended-cell flags in the
probability column of levels after the second; here each level's column
holds its location module's probabilities.
"""

import csv

import numpy as np

from tnet_tf.viz import outputs as outputs_lib


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
    probabilities = outputs_lib.class_probabilities(outputs)
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
            "label": outputs_lib.class_name(int(labels[index]), class_names),
            "predicted": outputs_lib.class_name(int(ranked[0]), class_names),
            top_column: ";".join(
                outputs_lib.class_name(int(c), class_names) for c in ranked
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


def _number(value):
    # 7 significant digits: float32 precision, short enough to read.
    return f"{float(value):.7g}"
