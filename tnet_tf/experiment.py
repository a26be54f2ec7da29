"""One experiment's life: train, evaluate, profile, export, predict, draw.

The library behind the thin entry points of `experiments/`: each entry point
parses its flags, resolves a recipe (`tnet_tf.recipes.resolve`) and calls
one function here.

- `run_training`: builds the recipe's model under a distribution strategy,
  restores an earlier stage's weights (`restore_from`), trains with
  `tnet_tf.training.fit` (default and mirrored strategies) or
  `tnet_tf.distributed.train_loop` (multi-worker, where Keras `fit` fails on
  TensorFlow 2.21), and saves `checkpoints/final.keras`.
- `run_evaluation`: top-1 / top-5 (and multiply-adds) of one checkpoint at
  several location settings in one run; a CSV in `evaluation/`.
- `run_profile`: parameters, multiply-adds, ms per image and peak memory per
  location setting, as the paper's Tables 1 and 2.
- `run_export`: SavedModel (one endpoint per setting) and `.keras`.
- `run_predict`: one image file -> top-k classes and a PNG of the attended
  boxes.
- `run_visualize`: a grid of attention pictures of a split, the per-image
  CSV of attended cells and cell probabilities, and the accuracy-vs-FLOPs
  plot from evaluation CSVs.

The on-disk layout of a working directory is described in WORKSPACE.md.
"""

import csv
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import config as config_lib
from tnet_tf import distributed
from tnet_tf import export
from tnet_tf import presets
from tnet_tf import profiling
from tnet_tf import recipes
from tnet_tf import training
from tnet_tf import viz
from tnet_tf.data import augment
from tnet_tf.data import pipelines
from tnet_tf.data import records
from tnet_tf.model import TNet

# === Working-directory layout (WORKSPACE.md) ===
EXPERIMENT_FILE = "experiment.json"
FINAL_CHECKPOINT = os.path.join("checkpoints", "final.keras")
BEST_CHECKPOINT = os.path.join("checkpoints", "best.keras")
EVALUATION_DIR = "evaluation"
PROFILE_DIR = "profile"
EXPORT_DIR = "export"
FIGURES_DIR = "figures"
LOOPS = ("fit", "custom")


# === Shared pieces ===


def parse_locations(text):
    """One `--locations` value: `"2,1"` -> `(2, 1)`, `"none"` -> `()`.

    `"none"` (or an empty string) is level 1 alone, the release's
    1-level evaluation; `"0"` runs the location module and attends nothing.
    """
    text = str(text).strip().lower()
    if text in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            "A location setting is comma-separated ints such as 2,1 (or "
            f"'none' for level 1 alone), got {text!r}."
        ) from None


def format_locations(setting):
    """Inverse of `parse_locations`; `None` (a baseline) gives `""`."""
    if setting is None:
        return ""
    return ",".join(str(k) for k in setting) if setting else "none"


def attended_locations(setting):
    """Attended regions of a setting: `k1 + k1*k2 + ...` (`[2, 1]` -> 4)."""
    total, product = 0, 1
    for count in setting or ():
        product *= count
        total += product
    return total


def write_experiment_file(recipe, directory):
    """Writes the resolved recipe and its model config as JSON."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, EXPERIMENT_FILE)
    content = {
        "experiment": recipe.to_dict(),
        "model": recipe.model_config().to_dict(),
    }
    with open(path, "w") as file:
        json.dump(content, file, indent=2, sort_keys=True)
    return path


def build_model(recipe):
    """A fresh `TNet` or `BaselineClassifier` for the recipe's model config."""
    return presets.build_model(recipe.model_config())


def load_checkpoint(path):
    """A model from a `.keras` checkpoint (uncompiled)."""
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No checkpoint at {path!r}; train first (experiments.train) or "
            "pass --checkpoint."
        )
    return keras.saving.load_model(path, compile=False)


