"""Session-wide test set-up: quiet TensorFlow, two logical CPUs, seeds.

The logical CPU split must happen before TensorFlow initialises its runtime,
so it runs when pytest imports this file, before any test module imports
TensorFlow code. Tests that use one device are unaffected: ops still default
to `/CPU:0`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

LOGICAL_CPUS = 2


def _split_cpu():
    """Splits the physical CPU into LOGICAL_CPUS logical devices."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0],
            [tf.config.LogicalDeviceConfiguration()] * LOGICAL_CPUS,
        )
    except RuntimeError as error:
        # The runtime was already initialised (e.g. by a plugin); the
        # fixture below then skips the tests that need two devices.
        return str(error)
    return None


_SPLIT_ERROR = _split_cpu()


# Modules of end-to-end runs: subprocesses (the documented commands, entry
# points, benchmarks, converters, multi-worker training), paper-sized
# models, resumes after a kill and learning to a result. `make test-fast`
# (the inner loop) leaves them out; `make test` and CI run them. Single slow
# tests elsewhere carry `@pytest.mark.heavy` themselves.
HEAVY_MODULES = {
    "test_anytime_commands",
    "test_bench",
    "test_cli_errors",
    "test_data_prep",
    "test_demo",
    "test_distributed",
    "test_docs_commands",
    "test_experiments",
    "test_export",
    "test_help",
    "test_image_folder",
    "test_lazy_reading",
    "test_learning",
    "test_packaging",
    "test_predict_batch",
    "test_predict_lazy",
    "test_presets",
    "test_release",
    "test_resume",
}


def pytest_configure(config):
    # Also declared in pytest.ini; kept here so the markers exist even when
    # pytest runs with another ini file.
    config.addinivalue_line("markers", "slow: long-running test")
    config.addinivalue_line("markers", "heavy: end-to-end run")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in HEAVY_MODULES:
            item.add_marker(pytest.mark.heavy)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same Python, NumPy and TF seeds."""
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture
def two_cpu_devices():
    """The names of two logical CPU devices, e.g. for MirroredStrategy."""
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < LOGICAL_CPUS:
        pytest.skip(
            f"needs {LOGICAL_CPUS} logical CPUs, found {len(devices)} "
            f"({_SPLIT_ERROR or 'split not applied'})"
        )
    return [device.name for device in devices[:LOGICAL_CPUS]]


@pytest.fixture
def workdir(tmp_path):
    """A fresh, empty working directory for a test's outputs."""
    path = tmp_path / "workdir"
    path.mkdir()
    return path
