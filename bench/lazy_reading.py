"""Lazy reading of large JPEGs against the dense path: time and peak memory.

TNet (the fMoW 896 preset: EfficientNet-B0 backbone at 224 px, 3 x 3 grid,
cells of half a region; random weights, no download) with `[2, 1]`
locations classifies one JPEG per size, two ways:

- `lazy_S`: `tnet_tf.lazy_reading.classify_file`: the file read, every box
  decoded at the coarsest DCT ratio that keeps 224 px, or from level 1's
  decode (finer than it needs up to 1024 x 1024 px) where that has the
  resolution, in the model's compiled call (traced in set-up on a small
  JPEG: one trace serves every size);
- `dense_S`: the file read and decoded in full (`tf.io.decode_jpeg`, or
  Pillow where TensorFlow's decoder refuses: decodes of 512 MiB or more, a
  16k JPEG), `2 x - 1` in float32, then the model's traced call.

The JPEGs are photographs shipped with installed packages (matplotlib's
grace_hopper.jpg, scikit-learn's china.jpg and flower.jpg), each cropped
square and upscaled to 1024 px tiles, tiled to `S x S` px and saved at
quality 90, built once per size in a subprocess and kept in `--image-dir`.
`--lazy-only` sizes (default 32768) run only the lazy path: the dense one
would need `S * S * 3` bytes of uint8 plus 4x that in float32 (reported).

Peak memory: a fresh process per case (`bench.common.cpu_peak_mib`, VmHWM
through `tnet_tf.experiment.inference.peak_memory`), bounded by an address
space limit; `peak_less_file_mib` is that less the encoded file's size
(held whole: TensorFlow's decoders take the whole string). Checks: the
lazy logits and attended cells against the dense path's (`max_ratio=8`,
and `max_ratio=1` where TensorFlow decodes the whole image).

    python -m bench.lazy_reading [--sizes 2048,4096,8192,16384]
        [--lazy-only 32768] [--image-dir DIR] [--reps N] [--memory on|off]
        [--smoke]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from bench import common
from tnet_tf import lazy_reading
from tnet_tf import lazy_regions

MODULE = "bench.lazy_reading"
TNET = "fmow_tnet_b0_896"
LOCATIONS = (2, 1)
PHOTOS = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)
GiB = 2**30
# Address space allowed above what a process has mapped when it starts the
# work (TensorFlow maps ~3 GB of its own): the lazy path, and the dense
# path per byte of the uint8 image (two uint8 copies while decoding, two
# float32 ones for `2 x - 1`, plus slack).
LAZY_BOUND = 4 * GiB
DENSE_BOUND_PER_BYTE = 14
# The last call's outputs of every case, for the checks.
OUTPUTS = {}


def _photo_paths():
    import importlib.util

    paths = []
    for package, relative in PHOTOS:
        spec = importlib.util.find_spec(package)
        paths.append(
            os.path.join(spec.submodule_search_locations[0], relative)
        )
    return paths


def tiles(side):
    """The square tiles of `side` px: each photo cropped square and
    upscaled (bicubic), and mirrored."""
    out = []
    for path in _photo_paths():
        photo = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        short = min(photo.shape[:2])
        top = (photo.shape[0] - short) // 2
        left = (photo.shape[1] - short) // 2
        square = tf.cast(
            photo[top : top + short, left : left + short], "float32"
        )
        tile = tf.image.resize(square[None], (side, side), "bicubic")[0]
        tile = tf.cast(tf.clip_by_value(tf.round(tile), 0, 255), tf.uint8)
        out += [tile.numpy(), tile.numpy()[:, ::-1]]
    return out


def make_jpeg(size, path, tile=1024):
    """Writes the `size x size` test JPEG (tiles of `tile` px, quality
    90)."""
    from PIL import Image

    choices = tiles(min(tile, size))
    side = choices[0].shape[0]
    canvas = np.empty((size, size, 3), np.uint8)
    for row in range(0, size, side):
        for column in range(0, size, side):
            index = (row // side * 5 + column // side * 3) % len(choices)
            part = choices[index][: size - row, : size - column]
            canvas[row : row + side, column : column + side] = part
    Image.fromarray(canvas).save(path, quality=90)


def bound_address_space(extra_bytes):
    """Limits this process's address space to what it maps now plus
    `extra_bytes`, so a case that needs more fails instead of taking the
    machine. Returns the previous limits (`restore_address_space`)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                mapped = int(line.split()[1]) * 1024
    previous = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra_bytes, previous[1]))
    return previous


def restore_address_space(previous):
    """Undoes `bound_address_space`: `main` may run inside another process
    (a test), which must not keep the bound."""
    resource.setrlimit(resource.RLIMIT_AS, previous)


def dense_bound(size):
    return DENSE_BOUND_PER_BYTE * size * size * 3 + 2 * GiB


def image_path(directory, size, smoke):
    return os.path.join(
        directory, f"{'smoke_' if smoke else ''}photos_{size}.jpg"
    )


