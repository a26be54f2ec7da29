"""The visualize verb: attention pictures and tables, accuracy vs FLOPs.

- `run_visualize`: a grid of attention pictures of a split, the per-image
  CSV of attended cells and cell probabilities, and the accuracy-vs-FLOPs
  plot, in `figures/`.
- `accuracy_vs_flops`: that plot from evaluation CSVs.
"""

import os

import numpy as np
import tensorflow as tf

from tnet_tf import viz
from tnet_tf.data import records
from tnet_tf.experiment.models import make_input
from tnet_tf.experiment.models import resolve_recipe
from tnet_tf.experiment.models import to_numpy
from tnet_tf.experiment.run_folder import FIGURES_DIR
from tnet_tf.experiment.run_folder import default_checkpoint
from tnet_tf.experiment.run_folder import load_checkpoint
from tnet_tf.experiment.tables import read_csv
from tnet_tf.experiment.tables import write_csv


def _record_filenames(data_dir, split):
    """The `filename` of each record of `split`, in file order (the order
    of the evaluation pipeline)."""
    files = records.list_shards(data_dir, split)
    return tf.data.TFRecordDataset(files).map(
        lambda serialized: records.parse_example(serialized)["filename"]
    )


def _concatenate(batches):
    """One output dict from a list of per-batch NumPy output dicts."""
    merged = {}
    for key in batches[0]:
        if key == "location_probs":
            merged[key] = tuple(
                np.concatenate([b[key][i] for b in batches])
                for i in range(len(batches[0][key]))
            )
        else:
            merged[key] = np.concatenate([b[key] for b in batches])
    return merged


def accuracy_vs_flops(csv_paths, output_png, title=None):
    """Plots top-1 against multiply-adds from evaluation CSVs.

    One line per TNet recipe over its settings (annotated with the number
    of attended locations) and one point per baseline, as the paper's
    Fig. 1b and Fig. 3.
    """
    series = {}
    for path in csv_paths:
        for row in read_csv(path):
            if row.get("flops") in ("", None):
                raise ValueError(
                    f"{path} has no multiply-adds; evaluate with FLOPs counted."
                )
            # Anytime rows (evaluate --anytime_*) are a curve of their own.
            name = row["recipe"] + (" anytime" if row.get("anytime") else "")
            series.setdefault(name, []).append(row)
    if not series:
        raise ValueError(f"No evaluation rows in {list(csv_paths)}.")
    entries = []
    for name, rows in series.items():
        rows = sorted(rows, key=lambda r: float(r["flops"]))
        is_tnet = any(r["locations"] for r in rows)
        entries.append(
            {
                "name": name,
                "flops": [float(r["flops"]) / 1e9 for r in rows],
                "accuracy": [100 * float(r["top1"]) for r in rows],
                "annotations": (
                    [r["attended"] for r in rows] if is_tnet else None
                ),
                "kind": "line" if is_tnet else "points",
            }
        )
    os.makedirs(os.path.dirname(os.path.abspath(output_png)), exist_ok=True)
    viz.accuracy_vs_flops_png(output_png, entries, title=title)
    return output_png


def run_visualize(
    recipe,
    workdir,
    data_dir=None,
    *,
    checkpoint=None,
    split=None,
    locations=None,
    num_images=16,
    csv_images=None,
    eval_csvs=(),
    output_dir=None,
    overrides=(),
):
    """Attention pictures and tables of a split, and the accuracy-vs-FLOPs plot.

    With `data_dir` (a TNet checkpoint needed): `attention_<split>.png`, a
    grid of the first `num_images` images of the split with their attended
    boxes, and `attention_<split>.csv`, one row per image (the first
    `csv_images`, default the whole split up to the recipe's `eval_steps`)
    with the attended cells and every cell's probability
    (`tnet_tf.viz.attention_rows`). With `eval_csvs`:
    `accuracy_vs_flops.png`. Everything goes to `figures/` unless
    `output_dir` is given.

    Returns:
        A dict of the written paths: `grid`, `csv`, `accuracy_vs_flops`.
    """
    recipe = resolve_recipe(recipe, overrides)
    output_dir = output_dir or os.path.join(workdir, FIGURES_DIR)
    os.makedirs(output_dir, exist_ok=True)
    paths = {}
    if eval_csvs:
        paths["accuracy_vs_flops"] = accuracy_vs_flops(
            eval_csvs,
            os.path.join(output_dir, "accuracy_vs_flops.png"),
            title=recipe.dataset,
        )
    if data_dir is None:
        return paths
    split = split or recipe.eval_split
    model = load_checkpoint(default_checkpoint(workdir, checkpoint))
    setting = None
    if locations:
        if len(locations) != 1:
            raise ValueError(
                f"Draw one location setting at a time, got {len(locations)}."
            )
        setting = model.resolve_locations(locations[0])
    dataset = make_input(recipe, data_dir, split, False)
    names = _record_filenames(data_dir, split).batch(recipe.batch_size)
    forward = tf.function(
        lambda images: model(
            images, training=False, locations_per_level=setting
        )
    )
    grid_images, grid_labels, grid_outputs, rows = [], [], [], []
    seen = 0
    for (images, labels), filenames in zip(dataset, names):
        outputs = to_numpy(forward(images))
        if seen < num_images:
            grid_images.append(images.numpy())
            grid_labels.append(labels.numpy())
            grid_outputs.append(outputs)
        rows += viz.attention_rows(
            outputs, [f.decode() for f in filenames.numpy()], labels.numpy()
        )
        seen += len(labels)
        if (
            seen >= num_images
            and csv_images is not None
            and seen >= csv_images
        ):
            break
    if csv_images is not None:
        rows = rows[:csv_images]
    merged = _concatenate(grid_outputs)
    count = min(num_images, len(np.concatenate(grid_labels)))
    merged = {
        k: tuple(p[:count] for p in v) if k == "location_probs" else v[:count]
        for k, v in merged.items()
    }
    paths["grid"] = os.path.join(output_dir, f"attention_{split}.png")
    viz.attention_grid_png(
        paths["grid"],
        np.concatenate(grid_images)[:count],
        merged,
        labels=np.concatenate(grid_labels)[:count],
    )
    paths["csv"] = write_csv(
        os.path.join(output_dir, f"attention_{split}.csv"), rows
    )
    return paths
