"""Shared test helpers: serialization round trips and tiny inputs.

Every layer and model of tnet_tf goes through the two round-trip helpers
(layout.md, style rule 3):

- `assert_config_round_trip(obj)`: `get_config -> from_config -> get_config`
  is JSON-identical, and so is `keras.saving.serialize_keras_object ->
  deserialize_keras_object`.
- `assert_keras_file_round_trip(model_or_layer, inputs, tmp_path)`: a `.keras`
  save and load gives the same class, the same weights and the same outputs.

Also tiny inputs, and `run_module`: an entry point run as a user runs it.
"""

import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np


def _canonical_json(config):
    # sort_keys makes the comparison independent of dict order; json.dumps
    # also fails loudly when the config holds something that is not JSON-able.
    return json.dumps(config, sort_keys=True)


def _init_argument_names(cls):
    signature = inspect.signature(cls.__init__)
    return [
        name
        for name, parameter in signature.parameters.items()
        if name != "self"
        and parameter.kind
        in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]


def assert_config_round_trip(obj, ignored_init_args=()):
    """Asserts that `obj`'s config survives both Keras serialization paths.

    Also checks the layer contract: every explicit `__init__` argument is
    stored as an attribute of the same name and appears in `get_config`. A
    config-to-config comparison alone cannot see a forgotten argument, since
    the rebuilt object then falls back to the same default.

    Args:
        obj: a Keras layer or model (anything with `get_config` and
            `from_config`).
        ignored_init_args: names of `__init__` arguments that are
            deliberately left out of the config (say why at the call site).

    Returns:
        The object rebuilt by `from_config`.
    """
    config = obj.get_config()
    expected = _canonical_json(config)
    for name in _init_argument_names(type(obj)):
        if name in ignored_init_args:
            continue
        assert name in config, f"`{name}` is missing from get_config()"
        assert hasattr(obj, name), f"`{name}` is not stored as an attribute"

    clone = type(obj).from_config(config)
    assert type(clone) is type(obj)
    assert _canonical_json(clone.get_config()) == expected

    serialized = keras.saving.serialize_keras_object(obj)
    _canonical_json(serialized)  # the whole serialized form is JSON-able
    restored = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(serialized))
    )
    assert type(restored) is type(obj)
    assert _canonical_json(restored.get_config()) == expected
    return clone


def _as_list(inputs):
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    return [inputs]


def _wrap_layer(layer, inputs, call_kwargs):
    """A functional model around `layer`, fed one `keras.Input` per input."""
    symbolic = [
        keras.Input(shape=np.shape(value)[1:], dtype=_dtype_of(value))
        for value in _as_list(inputs)
    ]
    outputs = layer(*symbolic, **call_kwargs)
    return keras.Model(symbolic, outputs, name=f"{layer.name}_wrapper")


def _dtype_of(value):
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return "float32"
    return keras.backend.standardize_dtype(dtype)


def _call(model, inputs, wrapped, call_kwargs):
    if wrapped:
        return model(_as_list(inputs), training=False)
    return model(inputs, training=False, **call_kwargs)


def _flatten_outputs(outputs):
    return [
        None if value is None else keras.ops.convert_to_numpy(value)
        for value in keras.tree.flatten(outputs)
    ]


def assert_outputs_close(actual, expected, atol=1e-6):
    """Asserts two (possibly nested) output structures are equal within `atol`.

    Floating-point leaves are compared within `atol` (absolute and relative);
    others (ints, bools) must be exactly equal.
    """
    actual_leaves = _flatten_outputs(actual)
    expected_leaves = _flatten_outputs(expected)
    assert len(actual_leaves) == len(expected_leaves)
    for index, (got, want) in enumerate(zip(actual_leaves, expected_leaves)):
        if want is None:
            assert got is None, f"output {index}"
            continue
        assert got.shape == want.shape, f"output {index}"
        if np.issubdtype(want.dtype, np.floating):
            np.testing.assert_allclose(
                got, want, atol=atol, rtol=atol, err_msg=f"output {index}"
            )
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"output {index}")


def assert_keras_file_round_trip(
    model_or_layer, inputs, tmp_path, call_kwargs=None, atol=1e-6
):
    """Saves to `.keras`, loads back, and compares class, weights and outputs.

    A `keras.Model` is saved as it is (it is called on `inputs` first, which
    builds a subclassed model). A plain layer is wrapped in a small functional
    model with one `keras.Input` per input tensor; the loaded wrapper must then
    contain a layer of the same class with the same config. Outputs are
    compared in inference mode (`training=False`).

    Args:
        model_or_layer: a `keras.Model` or `keras.layers.Layer`.
        inputs: for a model, its first call argument, passed as it is (a
            functional model with several inputs takes a list). For a layer,
            one array or a list/tuple of arrays, one per positional call
            argument.
        tmp_path: a directory (pytest's `tmp_path`).
        call_kwargs: dict of extra keyword arguments for the call, e.g.
            `{"locations_per_level": [2]}`. For a wrapped layer they are fixed
            when the functional model is built.
        atol: absolute and relative tolerance of the output comparison.

    Returns:
        The loaded model (the loaded wrapper for a plain layer).
    """
    call_kwargs = dict(call_kwargs or {})
    wrapped = not isinstance(model_or_layer, keras.Model)
    if wrapped:
        model = _wrap_layer(model_or_layer, inputs, call_kwargs)
    else:
        model = model_or_layer
    expected = _call(model, inputs, wrapped, call_kwargs)

    path = str(tmp_path / f"{model.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)

    assert type(loaded) is type(model)
    if wrapped:
        matches = [
            layer
            for layer in loaded.layers
            if type(layer) is type(model_or_layer)
        ]
        assert len(matches) == 1, [type(layer) for layer in loaded.layers]
        assert _canonical_json(matches[0].get_config()) == _canonical_json(
            model_or_layer.get_config()
        )
    # Weight paths carry auto-generated sublayer names that differ between the
    # two objects, so weights are compared in order, by shape and value.
    assert len(loaded.weights) == len(model.weights)
    for original, restored in zip(model.weights, loaded.weights):
        assert tuple(restored.shape) == tuple(original.shape), original.path
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(restored),
            keras.ops.convert_to_numpy(original),
            err_msg=original.path,
        )
    assert_outputs_close(
        _call(loaded, inputs, wrapped, call_kwargs), expected, atol=atol
    )
    return loaded


