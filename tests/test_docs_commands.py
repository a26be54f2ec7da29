"""Every shell command shown in README.md and WORKSPACE.md, run as a user would.

The commands are read out of the documents' `sh` blocks (and inline
`python ...` spans), so a command added to the documents is run here
without anyone remembering to add it. Each runs as a subprocess, in
document order, in one temporary `$ROOT` whose `raw/fmow` is a fake fMoW
folder and `raw/my_images` a folder of class sub-folders
(tests/fake_raw_data.py). What is changed from the text, and why:

- `python` / `.venv/bin/python` is this interpreter; `$ROOT` the temporary
  folder; absolute `/data/...` paths move under it; relative paths (the
  `site.jpg` of predict) are relative to it.
- Heavy commands run on tiny inputs (`TINY_FLAGS`): experiments get
  `--tiny` (two steps of two images) and, where they train a model of their
  own, a small backbone at the recipe's geometry (`SMALL_MODEL`); data
  generators write a few canvases, converters a few shards.
- `make` targets are not run here (`make test` is this suite; `make demo`
  has a smoke test, tests/test_demo.py), and `--all` profiling of every
  preset is in the slow tier.
"""

import os
import re
import shlex
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests import fake_raw_data

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# WORKSPACE.md first: it starts from raw data, which README's commands need.
DOCUMENTS = ("WORKSPACE.md", "README.md")
RELEASE_FIXTURE = os.path.join(
    REPOSITORY, os.pardir, "shared", "reference", "release_fixture"
)

# Commands the documents show that this module does not run, with why.
NOT_RUN_HERE = {
    "make demo": "13 minutes; tests/test_demo.py runs its smoke version",
    "make test": "this suite",
    "make test-slow": "the slow tier of this suite",
}
SLOW = ("--all",)  # every preset, EfficientNet-B4 included

# The fMoW recipes' geometry kept (grid, levels, image / base ratio) with a
# tiny CNN at a 32 px base, so that a training run takes seconds.
SMALL_MODEL = {
    "fmow_tnet_stage1": ("image_size=64",),
    "fmow_tnet_stage2": ("image_size=128",),
}
SMALL_BACKBONE = (
    "model.backbone=tiny_cnn",
    "model.base_resolution=32",
    "model.drop_connect_rate=None",
)
TINY_FLAGS = {
    "data_prep.megapixel_mnist": ("--train_count=8", "--test_count=4"),
    # 21 fake images: a few shards instead of fMoW's 768.
    "data_prep.fmow": ("--train_shards=2", "--eval_shards=1"),
}


def documented_commands(repository=REPOSITORY):
    """`[(document, line, command), ...]` in document order."""
    commands = []
    for document in DOCUMENTS:
        with open(os.path.join(repository, document)) as file:
            text = file.read()
        for block in re.finditer(
            r"^( *)```(?:sh|bash)\n(.*?)^\1```", text, re.M | re.S
        ):
            line = text.count("\n", 0, block.start(2)) + 1
            joined = re.sub(r"\s*\\\n\s*", " ", block.group(2))
            for offset, command in enumerate(joined.splitlines()):
                command = command.strip()
                if command and not command.startswith("#"):
                    commands.append((document, line + offset, command))
        for span in re.finditer(
            r"`((?:\.venv/bin/)?python -[mc] [^`]+)`", text
        ):
            line = text.count("\n", 0, span.start()) + 1
            commands.append((document, line, span.group(1)))
    return commands


def _as_run_here(command, root):
    """The argument list a user's `command` becomes here (module docstring)."""
    words = shlex.split(command.replace("$ROOT", root))
    words = [
        root + word if word.startswith("/data/") else word for word in words
    ]
    words = [
        re.sub(r"^(--[a-z_]+=)(/data/)", rf"\g<1>{root}\g<2>", word)
        for word in words
    ]
    assert words[0] in ("python", ".venv/bin/python"), command
    module = words[2] if words[1] == "-m" else None
    words[0] = sys.executable
    recipe = _flag_value(words, "--recipe")
    if module and module.startswith("experiments.") and recipe:
        words.append("--tiny")
        if (
            recipe in SMALL_MODEL
            and _flag_value(words, "--checkpoint") is None
        ):
            for override in SMALL_BACKBONE + SMALL_MODEL[recipe]:
                words += ["--override", override]
    words += TINY_FLAGS.get(module, ())
    return words


