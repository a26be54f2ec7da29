"""Our region handling against the release's cropping: time and peak memory.

The release (`TNet.create_masked_batch`, original_implementation_detail.md
§4) zero-pads every region, cuts *all* `n x n` grid cells out of it with
`tf.image.extract_patches`, reshapes them to `(b * n * n, p, p, C)` and then
keeps the chosen ones, which are resized to the base resolution. TNet
(`region_sampling="auto"`) either resamples each chosen region straight from
the input at the base resolution (`geometry.resample_regions`, where that
is equivalent and the trace is not XLA-compiled) or takes its crop path:
`geometry.crop_cells` gathers only the chosen cells' pixels (exact, in any
dtype, compiled by XLA), then resizes them. `release_crop_cells` below
re-creates the release's strategy as a drop-in replacement for
`crop_cells`; the benchmark traces the same TNet (same weights, same
images) with each and compares:

- `tnet896_ours`: fMoW TNet-B0 at 896 px, [2, 1], as configured (resamples
  without XLA); `tnet896_crop`: the same on the crop path;
  `tnet896_release`: the crop path with the release's cropper;
- `inet_ours` / `inet_release`: ImageNet TNet at 224 px, [3] (its grid is
  padded, so ours is the crop path there);
- `level2_release` / `level2_crop` / `level2_resample`: level 2 alone,
  2 of the 9 cells of the 896 px input brought to 224 px: release cropper
  then resize, `crop_cells` then resize, `resample_regions`. The last runs
  without XLA whatever `--jit` says (no XLA `crop_and_resize`).

Each TNet row records the mode that ran (`regions_mode`). Checks: the
release cropper's crops and boxes equal `crop_cells`' bit for bit on the
fMoW, ImageNet and CUB grids, and each TNet variant's logits and attended
cells match those of the model as configured.

    python -m bench.release_cropping [--batch-size N] [--reps N]
        [--precision P] [--jit on|off] [--memory on|off] [--cases ...]
        [--smoke]
"""

import argparse
import sys

import numpy as np
import tensorflow as tf

from bench import common
from bench.release_regions import release_crop_cells
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
# Level-2 cases: `(reader path, readers)` of each case path (see
# `common.reader_for`).
LEVEL2_PATHS = {
    "release": ("crop", "release"),
    "crop": ("crop", "model"),
    "resample": ("resample", "model"),
}


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
            [
                [(n * n - 1 - r - 2 * j) % (n * n) for j in range(k)]
                for r in range(batch)
            ],
            tf.int32,
        )
        release, release_boxes = release_crop_cells(
            regions, cells, n, fraction
        )
        ours, boxes = geometry.crop_cells(regions, cells, n, fraction)
        diff = float(tf.reduce_max(tf.abs(release - ours)))
        same_boxes = bool(np.array_equal(release_boxes.numpy(), boxes.numpy()))
        checks.append(
            {
                "name": f"crops {name}: release vs crop_cells",
                "max_abs_diff": diff,
                "max_rel_diff": diff,
                "tolerance_rel": 0.0,
                "passed": diff == 0.0 and same_boxes,
                "precision": "float32",
                "jit": False,
                "regions": "release vs crop_cells",
                "same_boxes": same_boxes,
            }
        )
    return checks


def case_specs(settings):
    """The benchmark's cases (after the `--cases` filter)."""
    smoke = settings["smoke"]
    base = common.base_spec(settings)
    stand_in = "tiny stand-in: " if smoke else ""
    # Smoke sizes keep the modes "auto" picks for the real models: the
    # stand-in (base 32, 3x3 grid of halves) resamples its 64 then 32 px
    # regions at 128 px, like fMoW at 896; at 97 px its grid is padded, like
    # ImageNet's at 224, so it crops.
    s896, s224 = (128, 97) if smoke else (896, 224)
    specs = []
    for regions in ("ours", "crop", "release"):
        specs.append(
            dict(
                base,
                name=f"tnet896_{regions}",
                group="fmow",
                kind="tnet",
                preset="fmow_tnet_b0_896",
                size=s896,
                locations=[2, 1],
                regions=regions,
                what=f"{stand_in}TNet-B0 {s896}px [2, 1], {regions}",
            )
        )
    for regions in ("ours", "release"):
        specs.append(
            dict(
                base,
                name=f"inet_{regions}",
                group="imagenet",
                kind="tnet",
                preset="imagenet_tnet",
                size=s224,
                locations=[3],
                regions=regions,
                what=f"{stand_in}ImageNet TNet {s224}px [3], {regions}",
            )
        )
    for path in LEVEL2_PATHS:
        spec = dict(
            base,
            name=f"level2_{path}",
            group="level2",
            kind="level2",
            preset="fmow_tnet_b0_896",
            size=s896,
            k=2,
            path=path,
            what=f"{stand_in}2 of 9 cells of {s896}px to base, {path}",
        )
        if path == "resample":
            spec["jit"] = False  # crop_and_resize: no XLA kernel
        specs.append(spec)
    return [s for s in specs if common.selected(s, settings["cases"])]


