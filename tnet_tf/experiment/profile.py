"""The profile verb: parameters, multiply-adds, time and memory.

- `run_profile`: params, multiply-adds, ms per image and peak memory of a
  recipe's model per location setting, as the paper's Tables 1 and 2;
  `profile_table` lays them out.
- `parse_flags`, `main`: the command line of `python -m tnet_tf.profiling`
  (params and multiply-adds of presets, `tnet_tf.profiling.profile_preset`).
"""

import argparse
import importlib
import json
import os
import sys

import keras
import tensorflow as tf
from absl.flags import argparse_flags

from tnet_tf import profiling
from tnet_tf.experiment.inference import measure_inference
from tnet_tf.experiment.locations import MODEL_DEFAULT
from tnet_tf.experiment.locations import format_locations
from tnet_tf.experiment.locations import parse_locations
from tnet_tf.experiment.locations import setting_columns
from tnet_tf.experiment.models import build_model
from tnet_tf.experiment.models import location_settings
from tnet_tf.experiment.models import resolve_recipe
from tnet_tf.experiment.run_folder import PROFILE_DIR
from tnet_tf.experiment.run_folder import load_checkpoint
from tnet_tf.experiment.run_folder import write_experiment_file
from tnet_tf.experiment.tables import SETTING_COLUMNS
from tnet_tf.experiment.tables import billions
from tnet_tf.experiment.tables import format_table
from tnet_tf.experiment.tables import write_csv


def run_profile(
    recipe,
    *,
    workdir=None,
    checkpoint=None,
    locations=None,
    overrides=(),
    batch_size=None,
    repetitions=10,
    warmup=2,
    output_csv=None,
):
    """Params, multiply-adds, ms per image and peak memory per setting.

    The paper's Tables 1 and 2 (inference, batch 64). The model is the
    checkpoint when given, else the preset freshly built (timing does not
    depend on the weights).

    Args:
        recipe: a recipe name or an `ExperimentConfig`.
        workdir: where `profile/profile.csv` and `experiment.json` go
            (nothing is written without it or `output_csv`).
        checkpoint: optional `.keras` file.
        locations: settings; default the recipe's `evaluation_locations`.
        overrides: `"key=value"` strings.
        batch_size: images per timed call; default the recipe's.
        repetitions, warmup: see `measure_inference`.
        output_csv: where to write the CSV.

    Returns:
        One dict per setting: `model`, `image_size`, `locations`,
        `attended`, `params`, `flops`, `batch_size`, and the keys of
        `measure_inference` but `ms_per_image_all`.
    """
    recipe = resolve_recipe(recipe, overrides)
    model = load_checkpoint(checkpoint) if checkpoint else build_model(recipe)
    batch = batch_size or recipe.batch_size
    height, width = recipe.image_size
    images = tf.random.stateless_uniform(
        (batch, height, width, 3), seed=(recipe.seed, 0), minval=-1, maxval=1
    )
    rows = []
    for setting in location_settings(recipe, model, locations):
        counts = profiling.profile(model, recipe.image_size, setting)
        timing = measure_inference(model, images, setting, repetitions, warmup)
        timing.pop("ms_per_image_all")
        rows.append(
            {
                "recipe": recipe.name,
                "model": model.name,
                "image_size": f"{height}x{width}",
                **setting_columns(model, setting),
                "params": counts["params"],
                "flops": counts["flops"],
                "batch_size": batch,
                **timing,
            }
        )
    if workdir:
        write_experiment_file(recipe, workdir)
        output_csv = output_csv or os.path.join(
            workdir, PROFILE_DIR, "profile.csv"
        )
    if output_csv:
        write_csv(output_csv, rows)
    return rows


