"""Our cropping against the release's: time and peak memory on one model.

The release (`TNet.create_masked_batch`, original_implementation_detail.md
§4) zero-pads every region, cuts *all* `n x n` grid cells out of it with
`tf.image.extract_patches`, reshapes them to `(b * n * n, p, p, C)` and then
keeps the chosen ones. `tnet_tf.geometry.crop_cells` gathers only the
chosen cells' pixels (exact, in any dtype, and compiled by XLA).
`release_crop_cells` below re-creates the release's strategy as a drop-in
replacement for `crop_cells`; the benchmark traces the same TNet (same
weights, same images) once with each cropper and compares:

- `tnet896_ours` / `tnet896_release`: fMoW TNet-B0 at 896 px, [2, 1];
- `inet_ours` / `inet_release`: ImageNet TNet at 224 px, [3];
- `crop896_model` / `crop896_release`: the level-2 cropping op alone
  (896 px regions, 2 of 9 cells).

Checks: the release cropper's crops and boxes equal `crop_cells`' bit for
bit on the fMoW, ImageNet and CUB grids, and each release-cropping TNet's
logits and attended cells equal those of the same model with its own
cropping.

    python -m bench.release_cropping [--batch-size N] [--reps N]
        [--precision P] [--jit on|off] [--memory on|off] [--cases ...]
        [--smoke]
"""

import argparse
import sys

import numpy as np
import tensorflow as tf

from bench import common
from tnet_tf import geometry

MODULE = "bench.release_cropping"
# (side, grid, cell fraction) of every grid the paper's models crop from.
GRIDS = {
    "fmow 896 level 2": (896, 3, 0.5),
    "fmow 448 level 2/3": (448, 3, 0.5),
    "imagenet 224": (224, 5, 0.34375),
    "cub 448": (448, 5, 0.35),
}
SMOKE_GRIDS = {"tiny 96": (96, 3, 0.5), "imagenet-like 64": (64, 5, 0.34375)}


def release_crop_cells(regions, cells, grid_size, cell_fraction):
    """The release's cropping, with `geometry.crop_cells`' signature.

    Pads each region with zeros to the grid's span, cuts all
    `grid_size**2` cells with `tf.image.extract_patches` (VALID, cell-size
    patches at the grid stride), reshapes them to `(b * K, p_h, p_w, C)`
    and gathers the chosen ones. The release kept them with a boolean mask
    (ascending cell order); gathering by index keeps the caller's order, so
    the result is exactly what `crop_cells` returns, at the release's cost
    (every cell materialised, then copied once more).

    Args:
        regions: float tensor `(b, H, W, C)` with static `H`, `W`, `C`.
        cells: int tensor `(b, k)` of row-major cell indices.
        grid_size: `n`.
        cell_fraction: `o`.

    Returns:
        `(crops, boxes)` as `geometry.crop_cells`.
    """
    height, width, channels = regions.shape[1:4]
    if height is None or width is None or channels is None:
        raise ValueError("release_crop_cells needs static region sizes.")
    rows = geometry.cell_layout(height, grid_size, cell_fraction)
    cols = geometry.cell_layout(width, grid_size, cell_fraction)
    padded = tf.pad(
        regions,
        [[0, 0], [rows.pad_before, rows.pad_after],
         [cols.pad_before, cols.pad_after], [0, 0]],
    )
    patches = tf.image.extract_patches(
        padded,
        sizes=[1, rows.cell_size, cols.cell_size, 1],
        strides=[1, rows.stride, cols.stride, 1],
        rates=[1, 1, 1, 1],
        padding="VALID",
    )  # (b, n, n, p_h * p_w * C)
    every_cell = tf.reshape(
        patches, [-1, rows.cell_size, cols.cell_size, channels]
    )
    cells = tf.cast(cells, tf.int32)
    flat = cells + tf.range(tf.shape(cells)[0])[:, None] * grid_size**2
    crops = tf.gather(every_cell, tf.reshape(flat, [-1]))
    boxes = geometry.chosen_cell_boxes(
        cells, height, width, grid_size, cell_fraction
    )
    return crops, boxes


def check_crops(grids, batch=2, seed=5):
    """Check records: release crops and boxes vs `crop_cells`', bit for bit."""
    checks = []
    for name, (side, n, fraction) in grids.items():
        regions = tf.random.stateless_uniform(
            (batch, side, side, 3), seed=[seed, 2], minval=-1, maxval=1
        )
        k = min(3, n * n)
        # Unsorted, distinct cells including corners (padded edges).
        cells = tf.constant(
            [[(n * n - 1 - r - 2 * j) % (n * n) for j in range(k)]
             for r in range(batch)], tf.int32
        )
        release, release_boxes = release_crop_cells(regions, cells, n, fraction)
        ours, boxes = geometry.crop_cells(regions, cells, n, fraction)
        diff = float(tf.reduce_max(tf.abs(release - ours)))
        same_boxes = bool(np.array_equal(release_boxes.numpy(), boxes.numpy()))
        checks.append({
            "name": f"crops {name}: release vs crop_cells",
            "max_abs_diff": diff, "max_rel_diff": diff, "tolerance_rel": 0.0,
            "passed": diff == 0.0 and same_boxes, "precision": "float32",
            "jit": False, "crop": "release", "same_boxes": same_boxes,
        })
    return checks


