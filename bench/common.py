"""Shared benchmark machinery: cases, timing, peak memory, checks, reports.

Timing. A case is a traced TensorFlow function with its inputs already on
the device. Every case gets `warmup` untimed calls (tracing, XLA compilation,
allocator growth), then `reps` timed calls. Repetitions are interleaved: rep
`r` times every case once, starting at a rotating offset, so slow drifts of a
shared machine hit all cases alike. Each call is synchronised by copying its
(small) outputs to the host. A case's figure is the median over its
repetitions; a comparison is the ratio of two medians from the same run.

Peak memory.
- GPU: in the benchmark process, per case: `tf.config.experimental.
  reset_memory_stats('GPU:0')`, one call, then `get_memory_info('GPU:0')
  ['peak']` minus the bytes in use before the call (weights and inputs,
  already resident, are not counted).
- CPU: TensorFlow reports no CPU allocator statistics, so each case runs in
  a fresh subprocess (`python -m bench.common --memory-worker ...`): it
  imports, builds the model and inputs, traces the function, resets its
  peak-RSS mark (`/proc/self/clear_refs`), reads its RSS, runs the case
  twice and reports the peak RSS (`VmHWM`) minus that RSS. (Not
  `getrusage().ru_maxrss`: Linux carries the parent's high-water mark into
  it across fork + exec, so the worker would report the benchmark process's
  RSS.) glibc's mmap threshold is pinned (`MALLOC_MMAP_THRESHOLD_`) in the
  subprocess so that large tensors are returned to the OS when freed and
  RSS follows live memory. XLA compilation (with `--jit on`) happens in the
  first call and is included.

Precision and XLA. `--precision` sets the Keras dtype policy of the
benchmarked models (`float32`, `mixed_float16`, `mixed_bfloat16`); `--jit`
compiles each case with `jit_compile=True`.

TNet region sampling. A TNet case's spec key `regions` picks how levels 2
and deeper reach the base resolution (see `REGIONS`): `ours`, the model as
configured (`region_sampling="auto"`: `geometry.resample_regions` reads
each region's base-resolution samples straight from the input where that is
equivalent, else the crop path); `crop`, the same weights forced onto the
crop path (`geometry.crop_cells` gathers the chosen cells' pixels at full
resolution, then `tf.image.resize`); `release`, the crop path reading its
regions as the release cut them (the model's `region_readers` seam, see
`bench.release_cropping.ReleaseCropRegions`). `crop_and_resize` has no XLA kernel, so every
TNet is told whether its trace is XLA-compiled (`model.jit_compile`) and
"auto" then takes the crop path, which compiles and takes bfloat16. Each
TNet case records the mode that ran (`regions_mode`: `resample` or `crop`).
Whenever a case does not run in plain float32 without XLA as configured
(`regions="ours"`), the script compares its outputs with that reference on
the same weights and inputs and reports the largest difference.
"""

import argparse
import contextlib
import dataclasses
import importlib
import json
import operator
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from bench.release_regions import ReleaseCropRegions
from tnet_tf import presets
from tnet_tf.config import BaselineConfig
from tnet_tf.experiment import inference
from tnet_tf.experiment import tables
from tnet_tf.models import regions as regions_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# Largest |optimised - reference| logit difference, relative to the largest
# reference |logit|, accepted per precision.
TOLERANCES = {"float32": 1e-3, "mixed_float16": 3e-2, "mixed_bfloat16": 5e-2}
MEMORY_NOTE_CPU = (
    "peak MiB (CPU): peak RSS (VmHWM, reset after set-up) of a fresh process "
    "per case minus its RSS after imports, model build, input creation and "
    "tracing; includes TensorFlow's temporaries and, with XLA, compilation"
)
MEMORY_NOTE_GPU = (
    "peak MiB (GPU): TF allocator peak during one call minus bytes in use "
    "before it (get_memory_info('GPU:0'), reset_memory_stats)"
)

# Smoke mode swaps every preset for these tiny models (tiny_cnn backbone).
SMOKE_TNET = "tiny_test"
SMOKE_BASELINE = BaselineConfig(
    name="tiny_baseline", backbone="tiny_cnn", num_classes=10, image_size=96
)


# === Devices and settings ===


def on_gpu():
    return bool(tf.config.list_logical_devices("GPU"))