def default_checkpoint(workdir, checkpoint=None):
    """`checkpoint`, or the final checkpoint of `workdir`."""
    return checkpoint or os.path.join(workdir, FINAL_CHECKPOINT)


def restore_weights(model, path):
    """Copies the weights of the checkpoint at `path` into `model`.

    Model weights only (no optimizer state): the step and the schedule
    restart, as the release's fMoW stage 2. The two models must have the
    same weights in the same order, as a TNet preset and its deeper stage.
    """
    source = load_checkpoint(path)
    shapes = [tuple(w.shape) for w in source.weights]
    expected = [tuple(w.shape) for w in model.weights]
    if shapes != expected:
        raise ValueError(
            f"The checkpoint {path!r} ('{source.name}', {len(shapes)} "
            f"weights) does not fit '{model.name}' ({len(expected)} weights)."
        )
    model.set_weights(source.get_weights())


def make_optimizers(recipe):
    """Adam with the recipe's piecewise-constant schedule (and a second one
    for the backbone when `backbone_learning_rate` is set)."""

    def adam(rate):
        return keras.optimizers.Adam(
            training.learning_rate_schedule(
                rate,
                recipe.total_steps,
                recipe.schedule_drops,
                recipe.lr_decay_factor,
            )
        )

    backbone = recipe.backbone_learning_rate
    return adam(recipe.learning_rate), (
        adam(backbone) if backbone is not None else None
    )


def compile_for_training(model, recipe):
    """Compiles `model` with the recipe's optimizers (and TNet's loss variant)."""
    optimizer, backbone_optimizer = make_optimizers(recipe)
    options = {}
    if isinstance(model, TNet):
        options["loss_variant"] = recipe.loss_variant
    model.compile(
        optimizer=optimizer,
        backbone_optimizer=backbone_optimizer,
        jit_compile=recipe.jit_compile,
        **options,
    )


def compile_for_evaluation(model):
    """Compiles for `evaluate` (plain SGD: no optimizer slots are used)."""
    model.compile(optimizer=keras.optimizers.SGD(), jit_compile=False)


def make_input(
    recipe, data_dir, split, training, source="records", skip_batches=0
):
    """The recipe's pipeline of `split`, seeded (the same batches every run)
    and starting after `skip_batches` batches; evaluation stops at
    `eval_steps`."""
    dataset = pipelines.make_dataset(
        recipe.dataset,
        data_dir,
        split,
        training=training,
        batch_size=recipe.batch_size,
        image_size=recipe.image_size,
        seed=recipe.seed,
        source=source,
        skip_batches=skip_batches,
    )
    if not training and recipe.eval_steps:
        dataset = dataset.take(recipe.eval_steps)
    return dataset


def location_settings(recipe, model, locations=None):
    """The settings to evaluate: `locations`, else the recipe's, else the
    model's default; `[None]` for a baseline."""
    if not isinstance(model, TNet):
        if locations:
            raise ValueError(
                f"'{model.name}' is a baseline: it takes no location settings, "
                f"got {[format_locations(s) for s in locations]}."
            )
        return [None]
    settings = locations or recipe.evaluation_locations
    if not settings:
        settings = [model.config.locations_per_level]
    return [model.resolve_locations(setting) for setting in settings]


def _call(model, images, setting):
    """The model's output dict (a baseline's logits as `{"logits": ...}`)."""
    if isinstance(model, TNet):
        return model(images, training=False, locations_per_level=setting)
    return {"logits": model(images, training=False)}


def _to_numpy(outputs):
    """An output dict as NumPy arrays (`location_probs` stays a tuple)."""
    return {
        key: (
            tuple(np.asarray(p) for p in value)
            if key == "location_probs"
            else np.asarray(value)
        )
        for key, value in outputs.items()
    }


