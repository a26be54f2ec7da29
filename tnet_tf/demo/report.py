"""The demo's results: its table rows, the claims read off them, and files.

- `evaluate_row`: one model's row on the test canvases (top-1, TNet's
  localization beside its chance level, multiply-adds, ms per image);
  `evaluate_rows` every row of the table.
- `TABLE_COLUMNS`, `results_table`: the printed table and its notes.
- `comparison`, `summary_lines`: the demo's two claims.
- `training_lines`: one line per trained model.
- `write_results`: `table.txt`, `results.csv` and `results.json`.
"""

import dataclasses
import json
import os

import keras

from tnet_tf import experiment
from tnet_tf.demo.config import CNN_DOWNSCALED
from tnet_tf.demo.config import CNN_FULL
from tnet_tf.demo.config import RESULTS_CSV
from tnet_tf.demo.config import RESULTS_JSON
from tnet_tf.demo.config import TABLE_TXT
from tnet_tf.demo.config import TNET
from tnet_tf.demo.data import canvas_dataset
from tnet_tf.demo.data import model_inputs
from tnet_tf.demo.localization_measures import chance_localization
from tnet_tf.demo.localization_measures import localization


def evaluate_row(model, name, canvases, labels, setting, side, centres=None):
    """One table row: top-1, multiply-adds and ms per image of `model` on
    `canvases` at `side` px (`setting`: TNet's locations, None for a CNN),
    and for TNet the localization (`localization`) with its chance level."""
    # The runner's evaluation row; every model takes `locations_per_level`
    # (None: its default).
    scores = experiment.evaluate_setting(
        model, canvas_dataset(canvases, labels, 100, side), setting, side
    )
    timing = experiment.measure_inference(
        model,
        model_inputs(canvases[:32], side),
        setting,
        repetitions=5,
        warmup=1,
    )
    located = chance = None
    if setting is not None:
        located = localization(model, canvases, centres, setting)
        config = model.config
        chance = chance_localization(
            centres,
            setting[0],
            config.grid_size,
            config.cell_fraction,
            side,
        )
    return {
        "model": name,
        "locations": experiment.format_locations(setting),
        "image_size": side,
        "top1": scores["top1"],
        "localization": located,
        "chance_localization": chance,
        "flops": int(scores["flops"]),
        "ms_per_image": timing["ms_per_image"],
    }


def evaluate_rows(tnet, settings, cnns, test, canvas_size, verbose):
    """The table's rows on the `test` `Part`: TNet at each of `settings`
    (on `canvas_size` px canvases), then each CNN of `cnns` (row name ->
    `(model, side)`), under one progress bar."""
    progress = keras.utils.Progbar(
        len(settings) + len(cnns), unit_name="model", verbose=verbose
    )
    rows = []
    for setting in settings:
        rows.append(
            evaluate_row(
                tnet,
                TNET,
                test.canvases,
                test.labels,
                setting,
                canvas_size,
                test.centres,
            )
        )
        progress.add(1)
    for name, (cnn, side) in cnns.items():
        rows.append(
            evaluate_row(cnn, name, test.canvases, test.labels, None, side)
        )
        progress.add(1)
    return rows


def _percent(fraction):
    return "-" if fraction is None else f"{100 * fraction:.1f}"


TABLE_COLUMNS = [
    ("model", lambda row: row["model"]),
    ("locations", lambda row: row["locations"] or "-"),
    ("input px", lambda row: row["image_size"]),
    ("top-1 %", lambda row: f"{100 * row['top1']:.1f}"),
    ("located %", lambda row: _percent(row["localization"])),
    ("chance %", lambda row: _percent(row["chance_localization"])),
    ("MMACs", lambda row: f"{row['flops'] / 1e6:.2f}"),
    ("ms/image", lambda row: f"{row['ms_per_image']:.2f}"),
]


def comparison(rows, config):
    """The demo's two claims, computed from `rows`.

    Returns:
        A dict: `gain_over_equal_flops` (TNet top-1 at
        `equal_flops_locations` minus the downscaled CNN's, in points) and,
        for the full-resolution CNN, `best_within_third`: the TNet row of
        highest top-1 among those with at most a third of its
        multiply-adds, and `gap_to_full` (full CNN's top-1 minus it).
    """
    tnet = [row for row in rows if row["model"] == TNET]
    low = next(row for row in rows if row["model"] == CNN_DOWNSCALED)
    full = next(row for row in rows if row["model"] == CNN_FULL)
    equal = next(
        row
        for row in tnet
        if row["locations"] == str(config.equal_flops_locations)
    )
    cheap = [row for row in tnet if 3 * row["flops"] <= full["flops"]]
    best = max(cheap, key=lambda row: row["top1"]) if cheap else None
    return {
        "gain_over_equal_flops": 100 * (equal["top1"] - low["top1"]),
        "best_within_third": best,
        "gap_to_full": (
            None if best is None else 100 * (full["top1"] - best["top1"])
        ),
    }


def summary_lines(rows, config):
    """The two claims of `comparison` as sentences."""
    claims = comparison(rows, config)
    lines = [
        f"TNet at {config.equal_flops_locations} location(s) vs the CNN at "
        f"the same multiply-adds: {claims['gain_over_equal_flops']:+.1f} "
        "points."
    ]
    best = claims["best_within_third"]
    if best is not None:
        full = next(r for r in rows if r["model"] == CNN_FULL)
        lines.append(
            f"Best TNet at <= 1/3 of the full-resolution CNN's multiply-adds "
            f"({best['locations']} locations, "
            f"{best['flops'] / full['flops']:.2f}x its MACs): "
            f"{-claims['gap_to_full']:+.1f} points vs the full-resolution CNN."
        )
    return lines


def training_lines(trainings):
    """One line per model: epochs, the kept epoch and training time."""
    lines = []
    for name, result in trainings.items():
        ending = (
            "stopped early"
            if result["stopped_early"]
            else "max_epochs reached, still improving"
        )
        lines.append(
            f"{name}: {result['epochs']} epochs ({ending}), kept epoch "
            f"{result['best_epoch']} (validation top-1 "
            f"{100 * result['validation_top1']:.1f}%), "
            f"{result['seconds']:.0f} s"
        )
    return lines


def results_table(rows, config, trainings):
    """The printed table: the rows, then the claims and the training lines."""
    return experiment.format_table(
        rows,
        TABLE_COLUMNS,
        notes=[""]
        + summary_lines(rows, config)
        + [""]
        + training_lines(trainings),
    )


def write_results(
    workdir, table, rows, config, trainings, pretrain_top1, total_seconds
):
    """`table.txt`, `results.csv` (the rows) and `results.json` (config,
    rows, claims, pretraining top-1, trainings and times) in `workdir`."""
    with open(os.path.join(workdir, TABLE_TXT), "w") as stream:
        stream.write(table + "\n")
    experiment.write_csv(os.path.join(workdir, RESULTS_CSV), rows)
    with open(os.path.join(workdir, RESULTS_JSON), "w") as stream:
        json.dump(
            {
                "config": dataclasses.asdict(config),
                "rows": rows,
                "comparison": comparison(rows, config),
                "pretrain_top1": pretrain_top1,
                "training": trainings,
                "training_seconds": {
                    name: result["seconds"]
                    for name, result in trainings.items()
                },
                "total_seconds": total_seconds,
            },
            stream,
            indent=2,
        )