def _flag_value(words, name):
    for index, word in enumerate(words):
        if word == name and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def _prepare_root(root):
    """The fake raw fMoW folder, a folder of class sub-folders (raw/my_images)
    and the image predict is shown with."""
    fake_raw_data.make_fmow(os.path.join(root, "raw", "fmow"), broken=False)
    fake_raw_data.make_image_folder(
        os.path.join(root, "raw", "my_images"), per_class=4
    )
    image = fake_raw_data.quadrant_image(5, 96, 96)
    with open(os.path.join(root, "site.jpg"), "wb") as file:
        file.write(tf.io.encode_jpeg(image).numpy())


def _run(document, line, command, root):
    words = _as_run_here(command, root)
    environment = {**os.environ, "PYTHONPATH": REPOSITORY}
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    process = subprocess.run(
        words,
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, (
        f"{document}:{line} failed (exit {process.returncode}):\n  {command}\n"
        f"ran as: {shlex.join(words)}\n{process.stderr[-3000:]}"
    )
    return process


def test_documents_show_commands_and_each_is_run_or_excused():
    commands = [c for _, _, c in documented_commands()]
    assert any("experiments.train" in c for c in commands)
    assert any("tnet_tf.profiling" in c for c in commands)
    for command in commands:
        words = shlex.split(command)
        if words[0] == "make":
            assert command in NOT_RUN_HERE, f"decide how to test: {command}"
        else:
            assert words[0] in ("python", ".venv/bin/python"), command


def test_the_parser_finds_blocks_spans_and_continuations(tmp_path):
    text = (
        'Intro `python -c "print(1)"` and `python3`.\n\n'
        "   ```sh\n   python -m a.b --x=1 \\\n       --y=$ROOT/z\n   ```\n"
        "```\n$ROOT/\n  tree\n```\n"
    )
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "README.md").write_text(text)
    (folder / "WORKSPACE.md").write_text("`python -m x`")
    assert documented_commands(str(folder)) == [
        ("WORKSPACE.md", 1, "python -m x"),
        ("README.md", 4, "python -m a.b --x=1 --y=$ROOT/z"),
        ("README.md", 1, 'python -c "print(1)"'),
    ]
    words = _as_run_here(
        "python -m experiments.train --recipe=fmow_tnet_stage1", "/r"
    )
    assert words[:3] == [sys.executable, "-m", "experiments.train"]
    assert "--tiny" in words and "image_size=64" in words


def _needs_release_fixture(command):
    return "release" in command and not os.path.isdir(RELEASE_FIXTURE)


def test_every_documented_command_runs(tmp_path):
    """The documents' commands, in order, as subprocesses on tiny inputs."""
    root = str(tmp_path)
    _prepare_root(root)
    ran = []
    for document, line, command in documented_commands():
        if command.split()[0] == "make" or any(
            f in command.split() for f in SLOW
        ):
            continue
        if _needs_release_fixture(command):
            continue
        start = time.monotonic()
        _run(document, line, command, root)
        ran.append((time.monotonic() - start, f"{document}:{line}"))
    # Seconds per command, shown with `pytest -s`: where this test's time goes.
    print("\n".join(f"{seconds:6.1f} s  {where}" for seconds, where in ran))
    assert len(ran) >= 15
    stage2 = os.path.join(root, "runs", "fmow_tnet_stage2")
    for produced in (
        "checkpoints/final.keras",
        "evaluation/test.csv",
        "export/saved_model/saved_model.pb",
        "figures/site.png",
    ):
        assert os.path.exists(os.path.join(stage2, produced)), produced


@pytest.mark.slow
def test_documented_slow_commands_run(tmp_path):
    root = str(tmp_path)
    for document, line, command in documented_commands():
        if any(flag in command.split() for flag in SLOW):
            process = _run(document, line, command, root)
            assert process.stdout.strip()