def write_csv(path, rows):
    """Writes dict rows (columns in first-seen order) and returns `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    viz.attention_csv(path, rows)
    return path


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def format_table(rows, columns, notes=()):
    """A text table: `columns` is a list of `(header, function of a row)`."""
    lines = [[header for header, _ in columns]]
    lines += [[str(cell(row)) for _, cell in columns] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    text = []
    for index, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
        text.append("  ".join(cells))
        if index == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text + list(notes))


def _resolve(recipe, overrides):
    if isinstance(recipe, recipes.ExperimentConfig) and not overrides:
        return recipe.resolve()
    return recipes.resolve(recipe, overrides=overrides)


# === Training ===


@dataclasses.dataclass
class TrainingResult:
    """What `run_training` returns.

    Attributes:
        history: metric name -> list of per-epoch values.
        workdir: where this process wrote (a temporary folder on
            multi-worker workers other than the chief, removed at the end).
        final_checkpoint: `checkpoints/final.keras`, the weights the
            release evaluates (no best-checkpoint selection).
        best_checkpoint: `checkpoints/best.keras` (highest `val_top1`), or
            `None` without validation.
        experiment_file: the resolved recipe, `experiment.json`.
    """

    history: dict
    workdir: str
    final_checkpoint: str
    best_checkpoint: str = None
    experiment_file: str = None


def run_training(
    recipe,
    workdir,
    data_dir,
    strategy="default",
    overrides=(),
    *,
    restore_path=None,
    loop=None,
    validate=True,
    source="records",
    verbose="auto",
    backup_steps=training.DEFAULT_BACKUP_STEPS,
    deterministic_ops=False,
):
    """Trains a recipe in `workdir` and saves `checkpoints/final.keras`.

    A run is seeded by `recipe.seed` (the input order and augmentation, the
    initial weights, cell sampling and dropout): the same recipe on the same
    CPU machine gives the same weights (on GPUs see `deterministic_ops`).
    It backs up into `workdir/backup` every
    `backup_steps` steps and at every epoch end; calling again with the
    same arguments after a kill resumes from the last backup, with the
    input at the same batch, and ends with the weights of an uninterrupted
    run.

    Args:
        recipe: a recipe name or an `ExperimentConfig`.
        workdir: the run's folder (WORKSPACE.md).
        data_dir: the record folder of the recipe's dataset.
        strategy: `"default"`, `"mirrored"`, `"multi_worker"` (reads
            `TF_CONFIG`) or a `tf.distribute.Strategy`.
        overrides: `"key=value"` strings (`tnet_tf.recipes.apply_overrides`).
        restore_path: the checkpoint to start from; defaults to the
            recipe's `restore_from` looked up next to `workdir`
            (`<runs>/<recipe>/checkpoints/final.keras`).
        loop: `"fit"` (Keras `fit` with the callbacks of
            `tnet_tf.training`) or `"custom"` (`distributed.train_loop`,
            with validation, the best checkpoint, TensorBoard and the same
            backups); by default `"custom"` for multi-worker, where `fit`
            fails on TF 2.21, else `"fit"`.
        validate: validate on `eval_steps` batches of the evaluation split
            after every epoch and keep the best checkpoint (the custom
            loop drops a last partial global batch).
        source: `"records"` or `"tfds"` (`tnet_tf.data.make_dataset`).
        verbose: Keras verbosity.
        backup_steps: training steps between backups (0: epoch ends only).
        deterministic_ops: `tf.config.experimental.enable_op_determinism`
            for the rest of the process: kernels with a deterministic
            variant use it, and ones without raise. Seeded runs already
            repeat on CPU (where it cost no measurable time); this is for
            GPUs, whose reductions and scatters otherwise add in a varying
            order, at a cost not measured here.

    Returns:
        A `TrainingResult`.
    """
    recipe = _resolve(recipe, overrides)
    kind = strategy if isinstance(strategy, str) else None
    if kind is not None:
        strategy = distributed.make_strategy(kind)
    loop = loop or ("custom" if kind == "multi_worker" else "fit")
    if loop not in LOOPS:
        raise ValueError(f"`loop` must be one of {LOOPS}, got {loop!r}.")
    chief = distributed.is_chief(strategy)
    # Workers other than the chief write into a scratch folder (TF guide on
    # multi-worker saving): every worker saves, only the chief's copy stays.
    directory = workdir if chief else tempfile.mkdtemp(prefix="tnet_worker_")
    keras.utils.set_random_seed(recipe.seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    if restore_path is None:
        runs_dir = os.path.dirname(os.path.abspath(workdir))
        restore_path = recipe.restore_path(runs_dir)

    # Every worker reads the chief's backup; the input starts after the
    # batches it has trained, so none is read (or decoded) twice.
    backup_dir = os.path.join(workdir, training.BACKUP_FOLDER)
    resumed = training.backup_position(workdir)
    train = make_input(
        recipe,
        data_dir,
        recipe.train_split,
        True,
        source,
        skip_batches=resumed.batches,
    )
    validation = (
        make_input(recipe, data_dir, recipe.eval_split, False, source)
        if validate
        else None
    )
    with strategy.scope():
        model = build_model(recipe)
        if restore_path:
            restore_weights(model, restore_path)
        compile_for_training(model, recipe)
    # Written once the inputs and the model are built, so that a run that
    # fails on its arguments (records, restore path) leaves nothing behind.
    experiment_file = write_experiment_file(recipe, directory)
    if loop == "fit":
        # Attention pictures need a TNet: a baseline attends nothing.
        pictures = {}
        if not isinstance(model, TNet):
            pictures["validation_images"] = None
        history = training.fit(
            model,
            train,
            epochs=recipe.epochs,
            workdir=directory,
            steps_per_epoch=recipe.steps_per_epoch,
            validation_data=validation,
            verbose=verbose,
            backup_steps=backup_steps,
            input_starts_at="backup",
            delete_backup=False,  # once the final checkpoint is written
            **pictures,
        )
    else:
        history = distributed.train_loop(
            model,
            train,
            strategy=strategy,
            steps=recipe.steps_per_epoch,
            global_batch_size=recipe.batch_size,
            epochs=recipe.epochs,
            verbose=0 if verbose == 0 else 2,
            validation_data=validation,
            callbacks=training.make_callbacks(
                directory, backup=False, best_checkpoint=validate
            ),
            backup_dir=backup_dir,
            backup_steps=backup_steps,
            input_starts_at="backup",
            delete_backup=False,  # once the final checkpoint is written
        )
    final = os.path.join(directory, FINAL_CHECKPOINT)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    export.save_keras(model, final)
    training.TrainingBackup(backup_dir, writer=chief).delete()
    best = os.path.join(directory, BEST_CHECKPOINT)
    result = TrainingResult(
        history={
            key: [float(v) for v in values]
            for key, values in history.history.items()
        },
        workdir=directory,
        final_checkpoint=final,
        best_checkpoint=best if os.path.exists(best) else None,
        experiment_file=experiment_file,
    )
    if not chief:
        shutil.rmtree(directory, ignore_errors=True)
    return result


# === Evaluation ===


def run_evaluation(
    recipe,
    workdir,
    data_dir,
    *,
    checkpoint=None,
    locations=None,
    split=None,
    overrides=(),
    output_csv=None,
    count_flops=True,
    source="records",
    verbose=0,
):
    """Top-1 / top-5 of one checkpoint at several location settings.

    The weights do not depend on the number of locations, so one model is
    evaluated at every setting (the release re-ran its evaluation per
    `--loc_per_grid`). Evaluation is greedy, without dropout.

    Args:
        recipe: a recipe name or an `ExperimentConfig`.
        workdir: the run's folder; the CSV goes to
            `evaluation/<split>.csv` unless `output_csv` is given.
        data_dir: the record folder.
        checkpoint: a `.keras` file; default `checkpoints/final.keras`.
        locations: settings such as `[(2, 1), (0,), ()]`; default the
            recipe's `evaluation_locations` (a baseline has one row).
        split: default the recipe's `eval_split`.
        overrides: `"key=value"` strings.
        output_csv: where to write the CSV.
        count_flops: add multiply-adds per image (`tnet_tf.profiling`).
        source: `"records"` or `"tfds"`.
        verbose: Keras verbosity.

    Returns:
        A list of dicts, one per setting: `recipe`, `model`, `split`,
        `locations` (`"2,1"`, `"none"` for level 1 alone, `""` for a
        baseline), `attended`, `top1`, `top5` (fractions), `flops`,
        `params`, `image_size`, `checkpoint`; also written as CSV.
    """
    recipe = _resolve(recipe, overrides)
    split = split or recipe.eval_split
    checkpoint = default_checkpoint(workdir, checkpoint)
    model = load_checkpoint(checkpoint)
    compile_for_evaluation(model)
    dataset = make_input(recipe, data_dir, split, False, source)
    settings = location_settings(recipe, model, locations)
    write_experiment_file(recipe, workdir)  # once the arguments are checked
    height, width = recipe.image_size
    rows = []
    for setting in settings:
        kwargs = {} if setting is None else {"locations_per_level": setting}
        logs = model.evaluate(
            dataset, return_dict=True, verbose=verbose, **kwargs
        )
        flops = (
            profiling.profile(model, recipe.image_size, setting)["flops"]
            if count_flops
            else ""
        )
        rows.append(
            {
                "recipe": recipe.name,
                "model": model.name,
                "split": split,
                "locations": format_locations(setting),
                "attended": (
                    "" if setting is None else attended_locations(setting)
                ),
                "top1": round(float(logs["top1"]), 6),
                "top5": round(float(logs["top5"]), 6),
                "flops": flops,
                "params": model.count_params(),
                "image_size": f"{height}x{width}",
                "checkpoint": checkpoint,
            }
        )
    output_csv = output_csv or os.path.join(
        workdir, EVALUATION_DIR, f"{split}.csv"
    )
    write_csv(output_csv, rows)
    return rows


# The first columns of the evaluation and profile tables: which model, input
# and location setting a row is about.
SETTING_COLUMNS = [
    ("Model", lambda r: r["model"]),
    ("Input", lambda r: r["image_size"]),
    ("#Locs", lambda r: r["attended"] if r["locations"] else "-"),
    ("Setting", lambda r: r["locations"] or "-"),
]


def evaluation_table(rows):
    """The evaluation rows as a text table (accuracy in %, FLOPs in B)."""
    return format_table(
        rows,
        SETTING_COLUMNS
        + [
            ("Top-1", lambda r: f"{100 * float(r['top1']):.2f}%"),
            ("Top-5", lambda r: f"{100 * float(r['top5']):.2f}%"),
            ("FLOPs (B)", lambda r: _billions(r["flops"])),
            ("#Params (M)", lambda r: f"{int(r['params']) / 1e6:.2f}"),
        ],
    )


def _billions(value):
    return "" if value in ("", None) else f"{float(value) / 1e9:.3f}"


# === Profiling ===


def _peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux: KiB


def measure_inference(model, images, setting, repetitions=10, warmup=2):
    """Milliseconds per image and peak memory of inference on `images`.

    The forward pass is one `tf.function` (greedy, `training=False`). The
    first `warmup` calls (tracing included) are not timed; each of the
    `repetitions` timed calls waits for its logits, and gives
    `elapsed / batch` ms per image.

    Memory: on a GPU, TensorFlow's peak allocation on `GPU:0` during the
    timed calls (`tf.config.experimental.get_memory_info`, weights
    included); on a CPU, how much the process's peak resident set grew
    from before the warm-up (`resource.getrusage`): a lower bound, 0 when
    an earlier peak (e.g. building the model) was higher.

    Returns:
        A dict: `ms_per_image` (median), `ms_per_image_std`,
        `ms_per_image_all` (list), `memory_bytes`, `memory_source`
        (`"gpu_peak"` or `"cpu_peak_rss_increase"`), `device`.
    """
    if repetitions < 1 or warmup < 0:
        raise ValueError(
            f"Need repetitions >= 1 and warmup >= 0, got {repetitions}, "
            f"{warmup}."
        )

    @tf.function
    def forward(batch):
        return _call(model, batch, setting)["logits"]

    gpus = tf.config.list_logical_devices("GPU")
    rss_before = _peak_rss_bytes()
    for _ in range(warmup):
        forward(images).numpy()
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    batch = int(images.shape[0])
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        forward(images).numpy()  # .numpy() waits for the device
        times.append((time.perf_counter() - start) * 1000.0 / batch)
    if gpus:
        memory = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        source = "gpu_peak"
    else:
        memory = max(0, _peak_rss_bytes() - rss_before)
        source = "cpu_peak_rss_increase"
    return {
        "ms_per_image": float(np.median(times)),
        "ms_per_image_std": float(np.std(times)),
        "ms_per_image_all": times,
        "memory_bytes": int(memory),
        "memory_source": source,
        "device": gpus[0].name if gpus else "CPU",
    }


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
    recipe = _resolve(recipe, overrides)
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
                "locations": format_locations(setting),
                "attended": (
                    "" if setting is None else attended_locations(setting)
                ),
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
            "Memory: growth of the process's peak resident set over the "
            "inference (resource.getrusage, CPU); a lower bound, 0 when an "
            "earlier peak was higher."
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
            ("FLOPs (B)", lambda r: _billions(r["flops"])),
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


# === Export ===


def run_export(
    recipe,
    workdir,
    *,
    checkpoint=None,
    locations=None,
    output_dir=None,
    overrides=(),
):
    """Writes the SavedModel and a `.keras` copy of a checkpoint.

    The SavedModel (`tnet_tf.export`) has one endpoint per setting of
    `locations` (default the recipe's `evaluation_locations`) besides
    `serve`, `serve_uint8` and `serve_image_bytes` (resizing to the
    recipe's image size).

    Returns:
        A dict: `saved_model` and `keras` paths, `signature_info`.
    """
    recipe = _resolve(recipe, overrides)
    model = load_checkpoint(default_checkpoint(workdir, checkpoint))
    output_dir = output_dir or os.path.join(workdir, EXPORT_DIR)
    settings = None
    if isinstance(model, TNet):
        settings = location_settings(recipe, model, locations)
        settings = [list(setting) for setting in settings]
    write_experiment_file(recipe, workdir)  # once the arguments are checked
    saved_model = os.path.join(output_dir, "saved_model")
    info = export.export_saved_model(
        model, saved_model, settings, image_size=recipe.image_size
    )
    keras_path = export.save_keras(
        model, os.path.join(output_dir, f"{model.name}.keras")
    )
    return {
        "saved_model": saved_model,
        "keras": keras_path,
        "signature_info": info,
    }


# === Prediction and pictures ===


def read_class_names(path):
    """Class names, one per line (line i is class i), or `None`."""
    if not path:
        return None
    with open(path) as file:
        return [line.strip() for line in file if line.strip()]


def load_predictor(model_path):
    """`(predict, image_size)` for a `.keras` checkpoint or a SavedModel.

    `predict(images, setting)` returns the output dict as NumPy arrays; a
    SavedModel answers from the endpoint of `setting` (`serve` for
    `None`), a checkpoint from the Keras model.
    """
    if os.path.isfile(os.path.join(model_path, "saved_model.pb")):
        served = tf.saved_model.load(model_path)
        assets = os.path.join(model_path, "assets")
        with open(os.path.join(assets, export.SIGNATURE_INFO_FILE)) as file:
            info = json.load(file)

        def predict_saved(images, setting):
            name = (
                export.DEFAULT_ENDPOINT
                if setting is None
                else export.endpoint_name(setting)
            )
            if name not in served.signatures:
                raise config_lib.LocationSettingError(
                    f"The SavedModel has no endpoint {name!r}; it has "
                    f"{sorted(served.signatures)}."
                )
            outputs = served.signatures[name](images=images)
            return {k: v.numpy() for k, v in outputs.items()}

        return predict_saved, tuple(info["image_size"])

    model = load_checkpoint(model_path)

    def predict_keras(images, setting):
        return _to_numpy(_call(model, images, setting))

    return predict_keras, tuple(model.config.image_size)


def run_predict(
    image_path,
    model_path,
    output_png=None,
    *,
    locations=None,
    class_names=None,
    top_k=5,
):
    """Classifies one image file and draws what the model attended.

    The image is preprocessed as in evaluation (square bilinear resize to
    the model's image size, [-1, 1]); the boxes are drawn on the original
    image, one colour per level, each labelled with its location
    probability, under a caption of the top-k classes.

    Args:
        image_path: a JPEG, PNG, GIF or BMP file.
        model_path: a `.keras` checkpoint or an exported SavedModel folder.
        output_png: the picture; default `<image stem>_attention.png` next
            to the image.
        locations: one setting such as `(2, 1)`; default the model's.
        class_names: list of names (`read_class_names`), or `None`.
        top_k: classes listed.

    Returns:
        A dict: `top` (list of `(class, probability)`), `png`, `outputs`.
    """
    predict, image_size = load_predictor(model_path)
    encoded = tf.io.read_file(image_path)
    images = augment.preprocess_for_evaluation(encoded, image_size)[None]
    outputs = predict(images, None if locations is None else list(locations))
    one = viz.outputs_for_image(outputs, 0)
    logits = one["logits"].astype(np.float64)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    ranked = np.argsort(-probabilities, kind="stable")[:top_k]
    top = [
        (
            class_names[c] if class_names else str(int(c)),
            float(probabilities[c]),
        )
        for c in ranked
    ]
    if "attended_boxes" not in one:  # a baseline: the whole image only
        one["attended_boxes"] = np.array([[0.0, 0.0, 1.0, 1.0]])
        one["attended_levels"] = np.array([1])
    if output_png is None:
        stem = os.path.splitext(image_path)[0]
        output_png = f"{stem}_attention.png"
    os.makedirs(os.path.dirname(os.path.abspath(output_png)), exist_ok=True)
    original = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    viz.save_attention_png(
        output_png, original.numpy(), one, class_names=class_names, top_k=top_k
    )
    return {"top": top, "png": output_png, "outputs": outputs}


def _record_filenames(data_dir, split):
    """The `filename` of each record of `split`, in file order (the order
    of the evaluation pipeline)."""
    files = records.list_shards(data_dir, split)
    return tf.data.TFRecordDataset(files).map(
        lambda serialized: records.parse_example(serialized)["filename"]
    )


def _concatenate(batches):
    """One output dict from a list of per-batch NumPy output dicts."""
    merged = {}
    for key in batches[0]:
        if key == "location_probs":
            merged[key] = tuple(
                np.concatenate([b[key][i] for b in batches])
                for i in range(len(batches[0][key]))
            )
        else:
            merged[key] = np.concatenate([b[key] for b in batches])
    return merged


def accuracy_vs_flops(csv_paths, output_png, title=None):
    """Plots top-1 against multiply-adds from evaluation CSVs.

    One line per TNet recipe over its settings (annotated with the number
    of attended locations) and one point per baseline, as the paper's
    Fig. 1b and Fig. 3.
    """
    series = {}
    for path in csv_paths:
        for row in read_csv(path):
            if row.get("flops") in ("", None):
                raise ValueError(
                    f"{path} has no multiply-adds; evaluate with FLOPs counted."
                )
            series.setdefault(row["recipe"], []).append(row)
    if not series:
        raise ValueError(f"No evaluation rows in {list(csv_paths)}.")
    entries = []
    for name, rows in series.items():
        rows = sorted(rows, key=lambda r: float(r["flops"]))
        is_tnet = any(r["locations"] for r in rows)
        entries.append(
            {
                "name": name,
                "flops": [float(r["flops"]) / 1e9 for r in rows],
                "accuracy": [100 * float(r["top1"]) for r in rows],
                "annotations": (
                    [r["attended"] for r in rows] if is_tnet else None
                ),
                "kind": "line" if is_tnet else "points",
            }
        )
    os.makedirs(os.path.dirname(os.path.abspath(output_png)), exist_ok=True)
    viz.accuracy_vs_flops_png(output_png, entries, title=title)
    return output_png


def run_visualize(
    recipe,
    workdir,
    data_dir=None,
    *,
    checkpoint=None,
    split=None,
    locations=None,
    num_images=16,
    csv_images=None,
    eval_csvs=(),
    output_dir=None,
    overrides=(),
):
    """Attention pictures and tables of a split, and the accuracy-vs-FLOPs plot.

    With `data_dir` (a TNet checkpoint needed): `attention_<split>.png`, a
    grid of the first `num_images` images of the split with their attended
    boxes, and `attention_<split>.csv`, one row per image (the first
    `csv_images`, default the whole split up to the recipe's `eval_steps`)
    with the attended cells and every cell's probability
    (`tnet_tf.viz.attention_rows`). With `eval_csvs`:
    `accuracy_vs_flops.png`. Everything goes to `figures/` unless
    `output_dir` is given.

    Returns:
        A dict of the written paths: `grid`, `csv`, `accuracy_vs_flops`.
    """
    recipe = _resolve(recipe, overrides)
    output_dir = output_dir or os.path.join(workdir, FIGURES_DIR)
    os.makedirs(output_dir, exist_ok=True)
    paths = {}
    if eval_csvs:
        paths["accuracy_vs_flops"] = accuracy_vs_flops(
            eval_csvs,
            os.path.join(output_dir, "accuracy_vs_flops.png"),
            title=recipe.dataset,
        )
    if data_dir is None:
        return paths
    split = split or recipe.eval_split
    model = load_checkpoint(default_checkpoint(workdir, checkpoint))
    if not isinstance(model, TNet):
        raise ValueError(
            f"'{model.name}' is a baseline: it attends nothing to draw."
        )
    setting = None
    if locations:
        if len(locations) != 1:
            raise ValueError(
                f"Draw one location setting at a time, got {len(locations)}."
            )
        setting = model.resolve_locations(locations[0])
    dataset = make_input(recipe, data_dir, split, False)
    names = _record_filenames(data_dir, split).batch(recipe.batch_size)
    forward = tf.function(
        lambda images: model(
            images, training=False, locations_per_level=setting
        )
    )
    grid_images, grid_labels, grid_outputs, rows = [], [], [], []
    seen = 0
    for (images, labels), filenames in zip(dataset, names):
        outputs = _to_numpy(forward(images))
        if seen < num_images:
            grid_images.append(images.numpy())
            grid_labels.append(labels.numpy())
            grid_outputs.append(outputs)
        rows += viz.attention_rows(
            outputs, [f.decode() for f in filenames.numpy()], labels.numpy()
        )
        seen += len(labels)
        if seen >= num_images and csv_images is not None and seen >= csv_images:
            break
    if csv_images is not None:
        rows = rows[:csv_images]
    merged = _concatenate(grid_outputs)
    count = min(num_images, len(np.concatenate(grid_labels)))
    merged = {
        k: tuple(p[:count] for p in v) if k == "location_probs" else v[:count]
        for k, v in merged.items()
    }
    paths["grid"] = os.path.join(output_dir, f"attention_{split}.png")
    viz.attention_grid_png(
        paths["grid"],
        np.concatenate(grid_images)[:count],
        merged,
        labels=np.concatenate(grid_labels)[:count],
    )
    paths["csv"] = write_csv(
        os.path.join(output_dir, f"attention_{split}.csv"), rows
    )
    return paths