def environment():
    """Where and under what load the benchmark ran."""
    env = {
        "device": "GPU" if on_gpu() else "CPU",
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        env["gpu"] = details.get("device_name", gpus[0].name)
    return env


def add_common_args(parser, default_reps=None):
    """Flags shared by every benchmark script."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny models, sizes and repetitions (a few seconds; for tests)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per call (default: per script and device)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed calls per case before timing (default 2, smoke 1)",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=default_reps,
        help="timed repetitions per case, interleaved (default GPU 20, CPU 5)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto",) + PRECISIONS,
        default="auto",
        help="Keras dtype policy; auto: mixed_float16 on GPU, float32 on CPU",
    )
    parser.add_argument(
        "--jit",
        choices=("auto", "on", "off"),
        default="auto",
        help="XLA jit_compile of each case; auto: on for GPU, off for CPU",
    )
    parser.add_argument(
        "--memory",
        choices=("auto", "on", "off"),
        default="auto",
        help="measure peak memory (auto: on, except in smoke mode)",
    )
    parser.add_argument(
        "--cases",
        default="",
        help="comma-separated case names or groups to run (default: all)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress messages on stderr",
    )
    return parser


def resolve_settings(args, cpu_batch, gpu_batch, smoke_batch=2):
    """Fills the `auto` flags for this device; returns a settings dict."""
    gpu = on_gpu()
    if args.smoke:
        batch = args.batch_size or smoke_batch
    else:
        batch = args.batch_size or (gpu_batch if gpu else cpu_batch)
    precision = args.precision
    if precision == "auto":
        precision = "mixed_float16" if gpu and not args.smoke else "float32"
    jit = args.jit
    if jit == "auto":
        jit = "on" if gpu and not args.smoke else "off"
    memory = args.memory
    if memory == "auto":
        memory = "off" if args.smoke else "on"
    warmup = (
        args.warmup if args.warmup is not None else (1 if args.smoke else 2)
    )
    reps = (
        args.reps
        if args.reps is not None
        else (2 if args.smoke else (20 if gpu else 5))
    )
    return {
        "smoke": bool(args.smoke),
        "batch_size": batch,
        "precision": precision,
        "jit": jit == "on",
        "memory": memory == "on",
        "warmup": warmup,
        "reps": reps,
        "cases": [c for c in args.cases.split(",") if c],
    }


def base_spec(settings):
    """The keys every case of a run shares: batch, precision, jit, smoke."""
    return {
        "batch": settings["batch_size"],
        "precision": settings["precision"],
        "jit": settings["jit"],
        "smoke": settings["smoke"],
    }


def selected(spec, wanted):
    """Whether case `spec` is requested by the `--cases` filter."""
    return not wanted or spec["name"] in wanted or spec.get("group") in wanted


def split_cpu(count=2):
    """Splits the CPU into `count` logical devices (before TF initialises).

    Returns the number of logical CPUs available afterwards.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError:
        pass  # already initialised (e.g. under pytest's conftest)
    return len(tf.config.list_logical_devices("CPU"))


@contextlib.contextmanager
def dtype_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# === Cropping and region sampling variants ===

# TNet case variants (spec key `regions`): the `region_sampling` that
# overrides the config's (None: as configured) and the region readers the
# model traverses with (`TNet.region_readers`, see `region_readers`).
REGIONS = {
    "ours": (None, "model"),
    "crop": ("crop", "model"),
    "release": ("crop", "release"),
}


def region_readers(name):
    """`TNet.region_readers` of variant `name`: `model` (the library's
    readers) or `release` (crops cut as the release cut them: its
    extract_patches of every cell, then a gather,
    `bench.release_cropping.ReleaseCropRegions`)."""
    if name == "model":
        return regions_lib.REGION_READERS
    if name == "release":
        return dict(regions_lib.REGION_READERS, crop=ReleaseCropRegions)
    raise ValueError(f"Unknown region readers {name!r}.")


def level_regions(reader, images, cells, config, whole_image=True):
    """Every level's regions at the base resolution, as `reader` (a
    `tnet_tf.models.regions.RegionReader`) reads them for TNet.

    Args:
        reader: the reader (one per call: it keeps the traversal's state).
        images: `(b, H, W, C)`.
        cells: one int tensor `(regions, k)` per level transition, the
            chosen cells of every region of that level, region-major.
        config: the `TNetConfig` (grid, cell fraction).
        whole_image: include level 1 (the whole image resized); False
            leaves its resize out of a timed function.

    Returns:
        One `(regions, side, side, C)` tensor per level, level 1 first.
    """
    reader.start(images)
    regions = regions_lib.Regions.whole_images(images)
    levels = [reader.read(regions)] if whole_image else []
    for chosen in cells:
        reader.descend(chosen)
        regions = regions.children(
            chosen,
            tf.zeros(tf.shape(chosen)),
            config.grid_size,
            config.cell_fraction,
        )
        levels.append(reader.read(regions))
    return levels


def reader_for(config, path, compute_dtype="float32", readers="model"):
    """A new reader of `path` (`"crop"` or `"resample"`) for `config`."""
    return region_readers(readers)[path](
        config.base_resolution,
        config.grid_size,
        config.cell_fraction,
        antialias=config.antialias,
        compute_dtype=compute_dtype,
    )


def path_input(ctx, spec, path):
    """The case's input batch as TNet's region path `path` reads it: the
    float32 input when resampling (TNet.input_dtype), the compute dtype on
    the crop paths."""
    images = ctx.images(spec["batch"], spec["size"])
    if path == "resample":
        return images
    model = ctx.model(spec["preset"], spec.get("precision", "float32"))
    return tf.cast(images, model.compute_dtype)


# === Models, inputs and cases ===


class Context:
    """Caches models (per preset, precision and region sampling) and inputs.

    Every variant of a preset (another precision, another
    `region_sampling`) gets the weights of its float32 instance as
    configured, so cases and their reference checks share weights.
    """

    def __init__(self, smoke=False):
        self.smoke = smoke
        self._models = {}
        self._images = {}

    def config(self, preset):
        """The config of `preset` (in smoke mode, its tiny stand-in)."""
        if self.smoke:
            config = presets.get(preset)
            return (
                presets.get(SMOKE_TNET)
                if config.attends_regions
                else SMOKE_BASELINE
            )
        return presets.get(preset)

    def model(self, preset, precision="float32", region_sampling=None):
        """The model of `preset` under dtype policy `precision`; a TNet's
        `region_sampling` overrides its config's unless None."""
        key = (preset, precision, region_sampling)
        if key not in self._models:
            config = self.config(preset)
            if region_sampling is not None:
                config = config.replace(region_sampling=region_sampling)
            with dtype_policy(precision):
                keras.utils.set_random_seed(0)
                model = presets.build_model(config)
            if key != (preset, "float32", None):
                model.set_weights(self.model(preset).get_weights())
            self._models[key] = model
        return self._models[key]

    def tnet(self, preset, precision="float32", regions="ours"):
        """The TNet of `preset` for case variant `regions` (see `REGIONS`)."""
        return self.model(preset, precision, REGIONS[regions][0])

    def images(self, batch, size, seed=0):
        """A cached batch of random images in [-1, 1]."""
        key = (batch, size, seed)
        if key not in self._images:
            self._images[key] = tf.random.stateless_uniform(
                (batch, size, size, 3), seed=[seed, 1], minval=-1.0, maxval=1.0
            )
        return self._images[key]


@dataclasses.dataclass
class Case:
    """A benchmark case: `run()` executes one call and returns host outputs."""

    spec: dict
    function: object  # a concrete function
    args: tuple
    images: int  # images per call, for ms/image
    notes: list = dataclasses.field(default_factory=list)
    # TNet cases: how levels 2+ reached the base resolution ("resample" or
    # "crop"); None for other cases and for TNet attending no cell.
    regions_mode: str = None

    @property
    def name(self):
        return self.spec["name"]

    def run(self):
        outputs = self.function(*self.args)
        # Copying to the host synchronises with the device.
        return tf.nest.map_structure(lambda t: t.numpy(), outputs)


def trace(fn, args, jit):
    """Traces `fn(*args)` (optionally XLA-compiled)."""
    function = tf.function(fn, jit_compile=bool(jit), autograph=False)
    return function.get_concrete_function(*args)


def trace_tnet(model, forward, images, locations, jit, regions="ours"):
    """Traces `forward(images)`, a call of TNet `model`, as variant `regions`.

    `model.jit_compile` is set first, on every trace: "auto" region sampling
    must know whether this trace is XLA-compiled, and a cached model may
    have been traced for another case or check with the other setting.

    Returns:
        `(concrete function, mode)`: mode is `"resample"` or `"crop"`, how
        levels 2+ reach the base resolution, or None when `locations`
        attends no cell.
    """
    model.jit_compile = bool(jit)
    # Read when the call is traced: the traced function keeps them.
    model.region_readers = region_readers(REGIONS[regions][1])
    mode = None
    if locations and locations[0] > 0:
        mode = model.region_sampling_mode(images, locations)
    return trace(forward, (images,), jit), mode


def regions_label(regions, mode):
    """What a TNet variant ran, for tables: its mode, naming the release's
    cropper when it read the regions."""
    return f"{mode} (release)" if regions == "release" and mode else mode


def logits_fn(model, locations=None):
    """`images -> logits` of a greedy inference pass of `model` (TNet or a
    baseline) at `locations`."""

    def forward(images):
        return model(images, training=False, locations_per_level=locations)[
            "logits"
        ]

    return forward


def level_inputs(model, images, locations):
    """The base-resolution batches of every level of a greedy TNet pass.

    Re-creates the traversal from the model's `attended_cells` with the
    model's own region reader (`model.region_reader`), so the
    backbone-only case sees exactly the regions TNet processes.
    """
    outputs = model(images, training=False, locations_per_level=locations)
    attended = outputs["attended_cells"]
    batch = images.shape[0]
    cells, start, per_image = [], 1, 1
    for k in locations:
        if k == 0:
            break
        chosen = attended[:, start : start + per_image * k]
        cells.append(tf.reshape(chosen, [batch * per_image, k]))
        start += per_image * k
        per_image *= k
    return level_regions(
        model.region_reader(images, locations), images, cells, model.config
    )


def build_standard_case(spec, ctx):
    """Builds a case of kind `tnet`, `baseline` or `backbone`.

    Spec keys: `name`, `kind`, `preset`, `size`, `batch`, `precision`,
    `jit`, and for TNet kinds `locations` (and optionally `regions`, a key
    of `REGIONS`, default `ours`; for `backbone`, `one_batch` runs every
    level's crops as one batch instead of one pass per level).
    """
    kind = spec["kind"]
    precision = spec.get("precision", "float32")
    images = ctx.images(spec["batch"], spec["size"])
    if kind == "tnet":
        regions = spec.get("regions", "ours")
        locations = list(spec["locations"])
        model = ctx.tnet(spec["preset"], precision, regions)
        fn, mode = trace_tnet(
            model,
            logits_fn(model, locations),
            images,
            locations,
            spec.get("jit"),
            regions,
        )
        notes = [f"levels 2+: {regions_label(regions, mode)}"] if mode else []
        return Case(spec, fn, (images,), spec["batch"], notes, mode)
    model = ctx.model(spec["preset"], precision)
    if kind == "baseline":
        fn = trace(logits_fn(model), (images,), spec.get("jit"))
        return Case(spec, fn, (images,), spec["batch"])
    if kind == "backbone":
        # The greedy pass picks its cells as the TNet case with these
        # settings does.
        model.jit_compile = bool(spec.get("jit"))
        inputs = level_inputs(model, images, list(spec["locations"]))
        extractor = model.feature_extractor

        if spec.get("one_batch"):
            # The release's yardstick: every level's crops as one batch.
            def backbone(*batches):
                return extractor(tf.concat(batches, 0), training=False)[0]
        else:

            def backbone(*batches):
                # One pass per level, like TNet; V of every level.
                return [extractor(x, training=False)[0] for x in batches]

        fn = trace(backbone, tuple(inputs), spec.get("jit"))
        counts = [str(x.shape[0]) for x in inputs]
        notes = [
            f"backbone only: {sum(map(int, counts))} crops in one batch"
            if spec.get("one_batch")
            else "backbone only: " + "+".join(counts) + " crops"
        ]
        return Case(spec, fn, tuple(inputs), spec["batch"], notes)
    raise ValueError(f"Unknown case kind {kind!r}.")


# === Timing ===


def time_cases(cases, warmup, reps, log=None):
    """Interleaved timing; returns {name: list of seconds per call}."""
    for case in cases:
        if log:
            log(f"warm-up {case.name}")
        for _ in range(warmup):
            case.run()
    samples = {case.name: [] for case in cases}
    for rep in range(reps):
        offset = rep % len(cases)
        for case in cases[offset:] + cases[:offset]:
            start = time.perf_counter()
            case.run()
            samples[case.name].append(time.perf_counter() - start)
        if log:
            log(f"rep {rep + 1}/{reps} done")
    return samples


def summarize(case, seconds):
    per_image = [1000.0 * s / case.images for s in seconds]
    return {
        "ms_per_call": round(1000.0 * statistics.median(seconds), 3),
        "ms_per_image": round(statistics.median(per_image), 4),
        "ms_per_image_min": round(min(per_image), 4),
        "ms_per_image_max": round(max(per_image), 4),
        "reps": len(seconds),
    }


# === Peak memory ===


def gpu_peak_mib(case):
    """Extra device memory one call of `case` needs at its peak (MiB)."""
    with inference.peak_memory(gpu=True) as memory:
        case.run()
    return memory.increase_bytes / 2**20


def memory_worker(module_name, spec, runs=2):
    """Body of the fresh process that measures one case's peak RSS.

    The peak is the process's RSS high-water mark (`VmHWM`, reset just
    before the runs) minus its RSS then (`tnet_tf.experiment.inference.
    peak_memory`). `getrusage().ru_maxrss` is not used: Linux carries the
    parent's high-water mark into it across fork + exec, so a worker
    started by a large benchmark process reads the parent's RSS (it is
    reported as `ru_maxrss_mib` for reference).
    """
    module = importlib.import_module(module_name)
    ctx = Context(smoke=spec.get("smoke", False))
    case = module.build_case(spec, ctx)
    with inference.peak_memory(gpu=False) as memory:
        for _ in range(runs):
            case.run()
    if memory.source != "cpu_rss":
        raise RuntimeError("The CPU memory method needs /proc/self/status.")
    return {
        "name": spec["name"],
        "peak_mib": round(memory.increase_bytes / 2**20, 1),
        # Without the reset, a build peak above the runs' peak would hide
        # them: the figure is then an upper bound.
        "exceeded_build_peak": memory.exact,
        "rss_before_mib": round(memory.start_bytes / 2**20, 1),
        "ru_maxrss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1
        ),
    }