# === Tiny inputs ===


def random_uniform(shape, low=-1.0, high=1.0, seed=0):
    """A float32 NumPy array uniform in `[low, high)`, reproducible by seed."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=shape).astype("float32")


def random_images(batch=2, height=32, width=None, seed=0):
    """A float32 image batch `(batch, height, width, 3)` in `[-1, 1]`."""
    return random_uniform((batch, height, width or height, 3), seed=seed)


def random_feature_map(batch=2, grid_size=3, channels=8, seed=0):
    """A tapped map `F` of shape `(batch, grid_size, grid_size, channels)`."""
    return random_uniform((batch, grid_size, grid_size, channels), seed=seed)


def random_features(batch=2, dim=16, seed=0):
    """Pooled feature vectors `V` of shape `(batch, dim)`."""
    return random_uniform((batch, dim), seed=seed)


def random_positions(batch=2, grid_size=3, levels=2, seed=0):
    """Position triplets `(batch, 3)`: integer `[y, x, scale]` as float32.

    `y` and `x` are cell indices at the deepest level
    (`0 .. grid_size ** (levels - 1) - 1`), `scale` is `0 .. levels - 1`.
    """
    rng = np.random.default_rng(seed)
    side = grid_size ** (levels - 1)
    rows_columns = rng.integers(0, side, size=(batch, 2))
    scales = rng.integers(0, levels, size=(batch, 1))
    return np.concatenate([rows_columns, scales], axis=-1).astype("float32")


# === A SavedModel run by TensorFlow alone ===

# Runs SavedModel endpoints in a fresh interpreter where `tnet_tf` cannot be
# imported (the project is installed in editable mode, so it is blocked in
# sys.modules), as tests/test_export.py does for its own cases.
_SAVED_MODEL_SCRIPT = """
import json
import sys

sys.modules["tnet_tf"] = None
import numpy as np
import tensorflow as tf

sys.stdin.readline()  # started early: importing TensorFlow is slow
request = json.load(open(sys.argv[1]))
model = tf.saved_model.load(request["saved_model"])
results = {}
for name, (endpoint, inputs) in request["calls"].items():
    outputs = model.signatures[endpoint](images=tf.constant(np.load(inputs)))
    for key, value in outputs.items():
        results[name + "/" + key] = value.numpy()
results["tnet_tf_imported"] = np.array(any(
    name == "tnet_tf" or name.startswith("tnet_tf.")
    for name, module in sys.modules.items() if module is not None
))
np.savez(sys.argv[2], **results)
"""


class SavedModelRunner:
    """Calls SavedModel endpoints in a subprocess that cannot import tnet_tf.

    Start it early (it imports TensorFlow, then waits), then `run` once.

    Example:
    >>> runner = SavedModelRunner(tmp_path)
    >>> outputs = runner.run(saved_model_dir, {"a": ("serve", "images.npy")})
    >>> outputs["a/logits"]
    """

    def __init__(self, directory):
        import os
        import subprocess
        import sys

        self.directory = str(directory)
        script = os.path.join(self.directory, "run_saved_model.py")
        with open(script, "w") as file:
            file.write(_SAVED_MODEL_SCRIPT)
        self.request = os.path.join(self.directory, "request.json")
        self.results = os.path.join(self.directory, "results.npz")
        self.log = os.path.join(self.directory, "run_saved_model.log")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, script, self.request, self.results],
                cwd=self.directory,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def run(self, saved_model, calls, timeout=300):
        """`calls`: name -> (endpoint, path of an .npy batch of images).

        Returns a dict `"<name>/<output>"` -> array, plus
        `"tnet_tf_imported"`.
        """
        with open(self.request, "w") as file:
            json.dump({"saved_model": str(saved_model), "calls": calls}, file)
        self.process.communicate(b"go\n", timeout=timeout)
        with open(self.log, errors="replace") as log:
            assert self.process.returncode == 0, log.read()[-3000:]
        return dict(np.load(self.results))

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# === Entry points as a user runs them ===


def _module_command(module, arguments):
    """`(command, keyword arguments)` of `python -m module arguments...`
    from the repository root with TensorFlow quiet."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = {
        **os.environ,
        "PYTHONPATH": root,
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    command = [sys.executable, "-m", module, *arguments]
    return command, {"cwd": root, "env": environment, "text": True}


def run_module(module, *arguments, timeout=300):
    """`python -m module arguments...` from the repository root, in a
    subprocess with TensorFlow quiet; the `CompletedProcess` (text)."""
    command, options = _module_command(module, arguments)
    return subprocess.run(
        command, capture_output=True, timeout=timeout, **options
    )


def start_module(module, *arguments):
    """`run_module` started, not waited for: a `Popen` with its output
    piped (several commands run side by side)."""
    command, options = _module_command(module, arguments)
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options
    )
