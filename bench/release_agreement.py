"""tnet_tf against the release's own outputs, through a converted checkpoint.

The release fixture (`../shared/reference/release_fixture/fmow_tnet_b0_896`,
see its README) holds the original fMoW TNet's variables keyed as its
checkpoints are, the key list of a release-format checkpoint, four images
and the release's outputs on them. This script writes a release-format
checkpoint from it (`write_release_checkpoint`: every key of the list, the
model's from the fixture, optimizer state and counters as zeros), converts
it with `python -m experiments.convert_release --recipe fmow_tnet_stage2`,
runs the `.keras` file on the images with locations [2, 1] and prints how
far each output is from the release's (`agreement`):

- logits: largest absolute difference over the largest absolute logit;
- attended cells: whether every parent attended the same set of cells;
- location probabilities: largest absolute difference, every grid;
- level-1 features: the backbone's pooled vector of the whole image,
  largest absolute difference over the largest absolute value.

    python -m bench.release_agreement --output_dir DIR [--fixture DIR]

DIR receives `checkpoint/ckpt-1.*` (the release-format checkpoint) and
`fmow_tnet_stage2.keras`.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tnet_tf import experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(
    REPO, "..", "shared", "reference", "release_fixture", "fmow_tnet_b0_896"
)
# A release checkpoint keys variable `name` as `checkpoint_key(name)`.
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
LOCATIONS = (2, 1)


def checkpoint_key(name):
    """The key `tf.train.Checkpoint(**{name: variable})` saves `name` under
    ('.' escaped as '..', '/' as '.S')."""
    return name.replace(".", "..").replace("/", ".S") + VALUE_SUFFIX


def write_release_checkpoint(prefix, entries, values):
    """Writes a checkpoint with exactly the keys of `entries`.

    Args:
        prefix: the checkpoint prefix (its folder is created).
        entries: `[{"key", "shape", "dtype"}, ...]`, checkpoint keys as in
            the fixture's `checkpoint_keys.json`.
        values: `{key: array}` for the keys that get values; the others
            (optimizer state, counters, the object graph) are zeros or
            empty strings of their listed shape.
    """
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    names, tensors = [], []
    for entry in entries:
        key = entry["key"]
        if key in values:
            value = np.asarray(values[key])
            if list(value.shape) != list(entry["shape"]):
                raise ValueError(
                    f"{key}: value of shape {value.shape}, listed {entry['shape']}"
                )
        elif entry["dtype"] == "string":
            value = np.full(entry["shape"], b"", dtype=object)
        else:
            value = np.zeros(entry["shape"], entry["dtype"])
        names.append(key)
        tensors.append(tf.constant(value))
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=tensors,
    )


def write_fixture_checkpoint(prefix, fixture=FIXTURE):
    """The fixture's fMoW TNet as a release-format checkpoint at `prefix`."""
    with open(os.path.join(fixture, "checkpoint_keys.json")) as file:
        entries = json.load(file)
    variables = np.load(os.path.join(fixture, "variables.npz"))
    values = {
        checkpoint_key(name): variables[name] for name in variables.files
    }
    listed = {entry["key"] for entry in entries}
    if not set(values) <= listed:
        raise ValueError(
            f"Fixture variables not in its key list: {sorted(set(values) - listed)}"
        )
    write_release_checkpoint(prefix, entries, values)


def fixture_inputs(fixture=FIXTURE):
    """`(images, release outputs)`: the images in [-1, 1] and `io.npz`."""
    io = dict(np.load(os.path.join(fixture, "io.npz")))
    return io["images_uint8"].astype("float32") / 127.5 - 1.0, io


def _cells_by_parent(outputs, image):
    """`{(level, parent cell): set of attended cells}` of one image."""
    levels = outputs["attended_levels"][image]
    cells = outputs["attended_cells"][image]
    grouped = {(2, -1): set(cells[levels == 2].tolist())}
    parents = cells[levels == 2]  # level-3 regions follow their parents
    children = cells[levels == 3]
    per_parent = len(children) // max(len(parents), 1)
    for index, parent in enumerate(parents.tolist()):
        chosen = children[index * per_parent : (index + 1) * per_parent]
        grouped[(3, parent)] = set(chosen.tolist())
    return grouped


