"""Scaling with input size: TNet at fixed locations against EN-B0.

TNet-B0 (the 896 px fMoW model, [2, 1] locations, so 5 backbone passes at
224 px per image whatever the input size) and EfficientNet-B0 on the whole
image, at 896, 1792 and 3584 px, same batch, one run. TNet's backbone work is
constant; what can grow is bringing its regions to the base resolution.
`tnet_S` is the model as configured (`region_sampling="auto"`): without XLA
it resamples levels 2+ straight from the input (proposal P2,
`geometry.resample_regions`), so that part no longer grows with the input;
under XLA (`--jit on`, no `crop_and_resize` kernel) it takes the crop path.
Each TNet row records the mode that ran (`regions_mode`).

`--breakdown` adds, per size:
- `tnet_crop_S`: the same TNet and weights forced onto the crop path
  (`region_sampling="crop"`);
- `regions_crop_S`: that part alone as the crop path does it: level-2
  cells cut at full resolution (`geometry.crop_cells`, gathers of their
  exact pixels), level-3 cells cut from those, each resized to 224 with
  `tf.image.resize`;
- `regions_resample_S`: that part alone as the resample path does it:
  every region read from the input by `geometry.resample_regions` at the
  origins `TNet.call` derives from `geometry.chosen_cell_boxes` (skipped,
  with a note, at sizes where `geometry.resample_obstacle` rules it out).
Both `regions_*` cases also resize level 1 from the image and run without
XLA whatever `--jit` says (no XLA `crop_and_resize`). Their outputs must
agree within REGIONS_TOLERANCE (checked per size).

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
# Largest pixel difference (pixels in [-1, 1]) accepted between the two
# breakdown paths. Resampling places its samples through float32 coordinates
# normalised by the image side, so a sample lands up to ~side * 2**-24 px off
# and, on random-noise images (neighbours differ by up to 2), values move by
# up to ~2e-4 at 1792 px and ~5e-4 at 3584 px; natural images move far less.
REGIONS_TOLERANCE = 1e-3
TNET = "fmow_tnet_b0_896"
BASELINE = "fmow_en_b0_896"
# Breakdown paths: TNet's two region readers.
REGION_PATHS = ("crop", "resample")


def resample_obstacle(config, size, locations):
    """Why the resample path does not apply to `size` px inputs, or None."""
    return geometry.resample_obstacle(
        size,
        size,
        config.grid_size,
        config.cell_fraction,
        locations,
        config.base_resolution,
    )


def case_specs(settings, sizes, locations, breakdown):
    """The benchmark's cases (after the `--cases` filter)."""
    base = common.base_spec(settings)
    stand_in = "tiny stand-in: " if settings["smoke"] else ""
    config = common.Context(settings["smoke"]).config(TNET)
    specs = []
    tnet_variants = ("ours", "crop") if breakdown else ("ours",)
    for regions in tnet_variants:
        for size in sizes:
            name = f"tnet_{size}" if regions == "ours" else f"tnet_crop_{size}"
            path = "" if regions == "ours" else ", crop path"
            specs.append(
                dict(
                    base,
                    name=name,
                    group="tnet",
                    kind="tnet",
                    preset=TNET,
                    size=size,
                    locations=list(locations),
                    regions=regions,
                    what=f"{stand_in}TNet-B0 {size}px {list(locations)}{path}",
                )
            )
    for size in sizes:
        specs.append(
            dict(
                base,
                name=f"en_{size}",
                group="en",
                kind="baseline",
                preset=BASELINE,
                size=size,
                what=f"{stand_in}EN-B0 {size}px",
            )
        )
    if breakdown:
        for size in sizes:
            for path in REGION_PATHS:
                if path == "resample" and resample_obstacle(
                    config, size, locations
                ):
                    continue
                specs.append(
                    dict(
                        base,
                        name=f"regions_{path}_{size}",
                        group="breakdown",
                        kind="regions",
                        preset=TNET,
                        size=size,
                        locations=list(locations),
                        path=path,
                        jit=False,  # the resample path's crop_and_resize: no XLA
                        what=f"{stand_in}regions to base only, {path}, {size}px",
                    )
                )
    return [s for s in specs if common.selected(s, settings["cases"])]


def fixed_cells(batch, locations, grid_size):
    """Deterministic, distinct cells per level: `(regions, k)` int32."""
    cells, regions = [], batch
    for level, k in enumerate(locations):
        cells.append(
            tf.constant(
                [
                    [(r + level + j) % grid_size**2 for j in range(k)]
                    for r in range(regions)
                ],
                tf.int32,
            )
        )
        regions *= k
    return cells


def breakdown_inputs(path, images, cells, config):
    """Every level's base-resolution input: level 1 resized from the image,
    levels 2+ by breakdown path `path` (a key of REGION_PATHS)."""
    reader = common.reader_for(config, path, images.dtype.name)
    return common.level_regions(reader, images, cells, config)