def cpu_peak_mib(module_name, spec, timeout=1800):
    """Runs `memory_worker` in a fresh subprocess; returns its result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    env["MALLOC_TRIM_THRESHOLD_"] = "131072"
    command = [
        sys.executable,
        "-m",
        "bench.common",
        "--memory-worker",
        module_name,
        json.dumps(spec),
    ]
    result = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [
        line for line in result.stdout.splitlines() if line.startswith("{")
    ]
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"memory worker for {spec['name']} failed "
            f"(exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def measure_memory(module_name, cases, log=None):
    """{name: memory dict} for every case, by the device's method."""
    results = {}
    for case in cases:
        if log:
            log(f"memory {case.name}")
        if on_gpu():
            results[case.name] = {"peak_mib": round(gpu_peak_mib(case), 1)}
        else:
            results[case.name] = cpu_peak_mib(module_name, case.spec)
    return results


# === Numerical checks ===


def compare_outputs(name, reference, optimized, tolerance, extra=None):
    """Check record: max |diff| of two logit arrays against a tolerance."""
    reference = np.asarray(reference, np.float64)
    optimized = np.asarray(optimized, np.float64)
    diff = float(np.max(np.abs(reference - optimized)))
    scale = float(np.max(np.abs(reference))) or 1.0
    record = {
        "name": name,
        "max_abs_diff": diff,
        "max_rel_diff": diff / scale,
        "tolerance_rel": tolerance,
        "passed": diff / scale <= tolerance,
    }
    record.update(extra or {})
    return record