def _release_cells_by_parent(mask, grid_cells):
    """The same grouping from the release's 0/1 mask: the level-1 grid, then
    one grid per attended level-1 cell in ascending cell index."""
    level1 = np.flatnonzero(mask[:grid_cells])
    grouped = {(2, -1): set(level1.tolist())}
    for index, parent in enumerate(level1.tolist()):
        grid = mask[grid_cells * (index + 1) : grid_cells * (index + 2)]
        grouped[(3, parent)] = set(np.flatnonzero(grid).tolist())
    return grouped


def agreement(model, images, io):
    """How far `model` (the converted fixture TNet) is from the release.

    Returns:
        A dict: `logits_relative`, `cells_equal` (bool),
        `location_probs_absolute`, `level1_features_relative`.
    """
    outputs = model(images, locations_per_level=list(LOCATIONS))
    outputs = {
        key: (
            tuple(np.asarray(v) for v in value)
            if isinstance(value, tuple)
            else np.asarray(value)
        )
        for key, value in outputs.items()
    }
    grid_cells = model.config.cells_per_grid
    cells_equal = all(
        _cells_by_parent(outputs, image)
        == _release_cells_by_parent(io["attended_mask"][image], grid_cells)
        for image in range(len(images))
    )
    # Level-2 grids in the release's order: by ascending parent cell.
    level2_cells = outputs["attended_cells"][outputs["attended_levels"] == 2]
    parent_order = np.argsort(level2_cells.reshape(len(images), -1), axis=1)
    level2 = np.take_along_axis(
        outputs["location_probs"][1], parent_order[..., None], axis=1
    )
    probability_error = max(
        np.abs(
            outputs["location_probs"][0][:, 0] - io["loc_probs_level1"]
        ).max(),
        np.abs(level2.reshape(-1, grid_cells) - io["loc_probs_level2"]).max(),
    )
    base = model.config.base_resolution
    features, _ = model.feature_extractor(
        tf.image.resize(images, (base, base))
    )
    release_features = io["fe_V_level1"].reshape(len(images), -1)
    return {
        "logits_relative": float(
            np.abs(outputs["logits"] - io["logits"]).max()
            / np.abs(io["logits"]).max()
        ),
        "cells_equal": bool(cells_equal),
        "location_probs_absolute": float(probability_error),
        "level1_features_relative": float(
            np.abs(np.asarray(features) - release_features).max()
            / np.abs(release_features).max()
        ),
    }


def convert(checkpoint, output):
    """Runs the entry point as a user would; returns the finished process."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.convert_release",
            "--recipe=fmow_tnet_stage2",
            f"--checkpoint={checkpoint}",
            f"--output={output}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--fixture", default=FIXTURE)
    args = parser.parse_args(argv)

    checkpoint = os.path.join(args.output_dir, "checkpoint", "ckpt-1")
    output = os.path.join(args.output_dir, "fmow_tnet_stage2.keras")
    write_fixture_checkpoint(checkpoint, args.fixture)
    process = convert(checkpoint, output)
    if process.returncode:
        sys.exit(f"Conversion failed:\n{process.stderr}")
    images, io = fixture_inputs(args.fixture)
    model = experiment.load_checkpoint(output)  # as the tools load it
    result = agreement(model, images, io)
    print(f"Release checkpoint: {checkpoint}")
    print(f"Converted model:    {output}")
    for label, value in (
        (
            "logits, max |diff| / max |logit|",
            f"{result['logits_relative']:.2e}",
        ),
        ("attended cells, same under each parent", result["cells_equal"]),
        (
            "location probabilities, max |diff|",
            f"{result['location_probs_absolute']:.2e}",
        ),
        (
            "level-1 features, max |diff| / max",
            f"{result['level1_features_relative']:.2e}",
        ),
    ):
        print(f"{label + ':':<40}{value}")


if __name__ == "__main__":
    main()
