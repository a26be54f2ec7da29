"""Scaling with input size: TNet at fixed locations against EN-B0.

TNet-B0 (the 896 px fMoW model, [2, 1] locations, so 5 backbone passes at
224 px per image whatever the input size) and EfficientNet-B0 on the whole
image, at 896, 1792 and 3584 px, same batch, one run. TNet's backbone work is
constant; what grows is the resizing and cropping of full-resolution regions.

`--breakdown` adds the cost of that part alone, per size, two ways:
- `cropresize_model_S`: what `TNet.call` does: level-2 cells cut at full
  resolution (`geometry.crop_cells`, gathers of their exact pixels), resized
  to 224; level-3 cells cut from those full-resolution crops, resized to
  224; level 1 resized from the image;
- `cropresize_fused_S`: proposal P2 (BENCHMARKS.md), a prototype here only,
  not in the library: each level's 224 px input sampled straight from the
  input image with one `crop_and_resize` whose boxes place the samples where
  `tf.image.resize` (half-pixel centres) puts them, so no full-resolution
  crop is materialised. The two agree up to float32 coordinate rounding
  (checked, see FUSED_TOLERANCE; valid for downscaled or same-size,
  unpadded grids such as fMoW's). `crop_and_resize` has no XLA kernel, so
  both breakdown cases run without XLA whatever `--jit` says.

    python -m bench.scaling [--sizes 896,1792,3584] [--locations 2,1]
        [--breakdown] [--batch-size N] [--reps N] [--precision P]
        [--jit on|off] [--memory on|off] [--smoke]
"""

import argparse
import sys

import numpy as np
import tensorflow as tf

from bench import common
from tnet_tf import geometry

MODULE = "bench.scaling"
# Largest pixel difference (pixels in [-1, 1]) accepted between the fused
# and the model's crops. The fused path samples through float32 coordinates
# normalised by the image side, so a sample lands up to ~side * 2**-24 px off
# and, on random-noise images (neighbours differ by up to 2), values move by
# up to ~2e-4 at 1792 px and ~5e-4 at 3584 px; natural images move far less.
FUSED_TOLERANCE = 1e-3
TNET = "fmow_tnet_b0_896"
BASELINE = "fmow_en_b0_896"


def case_specs(settings, sizes, locations, breakdown):
    base = {
        "batch": settings["batch_size"],
        "precision": settings["precision"],
        "jit": settings["jit"],
        "smoke": settings["smoke"],
    }
    stand_in = "tiny stand-in: " if settings["smoke"] else ""
    specs = []
    for size in sizes:
        specs.append(dict(
            base, name=f"tnet_{size}", group="tnet", kind="tnet", preset=TNET,
            size=size, locations=list(locations),
            what=f"{stand_in}TNet-B0 {size}px {list(locations)}",
        ))
    for size in sizes:
        specs.append(dict(
            base, name=f"en_{size}", group="en", kind="baseline",
            preset=BASELINE, size=size, what=f"{stand_in}EN-B0 {size}px",
        ))
    if breakdown:
        for size in sizes:
            for variant in ("model", "fused"):
                specs.append(dict(
                    base, name=f"cropresize_{variant}_{size}",
                    group="breakdown", kind="cropresize", preset=TNET,
                    size=size, locations=list(locations), variant=variant,
                    jit=False,  # the fused path's crop_and_resize: no XLA
                    what=f"{stand_in}crop+resize only, {variant}, {size}px",
                ))
    return [s for s in specs if common.selected(s, settings["cases"])]


def fixed_cells(batch, locations, grid_size):
    """Deterministic, distinct cells per level: `(regions, k)` int32."""
    cells, regions = [], batch
    for level, k in enumerate(locations):
        cells.append(tf.constant(
            [[(r + level + j) % grid_size**2 for j in range(k)]
             for r in range(regions)],
            tf.int32,
        ))
        regions *= k
    return cells


def crop_resize_model(images, cells, config):
    """TNet's path: full-resolution crops, then `tf.image.resize`."""
    side = config.base_resolution
    outputs = [tf.image.resize(images, (side, side), antialias=False)]
    regions = images
    for chosen in cells:
        regions, _ = geometry.crop_cells(
            regions, chosen, config.grid_size, config.cell_fraction
        )
        outputs.append(
            regions
            if regions.shape[1] == side
            else tf.image.resize(regions, (side, side), antialias=False)
        )
    return outputs


def crop_resize_fused(images, cells, config):
    """Proposal P2 (prototype): every level sampled from the input directly.

    Region `r` of a level is `(y0, x0, h, w)` in input pixels. Resizing its
    `h x w` crop to `s x s` with half-pixel centres samples input row
    `y0 + (i + 0.5) * h / s - 0.5`; `crop_and_resize` samples
    `y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (s - 1)`, so the box
    `y1 = (y0 + h / (2 s) - 0.5) / (H - 1)`, `y2 = y1 + (s - 1) h / s / (H - 1)`
    gives the same samples. Valid when `h >= s` (no clamping at the crop's
    edge) and the grid needs no padding.
    """
    side = config.base_resolution
    batch, height, width = images.shape[0], images.shape[1], images.shape[2]
    outputs = [tf.image.resize(images, (side, side), antialias=False)]
    origins = tf.zeros((batch, 2))
    region_h, region_w = height, width
    parents = tf.range(batch)
    for chosen in cells:
        rows = geometry.cell_layout(region_h, config.grid_size,
                                    config.cell_fraction)
        cols = geometry.cell_layout(region_w, config.grid_size,
                                    config.cell_fraction)
        if rows.pad_before or rows.pad_after or cols.pad_before or cols.pad_after:
            raise ValueError("the fused path needs an unpadded grid")
        boxes = geometry.chosen_cell_boxes(
            chosen, region_h, region_w, config.grid_size, config.cell_fraction
        )  # (regions, k, 4) relative to the parents
        k = chosen.shape[1]
        origins = tf.reshape(origins[:, None, :] + boxes[..., :2], [-1, 2])
        parents = tf.repeat(parents, k)
        region_h, region_w = rows.cell_size, cols.cell_size
        if region_h < side or region_w < side:
            raise ValueError("the fused path needs downscaled crops")
        sy, sx = region_h / side, region_w / side
        y1 = origins[:, 0] + 0.5 * sy - 0.5
        x1 = origins[:, 1] + 0.5 * sx - 0.5
        box = tf.stack([
            y1 / (height - 1), x1 / (width - 1),
            (y1 + (side - 1) * sy) / (height - 1),
            (x1 + (side - 1) * sx) / (width - 1),
        ], axis=1)
        outputs.append(tf.image.crop_and_resize(
            images, box, parents, (side, side), extrapolation_value=0.0
        ))
    return outputs


