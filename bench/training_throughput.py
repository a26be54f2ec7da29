"""Training throughput (images/s) of TNet under `model.fit`.

Two cases on the same global batch, synthetic data and initial weights:
- `single`: the default strategy (one device);
- `mirrored`: `tnet_tf.distributed.make_strategy("mirrored", ...)`, over two
  logical CPU devices on a CPU host (the physical CPU split in two, so no
  speed-up is expected there: it measures the strategy's overhead) or over
  every GPU.

Each case's `fit` is compiled once and then called alternately, one epoch of
`--steps` steps per call. Epoch time is taken inside `fit` (between
`on_epoch_begin` and `on_epoch_end`); the first epoch of each case (tracing,
compilation) is the warm-up. A case's figure is the median images/s over its
timed epochs; the comparison is mirrored / single from the same run.

With `--jit on` the whole train step is compiled with XLA; `compile` sets
`model.jit_compile`, so TNet then brings levels 2+ to the base resolution
on its crop path (gathers of the chosen cells' pixels, then resize: XLA has
no `crop_and_resize` kernel for resampling); without XLA it follows its
`region_sampling` ("auto": resample where equivalent). With a mixed
`--precision` Keras wraps the optimizer in a loss-scale optimizer
(`mixed_float16`). In both cases the model's inference outputs are checked
against float32 without XLA, region sampling as configured.

    python -m bench.training_throughput [--preset fmow_tnet_b0]
        [--image-size 448] [--batch-size N] [--steps N] [--reps N]
        [--precision P] [--jit on|off] [--smoke]
"""

import argparse
import statistics
import sys
import time

import keras
import tensorflow as tf

from bench import common
from tnet_tf import distributed
from tnet_tf import presets


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def build_trainer(config, strategy, settings, initial_weights=None):
    with strategy.scope():
        with common.dtype_policy(settings["precision"]):
            keras.utils.set_random_seed(0)
            model = presets.build_model(config)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            jit_compile=settings["jit"],
            steps_per_execution=settings["steps_per_execution"],
        )
    return model


