"""`data_prep.image_folder`: a folder of class sub-folders, as a user has.

The end-to-end test runs the two commands a user runs, in subprocesses:
the converter on a small generated folder (PNGs and JPEGs, a corrupt file,
a stray text file), then `experiments.train` of the `tiny_test` preset on
the records, for two steps. The layout errors and the flag checks are
tested in this process.
"""

import json
import os

import pytest
from absl import app
from absl import flags
from absl.testing import flagsaver

from data_prep import common_flags
from data_prep import image_folder
from experiments import flags as experiment_flags
from tests import helpers
from tests.fake_raw_data import make_image_folder
from tnet_tf.data import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("circle", "square", "triangle")  # make_image_folder's
PER_CLASS = 6
# Registered in this process by the tests that read the folder's spec.
NAME = "image_folder_test_shapes"


def _write(path, data=b""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(data)


def _run(module, *arguments):
    return helpers.run_module(module, *arguments)


def _parsed():
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A raw folder converted by `python -m data_prep.image_folder`."""
    root = tmp_path_factory.mktemp("image_folder")
    raw = make_image_folder(str(root / "raw"))
    broken = os.path.join(raw, "square", "sub", "broken.jpg")
    _write(broken, b"\xff\xd8\xff not a JPEG")
    _write(os.path.join(raw, "square", "notes.txt"), b"not an image")
    records = str(root / "records")
    process = _run(
        "data_prep.image_folder",
        f"--raw_dir={raw}",
        f"--output_dir={records}",
        f"--dataset_name={NAME}",
        "--validation_fraction=0.2",
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return {
        "root": root,
        "raw": raw,
        "records": records,
        "broken": broken,
        "process": process,
    }


def test_convert_then_train_as_a_user(converted):
    process, records = converted["process"], converted["records"]
    # The corrupt file is skipped and listed, the text file ignored.
    assert f"skipped {converted['broken']}" in process.stdout
    assert "1 input files skipped" in process.stderr
    assert "Ignored 1 files without an image extension" in process.stderr
    # Progbar in a log: one line a split, no carriage returns.
    assert "16/16" in process.stdout and "\r" not in process.stdout
    with open(os.path.join(records, datasets.FOLDER_SPEC_FILE)) as file:
        described = json.load(file)
    assert described["name"] == NAME
    assert described["class_names"] == list(CLASSES)
    assert described["num_classes"] == 3
    assert described["image_format"] == "JPEG"
    # 0.2 of 6 or 7 images: one validation image a class, drawn as here.
    layout = image_folder.read_layout(converted["raw"], 0.2)
    drawn = layout.splits["validation"]["square"] == [converted["broken"]]
    expected = {
        split: {name: len(paths) for name, paths in classes.items()}
        for split, classes in layout.splits.items()
    }
    expected["validation" if drawn else "train"]["square"] -= 1
    assert described["class_counts"] == expected
    assert described["splits"] == {
        split: sum(counts.values()) for split, counts in expected.items()
    }
    # A class left without validation images is a warning, not a failure.
    assert drawn == ("no readable image in validation" in process.stderr)
    with open(os.path.join(records, image_folder.CLASS_NAMES_FILE)) as file:
        assert file.read().split() == list(CLASSES)

    workdir = str(converted["root"] / "runs" / "shapes")
    process = _run(
        "experiments.train",
        "--preset=tiny_test",
        f"--data_dir={records}",
        f"--workdir={workdir}",
        "--tiny",
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert os.path.exists(os.path.join(workdir, "checkpoints/final.keras"))
    with open(os.path.join(workdir, "experiment.json")) as file:
        experiment = json.load(file)
    assert experiment["experiment"]["dataset"] == NAME
    assert experiment["model"]["num_classes"] == 3  # the folder's, not 10


def test_the_recipe_takes_the_folders_classes(converted):
    _parsed()
    with flagsaver.flagsaver(
        preset="tiny_test", data_dir=converted["records"], recipe=None
    ):
        recipe = experiment_flags.recipe()
    assert recipe.dataset == NAME
    assert recipe.model_config().num_classes == 3
    assert (recipe.train_split, recipe.eval_split) == ("train", "validation")
    described = datasets.folder_spec(converted["records"])
    assert recipe.steps_per_epoch == (
        described.splits["train"] // recipe.batch_size
    )
    # A class count that differs from the folder's fails, naming both.
    with flagsaver.flagsaver(
        preset="tiny_test",
        data_dir=converted["records"],
        recipe=None,
        override=["model.num_classes=5"],
    ):
        with pytest.raises(app.UsageError, match="predicts 5 classes but"):
            experiment_flags.recipe()


def test_the_draw_is_seeded_and_per_class(converted):
    first = image_folder.read_layout(converted["raw"], 0.5, split_seed=3)
    again = image_folder.read_layout(converted["raw"], 0.5, split_seed=3)
    other = image_folder.read_layout(converted["raw"], 0.5, split_seed=4)
    assert first == again and first.drawn
    assert first.splits != other.splits
    for name in CLASSES:
        train = first.splits["train"][name]
        validation = first.splits["validation"][name]
        assert not set(train) & set(validation)
        assert len(validation) == round(len(train + validation) * 0.5)


def test_split_folders(tmp_path):
    make_image_folder(str(tmp_path / "train"), per_class=2)
    make_image_folder(str(tmp_path / "val"), per_class=1)
    make_image_folder(str(tmp_path / "test"), per_class=1)
    layout = image_folder.read_layout(str(tmp_path))
    assert not layout.drawn
    assert sorted(layout.splits) == ["test", "train", "validation"]
    assert [len(v) for v in layout.splits["validation"].values()] == [1] * 3
    with pytest.raises(common_flags.RawLayoutError, match="applies only"):
        image_folder.read_layout(str(tmp_path), validation_fraction=0.1)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda root: None, "no folder"),
        (
            lambda root: _write(os.path.join(root, "a.png"), b"x"),
            "no class sub-folders in .* \\(1 images lie directly in it",
        ),
        (
            lambda root: (
                make_image_folder(root, per_class=2),
                _write(os.path.join(root, "empty", "notes.txt")),
            ),
            "empty class folder\\(s\\) .*: empty",
        ),
        (
            lambda root: (
                make_image_folder(os.path.join(root, "train"), per_class=1),
                make_image_folder(
                    os.path.join(root, "validation"), CLASSES[:2], 1
                ),
            ),
            "in train/ but not in validation/: triangle",
        ),
        (
            lambda root: make_image_folder(os.path.join(root, "validation")),
            "must hold train/",
        ),
        (
            lambda root: make_image_folder(root, per_class=1),
            "class 'circle' has 1 image: drawing validation images needs",
        ),
    ],
)
def test_layout_errors(tmp_path, make, expected):
    root = str(tmp_path / "raw")
    make(root)
    with pytest.raises(common_flags.RawLayoutError, match=expected):
        image_folder.read_layout(root)


def test_a_class_without_readable_training_images_fails(tmp_path):
    raw = make_image_folder(str(tmp_path / "raw"), CLASSES[:2], 2)
    train = image_folder.read_layout(raw, 0.5).splits["train"]["square"]
    _write(train[0], b"")  # the class's only training image, now empty
    output = str(tmp_path / "records")
    with pytest.raises(
        common_flags.RawLayoutError,
        match="class 'square' has no readable image in train .*zero-byte",
    ):
        image_folder.convert(
            raw, output, validation_fraction=0.5, show_progress=False
        )
    # The folder does not describe a dataset it does not hold.
    assert not os.path.exists(os.path.join(output, "dataset.json"))


def test_flag_errors_and_help(tmp_path):
    raw = make_image_folder(str(tmp_path / "raw"), per_class=2)
    _parsed()
    cases = [
        ({"raw_dir": str(tmp_path / "nope")}, "--raw_dir: no folder"),
        ({"output_dir": os.path.join(raw, "out")}, "lies inside --raw_dir"),
        ({"dataset_name": "cub"}, "'cub' is a built-in dataset"),
        ({"validation_fraction": 1.0}, "must lie in \\(0, 1\\)"),
    ]
    for changes, expected in cases:
        values = {"raw_dir": raw, "output_dir": str(tmp_path / "out")}
        with flagsaver.flagsaver(**{**values, **changes}):
            with pytest.raises(app.UsageError, match=expected):
                image_folder.main(["image_folder"])
    assert not os.path.exists(tmp_path / "out")
    # --help lists the converter's flags, the shared ones it reads too
    # (absl exits with 1 after the help).
    process = _run("data_prep.image_folder", "--help")
    assert "Traceback" not in process.stderr, process.stderr[-2000:]
    for name in ("raw_dir", "output_dir", "validation_fraction", "split_seed"):
        assert f"--{name}:" in process.stdout, process.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_pipe_named_like_an_image_is_skipped_unread(tmp_path):
    raw = make_image_folder(str(tmp_path / "raw"), CLASSES[:2], 3)
    pipe = os.path.join(raw, "circle", "pipe.jpg")
    os.mkfifo(pipe)  # reading it would wait forever
    reports, _, spec = image_folder.convert(
        raw,
        str(tmp_path / "records"),
        dataset_name="pipe_test",
        validation_fraction=0.3,
        show_progress=False,
        num_workers=1,
    )
    skipped = [pair for report in reports.values() for pair in report.skipped]
    assert skipped == [
        (pipe, "not a regular file (a pipe or device); not read")
    ]
    assert sum(spec.splits.values()) == 6


def test_tfds_metadata_names_the_sub_folders(tmp_path):
    import tensorflow_datasets as tfds

    from tnet_tf.data import pipelines

    raw = make_image_folder(str(tmp_path / "raw"), per_class=3)
    output = str(tmp_path / "records")
    image_folder.convert(
        raw, output, validation_fraction=0.3, show_progress=False
    )
    pipelines.write_tfds_metadata(output)
    features = tfds.builder_from_directory(output).info.features
    label = features["image"]["class"]["label"]
    assert label.names == list(CLASSES)
