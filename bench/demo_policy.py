"""What limits the demo's TNet: where level 1 can look, and how well it reads.

Reads a finished `make demo` folder (default `runs/demo`), rebuilds its
canvases from the `DemoConfig` stored in `results.json`, and measures on
the test canvases, with TNet's final weights:

- **probe**: a fresh location module trained with supervision (the cell
  whose centre is nearest the digit's centre as the target, softmax
  cross-entropy) on TNet's own level-1 feature map of the train canvases,
  frozen. `probe_hit` is the fraction of test canvases whose most probable
  cell contains the digit's centre: what level 1's features allow a
  location module to find, without REINFORCE. `policy_hit` is the same for
  TNet's own location module (its most probable cell).
- **reading**: at TNet's default locations, among the canvases where an
  attended cell contains the digit's centre, the top-1 of that cell's own
  prediction (`per_feature_logits` of the attended cell nearest the digit)
  and of TNet's aggregate prediction.

    python -m bench.demo_policy [--workdir runs/demo] [--probe_epochs 30]

Prints a table and one JSON line (`bench_demo_policy ...`).
"""

import argparse
import json
import os

import keras
import numpy as np

from tnet_tf import demo
from tnet_tf import geometry
from tnet_tf.layers import location_module
from tnet_tf.models import regions


def load_run(workdir):
    """`(DemoConfig, TNet)` of a finished demo folder."""
    path = os.path.join(workdir, demo.RESULTS_JSON)
    if not os.path.isfile(path):
        raise SystemExit(
            f"No {path}: run `make demo` (or `python -m experiments.demo "
            f"--workdir {workdir}`) first."
        )
    with open(path) as stream:
        stored = json.load(stream)["config"]
    config = demo.DemoConfig(
        **{
            key: tuple(value) if isinstance(value, list) else value
            for key, value in stored.items()
        }
    )
    model = keras.models.load_model(
        os.path.join(workdir, "tnet", "checkpoints", "final.keras")
    )
    return config, model


def level_one(model, canvases, batch_size=250):
    """TNet's level-1 tapped feature map `(N, n, n, C)` and location
    probabilities `(N, n * n)`."""
    maps, probs = [], []
    for start in range(0, len(canvases), batch_size):
        images = demo.model_inputs(canvases[start : start + batch_size])
        outputs = model(images, training=False, locations_per_level=[0])
        probs.append(np.asarray(outputs["location_probs"][0])[:, 0])
        base = regions.resize_to_base(
            images, model.config.base_resolution, model.config.antialias
        )
        _, feature_map = model.feature_extractor(base, training=False)
        maps.append(np.asarray(feature_map))
    return np.concatenate(maps), np.concatenate(probs)


def cell_hits(cells, centres, config, side):
    """Whether cell `cells[i]` of the grid contains centre `i`."""
    boxes = (
        np.asarray(
            geometry.grid_boxes(
                side, side, config.grid_size, config.cell_fraction
            ),
            np.float64,
        )[cells]
        / side
    )
    return demo.centres_inside(boxes[:, None], centres)[:, 0]


def nearest_cells(centres, config, side):
    """The grid cell whose centre is nearest each digit centre."""
    boxes = (
        np.asarray(
            geometry.grid_boxes(
                side, side, config.grid_size, config.cell_fraction
            ),
            np.float64,
        )
        / side
    )
    cell_centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    distance = np.abs(centres[:, None] - cell_centres[None]).max(-1)
    return distance.argmin(1)


def train_probe(feature_maps, targets, grid_size, epochs, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(feature_maps.shape[1:])
    probe = keras.Model(
        inputs,
        location_module.LocationModule("efficientnet", grid_size)(inputs),
    )
    probe.compile(
        keras.optimizers.Adam(2e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    probe.fit(feature_maps, targets, epochs=epochs, batch_size=32, verbose=0)
    return probe


def reading(model, canvases, labels, centres, locations, batch_size=200):
    """Top-1 of the digit's attended cell and of the aggregate, on the
    canvases where an attended cell holds the digit's centre."""
    cell_right, aggregate_right, located = [], [], []
    for start in range(0, len(canvases), batch_size):
        part = slice(start, start + batch_size)
        outputs = model(
            demo.model_inputs(canvases[part]),
            training=False,
            locations_per_level=[locations],
        )
        boxes = np.asarray(outputs["attended_boxes"])[:, 1:]
        box_centres = (boxes[..., :2] + boxes[..., 2:]) / 2
        distance = np.abs(box_centres - centres[part, None]).max(-1)
        nearest = distance.argmin(1)
        rows = np.arange(len(nearest))
        inside = demo.centres_inside(
            boxes[rows, nearest][:, None], centres[part]
        )[:, 0]
        per_cell = np.asarray(outputs["per_feature_logits"])[:, 1:]
        cell_right.append(per_cell[rows, nearest].argmax(-1) == labels[part])
        aggregate_right.append(
            np.asarray(outputs["logits"]).argmax(-1) == labels[part]
        )
        located.append(inside)
    located = np.concatenate(located)
    return {
        "located": float(located.mean()),
        "cell_top1_where_located": float(
            np.concatenate(cell_right)[located].mean()
        ),
        "aggregate_top1_where_located": float(
            np.concatenate(aggregate_right)[located].mean()
        ),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--probe_epochs", type=int, default=30)
    args = parser.parse_args(argv)
    config, model = load_run(args.workdir)
    side = config.canvas_size
    progress = keras.utils.Progbar(
        config.train_canvases + config.test_canvases, unit_name="canvas"
    )
    train, _, train_centres = demo.generate_canvases(
        config, "train", config.train_canvases, progress
    )
    test, test_labels, test_centres = demo.generate_canvases(
        config, "test", config.test_canvases, progress
    )
    grid = model.config.grid_size
    train_maps, _ = level_one(model, train)
    test_maps, policy_probs = level_one(model, test)
    probe = train_probe(
        train_maps,
        nearest_cells(train_centres, model.config, side),
        grid,
        args.probe_epochs,
        config.seed,
    )
    probe_cells = np.asarray(probe.predict(test_maps, verbose=0)).argmax(1)
    results = {
        "probe_hit": float(
            cell_hits(probe_cells, test_centres, model.config, side).mean()
        ),
        "policy_hit": float(
            cell_hits(
                policy_probs.argmax(1), test_centres, model.config, side
            ).mean()
        ),
        "locations": config.locations,
        **reading(model, test, test_labels, test_centres, config.locations),
    }
    print()
    for key, value in results.items():
        shown = f"{100 * value:.1f}%" if isinstance(value, float) else value
        print(f"{key:30s} {shown}")
    print("bench_demo_policy " + json.dumps(results, sort_keys=True))
    return results


if __name__ == "__main__":
    main()
