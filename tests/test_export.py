"""The SavedModel, reloaded in a process without tnet_tf, matches Keras.

One module-level export of `tiny_test` (and of a tiny baseline and a
feature-weighting TNet) is reloaded by a subprocess that imports only
TensorFlow and NumPy and cannot import `tnet_tf`. It runs every endpoint on
inputs saved as files and writes the outputs to an `.npz`, which the tests
compare with the Keras model's own outputs, per serving input type and
location setting.
"""

import json
import os
import struct
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import BaselineClassifier
from tnet_tf import BaselineConfig
from tnet_tf import export
from tnet_tf import lazy_reading
from tnet_tf import presets

# (endpoint, locations_per_level for the Keras call; None = config default).
FLOAT_ENDPOINTS = (
    ("serve", None),
    ("serving_default", None),
    ("serve_locations_2_1", [2, 1]),
    ("serve_locations_0", [0]),
    ("serve_locations_none", []),
)
EXTRA_SETTINGS = [[2, 1], [0], []]
# Two batches of different sizes and aspects, both >= the base resolution 32.
FLOAT_INPUTS = {"square": (2, 96, 96), "wide": (1, 80, 120)}
JPEG_SIZES = ((100, 90), (64, 128))
LAZY_JPEG_SIZES = ((300, 400), (520, 260))
ATOL = 1e-5

