"""Anytime inference against fixed numbers of locations, on the demo.

Reads a finished `make demo` folder (default `runs/demo`), rebuilds its
test canvases, and measures side by side, with TNet's final weights, the
top-1, average multiply-adds and wall-clock time per image of:

- **fixed k**: `model(images, locations_per_level=[k])`, k = 1..8;
- **threshold t**: `model.predict_anytime(images, threshold=t,
  max_locations=8)`: each image stops once its top softmax probability
  reaches t;
- **budget b**: `model.predict_anytime(images, budget=b * batch,
  max_locations=8)`: b locations per image on average, spent on the least
  certain images of each batch.

Every method runs eagerly on the same batches; times are the medians of
`--reps` passes over the test canvases, the methods interleaved batch by
batch within each pass, in wall-clock seconds and in the process's CPU seconds (all
threads): on a machine shared with other jobs the CPU time is the steadier
measure of the work done. Multiply-adds come from `tnet_tf.profiling` (the anytime
methods include the cost of checking the prediction after each step).
The target (issue 16): an anytime setting reaches the best fixed-k top-1
at <= 70% of its multiply-adds, with the time per image improving
accordingly.

    python -m bench.anytime [--workdir runs/demo] [--reps 3]
    python -m bench.anytime --tiny   # untrained tiny model, seconds

Prints a table and one JSON line (`bench_anytime {...}`).
"""

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import demo
from tnet_tf import presets
from tnet_tf import profiling

FIXED = tuple(range(1, 9))
THRESHOLDS = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
BUDGETS = (3, 4, 4.5, 5)
# `--tiny`: only a few settings, so that the run takes seconds.
TINY = {"fixed_k": (1, 2, 3), "thresholds": (0.5,), "budgets": (2,)}
TARGET = 0.7


def load(args):
    """`(model, canvases uint8, labels)` of the demo run, or of an
    untrained tiny TNet on a few small canvases with `--tiny`."""
    if args.tiny:
        config = demo.DemoConfig(canvas_size=128, test_canvases=args.images)
        keras.utils.set_random_seed(config.seed)
        model = presets.build_model(
            presets.get(demo.TNET_PRESET).replace(
                image_size=config.canvas_size, locations_per_level=(8,)
            )
        )
    else:
        # Imported here: the tiny run needs no demo folder.
        from bench import demo_policy

        config, model = demo_policy.load_run(args.workdir)
        config = config.replace(
            test_canvases=args.images or config.test_canvases
        )
    progress = keras.utils.Progbar(
        config.test_canvases, unit_name="canvas", verbose=0
    )
    canvases, labels, _ = demo.generate_canvases(
        config, "test", config.test_canvases, progress
    )
    return model, canvases, labels


def methods(model, fixed_k, thresholds, budgets):
    """`{name: (kind, setting, run(images) -> (logits, locations, macs))}`.

    The fixed calls are compiled (`tf.function`) as anytime inference's
    own pieces are, so neither pays eager per-layer overhead.
    """
    table = {}
    max_locations = max(fixed_k)
    for k in fixed_k:
        call = tf.function(
            lambda images, k=k: model(
                images, training=False, locations_per_level=[k]
            )["logits"],
            reduce_retracing=True,
        )

        def fixed(images, call=call):
            return call(images).numpy(), None, None

        table[f"fixed k={k}"] = ("fixed", k, fixed)
    for threshold in thresholds:

        def until_sure(images, threshold=threshold):
            out = model.predict_anytime(
                images, threshold=threshold, max_locations=max_locations
            )
            return out.logits, out.locations, out.multiply_adds

        table[f"threshold {threshold:g}"] = (
            "threshold",
            threshold,
            until_sure,
        )
    for budget in budgets:

        def budgeted(images, budget=budget):
            out = model.predict_anytime(
                images,
                budget=round(budget * len(images)),
                max_locations=max_locations,
            )
            return out.logits, out.locations, out.multiply_adds

        table[f"budget {budget:g}/image"] = ("budget", budget, budgeted)
    return table