def level2_regions(path, images, cells, config):
    """The chosen level-2 regions of `images` at base resolution by `path`
    (a key of LEVEL2_PATHS)."""
    reader_path, readers = LEVEL2_PATHS[path]
    reader = common.reader_for(config, reader_path, images.dtype.name, readers)
    (regions,) = common.level_regions(
        reader, images, [cells], config, whole_image=False
    )
    return regions


def build_case(spec, ctx):
    """Builds one case (the `level2` kind here, TNet in `common`)."""
    if spec["kind"] != "level2":
        return common.build_standard_case(spec, ctx)
    config = ctx.config(spec["preset"])
    images = common.path_input(ctx, spec, spec["path"])
    cells = tf.constant(
        [
            [(r + j * 4) % config.grid_size**2 for j in range(spec["k"])]
            for r in range(spec["batch"])
        ],
        tf.int32,
    )

    def fn(x):
        regions = level2_regions(spec["path"], x, cells, config)
        return tf.reduce_sum(tf.cast(regions, tf.float32))

    function = common.trace(fn, (images,), spec["jit"])
    return common.Case(spec, function, (images,), spec["batch"])


def comparisons(rows):
    """Ratios of this run's medians (those whose cases ran)."""
    results = {row["name"]: row for row in rows}
    c = common.comparison
    out = [
        c(
            "release / ours, TNet 896 [2,1] (time)",
            "tnet896_release",
            "tnet896_ours",
            "ms_per_image",
            results,
            1.5,
            ">=",
            "speed-up of TNet's region handling over the release's",
        ),
        c(
            "ours / release, TNet 896 [2,1] (peak memory)",
            "tnet896_ours",
            "tnet896_release",
            "peak_mib",
            results,
            1.0,
            "<",
            "memory of TNet's region handling against the release's",
        ),
        c(
            "release / crop path, TNet 896 [2,1] (time)",
            "tnet896_release",
            "tnet896_crop",
            "ms_per_image",
            results,
            meaning="speed-up of cropping only the chosen cells",
        ),
        c(
            "crop path / release, TNet 896 [2,1] (peak memory)",
            "tnet896_crop",
            "tnet896_release",
            "peak_mib",
            results,
            meaning="memory of cropping only the chosen cells",
        ),
        c(
            "release / ours, ImageNet TNet [3] (time)",
            "inet_release",
            "inet_ours",
            "ms_per_image",
            results,
            meaning="same, ImageNet (ours crops: padded grid)",
        ),
        c(
            "ours / release, ImageNet TNet [3] (peak memory)",
            "inet_ours",
            "inet_release",
            "peak_mib",
            results,
            meaning="same, ImageNet",
        ),
    ]
    for numerator, denominator in (
        ("release", "crop"),
        ("release", "resample"),
        ("crop", "resample"),
    ):
        for metric, label in (
            ("ms_per_image", "time"),
            ("peak_mib", "peak memory"),
        ):
            out.append(
                c(
                    f"{numerator} / {denominator}, level-2 regions 896 ({label})",
                    f"level2_{numerator}",
                    f"level2_{denominator}",
                    metric,
                    results,
                    meaning="bringing level 2 to base resolution alone",
                )
            )
    return [x for x in out if x["ratio"] is not None]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.release_cropping",
        description=__doc__.splitlines()[0],
    )
    common.add_common_args(parser)
    return parser.parse_args(argv)


def crop_checks(settings, log):
    """The croppers' equality checks on the run's grids."""
    log("crop equality checks")
    return check_crops(SMOKE_GRIDS if settings["smoke"] else GRIDS)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return common.run_benchmark(
        "release_cropping",
        MODULE,
        args,
        case_specs,
        build_case,
        comparisons,
        checks=crop_checks,
        notes=[
            "ours = TNet as configured (region_sampling auto: "
            "geometry.resample_regions where equivalent and not under XLA, "
            "else the crop path); crop path = geometry.crop_cells (gathers "
            "of the chosen cells' pixels) then resize; release = "
            "extract_patches of every cell of the zero-padded region, then "
            "gather, then resize",
            "level2_resample runs without XLA whatever --jit says",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