def profile_table(rows):
    """The profile rows laid out as the paper's Tables 1 and 2."""
    sources = {row["memory_source"] for row in rows}
    notes = [""]
    if "gpu_peak" in sources:
        notes.append(
            "Memory: peak TensorFlow allocation on the GPU during the timed "
            "batches (tf.config.experimental.get_memory_info), weights "
            "included."
        )
    if "cpu_peak_rss_increase" in sources:
        notes.append(
            "Memory: how far the process's peak resident set rose during "
            "the timed batches above its resident set before them (VmHWM, "
            "reset first, and VmRSS of /proc/self/status; CPU)."
        )
    notes.append(
        "Time: median (and standard deviation) of ms/image over the timed "
        f"batches of {rows[0]['batch_size'] if rows else '?'} images, "
        "warm-up excluded."
    )
    return format_table(
        rows,
        SETTING_COLUMNS
        + [
            ("FLOPs (B)", lambda r: billions(r["flops"])),
            ("#Params (M)", lambda r: f"{r['params'] / 1e6:.2f}"),
            (
                "Time (ms/im)",
                lambda r: (
                    f"{r['ms_per_image']:.2f} ± {r['ms_per_image_std']:.2f}"
                ),
            ),
            ("Memory (GB)", lambda r: f"{r['memory_bytes'] / 1e9:.3f}"),
        ],
        notes,
    )


# === python -m tnet_tf.profiling ===

# The table of `python -m tnet_tf.profiling`: one row per preset.
PRESET_COLUMNS = [
    ("preset", lambda r: r["preset"]),
    ("image size", lambda r: "{}x{}".format(*r["image_size"])),
    (
        "locations",
        lambda r: (
            "-"
            if r["locations_per_level"] is None
            else format_locations(r["locations_per_level"])
        ),
    ),
    ("params", lambda r: f"{r['params']:,}"),
    ("multiply-adds", lambda r: f"{r['flops'] / 1e9:.3f} G"),
]


def preset_table(rows):
    """A text table of profiling results (dicts from `profile_preset`)."""
    return format_table(rows, PRESET_COLUMNS)


def _json_line(row):
    keys = ["preset", "params", "flops", "locations_per_level", "image_size"]
    return json.dumps({key: row[key] for key in keys})


def parse_flags(argv):
    """Parses the command line (`argv[0]` is the program name).

    absl's flag style, as every entry point: `--image_size 224` or
    `--image_size=224` (the dashed `--image-size` is still read).
    """
    parser = argparse_flags.ArgumentParser(
        prog="python -m tnet_tf.profiling",
        description="Parameters and multiply-adds per image of TNet presets.",
        # Only this module's flags: absl flags defined elsewhere in the
        # process (e.g. experiments.flags' --preset) would clash.
        inherited_absl_flags=None,
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--preset", help="preset name (tnet_tf.presets).")
    target.add_argument(
        "--all",
        action="store_true",
        help="profile every preset at its default settings.",
    )
    parser.add_argument(
        "--locations",
        default="",
        help='locations per level, e.g. "2,1", or "none" (level 1 alone); '
        "empty: the preset default.",
    )
    parser.add_argument(
        "--image_size",
        type=int,
        default=None,
        help="square input size in pixels; default: the preset's.",
    )
    # The spelling before absl's underscores, still read; not listed.
    parser.add_argument(
        "--image-size",
        dest="image_size",
        type=int,
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line per preset instead of a table.",
    )
    args = parser.parse_args(argv[1:])
    try:
        args.locations = parse_locations(args.locations, empty=MODEL_DEFAULT)
    except ValueError as error:
        parser.error(str(error))
    if args.all and (args.locations is not None or args.image_size):
        parser.error(
            "--all profiles presets at their defaults; drop --locations "
            "and --image_size."
        )
    return args


def main(args):
    """Prints the profile of `args.preset`, or of every preset (`--all`)."""
    if args.all:
        # Through sys.modules, as `profiling.profile_preset` (tests
        # substitute it).
        names = importlib.import_module("tnet_tf.presets").names()
        rows = []
        for index, name in enumerate(names, start=1):
            print(
                f"[{index}/{len(names)}] {name} ...",
                file=sys.stderr,
                flush=True,
            )
            row = profiling.profile_preset(name)
            # Frees the previous preset's graph and variables.
            keras.backend.clear_session()
            if args.json:
                print(_json_line(row), flush=True)
            rows.append(row)
        if not args.json:
            print(preset_table(rows))
        return
    row = profiling.profile_preset(
        args.preset, args.image_size, args.locations
    )
    if args.json:
        print(_json_line(row))
    else:
        print(preset_table([row]))
