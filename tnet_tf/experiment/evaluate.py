"""The evaluate verb: top-1 / top-5 of a checkpoint at several settings.

- `run_evaluation`: one checkpoint evaluated at every location setting in
  one run (and its multiply-adds); a CSV in `evaluation/`.
- `evaluate_setting`: the columns every evaluation row has (the setting,
  top-1, top-5, multiply-adds), for one model at one setting; the demo's
  rows start from it too.
- `evaluate_anytime`: the same columns for anytime inference
  (`model.predict_anytime`, a confidence threshold or a per-batch budget),
  plus the anytime setting and the top-level locations used per image.
- `evaluation_table`: those rows as a text table.
"""

import os

import numpy as np

from tnet_tf import profiling
from tnet_tf.experiment.locations import attended_locations
from tnet_tf.experiment.locations import format_locations
from tnet_tf.experiment.locations import setting_columns
from tnet_tf.experiment.models import compile_for_evaluation
from tnet_tf.experiment.models import location_settings
from tnet_tf.experiment.models import make_input
from tnet_tf.experiment.models import resolve_recipe
from tnet_tf.experiment.run_folder import EVALUATION_DIR
from tnet_tf.experiment.run_folder import default_checkpoint
from tnet_tf.experiment.run_folder import load_checkpoint
from tnet_tf.experiment.run_folder import write_experiment_file
from tnet_tf.experiment.tables import SETTING_COLUMNS
from tnet_tf.experiment.tables import billions
from tnet_tf.experiment.tables import format_table
from tnet_tf.experiment.tables import write_csv


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
    anytime=(),
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
        anytime: anytime settings evaluated after the fixed ones, each
            `("threshold", t)` or `("budget", b)` (`evaluate_anytime`; b
            locations per image on average), at most the model's default
            locations; a row each. A TNet only.

    Returns:
        A list of dicts, one per setting: `recipe`, `model`, `split`,
        `locations` (`"2,1"`, `"none"` for level 1 alone, `""` for a
        baseline), `attended`, `top1`, `top5` (fractions), `flops`,
        `params`, `image_size`, `checkpoint`; anytime rows also have
        `anytime` and `mean_locations` (and a mean `attended` and
        `flops`); also written as CSV.
    """
    recipe = resolve_recipe(recipe, overrides)
    split = split or recipe.eval_split
    checkpoint = default_checkpoint(workdir, checkpoint)
    model = load_checkpoint(checkpoint)
    compile_for_evaluation(model)
    dataset = make_input(recipe, data_dir, split, False, source)
    settings = location_settings(recipe, model, locations)
    write_experiment_file(recipe, workdir)  # once the arguments are checked
    height, width = recipe.image_size
    rows = []
    runs = [
        lambda setting=setting: evaluate_setting(
            model,
            dataset,
            setting,
            recipe.image_size if count_flops else None,
            verbose,
        )
        for setting in settings
    ]
    runs += [
        lambda kind=kind, value=value: evaluate_anytime(
            model, dataset, **{kind: value}
        )
        for kind, value in anytime
    ]
    for run in runs:
        scores = run()
        rows.append(
            {
                "recipe": recipe.name,
                "model": model.name,
                "split": split,
                **scores,
                "top1": round(scores["top1"], 6),
                "top5": round(scores["top5"], 6),
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


def evaluate_setting(model, dataset, setting, image_size=None, verbose=0):
    """One compiled model on `dataset` at one location setting.

    Returns:
        A dict: the setting's `locations` and `attended` columns, `top1`
        and `top5` (fractions), and `flops`, the multiply-adds per image at
        `image_size` (`""` when `image_size` is None: not counted).
    """
    logs = model.evaluate(
        dataset,
        return_dict=True,
        verbose=verbose,
        locations_per_level=setting,
    )
    return {
        **setting_columns(model, setting),
        "top1": float(logs["top1"]),
        "top5": float(logs["top5"]),
        "flops": (
            ""
            if image_size is None
            else profiling.profile(model, image_size, setting)["flops"]
        ),
    }


def evaluate_anytime(model, dataset, *, threshold=None, budget=None):
    """A TNet on `dataset` with anytime inference, batch by batch
    (`model.predict_anytime`, at most the model's default locations).

    Args:
        model: a TNet.
        dataset: `(images, labels)` batches, sparse labels.
        threshold: each image stops once its top probability reaches it.
        budget: locations per image on average, spent per batch on the
            least certain images (`round(budget * batch)` per batch).

    Returns:
        `evaluate_setting`'s columns (`locations` the maximum setting,
        `attended` and `flops` the means per image over the images, the
        multiply-adds counted by the profiler at the batches' size) and
        `anytime` (`"threshold 0.9"`, `"budget 4/image"`) and
        `mean_locations` (top-level locations used per image).
    """
    if (threshold is None) == (budget is None):
        raise ValueError("Pass one of `threshold` and `budget`.")
    setting = tuple(model.resolve_locations(None))
    hits1 = hits5 = steps = multiply_adds = count = 0
    for images, labels in dataset:
        out = model.predict_anytime(
            images,
            threshold=threshold,
            budget=None if budget is None else round(budget * len(labels)),
        )
        labels = np.asarray(labels).reshape(-1)
        ranked = np.argsort(-out.logits, axis=-1, kind="stable")[:, :5]
        hits1 += int(np.sum(ranked[:, 0] == labels))
        hits5 += int(np.sum(np.any(ranked == labels[:, None], axis=-1)))
        steps += int(out.locations.sum())
        multiply_adds += int(out.multiply_adds.sum())
        count += len(labels)
    if not count:
        raise ValueError("The dataset is empty.")
    mean_steps = steps / count
    # Regions per top-level location: the cell and its subtree.
    per_step = attended_locations((1, *setting[1:]))
    return {
        "locations": format_locations(setting),
        "attended": round(mean_steps * per_step, 4),
        "top1": hits1 / count,
        "top5": hits5 / count,
        "flops": round(multiply_adds / count),
        "anytime": (
            f"threshold {threshold:g}"
            if budget is None
            else f"budget {budget:g}/image"
        ),
        "mean_locations": round(mean_steps, 4),
    }


def evaluation_table(rows):
    """The evaluation rows as a text table (accuracy in %, FLOPs in B)."""
    return format_table(
        rows,
        SETTING_COLUMNS
        + [
            ("Top-1", lambda r: f"{100 * float(r['top1']):.2f}%"),
            ("Top-5", lambda r: f"{100 * float(r['top5']):.2f}%"),
            ("FLOPs (B)", lambda r: billions(r["flops"])),
            ("#Params (M)", lambda r: f"{int(r['params']) / 1e6:.2f}"),
        ]
        + (
            [("Anytime", lambda r: r.get("anytime") or "-")]
            if any(r.get("anytime") for r in rows)
            else []
        ),
    )