def case_specs(settings):
    smoke = settings["smoke"]
    base = {
        "batch": settings["batch_size"],
        "precision": settings["precision"],
        "jit": settings["jit"],
        "smoke": smoke,
    }
    stand_in = "tiny stand-in: " if smoke else ""
    s896, s224 = (96, 96) if smoke else (896, 224)
    specs = []
    for crop in ("ours", "release"):
        specs.append(dict(
            base, name=f"tnet896_{crop}", group="fmow", kind="tnet",
            preset="fmow_tnet_b0_896", size=s896, locations=[2, 1],
            crop="model" if crop == "ours" else "release",
            what=f"{stand_in}TNet-B0 {s896}px [2, 1], {crop} cropping",
        ))
    for crop in ("ours", "release"):
        specs.append(dict(
            base, name=f"inet_{crop}", group="imagenet", kind="tnet",
            preset="imagenet_tnet", size=s224, locations=[3],
            crop="model" if crop == "ours" else "release",
            what=f"{stand_in}ImageNet TNet {s224}px [3], {crop} cropping",
        ))
    for crop in ("model", "release"):
        specs.append(dict(
            base, name=f"crop896_{crop}", group="crop", kind="crop",
            preset="fmow_tnet_b0_896", size=s896, k=2, crop=crop,
            what=f"{stand_in}crop 2 of 9 cells of {s896}px, {crop}",
        ))
    return [s for s in specs if common.selected(s, settings["cases"])]


def build_case(spec, ctx):
    if spec["kind"] != "crop":
        return common.build_standard_case(spec, ctx)
    config = ctx.config(spec["preset"])
    model = ctx.model(spec["preset"], spec["precision"])
    images = tf.cast(ctx.images(spec["batch"], spec["size"]),
                     model.compute_dtype)
    cells = tf.constant(
        [[(r + j * 4) % config.grid_size**2 for j in range(spec["k"])]
         for r in range(spec["batch"])], tf.int32
    )
    cropper = common.crop_function(spec["crop"])

    def fn(x):
        crops, _ = cropper(x, cells, config.grid_size, config.cell_fraction)
        return tf.reduce_sum(tf.cast(crops, tf.float32))

    function = common.trace(fn, (images,), spec["jit"])
    return common.Case(spec, function, (images,), spec["batch"])


def comparisons(rows):
    results = {row["name"]: row for row in rows}
    c = common.comparison
    out = [
        c("release / ours, TNet 896 [2,1] (time)", "tnet896_release",
          "tnet896_ours", "ms_per_image", results, 1.5, ">=",
          "speed-up of cropping only the chosen cells"),
        c("ours / release, TNet 896 [2,1] (peak memory)", "tnet896_ours",
          "tnet896_release", "peak_mib", results, 1.0, "<",
          "memory of cropping only the chosen cells"),
        c("release / ours, ImageNet TNet [3] (time)", "inet_release",
          "inet_ours", "ms_per_image", results, meaning="same, ImageNet"),
        c("ours / release, ImageNet TNet [3] (peak memory)", "inet_ours",
          "inet_release", "peak_mib", results, meaning="same, ImageNet"),
        c("release / model, crop op 896 (time)", "crop896_release",
          "crop896_model", "ms_per_image", results,
          meaning="the cropping op alone"),
        c("model / release, crop op 896 (peak memory)", "crop896_model",
          "crop896_release", "peak_mib", results,
          meaning="the cropping op alone"),
    ]
    return [x for x in out if x["ratio"] is not None]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.release_cropping",
        description=__doc__.splitlines()[0],
    )
    common.add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = common.resolve_settings(args, cpu_batch=4, gpu_batch=64)
    log = common.logger(args.quiet)
    env = common.environment()
    ctx = common.Context(smoke=settings["smoke"])
    specs = case_specs(settings)
    log("crop equality checks")
    checks = check_crops(SMOKE_GRIDS if settings["smoke"] else GRIDS)
    rows, case_checks = common.run_cases(MODULE, specs, settings, ctx,
                                         build_case, log)
    result = common.report(
        "release_cropping", env, settings, rows, comparisons(rows),
        checks + case_checks,
        notes=[
            "ours = tnet_tf.geometry.crop_cells (gathers of the chosen "
            "cells' pixels); release = extract_patches of every cell of the "
            "zero-padded region, then gather",
        ],
    )
    return 0 if all(c["passed"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