def build_case(spec, ctx):
    """Builds one case (the breakdown's `regions` kind here, others in
    `common.build_standard_case`)."""
    if spec["kind"] != "regions":
        return common.build_standard_case(spec, ctx)
    config = ctx.config(spec["preset"])
    images = common.path_input(ctx, spec, spec["path"])
    cells = fixed_cells(spec["batch"], spec["locations"], config.grid_size)

    def fn(x):
        # Small outputs to synchronise on, one per level.
        return [
            tf.reduce_sum(t)
            for t in breakdown_inputs(spec["path"], x, cells, config)
        ]

    function = common.trace(fn, (images,), False)
    return common.Case(spec, function, (images,), spec["batch"])


def region_paths_max_diff(images, cells, config):
    """Largest |crop path - resample path| over every level's input."""
    crop = breakdown_inputs("crop", images, cells, config)
    resample = breakdown_inputs("resample", images, cells, config)
    return max(
        float(np.max(np.abs(a.numpy() - b.numpy())))
        for a, b in zip(crop, resample)
    )


def check_region_paths(specs, ctx):
    """The breakdown's two paths agree (one check per resampled size)."""
    checks = []
    for spec in specs:
        if spec.get("path") != "resample":
            continue
        config = ctx.config(spec["preset"])
        images = ctx.images(1, spec["size"], seed=7)
        cells = fixed_cells(1, spec["locations"], config.grid_size)
        diff = region_paths_max_diff(images, cells, config)
        checks.append(
            {
                "name": f"regions resample vs crop, {spec['size']}px",
                "max_abs_diff": diff,
                "max_rel_diff": diff,
                "tolerance_rel": REGIONS_TOLERANCE,
                "passed": diff <= REGIONS_TOLERANCE,
                "precision": "float32",
                "jit": False,
                "regions": "resample vs crop",
            }
        )
    return checks


def comparisons(rows, sizes):
    """Ratios of this run's medians (those whose cases ran)."""
    results = {row["name"]: row for row in rows}
    c = common.comparison
    first, last = sizes[0], sizes[-1]
    out = [
        c(
            f"TNet {last} / TNet {first} (time)",
            f"tnet_{last}",
            f"tnet_{first}",
            "ms_per_image",
            results,
            1.15,
            "<=",
            "TNet time growth at fixed locations",
        ),
        c(
            f"TNet crop path {last} / {first} (time)",
            f"tnet_crop_{last}",
            f"tnet_crop_{first}",
            "ms_per_image",
            results,
            meaning="the same growth, regions cropped at full resolution",
        ),
        c(
            f"EN-B0 {last} / EN-B0 {first} (time)",
            f"en_{last}",
            f"en_{first}",
            "ms_per_image",
            results,
            meaning="EN-B0 time growth",
        ),
    ]
    for size in sizes[1:-1]:
        out.append(
            c(
                f"TNet {size} / TNet {first} (time)",
                f"tnet_{size}",
                f"tnet_{first}",
                "ms_per_image",
                results,
                meaning="TNet time growth",
            )
        )
    for size in sizes:
        out.append(
            c(
                f"EN-B0 / TNet at {size} (time)",
                f"en_{size}",
                f"tnet_{size}",
                "ms_per_image",
                results,
                meaning="TNet speed-up",
            )
        )
        out.append(
            c(
                f"TNet / EN-B0 at {size} (peak memory)",
                f"tnet_{size}",
                f"en_{size}",
                "peak_mib",
                results,
                meaning="TNet memory share",
            )
        )
        out.append(
            c(
                f"crop path / ours at {size} (time)",
                f"tnet_crop_{size}",
                f"tnet_{size}",
                "ms_per_image",
                results,
                meaning="what TNet's region sampling saves "
                "over always cropping",
            )
        )
        out.append(
            c(
                f"regions crop / resample at {size} (time)",
                f"regions_crop_{size}",
                f"regions_resample_{size}",
                "ms_per_image",
                results,
                meaning="what resampling saves on that part alone",
            )
        )
        out.append(
            c(
                f"regions crop / TNet crop path at {size} (time)",
                f"regions_crop_{size}",
                f"tnet_crop_{size}",
                "ms_per_image",
                results,
                meaning="share of the crop path's time spent bringing "
                "regions to base resolution",
            )
        )
    return [x for x in out if x["ratio"] is not None]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling", description=__doc__.splitlines()[0]
    )
    common.add_common_args(parser)
    parser.add_argument(
        "--sizes",
        default="",
        help="comma-separated input sides (default "
        "896,1792,3584; smoke 128,256,512)",
    )
    parser.add_argument(
        "--locations",
        default="2,1",
        help="TNet locations per level (default 2,1)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time TNet on the crop path and the "
        "regions-to-base part alone (crop vs resample)",
    )
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
    rows, checks = common.run_cases(
        MODULE, specs, settings, ctx, build_case, log
    )
    checks += check_region_paths(specs, ctx)
    notes = [
        "TNet: fMoW 896 model, greedy locations, training=False; EN-B0 "
        "on the whole image; random weights and images",
    ]
    if args.breakdown:
        config = ctx.config(TNET)
        notes += [
            f"regions_resample_{size} skipped: {obstacle}"
            for size in sizes
            if (obstacle := resample_obstacle(config, size, locations))
        ]
    result = common.report(
        "scaling",
        env,
        settings,
        rows,
        comparisons(rows, sizes),
        checks,
        notes=notes,
    )
    return 0 if all(c["passed"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