def ensure_images(directory, sizes, smoke, log):
    """Builds the missing test JPEGs, one subprocess at a time."""
    os.makedirs(directory, exist_ok=True)
    for size in sizes:
        path = image_path(directory, size, smoke)
        if os.path.exists(path):
            continue
        log(f"build {path}")
        command = [sys.executable, "-m", MODULE, "--make-image", str(size)]
        command += [path, "--tile", "128" if smoke else "1024"]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run(
            command, cwd=common.REPO, env=env, check=True, timeout=1800
        )


def tf_decodes_whole(size):
    """Whether `tf.io.decode_jpeg` decodes a `size x size` JPEG in full."""
    return size * size * 3 < lazy_regions.DECODER_LIMIT_BYTES


def decode_dense(path, size):
    """The whole JPEG as uint8 `(size, size, 3)`."""
    if tf_decodes_whole(size):
        return tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # Pillow's decompression-bomb guard
    with Image.open(path) as image:
        return tf.convert_to_tensor(np.asarray(image))


def trace_lazy_call(model, locations, max_ratio):
    """Traces the compiled lazy call in set-up, as the dense path's
    function is: one trace serves every size, so a small black JPEG of the
    base resolution twice over does it (and runs once)."""
    side = 2 * model.config.base_resolution
    pixels = tf.zeros((side, side, 3), tf.uint8)
    image = lazy_reading.EncodedImage(
        tf.io.encode_jpeg(pixels), max_ratio=max_ratio
    )
    lazy_reading.classify_image(model, image, locations)


def build_case(spec, ctx):
    """One case (`kind` `lazy` or `dense`); in a memory worker, its address
    space is bounded first."""
    if "--memory-worker" in sys.argv:
        bound = LAZY_BOUND if spec["kind"] == "lazy" else spec["bound"]
        bound_address_space(bound)
    model = ctx.model(spec["preset"])
    locations = list(spec["locations"])
    path, size, name = spec["path"], spec["size"], spec["name"]
    if spec["kind"] == "lazy":
        max_ratio = spec.get("max_ratio", 8)
        trace_lazy_call(model, locations, max_ratio)

        def run():
            outputs = lazy_reading.classify_file(
                model, path, locations, max_ratio=max_ratio
            )
            OUTPUTS[name] = outputs
            return outputs["logits"]

        notes = []
    else:

        @tf.function(
            input_signature=[tf.TensorSpec((size, size, 3), tf.uint8)]
        )
        def forward(pixels):
            # In the graph, each float32 temporary is freed once used.
            images = tf.cast(pixels[None], tf.float32) * (2.0 / 255.0) - 1.0
            return model(images, training=False, locations_per_level=locations)

        forward.get_concrete_function()

        def run():
            outputs = forward(decode_dense(path, size))
            OUTPUTS[name] = outputs
            return outputs["logits"]

        decoder = "tf.io.decode_jpeg" if tf_decodes_whole(size) else "Pillow"
        notes = [f"decoded by {decoder}"]
    return common.Case(spec, run, (), 1, notes)


def case_specs(settings, sizes, lazy_only, directory):
    base = common.base_spec(settings)
    stand_in = "tiny stand-in: " if settings["smoke"] else ""
    specs = []
    for size in sizes + lazy_only:
        path = image_path(directory, size, settings["smoke"])
        kinds = ("lazy",) if size in lazy_only else ("lazy", "dense")
        megabytes = os.path.getsize(path) / 2**20
        for kind in kinds:
            specs.append(
                dict(
                    base,
                    name=f"{kind}_{size}",
                    group=kind,
                    kind=kind,
                    preset=TNET,
                    size=size,
                    path=path,
                    file_mib=round(megabytes, 1),
                    locations=list(LOCATIONS),
                    bound=dense_bound(size),
                    what=f"{stand_in}TNet-B0 {size}px JPEG "
                    f"({megabytes:.0f} MiB) {list(LOCATIONS)}",
                )
            )
    return [s for s in specs if common.selected(s, settings["cases"])]


def output_checks(specs, ctx, log):
    """Lazy against dense on the same file: logits, top-1, cells."""
    checks = []
    for spec in specs:
        size = spec["size"]
        dense = OUTPUTS.get(f"dense_{size}")
        if spec["kind"] != "lazy" or dense is None:
            continue
        ratios = [(8, OUTPUTS[spec["name"]])]
        if tf_decodes_whole(size):
            log(f"check max_ratio=1 at {size}")
            exact = lazy_reading.classify_file(
                ctx.model(TNET), spec["path"], list(LOCATIONS), max_ratio=1
            )
            ratios.append((1, exact))
        for max_ratio, lazy in ratios:
            same_top1 = bool(
                np.argmax(lazy["logits"]) == np.argmax(dense["logits"])
            )
            record = common.compare_outputs(
                f"lazy max_ratio={max_ratio} vs dense, {size}px",
                dense["logits"],
                lazy["logits"],
                common.TOLERANCES["float32"] if max_ratio == 1 else 0.05,
                {
                    "precision": "float32",
                    "jit": False,
                    "regions": f"max_ratio={max_ratio}",
                    "same_cells": bool(
                        np.array_equal(
                            lazy["attended_cells"], dense["attended_cells"]
                        )
                    ),
                    "same_top1": same_top1,
                },
            )
            record["passed"] = record["passed"] and same_top1
            checks.append(record)
    return checks