def check_case(spec, ctx, check_batch=2):
    """Compares a case with the reference: plain float32 without XLA and,
    for TNet, region sampling as configured (`regions="ours"`).

    So a mixed-precision or XLA case, and a TNet forced onto the crop path
    or the release's cropper, is checked on the same weights and inputs.
    Returns None when the case already is the reference.
    """
    precision = spec.get("precision", "float32")
    regions = spec.get("regions", "ours") if spec["kind"] == "tnet" else "ours"
    if precision == "float32" and not spec.get("jit") and regions == "ours":
        return None
    batch = min(check_batch, spec["batch"])
    images = ctx.images(batch, spec["size"], seed=7)
    extra = {"precision": precision, "jit": bool(spec.get("jit"))}
    if spec["kind"] == "tnet":
        locations = list(spec["locations"])
        results, modes = [], []
        for variant, jit, variant_regions in (
            ("float32", False, "ours"),
            (precision, spec.get("jit"), regions),
        ):
            model = ctx.tnet(spec["preset"], variant, variant_regions)

            def forward(x, model=model):
                out = model(x, training=False, locations_per_level=locations)
                return out["logits"], out["attended_cells"]

            fn, mode = trace_tnet(
                model, forward, images, locations, jit, variant_regions
            )
            results.append([t.numpy() for t in fn(images)])
            modes.append(mode)
        (ref_logits, ref_cells), (opt_logits, opt_cells) = results
        extra.update(
            same_cells=bool(np.array_equal(ref_cells, opt_cells)),
            regions=f"{regions_label(regions, modes[1])} vs {modes[0]}"
            if modes[1]
            else "",
            regions_mode=modes[1],
            reference_regions_mode=modes[0],
        )
        return compare_outputs(
            f"{spec['name']} vs plain float32",
            ref_logits,
            opt_logits,
            TOLERANCES[precision],
            extra,
        )
    if spec["kind"] == "baseline":
        ref = trace(logits_fn(ctx.model(spec["preset"])), (images,), False)
        opt = trace(
            logits_fn(ctx.model(spec["preset"], precision)),
            (images,),
            spec.get("jit"),
        )
        return compare_outputs(
            f"{spec['name']} vs plain float32",
            ref(images).numpy(),
            opt(images).numpy(),
            TOLERANCES[precision],
            extra,
        )
    return None


