"""The entry points of experiments/, driven by their flags on a tiny dataset.

A module-level run writes a few Megapixel-MNIST records, trains the
`tiny_test` recipe through `experiments.train` (two steps), and the tests
take that checkpoint through evaluate, export, predict, profile and
visualize. The exported SavedModel is reloaded by a subprocess that cannot
import tnet_tf and must give the Keras model's logits and boxes.
"""

import csv
import dataclasses
import gc
import importlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from tests import helpers
from tnet_tf import BaselineClassifier
from tnet_tf import BaselineConfig
from tnet_tf import experiment
from tnet_tf import recipes
from tnet_tf.data import megapixel_mnist

ENTRY_POINTS = (
    "train",
    "evaluate",
    "profile",
    "export",
    "predict",
    "visualize",
)
RECORDS = 4  # per split: two batches of the tiny_test recipe


def _process_state():
    """Whether absl parsed its flags, and how many Keras layers exist."""
    layers = sum(isinstance(o, keras.layers.Layer) for o in gc.get_objects())
    return flags.FLAGS.is_parsed(), layers


# The entry points are imported here, at collection, before any test has
# parsed flags or built a model; the state around the import is checked by
# test_entry_points_import_without_side_effects.
_BEFORE_IMPORT = _process_state()
ENTRY_MODULES = {
    name: importlib.import_module(f"experiments.{name}")
    for name in ENTRY_POINTS
}
_AFTER_IMPORT = _process_state()
train = ENTRY_MODULES["train"]
evaluate = ENTRY_MODULES["evaluate"]
profile = ENTRY_MODULES["profile"]
export = ENTRY_MODULES["export"]
predict = ENTRY_MODULES["predict"]
visualize = ENTRY_MODULES["visualize"]


