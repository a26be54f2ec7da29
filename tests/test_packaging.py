"""The wheel as pip builds it: what it ships, what it declares, and that its
console scripts run.

The wheel is built offline (no build isolation, no index) from a copy of
the source, so the tree gets no build/ or egg-info from the test.
constraints.txt (the exact tested set) must pin every requirement of
setup.py (ranges) inside its range.
"""

import configparser
import email.parser
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
# What a source checkout holds that matters here: the packages that must
# ship and the folders that must not.
SOURCES = [
    "setup.py",
    "README.md",
    "tnet_tf",
    "experiments",
    "data_prep",
    "tests",
    "bench",
]
SHIPPED = ["tnet_tf", "experiments", "data_prep"]
NOT_SHIPPED = ["tests", "bench"]
CONSOLE_SCRIPTS = {
    "tnet-train": "experiments.train:run",
    "tnet-evaluate": "experiments.evaluate:run",
    "tnet-export": "experiments.export:run",
    "tnet-predict": "experiments.predict:run",
    "tnet-profile": "experiments.profile:run",
    "tnet-visualize": "experiments.visualize:run",
    "tnet-demo": "experiments.demo:run",
    "tnet-convert-release": "experiments.convert_release:run",
    "tnet-prep-birds": "data_prep.birds:run",
    "tnet-prep-fmow": "data_prep.fmow:run",
    "tnet-prep-image-folder": "data_prep.image_folder:run",
    "tnet-prep-imagenet": "data_prep.imagenet:run",
    "tnet-prep-megapixel-mnist": "data_prep.megapixel_mnist:run",
    "tnet-verify-records": "data_prep.verify:run",
}
# Runs each entry point with --help in one process (one TensorFlow
# import), as its console script would: sys.argv[0] is the script name.
_HELP_DRIVER = """
import contextlib, importlib, io, json, sys
results = {}
for name, target in json.loads(sys.argv[1]).items():
    module_name, function = target.split(":")
    module = importlib.import_module(module_name)
    sys.modules["__main__"].__doc__ = None
    sys.argv = [name, "--help"]
    out = io.StringIO()
    code = "returned"
    with contextlib.redirect_stdout(out):
        try:
            getattr(module, function)()
        except SystemExit as error:
            code = error.code
    results[name] = {
        "code": code,
        "help": out.getvalue(),
        "doc": module.__doc__.strip().splitlines()[0],
        "file": module.__file__,
    }
print("RESULTS " + json.dumps(results))
"""


def _pip(*args, cwd):
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The path of the wheel built from a copy of the source tree."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = root / "dist"
    _pip(
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--wheel-dir",
        str(dist),
        str(source),
        cwd=root,
    )
    (path,) = dist.glob("tnet_tf-*.whl")
    return path


def _dist_info_file(wheel_path, name):
    with zipfile.ZipFile(wheel_path) as archive:
        (member,) = [
            member
            for member in archive.namelist()
            if member.endswith(f".dist-info/{name}")
        ]
        return archive.read(member).decode("utf-8")


def _requirements(wheel_path):
    metadata = email.parser.Parser().parsestr(
        _dist_info_file(wheel_path, "METADATA")
    )
    return [Requirement(line) for line in metadata.get_all("Requires-Dist")]


def _console_scripts(wheel_path):
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # keep the script names as written
    parser.read_string(_dist_info_file(wheel_path, "entry_points.txt"))
    return dict(parser["console_scripts"])


def _constraints():
    """{canonical name: version} of constraints.txt's `name==version`."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} pinned twice"
        pins[name] = specifier.version
    return pins


def test_wheel_ships_the_library_and_the_command_lines_only(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names}
    for package in SHIPPED:
        assert f"{package}/__init__.py" in names
        assert package in top_level
    assert top_level - set(SHIPPED) == {"tnet_tf-0.1.0.dist-info"}
    for folder in NOT_SHIPPED:
        assert not [name for name in names if name.startswith(folder + "/")]
    # Every module of the source packages is in the wheel.
    for package in SHIPPED:
        for module in (ROOT / package).rglob("*.py"):
            relative = module.relative_to(ROOT).as_posix()
            assert relative in names, relative


def test_wheel_declares_the_console_scripts(wheel):
    assert _console_scripts(wheel) == CONSOLE_SCRIPTS


def test_requirements_are_ranges_not_pins(wheel):
    requirements = _requirements(wheel)
    names = {canonicalize_name(r.name) for r in requirements}
    assert {"tensorflow", "keras", "numpy", "pytest"} <= names
    for requirement in requirements:
        operators = {spec.operator for spec in requirement.specifier}
        assert not operators & {"==", "==="}, requirement
        assert operators & {">=", ">", "~="}, f"no lower bound: {requirement}"
        assert operators & {"<", "<=", "~="}, f"no upper bound: {requirement}"


def test_constraints_pin_every_requirement_inside_its_range(wheel):
    pins = _constraints()
    for requirement in _requirements(wheel):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pins[name]), (
            f"constraints.txt pins {name}=={pins[name]}, outside setup.py's "
            f"{requirement.specifier}"
        )


def test_installed_console_scripts_run(wheel, tmp_path):
    """Installs the wheel (no dependencies: the test environment has them)
    into a folder and runs its scripts from outside the source tree."""
    site = tmp_path / "site"
    _pip(
        "install",
        "--no-deps",
        "--no-index",
        "--target",
        str(site),
        str(wheel),
        cwd=tmp_path,
    )
    for name in CONSOLE_SCRIPTS:
        assert (site / "bin" / name).is_file(), name
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }

    # A user's run: the installed script, --help lists train's docstring
    # and its own flags (absl exits 1 after help).
    train = subprocess.run(
        [str(site / "bin" / "tnet-train"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert train.returncode == 1, train.stdout + train.stderr
    assert "Trains one recipe" in train.stdout, train.stdout
    assert "--strategy" in train.stdout, train.stdout
    # Required flags are checked as under `python -m experiments.train`.
    missing = subprocess.run(
        [str(site / "bin" / "tnet-train")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "--workdir must have a value" in missing.stderr, missing.stderr

    # Every entry point, from the installed copy, prints its own help.
    driver = subprocess.run(
        [sys.executable, "-c", _HELP_DRIVER, json.dumps(CONSOLE_SCRIPTS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert driver.returncode == 0, driver.stdout + driver.stderr
    (line,) = [
        line
        for line in driver.stdout.splitlines()
        if line.startswith("RESULTS ")
    ]
    results = json.loads(line[len("RESULTS ") :])
    for name, result in results.items():
        assert result["code"] == 1, (name, result)
        assert result["doc"] in result["help"], (name, result["help"])
        assert pathlib.Path(result["file"]).is_relative_to(site), result