# === Reports ===


def comparison(
    name,
    numerator,
    denominator,
    metric,
    results,
    target=None,
    op=None,
    meaning="",
):
    """Ratio `metric(numerator) / metric(denominator)` from one run."""
    a = results.get(numerator, {}).get(metric)
    b = results.get(denominator, {}).get(metric)
    ratio = None if a is None or b is None or b == 0 else a / b
    met = None
    if ratio is not None and target is not None:
        met = {
            ">=": ratio >= target,
            "<=": ratio <= target,
            "<": ratio < target,
        }[op]
    return {
        "name": name,
        "ratio": None if ratio is None else round(ratio, 4),
        "numerator": numerator,
        "denominator": denominator,
        "metric": metric,
        "target": None if target is None else f"{op} {target:g}",
        "target_met": met,
        "meaning": meaning,
    }


def format_table(header, rows):
    """Lists of cells under `header`, every column left-aligned
    (`tnet_tf.experiment.tables.format_table`)."""
    columns = [(name, operator.itemgetter(i)) for i, name in enumerate(header)]
    return tables.format_table(rows, columns, align="l" * len(columns))


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def report(benchmark, env, settings, cases, comparisons, checks, notes=()):
    """Prints the tables, then the JSON line; returns the JSON dict."""
    env = dict(env, loadavg_end=[round(x, 2) for x in os.getloadavg()])
    print(
        f"== {benchmark} == device {env['device']}"
        + (f" ({env['gpu']})" if "gpu" in env else "")
        + f", {env['cpu_count']} CPUs, load average "
        f"{env['loadavg_start']} -> {env['loadavg_end']}"
    )
    print(
        f"batch {settings['batch_size']}, precision {settings['precision']}, "
        f"jit {'on' if settings['jit'] else 'off'}, warm-up "
        f"{settings['warmup']}, {settings['reps']} interleaved reps, medians"
        + (
            " [SMOKE: tiny models, numbers meaningless]"
            if settings["smoke"]
            else ""
        )
    )
    print()
    rows = []
    for case in cases:
        rows.append(
            [
                case.get("group", ""),
                case["name"],
                case.get("what", ""),
                case.get("batch", ""),
                _fmt(case.get("ms_per_call"), 1),
                _fmt(case.get("ms_per_image"), 2),
                f"{_fmt(case.get('ms_per_image_min'), 2)}-"
                f"{_fmt(case.get('ms_per_image_max'), 2)}",
                _fmt(case.get("peak_mib"), 1),
                "; ".join(case.get("notes", [])),
            ]
        )
    print(
        format_table(
            [
                "group",
                "case",
                "model / input",
                "batch",
                "ms/call",
                "ms/image",
                "min-max",
                "peak MiB",
                "notes",
            ],
            rows,
        )
    )
    if comparisons:
        print()
        print(
            format_table(
                ["comparison", "ratio", "target", "met", "meaning"],
                [
                    [
                        c["name"],
                        _fmt(c["ratio"]),
                        c["target"] or "-",
                        _fmt(c["target_met"]) if c["target"] else "-",
                        c["meaning"],
                    ]
                    for c in comparisons
                ],
            )
        )
        print("(targets are benchmark goals, not pass/fail tests)")
    if checks:
        print()
        print(
            format_table(
                [
                    "output check",
                    "precision",
                    "jit",
                    "regions",
                    "max |diff|",
                    "rel",
                    "tolerance",
                    "same cells",
                    "ok",
                ],
                [
                    [
                        c["name"],
                        c.get("precision", ""),
                        c.get("jit", ""),
                        c.get("regions", ""),
                        f"{c['max_abs_diff']:.3g}",
                        f"{c['max_rel_diff']:.3g}",
                        f"{c['tolerance_rel']:g}",
                        _fmt(c.get("same_cells")),
                        _fmt(c["passed"]),
                    ]
                    for c in checks
                ],
            )
        )
    all_notes = list(notes)
    if settings.get("memory"):
        all_notes.append(
            MEMORY_NOTE_GPU if env["device"] == "GPU" else MEMORY_NOTE_CPU
        )
    if all_notes:
        print()
        for note in all_notes:
            print(f"note: {note}")
    result = {
        "benchmark": benchmark,
        "env": env,
        "settings": settings,
        "cases": cases,
        "comparisons": comparisons,
        "checks": checks,
        "notes": all_notes,
    }
    print(json.dumps(result), flush=True)
    return result