def _parsed():
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Records, a SavedModel runner started early, and one trained run."""
    root = tmp_path_factory.mktemp("experiments")
    runner = helpers.SavedModelRunner(root)
    try:
        generator = megapixel_mnist.MegapixelMNIST(
            canvas_size=96, num_digits=3, num_label_digits=2, num_noise=2
        )
        data_dir = str(root / "records")
        for split in ("train", "test"):
            generator.write_records(
                data_dir, split, RECORDS, 1, num_workers=1, show_progress=False
            )
        workdir = str(root / "runs" / "tiny_test")
        _parsed()
        with flagsaver.flagsaver(
            recipe="tiny_test", workdir=workdir, data_dir=data_dir
        ):
            train.main(["train"])
        yield {
            "root": root,
            "data_dir": data_dir,
            "workdir": workdir,
            "runner": runner,
        }
    finally:
        runner.close()


def test_entry_points_are_thin_and_import_without_side_effects():
    for name, module in ENTRY_MODULES.items():
        assert callable(module.main), name
        with open(module.__file__) as file:
            assert len(file.read().splitlines()) < 150, name
    parsed_before, layers_before = _BEFORE_IMPORT
    parsed_after, layers_after = _AFTER_IMPORT
    # Importing parsed no flags (when none were parsed before) and built
    # no layer.
    assert parsed_after == parsed_before
    assert layers_after == layers_before


def test_train_writes_the_run_layout(run):
    workdir = run["workdir"]
    for path in (
        experiment.EXPERIMENT_FILE,
        "config.json",
        experiment.FINAL_CHECKPOINT,
        experiment.BEST_CHECKPOINT,
        "logs",
    ):
        assert os.path.exists(os.path.join(workdir, path)), path
    with open(os.path.join(workdir, experiment.EXPERIMENT_FILE)) as file:
        written = json.load(file)
    assert written["experiment"] == recipes.resolve("tiny_test").to_dict()
    assert written["model"]["locations_per_level"] == [2, 1]


def test_evaluate_reports_every_setting_in_one_run(run, capsys):
    with flagsaver.flagsaver(
        recipe="tiny_test",
        workdir=run["workdir"],
        data_dir=run["data_dir"],
        locations=["2,1", "none"],
    ):
        evaluate.main(["evaluate"])
    table = capsys.readouterr().out
    assert "Top-1" in table and "FLOPs (B)" in table
    with open(os.path.join(run["workdir"], "evaluation", "test.csv")) as file:
        rows = list(csv.DictReader(file))
    assert [r["locations"] for r in rows] == ["2,1", "none"]
    assert [int(r["attended"]) for r in rows] == [4, 0]
    for row in rows:
        assert 0.0 <= float(row["top1"]) <= float(row["top5"]) <= 1.0
    flops = [int(r["flops"]) for r in rows]
    assert 0 < flops[1] < flops[0]  # cost grows with the locations


def test_export_reloads_without_tnet_tf_with_the_same_outputs(run, capsys):
    with flagsaver.flagsaver(
        recipe="tiny_test", workdir=run["workdir"], locations=["2,1", "0"]
    ):
        export.main(["export"])
    assert "serve_locations_0" in capsys.readouterr().out
    saved_model = os.path.join(run["workdir"], "export", "saved_model")
    model = experiment.load_checkpoint(
        os.path.join(run["workdir"], experiment.FINAL_CHECKPOINT)
    )
    images = helpers.random_images(batch=2, height=96, seed=1)
    path = str(run["root"] / "images.npy")
    np.save(path, images)
    served = run["runner"].run(
        saved_model,
        {"default": ("serve", path), "zero": ("serve_locations_0", path)},
    )
    assert not served["tnet_tf_imported"]
    for name, setting in (("default", [2, 1]), ("zero", [0])):
        expected = model(images, training=False, locations_per_level=setting)
        for key in ("logits", "attended_boxes", "attended_levels"):
            np.testing.assert_allclose(
                served[f"{name}/{key}"],
                keras.ops.convert_to_numpy(expected[key]),
                atol=1e-5,
                err_msg=f"{name}/{key}",
            )


def test_predict_prints_top5_and_draws_the_boxes(run, capsys):
    pixels = np.random.default_rng(0).integers(0, 256, (90, 120, 3), np.uint8)
    image = str(run["root"] / "picture.png")
    tf.io.write_file(image, tf.io.encode_png(pixels))
    names = run["root"] / "classes.txt"
    names.write_text("".join(f"digit {i}\n" for i in range(10)))
    printed = {}
    for name, checkpoint in (
        ("keras", os.path.join(run["workdir"], experiment.FINAL_CHECKPOINT)),
        ("saved", os.path.join(run["workdir"], "export", "saved_model")),
    ):
        output = str(run["root"] / f"{name}.png")
        with flagsaver.flagsaver(
            image=image,
            checkpoint=checkpoint,
            class_names=str(names),
            output_png=output,
        ):
            predict.main(["predict"])
        printed[name] = capsys.readouterr().out.splitlines()
        assert os.path.getsize(output) > 0
    lines = printed["keras"]
    assert [line.split(".")[0] for line in lines[:5]] == list("12345")
    assert all("digit" in line for line in lines[:5])
    # Same classes and probabilities (to 4 digits) from both model forms.
    assert printed["keras"][:5] == printed["saved"][:5]


def test_visualize_draws_a_split_and_the_accuracy_plot(run):
    evaluation = os.path.join(run["workdir"], "evaluation", "test.csv")
    if not os.path.exists(evaluation):
        experiment.run_evaluation("tiny_test", run["workdir"], run["data_dir"])
    with flagsaver.flagsaver(
        recipe="tiny_test",
        workdir=run["workdir"],
        data_dir=run["data_dir"],
        num_images=2,
        eval_csv=[evaluation],
    ):
        visualize.main(["visualize"])
    figures = os.path.join(run["workdir"], "figures")
    for name in ("attention_test.png", "accuracy_vs_flops.png"):
        assert os.path.getsize(os.path.join(figures, name)) > 0
    with open(os.path.join(figures, "attention_test.csv")) as file:
        rows = list(csv.DictReader(file))
    # eval_steps = 1 batch of 2 images, in record order.
    filenames = [row["filename"] for row in rows]
    assert filenames == ["test-0000000.jpg", "test-0000001.jpg"]
    cells = rows[0]["cell_probabilities_level_2"].split(";")
    assert len(cells) == 9 and abs(sum(map(float, cells)) - 1) < 1e-4
    assert len(rows[0]["attended_cells_level_3"].split("|")) == 2


def test_profile_table_and_csv(run, capsys):
    with flagsaver.flagsaver(
        recipe="tiny_test",
        workdir=run["workdir"],
        locations=["2,1"],
        repetitions=2,
        warmup=1,
    ):
        profile.main(["profile"])
    table = capsys.readouterr().out
    assert "Time (ms/im)" in table and "Memory (GB)" in table
    assert "VmHWM" in table or "get_memory_info" in table
    with open(os.path.join(run["workdir"], "profile", "profile.csv")) as file:
        (row,) = list(csv.DictReader(file))
    assert row["locations"] == "2,1" and float(row["ms_per_image"]) > 0
    assert (
        int(row["params"])
        == experiment.load_checkpoint(
            os.path.join(run["workdir"], experiment.FINAL_CHECKPOINT)
        ).count_params()
    )


def test_multi_worker_uses_the_custom_loop_and_restores(run, monkeypatch):
    # One process stands in for the cluster: the strategy is the default
    # one, and train_loop is spied on.
    calls = []
    real_loop = experiment.train.distributed.train_loop

    def spy(*args, **kwargs):
        calls.append(kwargs["steps"])
        return real_loop(*args, **kwargs)

    monkeypatch.setattr(
        experiment.train.distributed,
        "make_strategy",
        lambda kind: tf.distribute.get_strategy(),
    )
    monkeypatch.setattr(experiment.train.distributed, "train_loop", spy)
    final = os.path.join(run["workdir"], experiment.FINAL_CHECKPOINT)
    # Adam moves each weight by about the learning rate: 1e-9 keeps the
    # restored weights.
    result = experiment.run_training(
        "tiny_test",
        str(run["root"] / "runs" / "stage_two"),
        run["data_dir"],
        "multi_worker",
        [f"restore_from={final!r}", "learning_rate=1e-9"],
        verbose=0,
    )
    assert calls == [2]
    # The loop validates and keeps the best checkpoint, as fit does.
    assert os.path.exists(result.best_checkpoint)
    assert np.isfinite(result.history["val_top1"]).all()
    assert np.isfinite(result.history["loss"]).all()
    restored = experiment.load_checkpoint(result.final_checkpoint)
    source = experiment.load_checkpoint(final)
    for got, want in zip(restored.trainable_weights, source.trainable_weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got),
            keras.ops.convert_to_numpy(want),
            atol=1e-6,
        )


def test_baselines_compile_with_the_recipe_and_evaluate():
    model = BaselineClassifier(
        BaselineConfig(
            name="tiny_baseline",
            backbone="tiny_cnn",
            num_classes=10,
            image_size=32,
            l2_weight=1e-4,
        )
    )
    recipe = recipes.resolve("tiny_test")
    experiment.compile_for_training(model, recipe)
    assert model.optimizer is not None
    images = helpers.random_images(batch=2, height=32)
    labels = np.array([1, 2])
    experiment.compile_for_evaluation(model)
    logs = model.evaluate(images, labels, return_dict=True, verbose=0)
    assert {"top1", "top5", "l2", "cross_entropy"} <= set(logs)
    assert logs["l2"] > 0.0
    # A baseline's one setting is the empty one; it takes no other.
    plain = dataclasses.replace(recipe, evaluation_locations=())
    assert experiment.location_settings(plain, model) == [()]
    with pytest.raises(ValueError, match="attends no regions"):
        experiment.location_settings(plain, model, [(1,)])


def test_location_helpers():
    assert experiment.parse_locations("2,1") == (2, 1)
    assert experiment.parse_locations("none") == ()
    assert experiment.parse_locations(" 0 ") == (0,)
    with pytest.raises(ValueError, match="comma-separated"):
        experiment.parse_locations("two")
    assert experiment.format_locations(()) == "none"
    assert experiment.format_locations(None) == ""
    assert experiment.attended_locations((2, 1)) == 4
    assert experiment.attended_locations((3, 2)) == 9
    assert experiment.attended_locations(()) == 0


def test_early_stopping_keeps_the_best_epoch_as_the_final_checkpoint(run):
    result = experiment.run_training(
        "tiny_test",
        str(run["root"] / "runs" / "early_stopping"),
        run["data_dir"],
        overrides=["early_stopping_patience=1", "epochs=4"],
        verbose=0,
    )
    summary = experiment.training_summary(result.history, patience=1)
    scores = result.history["val_top1"]
    assert summary["epochs"] == len(scores) <= 4
    assert summary["validation_top1"] == max(scores)
    # Ran out of epochs, or stopped one epoch after the last improvement.
    assert summary["stopped_early"] == (len(scores) < 4)
    final = experiment.load_checkpoint(result.final_checkpoint)
    best = experiment.load_checkpoint(result.best_checkpoint)
    for got, want in zip(final.weights, best.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want)
        )


def test_early_stopping_needs_validation_and_the_fit_loop(run):
    with pytest.raises(ValueError, match="needs `loop='fit'`"):
        experiment.run_training(
            "tiny_test",
            str(run["root"] / "runs" / "no_validation"),
            run["data_dir"],
            overrides=["early_stopping_patience=1"],
            validate=False,
        )
    with pytest.raises(ValueError, match="early_stopping_patience"):
        recipes.resolve("tiny_test", overrides=["early_stopping_patience=0"])


def test_training_summary_reads_the_best_epoch():
    history = {"val_top1": [0.2, 0.5, 0.4, 0.45]}
    assert experiment.training_summary(history, patience=2) == {
        "epochs": 4,
        "best_epoch": 2,
        "validation_top1": 0.5,
        "stopped_early": True,
    }
    assert not experiment.training_summary(history, patience=3)[
        "stopped_early"
    ]
