"""The demo's pictures, in `figures/` of its working directory.

- `draw_pictures`: `attention.png` (TNet's attended boxes on test
  canvases), `location_probs.png` (the location module's probability map)
  and `accuracy_vs_flops.png`.
- `accuracy_series`: the table's rows as that plot's series.
"""

import os

import numpy as np

from tnet_tf import viz
from tnet_tf.demo.config import TNET
from tnet_tf.demo.data import model_inputs


def accuracy_series(rows):
    """TNet's rows as one line, each CNN's row as a point, in millions of
    multiply-adds and top-1 percent."""
    tnet = [row for row in rows if row["model"] == TNET]
    series = [
        {
            "name": TNET,
            "flops": [row["flops"] / 1e6 for row in tnet],
            "accuracy": [100 * row["top1"] for row in tnet],
            "annotations": [row["locations"] for row in tnet],
            "kind": "line",
        }
    ]
    for row in rows:
        if row["model"] != TNET:
            series.append(
                {
                    "name": f"{row['model']} ({row['image_size']} px)",
                    "flops": [row["flops"] / 1e6],
                    "accuracy": [100 * row["top1"]],
                    "kind": "points",
                }
            )
    return series


def draw_pictures(tnet, canvases, labels, rows, folder):
    """`attention.png` (attended boxes at TNet's default locations, with
    the prediction and its confidence), `location_probs.png` (the location
    module's probabilities over the grid) and `accuracy_vs_flops.png`."""
    os.makedirs(folder, exist_ok=True)
    pictures = model_inputs(canvases)
    outputs = tnet(pictures, training=False)
    location_probs = np.asarray(outputs["location_probs"][0])[:, 0]
    outputs = {
        key: np.asarray(value)
        for key, value in outputs.items()
        if key != "location_probs"
    }
    viz.attention_grid_png(
        os.path.join(folder, "attention.png"),
        pictures,
        outputs,
        labels=labels,
    )
    viz.location_probability_png(
        os.path.join(folder, "location_probs.png"),
        pictures,
        location_probs,
        tnet.config.grid_size,
        tnet.config.cell_fraction,
        labels=labels,
        predictions=np.argmax(outputs["logits"], axis=-1),
    )
    viz.accuracy_vs_flops_png(
        os.path.join(folder, "accuracy_vs_flops.png"),
        accuracy_series(rows),
        title="Megapixel MNIST (test canvases)",
        x_label="multiply-adds per image (millions)",
        log_x=True,
    )