def logger(quiet=False):
    start = time.perf_counter()

    def log(message):
        if not quiet:
            print(
                f"[{time.perf_counter() - start:7.1f}s] {message}",
                file=sys.stderr,
                flush=True,
            )

    return log


def run_cases(module_name, specs, settings, ctx, build_case, log):
    """Builds, checks, times and (optionally) memory-profiles `specs`.

    Returns `(case_rows, checks)`; case rows carry the spec's fields plus
    the timing summary and peak memory.
    """
    cases = []
    for spec in specs:
        log(f"build {spec['name']}")
        cases.append(build_case(spec, ctx))
    checks = []
    for spec in specs:
        record = (
            check_case(spec, ctx)
            if spec["kind"] in ("tnet", "baseline")
            else None
        )
        if record:
            checks.append(record)
    samples = time_cases(cases, settings["warmup"], settings["reps"], log)
    memory = (
        measure_memory(module_name, cases, log) if settings["memory"] else {}
    )
    rows = []
    for case in cases:
        row = dict(case.spec)
        row.update(summarize(case, samples[case.name]))
        row["samples_ms"] = [round(1000 * s, 3) for s in samples[case.name]]
        row["notes"] = list(case.notes)
        if case.regions_mode:
            row["regions_mode"] = case.regions_mode
        if case.name in memory:
            row.update(memory[case.name])
            if memory[case.name].get("exceeded_build_peak") is False:
                row["notes"].append("memory: upper bound")
        rows.append(row)
    return rows, checks


