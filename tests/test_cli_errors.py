"""Bad command-line arguments: a usage message, exit status 1, nothing written.

A few invocations run as real subprocesses (the way a user meets them: no
traceback may reach stderr); the other bad flags are checked in process,
where each entry point must raise `app.UsageError` (absl prints it with the
usage and exits with 1) before it writes anything.
"""

import importlib
import os

import pytest
from absl import app
from absl import flags
from absl.testing import flagsaver

from data_prep import birds
from data_prep import fmow
from data_prep import imagenet
from data_prep import verify
from experiments import evaluate
from experiments import export
from experiments import profile
from experiments import train
from tests import helpers
from tnet_tf import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *arguments):
    return helpers.run_module(module, *arguments)


def _assert_usage_error(process, expected):
    assert process.returncode == 1, process.stderr[-2000:]
    assert "Traceback" not in process.stderr, process.stderr[-3000:]
    assert expected in process.stderr, process.stderr[-2000:]


@pytest.mark.parametrize(
    "module, arguments, expected",
    [
        (
            "experiments.train",
            ["--recipe=nope", "--data_dir={tmp}/records"],
            "Unknown recipe 'nope'",
        ),
        (
            "experiments.train",
            ["--recipe=tiny_test", "--data_dir={tmp}/missing"],
            "--data_dir: Record directory",
        ),
        (
            "experiments.evaluate",
            [
                "--recipe=tiny_test",
                "--data_dir={tmp}/records",
                "--locations=2,x",
            ],
            "A location setting is comma-separated ints",
        ),
        (
            "data_prep.birds",
            [
                "--dataset=cub",
                "--raw_dir={tmp}/missing",
                "--output_dir={tmp}/workdir/records",
            ],
            "--raw_dir: no folder",
        ),
    ],
)
def test_bad_arguments_print_usage_and_write_nothing(
    tmp_path, module, arguments, expected
):
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    (tmp_path / "records").mkdir()
    arguments = [a.format(tmp=tmp_path) for a in arguments]
    if module.startswith("experiments."):
        arguments.append(f"--workdir={workdir}")
    process = _run(module, *arguments)
    _assert_usage_error(process, expected)
    # absl's usage (the module's docstring) comes before the error.
    usage = importlib.import_module(module).__doc__.strip().splitlines()[0]
    assert usage in process.stderr
    assert os.listdir(workdir) == []


def _parsed():
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


@pytest.fixture
def record_folder(tmp_path):
    """A folder with (empty) train and test shards of the tiny recipe."""
    folder = tmp_path / "records"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}-00000-of-00001.tfrecord").write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    "entry_point, values, expected",
    [
        (train, {"override": ["epochs=two"]}, "--override epochs=two"),
        (train, {"override": ["no_such_field=1"]}, "no_such_field"),
        (train, {"recipe": None}, "exactly one of a recipe"),
        (evaluate, {"locations": ["99,1"]}, "impossible"),
        (evaluate, {}, "No checkpoint at"),
        (evaluate, {"split": "validation"}, "No complete .validation. shards"),
        (export, {"checkpoint": "{tmp}/none.keras"}, "No checkpoint at"),
        (profile, {"preset": "nope", "recipe": None}, "nope"),
        (
            profile,
            {"recipe": "fmow_en_b0_224", "locations": ["2,1"]},
            "baseline",
        ),
    ],
)
def test_experiment_flags_are_checked_before_anything_is_written(
    tmp_path, record_folder, entry_point, values, expected
):
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    values = {
        key: value.format(tmp=tmp_path) if isinstance(value, str) else value
        for key, value in values.items()
    }
    _parsed()
    settings = {
        "recipe": "tiny_test",
        "workdir": str(workdir),
        "data_dir": str(record_folder),
        **values,
    }
    with flagsaver.flagsaver(**settings):
        with pytest.raises(app.UsageError, match=expected):
            entry_point.main([entry_point.__name__])
    assert os.listdir(workdir) == []


@pytest.mark.parametrize(
    "entry_point, values, expected",
    [
        (birds, {"dataset": "cubb"}, "--dataset must be one of cub"),
        (birds, {}, "holding images.txt"),
        (fmow, {"test_gt_mapping": "{tmp}/none.json"}, "--test_gt_mapping"),
        (imagenet, {"synsets_file": "{tmp}/none.txt"}, "--synsets_file"),
        (verify, {"data_dir": "{tmp}/raw"}, "no TFRecord shards"),
        (verify, {"data_dir": "{tmp}/none"}, "--data_dir: no folder"),
        # An existing but empty raw folder: the layout, not a flag, is wrong.
        (fmow, {}, "--raw_dir: No train/, val/ or test_gt_mapping"),
        (
            imagenet,
            {"synsets_file": "{tmp}/raw/synsets.txt"},
            "--raw_dir: .*train.* does not exist",
        ),
    ],
)
def test_converter_flags_are_checked_before_anything_is_written(
    tmp_path, entry_point, values, expected
):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "synsets.txt").write_text("n01440764\n")
    output_dir = tmp_path / "out"
    values = {
        key: value.format(tmp=tmp_path) if isinstance(value, str) else value
        for key, value in values.items()
    }
    _parsed()
    settings = {
        "raw_dir": str(tmp_path / "raw"),
        "output_dir": str(output_dir),
        "dataset": "cub",
        **values,
    }
    with flagsaver.flagsaver(**settings):
        with pytest.raises(app.UsageError, match=expected):
            entry_point.main([])
    assert not output_dir.exists()


def test_shard_and_worker_counts_must_be_positive():
    for name in ("train_shards", "eval_shards", "num_workers"):
        with pytest.raises(flags.IllegalFlagValueError):
            flags.FLAGS[name].parse("0")


def test_a_failed_training_run_writes_no_experiment_file(tmp_path):
    """The library too checks its arguments before writing experiment.json."""
    workdir = tmp_path / "workdir"
    with pytest.raises(ValueError, match="does not exist"):
        experiment.run_training(
            "tiny_test", str(workdir), str(tmp_path / "missing"), verbose=0
        )
    assert not (workdir / experiment.EXPERIMENT_FILE).exists()


@pytest.mark.parametrize(
    "setting, expected",
    [("10", "impossible"), (",".join(["1"] * 10), "deepest valid setting")],
)
def test_predict_rejects_a_setting_the_loaded_model_cannot_take(
    tmp_path, setting, expected
):
    """predict has no recipe: the setting is checked once the model loads."""
    import numpy as np
    import tensorflow as tf

    from experiments import predict
    from tnet_tf import presets

    checkpoint = str(tmp_path / "model.keras")
    model = presets.build("tiny_test")
    model(np.zeros((1, 96, 96, 3), "float32"))
    model.save(checkpoint)
    image = str(tmp_path / "image.png")
    tf.io.write_file(image, tf.io.encode_png(np.zeros((96, 96, 3), "uint8")))
    _parsed()
    with flagsaver.flagsaver(
        image=image,
        checkpoint=checkpoint,
        locations=[setting],
        output_png=str(tmp_path / "out.png"),
    ):
        with pytest.raises(
            app.UsageError, match=f"(?s)--locations: .*{expected}"
        ):
            predict.main(["predict"])
    assert not (tmp_path / "out.png").exists()
