"""`--help` of every entry point: its own flags and the shared flags it
reads, in one short page (TensorFlow's and absl's flags only under
--helpfull).

Each entry point runs as `python -m <module> --help` does (`runpy` with
`alter_sys`), in one subprocess that imports TensorFlow and Keras once and
forks a child per module: a fresh interpreter per module costs seconds of
CPU each, several minutes on a shared machine.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 80

# module: flags its --help must list (its own, and the shared ones it reads).
KEY_FLAGS = {
    "experiments.train": [
        "recipe",
        "preset",
        "workdir",
        "data_dir",
        "override",
        "tiny",
        "seed",
        "strategy",
        "backup_steps",
    ],
    "experiments.evaluate": [
        "recipe",
        "workdir",
        "data_dir",
        "override",
        "checkpoint",
        "locations",
        "split",
    ],
    "experiments.export": [
        "recipe",
        "workdir",
        "override",
        "checkpoint",
        "locations",
    ],
    "experiments.predict": [
        "image",
        "images",
        "output",
        "class_names",
        "checkpoint",
        "locations",
    ],
    "experiments.profile": [
        "recipe",
        "workdir",
        "override",
        "checkpoint",
        "locations",
        "repetitions",
        "warmup",
    ],
    "experiments.visualize": [
        "recipe",
        "workdir",
        "data_dir",
        "checkpoint",
        "split",
        "num_images",
        "eval_csv",
    ],
    "experiments.demo": ["workdir", "override", "tiny", "seed"],
    "experiments.convert_release": ["recipe", "preset", "checkpoint"],
    "data_prep.birds": [
        "dataset",
        "raw_dir",
        "output_dir",
        "train_shards",
        "eval_shards",
        "num_workers",
        "shuffle_seed",
    ],
    "data_prep.fmow": ["raw_dir", "output_dir", "train_shards", "crops"],
    "data_prep.imagenet": ["raw_dir", "output_dir", "synsets_file"],
    "data_prep.megapixel_mnist": ["output_dir", "train_shards", "canvas_size"],
    "data_prep.verify": ["data_dir", "dataset", "num_workers"],
    "data_prep.image_folder": [
        "raw_dir",
        "output_dir",
        "validation_fraction",
        "num_workers",
    ],
    "tnet_tf.profiling": ["preset", "all", "locations", "image_size", "json"],
}

# Flags of TensorFlow and absl that a short --help leaves out.
INTERNAL_FLAGS = ["--logtostderr", "--test_srcdir", "--only_check_args"]


# Runs in the subprocess: argv[1] is a folder for the outputs, then the
# modules. Each child writes <module>.out, <module>.err and <module>.rc.
RUNNER = """
import os, runpy, sys, traceback
import keras, tensorflow  # imported once, shared by every child
folder, modules = sys.argv[1], sys.argv[2:]
children = []
for module in modules:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        children.append((pid, module))
        continue
    path = os.path.join(folder, module)
    for fd, suffix in ((1, ".out"), (2, ".err")):
        os.dup2(os.open(path + suffix, os.O_WRONLY | os.O_CREAT), fd)
    code = 0
    try:
        sys.argv = [module, "--help"]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    with open(path + ".rc", "w") as file:
        file.write(str(code))
    os._exit(0)
for pid, module in children:
    os.waitpid(pid, 0)
"""


@pytest.fixture(scope="module")
def helps(tmp_path_factory):
    """`{module: (exit status, stdout, stderr)}` of every --help."""
    folder = tmp_path_factory.mktemp("help")
    process = subprocess.run(
        [sys.executable, "-c", RUNNER, str(folder), *KEY_FLAGS],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    results = {}
    for module in KEY_FLAGS:
        path = folder / module
        code = path.with_suffix(path.suffix + ".rc")
        results[module] = (
            json.loads(code.read_text()) if code.exists() else None,
            path.with_suffix(path.suffix + ".out").read_text(),
            path.with_suffix(path.suffix + ".err").read_text(),
        )
    return results


@pytest.mark.parametrize("module", list(KEY_FLAGS))
def test_help_lists_the_key_flags_in_a_short_page(helps, module):
    code, text, errors = helps[module]
    # absl exits with 1 after --help, argparse with 0.
    assert code in (0, 1), errors[-2000:]
    assert "Traceback" not in errors, errors[-2000:]
    missing = [
        name
        for name in KEY_FLAGS[module]
        if f"--{name}" not in text and f"--[no]{name}" not in text
    ]
    assert not missing, text
    assert not [flag for flag in INTERNAL_FLAGS if flag in text], text
    assert len(text.splitlines()) < MAX_LINES, text


def test_every_entry_point_imports_into_one_process():
    # absl flags are global: two entry points defining one flag each
    # could not both be imported (the console-script test does so).
    code = (
        "import importlib\n"
        f"for name in {sorted(KEY_FLAGS)!r}:\n"
        "    importlib.import_module(name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
