"""Inference speed (ms/image) and peak memory: TNet against its baselines.

fMoW: TNet-B0 at 448 px with 1, 2 and 3 locations and at 896 px with [2, 1]
and [2, 2] locations, against EfficientNet-B0 on the whole image at 224, 448
and 896 px. Also TNet's backbone passes alone on the regions TNet processes
at 896 px [2, 1] (same batch; re-created on the crop path, equal up to
float32 rounding where TNet resamples, see `common.level_inputs`), which
bounds what TNet's own machinery (location module, bringing regions to the
base resolution, positional encoding) costs, and the same crops as one
batch, the yardstick the release was measured against.
ImageNet: TNet (BagNet-77 at 77 px) with 0..5 locations against BagNet-77
on the whole 224 px image.

All cases run at inference (`training=False`, greedy locations) on the same
random batch per input size, with random weights (speed and memory do not
depend on them). See bench/common.py for how time and memory are measured.

    python -m bench.inference [--batch-size N] [--reps N] [--precision P]
        [--jit on|off] [--memory on|off] [--cases fmow,imagenet,...] [--smoke]
"""

import argparse
import sys

from bench import common

MODULE = "bench.inference"


def case_specs(settings):
    """The benchmark's cases (before the `--cases` filter)."""
    smoke = settings["smoke"]
    base = common.base_spec(settings)
    # Smoke mode: tiny_test TNet (base 32, 3x3 grid) and a tiny_cnn baseline.
    s448, s896, s224 = (64, 96, 32) if smoke else (448, 896, 224)
    tnet448 = "fmow_tnet_b0"
    tnet896 = "fmow_tnet_b0_896"
    specs = []

    def add(name, group, kind, preset, size, what, locations=None, **extra):
        if smoke:
            what = "tiny stand-in: " + what
        spec = dict(
            base,
            name=name,
            group=group,
            kind=kind,
            preset=preset,
            size=size,
            what=what,
            **extra,
        )
        if locations is not None:
            spec["locations"] = list(locations)
        specs.append(spec)

    for k in (1, 2, 3):
        add(
            f"tnet448_k{k}",
            "fmow",
            "tnet",
            tnet448,
            s448,
            f"TNet-B0 {s448}px [{k}]",
            [k],
        )
    for locations in ((2, 1), (2, 2)):
        tag = "".join(map(str, locations))
        add(
            f"tnet896_k{tag}",
            "fmow",
            "tnet",
            tnet896,
            s896,
            f"TNet-B0 {s896}px {list(locations)}",
            locations,
        )
    add(
        "backbone896_k21",
        "fmow",
        "backbone",
        tnet896,
        s896,
        f"EN-B0 passes of TNet {s896}px [2, 1]",
        (2, 1),
    )
    add(
        "backbone896_k21_one_batch",
        "fmow",
        "backbone",
        tnet896,
        s896,
        f"EN-B0 on TNet {s896}px [2, 1]'s crops, one batch",
        (2, 1),
        one_batch=True,
    )
    for size, suffix in ((s224, "224"), (s448, "448"), (s896, "896")):
        add(
            f"en{suffix}",
            "fmow",
            "baseline",
            f"fmow_en_b0_{suffix}",
            size,
            f"EN-B0 {size}px",
        )
    s_in = 96 if smoke else 224
    ks = (0, 1, 2) if smoke else (0, 1, 2, 3, 4, 5)
    for k in ks:
        add(
            f"inet_k{k}",
            "imagenet",
            "tnet",
            "imagenet_tnet",
            s_in,
            f"TNet BagNet-77 {s_in}px [{k}]",
            [k],
        )
    add(
        "bagnet77",
        "imagenet",
        "baseline",
        "imagenet_bagnet77",
        s_in,
        f"BagNet-77 {s_in}px",
    )
    return [s for s in specs if common.selected(s, settings["cases"])]


def build_case(spec, ctx):
    return common.build_standard_case(spec, ctx)


def comparisons(rows):
    results = {row["name"]: row for row in rows}
    c = common.comparison
    out = [
        c(
            "EN-B0 896 / TNet 896 [2,1] (time)",
            "en896",
            "tnet896_k21",
            "ms_per_image",
            results,
            5.0,
            ">=",
            "TNet speed-up over EN-B0 at 896 px",
        ),
        c(
            "TNet 896 [2,1] / its backbone passes (time)",
            "tnet896_k21",
            "backbone896_k21",
            "ms_per_image",
            results,
            1.0,
            "<=",
            "TNet overhead beyond backbone passes on the same crops",
        ),
        c(
            "TNet 896 [2,1] / its crops as one backbone batch (time)",
            "tnet896_k21",
            "backbone896_k21_one_batch",
            "ms_per_image",
            results,
            meaning="the release's yardstick (0.94 there, CPU)",
        ),
        c(
            "TNet 896 [2,1] / EN-B0 896 (peak memory)",
            "tnet896_k21",
            "en896",
            "peak_mib",
            results,
            1 / 3,
            "<=",
            "TNet memory share",
        ),
        c(
            "EN-B0 896 / TNet 896 [2,2] (time)",
            "en896",
            "tnet896_k22",
            "ms_per_image",
            results,
            meaning="speed-up, 6 locations",
        ),
        c(
            "EN-B0 448 / TNet 448 [2] (time)",
            "en448",
            "tnet448_k2",
            "ms_per_image",
            results,
            meaning="speed-up at 448 px",
        ),
        c(
            "TNet 448 [2] / EN-B0 448 (peak memory)",
            "tnet448_k2",
            "en448",
            "peak_mib",
            results,
            meaning="memory share at 448 px",
        ),
    ]
    for k in range(6):
        out.append(
            c(
                f"BagNet-77 / ImageNet TNet [{k}] (time)",
                "bagnet77",
                f"inet_k{k}",
                "ms_per_image",
                results,
                meaning="speed-up at 224 px",
            )
        )
    out.append(
        c(
            "ImageNet TNet [3] / BagNet-77 (peak memory)",
            "inet_k3",
            "bagnet77",
            "peak_mib",
            results,
            meaning="memory share",
        )
    )
    return [x for x in out if x["ratio"] is not None]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.inference", description=__doc__.splitlines()[0]
    )
    common.add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return common.run_benchmark(
        "inference",
        MODULE,
        args,
        case_specs,
        build_case,
        comparisons,
        notes=[
            "ms/image = median ms per call / batch; TNet: greedy locations, "
            "training=False; random weights and images",
            "backbone896_k21: only the EN-B0 passes (one per level) on the "
            "crops TNet 896 [2,1] attends, already resized to 224 px; "
            "backbone896_k21_one_batch: the same crops as one batch, as the "
            "issue measured the release",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