def run_benchmark(
    name,
    module_name,
    args,
    case_specs,
    build_case,
    comparisons,
    notes=(),
    checks=None,
    cpu_batch=4,
    gpu_batch=64,
):
    """The body of a benchmark's `main`: resolves the settings, runs the
    cases of `case_specs(settings)`, reports the table and the JSON line.

    `checks(settings, log)`, when given, runs before the cases and returns
    more check records. Returns the exit status: 0 when every check passed.
    """
    settings = resolve_settings(args, cpu_batch=cpu_batch, gpu_batch=gpu_batch)
    log = logger(args.quiet)
    env = environment()
    ctx = Context(smoke=settings["smoke"])
    specs = case_specs(settings)
    before = [] if checks is None else checks(settings, log)
    rows, case_checks = run_cases(
        module_name, specs, settings, ctx, build_case, log
    )
    result = report(
        name,
        env,
        settings,
        rows,
        comparisons(rows),
        before + case_checks,
        notes=list(notes),
    )
    return 0 if all(c["passed"] for c in result["checks"]) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--memory-worker",
        nargs=2,
        metavar=("MODULE", "SPEC_JSON"),
        required=True,
    )
    args = parser.parse_args(argv)
    module_name, spec = args.memory_worker
    print(json.dumps(memory_worker(module_name, json.loads(spec))), flush=True)


if __name__ == "__main__":
    main()
