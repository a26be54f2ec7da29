"""Batch inference: `python -m experiments.predict --images 'DIR/*' ...`.

A tiny model is saved in the three forms predict reads (a `.keras` file, a
preset directory with class names, an exported SavedModel); the command
classifies a folder of small images (and one corrupt file) as a user runs
it, and its CSV is checked against the model's own `predict` on the same
preprocessed images.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import presets
from tnet_tf.data import augment
from tnet_tf.experiment import predict as predict_lib

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = [f"kind {i}" for i in range(10)]
IMAGE_COUNT = 5
SKIPPED_EXIT_STATUS = 3  # experiments.predict.SKIPPED_EXIT_STATUS
FORMS = ("preset", "keras", "saved_model")


def _write_images(folder):
    rng = np.random.default_rng(0)
    paths = []
    for index in range(IMAGE_COUNT):
        height, width = 60 + 10 * index, 90 - 5 * index
        pixels = rng.integers(0, 256, (height, width, 3), np.uint8)
        if index % 2:
            encoded, suffix = tf.io.encode_png(pixels), "png"
        else:
            encoded, suffix = tf.io.encode_jpeg(pixels), "jpg"
        path = os.path.join(folder, f"image_{index}.{suffix}")
        tf.io.write_file(path, encoded)
        paths.append(path)
    corrupt = os.path.join(folder, "image_9_corrupt.jpg")
    with open(corrupt, "wb") as file:
        file.write(b"\xff\xd8\xff\xe0 not really a JPEG")
    return paths, corrupt


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_batch")
    images = root / "images"
    images.mkdir()
    paths, corrupt = _write_images(str(images))
    model = presets.build("tiny_test")
    size = tuple(model.config.image_size)
    model(np.zeros((1, *size, 3), "float32"))
    forms = {
        "keras": str(root / "model.keras"),
        "preset": str(root / "preset"),
        "saved_model": str(root / "saved_model"),
    }
    model.save(forms["keras"])
    model.save_to_preset(forms["preset"], class_names=NAMES)
    model.export(forms["saved_model"])
    batch = np.stack(
        [
            augment.preprocess_for_evaluation(tf.io.read_file(p), size)
            for p in paths
        ]
    )
    expected = model.predict(batch, verbose=0)
    return {
        "root": root,
        "images": images,
        "paths": paths,
        "corrupt": corrupt,
        "forms": forms,
        "expected": expected,
        "flops": predict_lib.load_model(forms["keras"]).multiply_adds(),
    }


def _start_command(*arguments):
    environment = {
        **os.environ,
        "PYTHONPATH": REPOSITORY,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.predict", *arguments],
        cwd=REPOSITORY,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def commands(setup):
    """The command on each model form, run side by side as subprocesses:
    `{form: (returncode, stderr, csv path, pictures dir or None)}`."""
    started = {}
    for form in FORMS:
        output = setup["root"] / f"{form}.csv"
        pictures = setup["root"] / f"{form}_pictures"
        arguments = [
            f"--images={setup['images']}/*",
            f"--checkpoint={setup['forms'][form]}",
            f"--output={output}",
            "--batch_size=2",
        ]
        if form == "preset":
            arguments.append(f"--pictures_dir={pictures}")
        else:
            pictures = None
        started[form] = (_start_command(*arguments), output, pictures)
    finished = {}
    for form, (process, output, pictures) in started.items():
        _, stderr = process.communicate(timeout=300)
        finished[form] = (process.returncode, stderr, output, pictures)
    return finished


def _read_csv(path):
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return reader.fieldnames, list(reader)


def _check_rows(setup, rows, names):
    assert [row["path"] for row in rows] == setup["paths"]
    logits = np.asarray(setup["expected"]["logits"], np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    boxes = np.asarray(setup["expected"]["attended_boxes"])
    for index, row in enumerate(rows):
        ranked = np.argsort(-probabilities[index], kind="stable")[:5]
        for rank, c in enumerate(ranked, start=1):
            assert int(row[f"top{rank}_class"]) == c
            assert row[f"top{rank}_name"] == (names[c] if names else str(c))
            np.testing.assert_allclose(
                float(row[f"top{rank}_probability"]),
                probabilities[index, c],
                atol=1e-5,
            )
        np.testing.assert_allclose(
            json.loads(row["attended_boxes"]), boxes[index], atol=1e-5
        )


@pytest.mark.parametrize("form", FORMS)
def test_the_command_classifies_a_folder(setup, commands, form):
    returncode, stderr, output, pictures = commands[form]
    names = NAMES if form == "preset" else None
    # The corrupt file is named, skipped, and said in the exit status.
    assert returncode == SKIPPED_EXIT_STATUS, stderr[-3000:]
    warnings = [
        line
        for line in stderr.splitlines()
        if line.startswith("Warning: skipped")
    ]
    assert len(warnings) == 1 and setup["corrupt"] in warnings[0]
    columns, rows = _read_csv(output)
    assert columns == predict_lib.csv_columns(5)
    assert len(rows) == IMAGE_COUNT
    _check_rows(setup, rows, names)
    flops = {row["multiply_adds"] for row in rows}
    if form == "saved_model":
        assert flops == {""}  # a SavedModel does not record them
    else:
        assert flops == {str(setup["flops"])} and setup["flops"] > 0
    if form == "preset":
        drawn = sorted(os.listdir(pictures))
        assert len(drawn) == IMAGE_COUNT
        assert all(os.path.getsize(pictures / name) > 0 for name in drawn)
        assert {row["picture"] for row in rows} == {
            str(pictures / name) for name in drawn
        }


def test_the_library_streams_with_a_class_name_file(setup):
    """In process: --class_names wins over the preset's names; one file."""
    skipped = []
    result = predict_lib.run_batch_predict(
        [setup["paths"][1], setup["corrupt"]],
        setup["forms"]["preset"],
        str(setup["root"] / "one.csv"),
        class_names=[f"other {i}" for i in range(10)],
        top_k=2,
        on_skip=lambda path, reason: skipped.append(path),
        progress=False,
    )
    assert result["rows"] == 1 and skipped == [setup["corrupt"]]
    columns, rows = _read_csv(result["csv"])
    assert columns == predict_lib.csv_columns(2)
    assert rows[0]["top1_name"].startswith("other ")


def test_a_pattern_matching_nothing_is_a_clear_error(setup):
    with pytest.raises(FileNotFoundError, match="No image file matches"):
        predict_lib.expand_images(str(setup["root"] / "nothing" / "*.jpg"))


def test_one_image_mode_reads_a_preset_directory(setup):
    result = predict_lib.run_predict(
        setup["paths"][0],
        setup["forms"]["preset"],
        str(setup["root"] / "single.png"),
    )
    assert os.path.getsize(result["png"]) > 0
    assert all(name in NAMES for name, _ in result["top"])
    with pytest.raises(ValueError, match="not a readable image"):
        predict_lib.run_predict(setup["corrupt"], setup["forms"]["preset"])