def make_dataset(config, batch, size):
    images = tf.random.stateless_uniform(
        (batch, size, size, 3), seed=[3, 1], minval=-1.0, maxval=1.0
    )
    labels = tf.random.stateless_uniform(
        (batch,), seed=[4, 1], maxval=config.num_classes, dtype=tf.int32
    )
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench.training_throughput",
        description=__doc__.splitlines()[0],
    )
    common.add_common_args(parser)
    parser.add_argument(
        "--preset",
        default="fmow_tnet_b0",
        help="TNet preset (default fmow_tnet_b0)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input side (default: the preset's)",
    )
    parser.add_argument(
        "--locations",
        default="",
        help="training locations per level (default preset)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps per timed epoch (default GPU 20, CPU 3)",
    )
    parser.add_argument("--steps-per-execution", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    # Before anything initialises the TensorFlow runtime.
    logical_cpus = common.split_cpu(2)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = common.resolve_settings(
        args, cpu_batch=4, gpu_batch=64, smoke_batch=4
    )
    gpu = common.on_gpu()
    steps = args.steps or (2 if settings["smoke"] else (20 if gpu else 3))
    settings.update(
        memory=False, steps=steps, steps_per_execution=args.steps_per_execution
    )
    log = common.logger(args.quiet)
    env = common.environment()
    ctx = common.Context(smoke=settings["smoke"])
    config = ctx.config(args.preset)
    if args.locations or settings["smoke"]:
        # Smoke: one level transition, for a faster trace.
        locations = tuple(int(k) for k in (args.locations or "1").split(","))
        config = config.replace(
            num_levels=len(locations) + 1, locations_per_level=locations
        )
    size = args.image_size or (
        config.image_size[0] if not settings["smoke"] else 64
    )
    batch = settings["batch_size"]
    settings.update(
        preset=args.preset,
        image_size=size,
        locations=list(config.locations_per_level),
    )

    notes = []
    strategies = {"single": distributed.make_strategy("default")}
    if gpu:
        devices = None
        replicas = len(tf.config.list_logical_devices("GPU"))
    else:
        devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
        replicas = len(devices)
    if replicas >= 2 or gpu:
        strategies["mirrored"] = distributed.make_strategy("mirrored", devices)
        if not gpu:
            notes.append(
                "mirrored: 2 logical CPU devices sharing the same "
                f"{env['cpu_count']} cores (overhead, not speed-up)"
            )
        elif replicas == 1:
            notes.append("mirrored: one GPU, one replica (strategy overhead)")
    else:
        notes.append(f"mirrored skipped: {logical_cpus} logical CPU(s)")
    if batch % max(replicas, 1):
        raise SystemExit(f"--batch-size {batch} must divide by {replicas}")

    dataset = make_dataset(config, batch, size)
    models, timers, initial = {}, {}, None
    for name, strategy in strategies.items():
        if name not in settings["cases"] and settings["cases"]:
            continue
        log(f"build {name}")
        models[name] = build_trainer(config, strategy, settings, initial)
        initial = initial or models[name].get_weights()
        timers[name] = EpochTimer()
    # Warm-up epochs (tracing and XLA compilation happen here).
    for name, model in models.items():
        log(f"warm-up {name}")
        for _ in range(settings["warmup"]):
            model.fit(
                dataset,
                epochs=1,
                steps_per_epoch=steps,
                verbose=0,
                shuffle=False,
                callbacks=[timers[name]],
            )
        timers[name].seconds.clear()
    names = list(models)
    for rep in range(settings["reps"]):
        offset = rep % len(names)
        for name in names[offset:] + names[:offset]:
            models[name].fit(
                dataset,
                epochs=1,
                steps_per_epoch=steps,
                verbose=0,
                shuffle=False,
                callbacks=[timers[name]],
            )
        log(f"rep {rep + 1}/{settings['reps']} done")

    rows = []
    for name in names:
        per_epoch = [steps * batch / s for s in timers[name].seconds]
        step_ms = [1000 * s / steps for s in timers[name].seconds]
        rows.append(
            {
                "name": name,
                "group": "fit",
                "batch": batch,
                "what": f"{'tiny stand-in: ' if settings['smoke'] else ''}"
                f"{args.preset} {size}px {list(config.locations_per_level)}",
                "images_per_s": round(statistics.median(per_epoch), 3),
                "images_per_s_min": round(min(per_epoch), 3),
                "images_per_s_max": round(max(per_epoch), 3),
                "ms_per_call": round(statistics.median(step_ms), 3),
                "ms_per_image": round(statistics.median(step_ms) / batch, 4),
                "ms_per_image_min": round(min(step_ms) / batch, 4),
                "ms_per_image_max": round(max(step_ms) / batch, 4),
                "samples_s": [round(s, 4) for s in timers[name].seconds],
                "notes": [
                    f"{settings['steps']} steps/epoch, "
                    f"{statistics.median(per_epoch):.2f} img/s"
                ],
            }
        )
    checks = []
    if settings["precision"] != "float32" or settings["jit"]:
        spec = {
            "name": "forward",
            "kind": "tnet",
            "preset": args.preset,
            "size": size,
            "batch": 2,
            "locations": list(config.locations_per_level),
            "precision": settings["precision"],
            "jit": settings["jit"],
        }
        checks.append(common.check_case(spec, ctx))
    results = {row["name"]: row for row in rows}
    comparisons = [
        common.comparison(
            "mirrored / single (images/s)",
            "mirrored",
            "single",
            "images_per_s",
            results,
            meaning="throughput of MirroredStrategy vs one "
            "device, same global batch",
        ),
    ]
    comparisons = [c for c in comparisons if c["ratio"] is not None]
    notes.append(
        "ms/call = median ms per training step (ms/image = "
        "that / global batch); images/s = steps * batch / epoch time"
    )
    result = common.report(
        "training_throughput", env, settings, rows, comparisons, checks, notes
    )
    return 0 if all(c["passed"] for c in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