def build_case(spec, ctx):
    if spec["kind"] != "cropresize":
        return common.build_standard_case(spec, ctx)
    config = ctx.config(spec["preset"])
    images = tf.cast(
        ctx.images(spec["batch"], spec["size"]),
        ctx.model(spec["preset"], spec["precision"]).compute_dtype,
    )
    cells = fixed_cells(spec["batch"], spec["locations"], config.grid_size)
    path = crop_resize_model if spec["variant"] == "model" else crop_resize_fused

    def fn(x):
        # Small outputs to synchronise on, one per level.
        return [tf.reduce_sum(t) for t in path(x, cells, config)]

    function = common.trace(fn, (images,), False)
    return common.Case(spec, function, (images,), spec["batch"])


def check_breakdown(specs, ctx):
    """The fused path equals the model's path (one check per size)."""
    checks = []
    for spec in specs:
        if spec.get("variant") != "fused":
            continue
        config = ctx.config(spec["preset"])
        images = ctx.images(1, spec["size"], seed=7)
        cells = fixed_cells(1, spec["locations"], config.grid_size)
        ref = crop_resize_model(images, cells, config)
        fused = crop_resize_fused(images, cells, config)
        diff = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                   for a, b in zip(ref, fused))
        checks.append({
            "name": f"fused == model crops, {spec['size']}px",
            "max_abs_diff": diff, "max_rel_diff": diff,
            "tolerance_rel": FUSED_TOLERANCE,
            "passed": diff <= FUSED_TOLERANCE,
            "precision": "float32", "jit": False, "crop": "fused",
        })
    return checks


def comparisons(rows, sizes):
    results = {row["name"]: row for row in rows}
    c = common.comparison
    first, last = sizes[0], sizes[-1]
    out = [
        c(f"TNet {last} / TNet {first} (time)", f"tnet_{last}",
          f"tnet_{first}", "ms_per_image", results, 1.15, "<=",
          "TNet time growth at fixed locations"),
        c(f"EN-B0 {last} / EN-B0 {first} (time)", f"en_{last}", f"en_{first}",
          "ms_per_image", results, meaning="EN-B0 time growth"),
    ]
    for size in sizes[1:-1]:
        out.append(c(f"TNet {size} / TNet {first} (time)", f"tnet_{size}",
                     f"tnet_{first}", "ms_per_image", results,
                     meaning="TNet time growth"))
    for size in sizes:
        out.append(c(f"EN-B0 / TNet at {size} (time)", f"en_{size}",
                     f"tnet_{size}", "ms_per_image", results,
                     meaning="TNet speed-up"))
        out.append(c(f"TNet / EN-B0 at {size} (peak memory)", f"tnet_{size}",
                     f"en_{size}", "peak_mib", results,
                     meaning="TNet memory share"))
        out.append(c(f"crop+resize model / fused at {size} (time)",
                     f"cropresize_model_{size}", f"cropresize_fused_{size}",
                     "ms_per_image", results,
                     meaning="what proposal P2 saves on that part"))
        out.append(c(f"crop+resize (model) / TNet at {size} (time)",
                     f"cropresize_model_{size}", f"tnet_{size}",
                     "ms_per_image", results,
                     meaning="share of TNet time spent cropping/resizing"))
    return [x for x in out if x["ratio"] is not None]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling", description=__doc__.splitlines()[0]
    )
    common.add_common_args(parser)
    parser.add_argument("--sizes", default="",
                        help="comma-separated input sides (default "
                        "896,1792,3584; smoke 128,256,512)")
    parser.add_argument("--locations", default="2,1",
                        help="TNet locations per level (default 2,1)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time crop+resize alone (model vs fused)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = common.resolve_settings(args, cpu_batch=1, gpu_batch=8)
    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [128, 256, 512] if settings["smoke"] else [896, 1792, 3584]
    )
    locations = [int(k) for k in args.locations.split(",") if k]
    settings.update(sizes=sizes, locations=locations)
    log = common.logger(args.quiet)
    env = common.environment()
    ctx = common.Context(smoke=settings["smoke"])
    specs = case_specs(settings, sizes, locations, args.breakdown)
    rows, checks = common.run_cases(MODULE, specs, settings, ctx, build_case,
                                    log)
    checks += check_breakdown(specs, ctx)
    result = common.report(
        "scaling", env, settings, rows, comparisons(rows, sizes), checks,
        notes=[
            "TNet: fMoW 896 model, greedy locations, training=False; EN-B0 "
            "on the whole image; random weights and images",
        ],
    )
    return 0 if all(c["passed"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