def comparisons(rows, sizes, lazy_only):
    results = {row["name"]: row for row in rows}
    for row in rows:
        # The encoded file is held whole (TensorFlow's decoders take the
        # whole string): what the path needs beyond it.
        if row.get("peak_mib") is not None:
            row["peak_less_file_mib"] = round(
                row["peak_mib"] - row["file_mib"], 1
            )
    c = common.comparison
    first, last = sizes[0], sizes[-1]
    out = [
        c(
            f"lazy / dense at {size} (time)",
            f"lazy_{size}",
            f"dense_{size}",
            "ms_per_image",
            results,
            meaning="lazy time share",
        )
        for size in sizes[:-1]
    ]
    out += [
        c(
            f"lazy {last} / lazy {first} (peak memory less the file)",
            f"lazy_{last}",
            f"lazy_{first}",
            "peak_less_file_mib",
            results,
            meaning="lazy growth beyond the encoded file it holds",
        ),
        c(
            f"lazy {last} / lazy {first} (peak memory)",
            f"lazy_{last}",
            f"lazy_{first}",
            "peak_mib",
            results,
            1.5,
            "<=",
            "lazy memory growth with the image",
        ),
        c(
            f"dense {last} / dense {first} (peak memory)",
            f"dense_{last}",
            f"dense_{first}",
            "peak_mib",
            results,
            meaning="dense memory growth with the image",
        ),
        c(
            f"lazy / dense at {last} (peak memory)",
            f"lazy_{last}",
            f"dense_{last}",
            "peak_mib",
            results,
            0.1,
            "<",
            "what lazy reading saves",
        ),
        c(
            f"lazy / dense at {last} (time)",
            f"lazy_{last}",
            f"dense_{last}",
            "ms_per_image",
            results,
            0.25,
            "<=",
            "lazy time share",
        ),
    ]
    for size in lazy_only:
        out.append(
            c(
                f"lazy {size} / lazy {first} (peak memory)",
                f"lazy_{size}",
                f"lazy_{first}",
                "peak_mib",
                results,
                meaning="lazy only: no dense run at this size",
            )
        )
    return [x for x in out if x["ratio"] is not None]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.lazy_reading",
        description=__doc__.splitlines()[0],
    )
    common.add_common_args(parser)
    parser.add_argument(
        "--sizes",
        default="",
        help="JPEG sides run both ways (default 2048,4096,8192,16384; "
        "smoke 128,256)",
    )
    parser.add_argument(
        "--lazy-only",
        default=None,
        help="JPEG sides run lazily only (default 32768; smoke 512)",
    )
    parser.add_argument(
        "--image-dir",
        default=os.path.join(tempfile.gettempdir(), "tnet_tf_lazy_bench"),
        help="where the test JPEGs are built once and kept",
    )
    parser.add_argument(
        "--make-image",
        nargs=2,
        metavar=("SIZE", "PATH"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--tile", type=int, default=1024, help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.make_image:
        size = int(args.make_image[0])
        bound_address_space(3 * size * size * 3 + 2 * GiB)
        make_jpeg(size, args.make_image[1], args.tile)
        return 0
    settings = common.resolve_settings(
        args, cpu_batch=1, gpu_batch=1, smoke_batch=1
    )
    smoke = settings["smoke"]
    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [128, 256] if smoke else [2048, 4096, 8192, 16384]
    )
    lazy_only = args.lazy_only
    if lazy_only is None:
        lazy_only = "512" if smoke else "32768"
    lazy_only = [int(s) for s in lazy_only.split(",") if s]
    settings.update(sizes=sizes, lazy_only=lazy_only)
    log = common.logger(args.quiet)
    ensure_images(args.image_dir, sizes + lazy_only, smoke, log)
    env = common.environment()
    ctx = common.Context(smoke=smoke)
    specs = case_specs(settings, sizes, lazy_only, args.image_dir)
    previous = bound_address_space(dense_bound(max(sizes)))
    try:
        rows, checks = common.run_cases(
            MODULE, specs, settings, ctx, build_case, log
        )
        checks += output_checks(specs, ctx, log)
    finally:
        restore_address_space(previous)
    notes = [
        "TNet: fMoW 896 preset (EfficientNet-B0), random weights, greedy "
        f"{list(LOCATIONS)}, training=False, one image per call; ms/image "
        "includes reading the file",
        "test JPEGs: photographs of installed packages, upscaled to tiles "
        f"and tiled, quality 90, in {args.image_dir}",
    ]
    notes += [
        f"dense_{size} not run: it would hold {size * size * 3 / GiB:.1f} "
        f"GiB of uint8 and {size * size * 12 / GiB:.1f} GiB of float32 "
        f"({size * size * 24 / GiB:.1f} GiB while `2 x - 1` is computed)"
        for size in lazy_only
    ]
    result = common.report(
        "lazy_reading",
        env,
        settings,
        rows,
        comparisons(rows, sizes, lazy_only),
        checks,
        notes=notes,
    )
    return 0 if all(c["passed"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