def run(model, batches, labels, table, reps):
    """Per method: top-1, mean locations and multiply-adds, and the
    median seconds of a pass over all batches."""
    side = batches[0].shape[1:3]
    cost = model.predict_anytime(batches[0][:1], max_locations=1).cost
    results = {}
    for name, (kind, setting, _) in table.items():
        results[name] = {
            "kind": kind,
            "setting": setting,
            "seconds": [],
            "cpu_seconds": [],
        }
    # Warm-up (tracing, first-call allocations) outside the timing.
    for _, _, method in table.values():
        method(batches[0])
    outputs = {name: [] for name in table}
    for rep in range(reps):
        # Interleaved batch by batch: a change of load on the shared
        # machine falls on every method alike.
        for name in table:
            results[name]["seconds"].append(0.0)
            results[name]["cpu_seconds"].append(0.0)
        for images in batches:
            for name, (_, _, method) in table.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                out = method(images)
                results[name]["seconds"][-1] += time.perf_counter() - start
                results[name]["cpu_seconds"][-1] += (
                    time.process_time() - cpu_start
                )
                if not rep:
                    outputs[name].append(out)
    for name, (kind, setting, _) in table.items():
        logits, locations, macs = zip(*outputs[name])
        predicted = np.concatenate(logits).argmax(-1)
        row = results[name]
        row["top1"] = float(np.mean(predicted == labels))
        if kind == "fixed":
            # The model's own count at k, and the anytime cost model's.
            row["macs"] = profiling.profile(model, tuple(side), [setting])[
                "flops"
            ]
            assert row["macs"] == cost.fixed(setting), (name, cost)
            row["locations"] = float(setting)
        else:
            row["macs"] = float(np.mean(np.concatenate(macs)))
            row["locations"] = float(np.mean(np.concatenate(locations)))
    count = len(labels)
    for row in results.values():
        for key, name in (("seconds", "ms"), ("cpu_seconds", "cpu_ms")):
            row[f"{name}_per_image"] = (
                1000 * statistics.median(row[key]) / count
            )
            row[key] = [round(s, 4) for s in row[key]]
    return results


def summary(results):
    """The best fixed-k top-1, and the cheapest anytime setting that
    reaches it: its multiply-adds and time as fractions of that k's."""
    fixed = {n: r for n, r in results.items() if r["kind"] == "fixed"}
    # The best top-1; among equals, the fewest locations.
    best = max(fixed, key=lambda n: (fixed[n]["top1"], -fixed[n]["macs"]))
    reaching = [
        n
        for n, r in results.items()
        if r["kind"] != "fixed" and r["top1"] >= fixed[best]["top1"]
    ]
    out = {"best_fixed": best, "best_fixed_top1": fixed[best]["top1"]}
    if not reaching:
        out.update(anytime=None, target_met=False)
        return out
    cheapest = min(reaching, key=lambda n: results[n]["macs"])
    macs_ratio = results[cheapest]["macs"] / fixed[best]["macs"]
    time_ratio, cpu_ratio = (
        results[cheapest][key] / fixed[best][key]
        for key in ("ms_per_image", "cpu_ms_per_image")
    )
    out.update(
        anytime=cheapest,
        anytime_top1=results[cheapest]["top1"],
        macs_ratio=round(macs_ratio, 4),
        time_ratio=round(time_ratio, 4),
        throughput_gain=round(1 / time_ratio, 4),
        cpu_time_ratio=round(cpu_ratio, 4),
        target=f"macs_ratio <= {TARGET}",
        target_met=macs_ratio <= TARGET,
    )
    return out


def print_table(results, best):
    base = results[best]
    print(
        f"{'method':18s} {'top1 %':>7s} {'locations':>9s} {'MMACs':>7s} "
        f"{'MACs/best':>9s} {'ms/image':>8s} {'time/best':>9s} "
        f"{'cpu/best':>8s}"
    )
    for name, row in results.items():
        print(
            f"{name:18s} {100 * row['top1']:7.1f} {row['locations']:9.2f} "
            f"{row['macs'] / 1e6:7.2f} {row['macs'] / base['macs']:9.3f} "
            f"{row['ms_per_image']:8.3f} "
            f"{row['ms_per_image'] / base['ms_per_image']:9.3f} "
            f"{row['cpu_ms_per_image'] / base['cpu_ms_per_image']:8.3f}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=250)
    parser.add_argument(
        "--images", type=int, default=None, help="test canvases (default all)"
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="an untrained tiny TNet on 128 px canvases: checks the "
        "script runs; its numbers mean nothing",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.images = args.images or 16
        args.batch_size = min(args.batch_size, 8)
    model, canvases, labels = load(args)
    batches = [
        demo.model_inputs(canvases[start : start + args.batch_size])
        for start in range(0, len(canvases), args.batch_size)
    ]
    if args.tiny:
        table = methods(model, **TINY)
    else:
        table = methods(model, FIXED, THRESHOLDS, BUDGETS)
    results = run(model, batches, labels, table, args.reps)
    report = summary(results)
    print()
    print_table(results, report["best_fixed"])
    print()
    for key, value in report.items():
        print(f"{key:18s} {value}")
    line = {
        "tiny": args.tiny,
        "images": len(labels),
        "batch_size": args.batch_size,
        "reps": args.reps,
        "cpu_count": os.cpu_count(),
        "summary": report,
        "methods": results,
    }
    print("bench_anytime " + json.dumps(line, sort_keys=True))
    return line


if __name__ == "__main__":
    main()