# Run in a fresh interpreter. The project is installed in editable mode, so
# it is blocked explicitly: the SavedModel must need nothing but TensorFlow.
RELOAD_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    sys.modules["tnet_tf"] = None
    try:
        import tnet_tf  # noqa: F401
    except ImportError:
        blocked = True
    else:
        blocked = False

    import numpy as np
    import tensorflow as tf

    # Importing TensorFlow is slow, so the test starts this process first
    # and says when the models and inputs are written.
    sys.stdin.readline()
    cases = json.load(open(sys.argv[1]))
    results, info = {}, {"tnet_tf_blocked": blocked, "models": {}}
    loaded = {}
    for case in cases:
        directory = case["model_dir"]
        if directory not in loaded:
            model = tf.saved_model.load(directory)
            loaded[directory] = model
            info["models"][directory] = {
                name: {
                    key: [spec.dtype.name, spec.shape.as_list()]
                    for key, spec in fn.structured_input_signature[1].items()
                }
                for name, fn in model.signatures.items()
            }
        model = loaded[directory]
        if case["kind"] == "files":
            images = tf.stack([tf.io.read_file(p) for p in case["inputs"]])
        else:
            images = tf.constant(np.load(case["inputs"]))
        inputs = {"images": images}
        if "threshold" in case:
            inputs["threshold"] = tf.constant(case["threshold"], tf.float32)
        if case.get("expect_error"):
            try:
                model.signatures[case["endpoint"]](**inputs)
            except tf.errors.InvalidArgumentError as error:
                info.setdefault("errors", {})[case["name"]] = error.message
            continue
        outputs = model.signatures[case["endpoint"]](**inputs)
        for key, value in outputs.items():
            results[case["name"] + "/" + key] = value.numpy()
        if case.get("direct"):
            # The endpoint is also a plain attribute of the loaded object.
            direct = getattr(model, case["endpoint"])(images)
            results[case["name"] + "/direct_logits"] = direct["logits"].numpy()
    info["tnet_tf_imported"] = any(
        name == "tnet_tf" or name.startswith("tnet_tf.")
        for name, module in sys.modules.items()
        if module is not None
    )
    np.savez(sys.argv[2], **results)
    json.dump(info, open(sys.argv[3], "w"))
    """
)


def _tiny_baseline():
    return BaselineClassifier(
        BaselineConfig(
            name="tiny_baseline",
            backbone="tiny_cnn",
            num_classes=10,
            image_size=96,
        )
    )


def _encode_bmp(pixels):
    """BMP bytes of uint8 `(h, w, 3)` pixels (TensorFlow decodes BMP but
    has no encoder): 24-bit, bottom-up rows padded to 4 bytes."""
    pixels = np.asarray(pixels)
    height, width, _ = pixels.shape
    row = (width * 3 + 3) // 4 * 4
    body = np.zeros((height, row), np.uint8)
    body[:, : width * 3] = pixels[::-1, :, ::-1].reshape(height, -1)
    header = struct.pack(
        "<2sIHHIIiiHHIIiiII",
        b"BM",
        54 + body.size,
        0,
        0,
        54,
        40,
        width,
        height,
        1,
        24,
        0,
        body.size,
        2835,
        2835,
        0,
        0,
    )
    return header + body.tobytes()


def _reference_decode(path, image_size):
    """The evaluation preprocessing, written out with plain tf ops."""
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.image.resize(image, image_size, "bilinear", antialias=False)
    return tf.clip_by_value(image, 0.0, 1.0) * 2.0 - 1.0


def _start_reload_process(root):
    """Starts the reload script; it imports TensorFlow, then waits."""
    script = root / "reload.py"
    script.write_text(RELOAD_SCRIPT)
    paths = [root / "cases.json", root / "results.npz", root / "info.json"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # Output goes to a file: a pipe nobody reads until the end could fill up
    # and block the subprocess.
    with open(root / "reload.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(script)] + [str(path) for path in paths],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, paths


def _case(name, model_dir, endpoint, inputs, kind="npy", **flags):
    return dict(
        name=name,
        model_dir=model_dir,
        endpoint=endpoint,
        inputs=inputs,
        kind=kind,
        **flags,
    )


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return presets.build("tiny_test")


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    """Exports, reloads in a subprocess, and returns its and Keras' outputs."""
    root = tmp_path_factory.mktemp("export")
    process, (cases_path, results_path, info_path) = _start_reload_process(
        root
    )
    try:
        return _export_and_compare(
            tiny_model, root, process, cases_path, results_path, info_path
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _export_and_compare(
    model, root, process, cases_path, results_path, info_path
):
    baseline = _tiny_baseline()
    # Feature weighting on two levels: only the extra output is checked.
    weighted = presets.build(
        "tiny_test",
        feature_weighting=True,
        num_levels=2,
        locations_per_level=(2,),
    )
    directories = {
        name: str(root / name) for name in ("tnet", "baseline", "weighted")
    }
    info = export.export_saved_model(
        model, directories["tnet"], EXTRA_SETTINGS
    )
    export.export_saved_model(baseline, directories["baseline"])
    export.export_saved_model(weighted, directories["weighted"])

    rng = np.random.default_rng(0)
    inputs, cases = {}, []
    for name, (batch, height, width) in FLOAT_INPUTS.items():
        images = rng.uniform(-1, 1, (batch, height, width, 3))
        inputs[name] = images.astype("float32")
        path = str(root / f"{name}.npy")
        np.save(path, inputs[name])
        for endpoint, _ in FLOAT_ENDPOINTS:
            cases.append(
                _case(
                    f"{endpoint}/{name}",
                    directories["tnet"],
                    endpoint,
                    path,
                    direct=endpoint == "serve_locations_0",
                )
            )
        cases.append(
            _case(f"baseline/{name}", directories["baseline"], "serve", path)
        )
        cases.append(
            _case(f"weighted/{name}", directories["weighted"], "serve", path)
        )
    # Below the base resolution (32) on one side.
    np.save(root / "too_small.npy", np.zeros((1, 20, 64, 3), np.float32))
    cases.append(
        _case(
            "too_small",
            directories["tnet"],
            "serve",
            str(root / "too_small.npy"),
            expect_error=True,
        )
    )
    # One NaN pixel in the first square image, none in the second; and one
    # image without its batch axis.
    nonfinite = inputs["square"].copy()
    nonfinite[0, 5, 7, 1] = np.nan
    np.save(root / "nonfinite.npy", nonfinite)
    for name, directory in (
        ("nonfinite", "tnet"),
        ("baseline_nonfinite", "baseline"),
    ):
        cases.append(
            _case(
                name,
                directories[directory],
                "serve",
                str(root / "nonfinite.npy"),
            )
        )
    np.save(root / "unbatched.npy", np.zeros((96, 96, 3), np.float32))
    for endpoint in ("serve", "serve_locations_2_1"):
        cases.append(
            _case(
                f"unbatched/{endpoint}",
                directories["tnet"],
                endpoint,
                str(root / "unbatched.npy"),
                expect_error=True,
            )
        )
    inputs["uint8"] = rng.integers(0, 256, (2, 72, 88, 3), dtype=np.uint8)
    np.save(root / "uint8.npy", inputs["uint8"])
    cases.append(
        _case(
            "uint8",
            directories["tnet"],
            "serve_uint8",
            str(root / "uint8.npy"),
        )
    )
    jpegs = []
    for index, (height, width) in enumerate(JPEG_SIZES):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        jpegs.append(str(root / f"image_{index}.jpg"))
        tf.io.write_file(jpegs[-1], tf.io.encode_jpeg(pixels))
    for name, directory in (("jpeg", "tnet"), ("baseline_jpeg", "baseline")):
        cases.append(
            _case(
                name,
                directories[directory],
                "serve_image_bytes",
                jpegs,
                kind="files",
            )
        )
    # Larger JPEGs for the lazy endpoint: level 1 decoded at 1/8, regions
    # at 1/4 and 1/2 from their own windows (base resolution 32).
    lazy_jpegs = []
    for index, (height, width) in enumerate(LAZY_JPEG_SIZES):
        coarse = rng.uniform(0, 255, (1, 6, 8, 3)).astype("float32")
        pixels = tf.image.resize(coarse, (height, width), "bicubic")[0]
        pixels += rng.normal(0, 15, (height, width, 3))
        lazy_jpegs.append(str(root / f"large_{index}.jpg"))
        tf.io.write_file(
            lazy_jpegs[-1],
            tf.io.encode_jpeg(
                tf.cast(tf.clip_by_value(pixels, 0, 255), "uint8")
            ),
        )
    cases.append(
        _case(
            "jpeg_lazy",
            directories["tnet"],
            "serve_jpeg_lazy",
            lazy_jpegs,
            kind="files",
        )
    )
    # Any format: the JPEGs again (read lazily), a PNG and a BMP (each
    # decoded once to uint8) in one batch.
    others = []
    for index, encode in enumerate((tf.io.encode_png, _encode_bmp)):
        pixels = tf.image.resize(
            rng.uniform(0, 255, (1, 5, 7, 3)),
            (340 - 60 * index, 410),
            "bicubic",
        )[0]
        others.append(str(root / f"large_{index}.{encode.__name__[-3:]}"))
        tf.io.write_file(
            others[-1],
            encode(tf.cast(tf.clip_by_value(pixels, 0, 255), "uint8")),
        )
    lazy_images = lazy_jpegs + others
    cases.append(
        _case(
            "image_lazy",
            directories["tnet"],
            "serve_image_lazy",
            lazy_images,
            kind="files",
        )
    )
    # Anytime: a threshold between the images' confidences after one
    # location, so that some stop there and the others go on; and one
    # outside (0, 1].
    anytime_images = rng.uniform(-1, 1, (6, 96, 96, 3)).astype("float32")
    np.save(root / "anytime.npy", anytime_images)
    first = model.predict_anytime(
        anytime_images, threshold=1.0, max_locations=1
    ).confidence
    threshold = float(np.median(first))
    for name, value in (("anytime", threshold), ("anytime_zero", 0.0)):
        cases.append(
            _case(
                name,
                directories["tnet"],
                "serve_anytime",
                str(root / "anytime.npy"),
                threshold=value,
                expect_error=value == 0.0,
            )
        )
    cases_path.write_text(json.dumps(cases))
    process.stdin.write(b"go\n")
    process.stdin.flush()

    # Keras reference outputs, computed while the subprocess runs.
    expected = {}
    for name in FLOAT_INPUTS:
        images = inputs[name]
        by_setting = {}
        for endpoint, locations in FLOAT_ENDPOINTS:
            setting = model.resolve_locations(locations)
            if setting not in by_setting:
                by_setting[setting] = model(
                    images, training=False, locations_per_level=setting
                )
            expected[f"{endpoint}/{name}"] = by_setting[setting]
        expected[f"baseline/{name}"] = baseline(images, training=False)
        expected[f"weighted/{name}"] = weighted(images, training=False)
    uint8_as_float = inputs["uint8"].astype("float32") / 255.0 * 2.0 - 1.0
    expected["uint8"] = model(uint8_as_float, training=False)
    decoded = tf.stack(
        [_reference_decode(path, model.config.image_size) for path in jpegs]
    )
    expected["jpeg"] = model(decoded, training=False)
    expected["baseline_jpeg"] = baseline(decoded, training=False)
    expected["jpeg_lazy"] = [
        lazy_reading.classify_file(model, path) for path in lazy_jpegs
    ]
    expected["image_lazy"] = [
        lazy_reading.classify_file(model, path) for path in lazy_images
    ]

    expected["anytime"] = model.predict_anytime(
        anytime_images, threshold=threshold
    )

    process.communicate(timeout=300)
    log = (root / "reload.log").read_text(errors="replace")
    assert process.returncode == 0, log[-3000:]
    return {
        "results": dict(np.load(results_path)),
        "expected": expected,
        "info": json.loads(info_path.read_text()),
        "signature_info": info,
        "directories": directories,
    }


def _assert_matches(results, expected, name, keys):
    for key in keys:
        got = results[f"{name}/{key}"]
        want = np.asarray(expected[key])
        assert got.shape == want.shape, (name, key)
        if np.issubdtype(want.dtype, np.integer):
            assert got.dtype == np.int32, (name, key, got.dtype)
            np.testing.assert_array_equal(got, want, err_msg=f"{name}/{key}")
        else:
            np.testing.assert_allclose(
                got, want, atol=ATOL, rtol=ATOL, err_msg=f"{name}/{key}"
            )


def _with_probabilities(outputs):
    outputs = dict(outputs)
    outputs["probabilities"] = tf.nn.softmax(outputs["logits"])
    return outputs


def test_reload_runs_without_tnet_tf(served):
    info = served["info"]
    assert info["tnet_tf_blocked"] and not info["tnet_tf_imported"]
    signatures = info["models"][served["directories"]["tnet"]]
    expected = {name for name, _ in FLOAT_ENDPOINTS} | {
        "serve_uint8",
        "serve_image_bytes",
        "serve_jpeg_lazy",
        "serve_image_lazy",
        "serve_anytime",
    }
    assert set(signatures) == expected
    any_size = [None, None, None, 3]
    for name, _ in FLOAT_ENDPOINTS:
        assert signatures[name] == {"images": ["float32", any_size]}
    assert signatures["serve_uint8"] == {"images": ["uint8", any_size]}
    for name in ("serve_image_bytes", "serve_jpeg_lazy", "serve_image_lazy"):
        assert signatures[name] == {"images": ["string", [None]]}
    assert signatures["serve_anytime"] == {
        "images": ["float32", any_size],
        "threshold": ["float32", []],
    }
    baseline = info["models"][served["directories"]["baseline"]]
    lazy = {"serve_jpeg_lazy", "serve_image_lazy", "serve_anytime"}
    assert not lazy & set(baseline)


def test_anytime_endpoint_matches_predict_anytime(served):
    """`serve_anytime` gives `model.predict_anytime`'s stops, cells,
    multiply-adds and logits; the threshold lets some images stop after
    one location and not others."""
    results, expected = served["results"], served["expected"]["anytime"]
    used = results["anytime/locations_used"]
    assert used.dtype == np.int32
    np.testing.assert_array_equal(used, expected.locations)
    assert 1 == used.min() < used.max()
    assert results["anytime/multiply_adds"].dtype == np.int64
    np.testing.assert_array_equal(
        results["anytime/multiply_adds"], expected.multiply_adds
    )
    for key in ("attended_cells", "attended_levels"):
        np.testing.assert_array_equal(
            results[f"anytime/{key}"], getattr(expected, key)
        )
    for key in ("logits", "confidence", "attended_boxes"):
        np.testing.assert_allclose(
            results[f"anytime/{key}"],
            getattr(expected, key),
            atol=ATOL,
            rtol=ATOL,
        )
    np.testing.assert_allclose(
        results["anytime/probabilities"],
        tf.nn.softmax(expected.logits),
        atol=ATOL,
    )
    error = served["info"]["errors"]["anytime_zero"]
    assert "threshold must be in (0, 1]" in error


@pytest.mark.parametrize("name", ["jpeg_lazy", "image_lazy"])
def test_lazy_endpoints_match_classify_file(served, name):
    """`serve_jpeg_lazy` reads each JPEG lazily at full resolution, and
    `serve_image_lazy` also a PNG and a BMP from one uint8 decode, as
    `lazy_reading.classify_file` does: same top-1 and cells (not the
    resize to `image_size` of `serve_image_bytes`)."""
    results = served["results"]
    for index, expected in enumerate(served["expected"][name]):
        logits = results[f"{name}/logits"][index]
        assert np.argmax(logits) == np.argmax(expected["logits"][0])
        np.testing.assert_allclose(
            logits, expected["logits"][0], atol=ATOL, rtol=ATOL
        )
        for key in ("attended_cells", "attended_levels", "attended_boxes"):
            np.testing.assert_allclose(
                results[f"{name}/{key}"][index], expected[key][0]
            )
    assert results[f"{name}/image_is_finite"].all()


@pytest.mark.parametrize("size", sorted(FLOAT_INPUTS))
@pytest.mark.parametrize("endpoint", [name for name, _ in FLOAT_ENDPOINTS])
def test_float_endpoints_match_keras(served, endpoint, size):
    name = f"{endpoint}/{size}"
    results = served["results"]
    _assert_matches(
        results,
        _with_probabilities(served["expected"][name]),
        name,
        (
            "logits",
            "probabilities",
            "attended_boxes",
            "attended_levels",
            "attended_cells",
            "attended_log_probs",
        ),
    )
    assert f"{name}/feature_weights" not in results
    if f"{name}/direct_logits" in results:
        np.testing.assert_allclose(
            results[f"{name}/direct_logits"],
            results[f"{name}/logits"],
            atol=1e-6,
        )


def test_location_settings_change_the_attended_set(served):
    results = served["results"]
    levels = {
        endpoint: results[f"{endpoint}/wide/attended_levels"].tolist()
        for endpoint in ("serve", "serve_locations_0", "serve_locations_none")
    }
    assert levels == {
        "serve": [[1, 2, 2, 3, 3]],
        "serve_locations_0": [[1]],
        "serve_locations_none": [[1]],
    }


def test_images_below_base_resolution_fail_when_served(served):
    errors = served["info"].get("errors", {})
    assert "smaller than the base resolution" in errors.get("too_small", "")


def test_non_finite_images_are_flagged_and_the_others_served(served):
    results = served["results"]
    for name, reference in (
        ("nonfinite", "serve/square"),
        ("baseline_nonfinite", "baseline/square"),
    ):
        np.testing.assert_array_equal(
            results[f"{name}/image_is_finite"], [False, True]
        )
        assert np.isnan(results[f"{name}/logits"][0]).all()
        assert np.isnan(results[f"{name}/probabilities"][0]).all()
        # The finite image gets what it gets in a batch without NaN.
        for key in ("logits", "probabilities"):
            np.testing.assert_allclose(
                results[f"{name}/{key}"][1],
                results[f"{reference}/{key}"][1],
                atol=ATOL,
            )
        np.testing.assert_array_equal(
            results[f"{reference}/image_is_finite"], [True, True]
        )
    np.testing.assert_array_equal(
        results["nonfinite/attended_levels"][1],
        results["serve/square/attended_levels"][1],
    )


def test_an_image_without_its_batch_axis_gets_a_shape_error(served):
    errors = served["info"].get("errors", {})
    for endpoint in ("serve", "serve_locations_2_1"):
        message = errors.get(f"unbatched/{endpoint}", "")
        assert (
            "Shape of tensor images [96,96,3] is not compatible with "
            "expected shape [?,?,?,3]" in message
        ), message


def test_uint8_endpoint_scales_without_resizing(served):
    _assert_matches(
        served["results"],
        _with_probabilities(served["expected"]["uint8"]),
        "uint8",
        ("logits", "probabilities", "attended_boxes", "attended_levels"),
    )


def test_image_bytes_endpoint_decodes_and_resizes(served):
    _assert_matches(
        served["results"],
        _with_probabilities(served["expected"]["jpeg"]),
        "jpeg",
        ("logits", "probabilities", "attended_boxes", "attended_levels"),
    )


def test_baseline_endpoints_return_what_tnet_endpoints_return(served):
    results = served["results"]
    for name in ("baseline/square", "baseline/wide", "baseline_jpeg"):
        keys = {
            k[len(name) + 1 :] for k in results if k.startswith(name + "/")
        }
        assert keys == {
            "logits",
            "probabilities",
            "image_is_finite",
            "attended_boxes",
            "attended_levels",
            "attended_cells",
            "attended_log_probs",
        }
        # Its one attended region is the whole image.
        assert (results[f"{name}/attended_boxes"][:, 0] == [0, 0, 1, 1]).all()
        _assert_matches(
            results,
            _with_probabilities(served["expected"][name]),
            name,
            ("logits", "probabilities", "attended_boxes", "attended_levels"),
        )


def test_signature_info_asset(served):
    path = os.path.join(
        served["directories"]["tnet"], "assets", export.SIGNATURE_INFO_FILE
    )
    with open(path) as file:
        written = json.load(file)
    assert written == served["signature_info"]
    assert written["image_size"] == [96, 96]
    assert written["outputs"] == [
        "logits",
        "probabilities",
        "image_is_finite",
        "attended_boxes",
        "attended_levels",
        "attended_cells",
        "attended_log_probs",
    ]
    endpoints = written["endpoints"]
    assert endpoints["serve"]["locations_per_level"] == [2, 1]
    assert endpoints["serve_locations_none"]["locations_per_level"] == []
    assert endpoints["serve_locations_0"]["locations_per_level"] == [0]


def test_endpoint_names():
    assert export.endpoint_name([2, 1]) == "serve_locations_2_1"
    assert export.endpoint_name((3,)) == "serve_locations_3"
    assert export.endpoint_name([0]) == "serve_locations_0"
    assert export.endpoint_name([]) == "serve_locations_none"


@pytest.mark.parametrize(
    "settings, message",
    [
        ([[10]], "3x3 grid has 9 cells"),
        ([[2, -1]], "impossible"),
        ([2], "must be a list"),
        (["21"], "must be a list"),
        ([[1.5]], "must hold ints"),
        # 96 px (image_size): cells of 48, 24, 12, 6, 3, 2, 1 px, then 0.
        ([[1] * 8], r"deepest valid setting is \[1, 1, 1, 1, 1, 1, 1\]"),
    ],
)
def test_bad_locations_setting_raises_before_writing(
    tmp_path, tiny_model, settings, message
):
    path = tmp_path / "model"
    with pytest.raises(ValueError, match=message):
        export.export_saved_model(tiny_model, str(path), settings)
    assert not path.exists()


def test_locations_settings_rejected_for_baselines(tmp_path):
    with pytest.raises(ValueError, match="attends no regions"):
        export.export_saved_model(
            _tiny_baseline(), str(tmp_path / "model"), [[1]]
        )


@pytest.mark.parametrize("size", sorted(FLOAT_INPUTS))
def test_feature_weights_are_served(served, size):
    name = f"weighted/{size}"
    assert served["results"][f"{name}/feature_weights"].shape[1] == 3
    _assert_matches(
        served["results"],
        _with_probabilities(served["expected"][name]),
        name,
        ("logits", "probabilities", "feature_weights", "attended_levels"),
    )


def test_save_keras_round_trip(tmp_path, tiny_model):
    model = tiny_model
    images = np.random.default_rng(2).uniform(-1, 1, (1, 96, 96, 3))
    path = export.save_keras(model, tmp_path / "tiny.keras")
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(
        loaded(images, training=False)["logits"],
        model(images, training=False)["logits"],
        atol=1e-6,
    )
    with pytest.raises(ValueError, match=".keras"):
        export.save_keras(model, tmp_path / "tiny.h5")
