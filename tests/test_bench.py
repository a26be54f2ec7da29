"""Smoke tests of the bench/ scripts and the release-style cropper.

Each script's `main` runs in `--smoke` mode (tiny models, sizes and
repetitions) and must print a table and, as its last line, a JSON object
with cases, comparisons and passing output checks. The numbers themselves
are not tested: these are benchmarks, not timed tests.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from bench import common
from bench import inference
from bench import release_cropping
from bench import scaling
from bench import training_throughput
from tnet_tf import geometry
from tnet_tf import presets

# (side, grid, cell fraction): fMoW 896/448, ImageNet, CUB and a tiny grid.
PAPER_GRIDS = [
    (896, 3, 0.5),
    (448, 3, 0.5),
    (224, 5, 0.34375),
    (448, 5, 0.35),
    (96, 3, 0.5),
]


def _run(capsys, main, argv):
    status = main(argv)
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    result = json.loads(lines[-1])
    table = "\n".join(lines[:-1])
    return status, result, table


def _check_result(result, table, benchmark, case_names):
    assert result["benchmark"] == benchmark
    assert result["settings"]["smoke"] is True
    names = [case["name"] for case in result["cases"]]
    assert names == case_names
    for case in result["cases"]:
        assert case["ms_per_image"] > 0
        assert (
            len(case["samples_ms" if "samples_ms" in case else "samples_s"])
            == (result["settings"]["reps"])
        )
        assert case["name"] in table
    assert all(check["passed"] for check in result["checks"])
    for comparison in result["comparisons"]:
        assert comparison["ratio"] > 0
    assert "ms/image" in table


def test_inference_smoke(capsys):
    status, result, table = _run(
        capsys, inference.main, ["--smoke", "--quiet"]
    )
    assert status == 0
    _check_result(
        result,
        table,
        "inference",
        [
            "tnet448_k1",
            "tnet448_k2",
            "tnet448_k3",
            "tnet896_k21",
            "tnet896_k22",
            "backbone896_k21",
            "backbone896_k21_one_batch",
            "en224",
            "en448",
            "en896",
            "inet_k0",
            "inet_k1",
            "inet_k2",
            "bagnet77",
        ],
    )
    cases = {c["name"]: c for c in result["cases"]}
    assert "2+4+4 crops" in " ".join(
        cases["backbone896_k21"]["notes"]
    )  # batch 2
    assert "10 crops in one batch" in " ".join(
        cases["backbone896_k21_one_batch"]["notes"]
    )
    comparisons = {c["name"]: c for c in result["comparisons"]}
    speedup = comparisons["EN-B0 896 / TNet 896 [2,1] (time)"]
    assert speedup["target"] == ">= 5"
    assert isinstance(speedup["target_met"], bool)


@pytest.mark.parametrize(
    "jit,precision",
    [
        ("on", "mixed_float16"),
        ("off", "mixed_bfloat16"),
    ],
)
def test_inference_smoke_xla_and_mixed_precision_match(capsys, jit, precision):
    # TNet's crop path (gathers) compiles under XLA and takes bfloat16.
    status, result, _ = _run(
        capsys,
        inference.main,
        [
            "--smoke",
            "--quiet",
            "--jit",
            jit,
            "--precision",
            precision,
            "--cases",
            "tnet896_k21,en224",
        ],
    )
    assert status == 0
    assert result["settings"]["jit"] is (jit == "on")
    assert result["settings"]["precision"] == precision
    checks = {c["name"]: c for c in result["checks"]}
    tnet = checks["tnet896_k21 vs plain float32"]
    # The stand-in's level-3 cells (24 px) are below its base resolution
    # (32), so it crops with or without XLA.
    assert tnet["jit"] is (jit == "on") and tnet["regions_mode"] == "crop"
    assert tnet["precision"] == precision
    assert tnet["same_cells"] is True
    assert tnet["max_rel_diff"] <= common.TOLERANCES[precision]
    assert "en224 vs plain float32" in checks


def test_scaling_smoke(capsys):
    status, result, table = _run(
        capsys, scaling.main, ["--smoke", "--quiet", "--breakdown"]
    )
    assert status == 0
    sizes = [128, 256, 512]
    _check_result(
        result,
        table,
        "scaling",
        [f"tnet_{s}" for s in sizes]
        + [f"tnet_crop_{s}" for s in sizes]
        + [f"en_{s}" for s in sizes]
        + [f"regions_{p}_{s}" for s in sizes for p in ("crop", "resample")],
    )
    # The stand-in's regions (down to its 32 px base) are never padded nor
    # upscaled at these sizes: as configured, it resamples without XLA.
    modes = {
        case["name"]: case.get("regions_mode") for case in result["cases"]
    }
    for size in sizes:
        assert modes[f"tnet_{size}"] == "resample"
        assert modes[f"tnet_crop_{size}"] == "crop"
    names = [c["name"] for c in result["comparisons"]]
    for name in (
        "TNet 512 / TNet 128 (time)",
        "TNet crop path 512 / 128 (time)",
        "crop path / ours at 256 (time)",
        "regions crop / resample at 256 (time)",
    ):
        assert name in names
    region_checks = [
        c
        for c in result["checks"]
        if c["name"].startswith("regions resample vs crop")
    ]
    assert len(region_checks) == 3
    crop_checks = [
        c for c in result["checks"] if c["name"].startswith("tnet_crop_")
    ]
    assert [c["regions"] for c in crop_checks] == ["crop vs resample"] * 3


def test_scaling_smoke_xla_takes_the_crop_path(capsys):
    # crop_and_resize has no XLA kernel: the case tells the model it is
    # compiled, so "auto" crops; the check's reference still resamples.
    status, result, _ = _run(
        capsys,
        scaling.main,
        [
            "--smoke",
            "--quiet",
            "--jit",
            "on",
            "--cases",
            "tnet_128",
        ],
    )
    assert status == 0
    (case,) = result["cases"]
    assert case["jit"] is True and case["regions_mode"] == "crop"
    (check,) = result["checks"]
    assert check["regions_mode"] == "crop"
    assert check["reference_regions_mode"] == "resample"
    assert check["passed"] and check["same_cells"] is True


def test_training_throughput_smoke(capsys):
    status, result, table = _run(
        capsys, training_throughput.main, ["--smoke", "--quiet"]
    )
    assert status == 0
    names = [case["name"] for case in result["cases"]]
    assert names[0] == "single"
    assert "mirrored" in names  # conftest provides two logical CPUs
    for case in result["cases"]:
        assert case["images_per_s"] > 0
        assert len(case["samples_s"]) == result["settings"]["reps"]
    assert result["comparisons"][0]["name"] == "mirrored / single (images/s)"
    assert "img/s" in table


def test_training_throughput_smoke_xla(capsys):
    # The whole train step, TNet's crop path included, compiles with XLA.
    status, result, _ = _run(
        capsys,
        training_throughput.main,
        [
            "--smoke",
            "--quiet",
            "--jit",
            "on",
            "--cases",
            "single",
        ],
    )
    assert status == 0
    assert result["settings"]["jit"] is True
    (case,) = result["cases"]
    assert case["name"] == "single" and case["images_per_s"] > 0
    (check,) = result["checks"]
    assert check["jit"] is True and check["regions_mode"] == "crop"
    assert check["reference_regions_mode"] == "resample"
    assert check["passed"] and check["same_cells"] is True


def test_release_cropping_smoke_with_memory(capsys):
    # One memory case: it runs in a fresh subprocess (the CPU method).
    status, result, table = _run(
        capsys,
        release_cropping.main,
        [
            "--smoke",
            "--quiet",
            "--memory",
            "on",
            "--cases",
            "level2_release",
        ],
    )
    assert status == 0
    (case,) = result["cases"]
    assert case["name"] == "level2_release"
    assert case["peak_mib"] >= 0
    assert "rss_before_mib" in case
    assert "peak RSS" in table
    # The crop equality checks run whatever cases are selected: the release
    # cropper equals the model's bit for bit, boxes included.
    crop_checks = [
        c for c in result["checks"] if c["name"].startswith("crops")
    ]
    assert len(crop_checks) == len(release_cropping.SMOKE_GRIDS)
    for check in crop_checks:
        assert check["name"].endswith("release vs crop_cells")
        assert check["passed"] and check["same_boxes"]
        assert check["max_abs_diff"] == 0.0


def test_release_cropping_smoke_xla(capsys):
    # Both croppers alone and TNet with the release's, compiled with XLA;
    # resampling (no XLA kernel) runs without it.
    status, result, _ = _run(
        capsys,
        release_cropping.main,
        [
            "--smoke",
            "--quiet",
            "--jit",
            "on",
            "--cases",
            "level2,tnet896_ours,tnet896_release",
        ],
    )
    assert status == 0
    cases = {case["name"]: case for case in result["cases"]}
    assert list(cases) == [
        "tnet896_ours",
        "tnet896_release",
        "level2_release",
        "level2_crop",
        "level2_resample",
    ]
    for name, case in cases.items():
        assert case["jit"] is (name != "level2_resample")
    assert cases["tnet896_ours"]["regions_mode"] == "crop"
    assert cases["tnet896_ours"]["notes"] == ["levels 2+: crop"]
    assert cases["tnet896_release"]["notes"] == ["levels 2+: crop (release)"]
    assert [c["name"] for c in result["comparisons"]] == [
        "release / ours, TNet 896 [2,1] (time)",
        "release / crop, level-2 regions 896 (time)",
        "release / resample, level-2 regions 896 (time)",
        "crop / resample, level-2 regions 896 (time)",
    ]
    checks = {c["name"]: c for c in result["checks"]}
    tnet = checks["tnet896_release vs plain float32"]
    assert (
        tnet["jit"] is True and tnet["regions"] == "crop (release) vs resample"
    )
    assert tnet["passed"] and tnet["same_cells"] is True


def _numpy_crops(regions, cells, grid_size, fraction):
    """Independent reference: pad with zeros, slice each chosen cell."""
    _, height, width, _ = regions.shape
    rows = geometry.cell_layout(height, grid_size, fraction)
    cols = geometry.cell_layout(width, grid_size, fraction)
    padded = np.pad(
        regions,
        [
            (0, 0),
            (rows.pad_before, rows.pad_after),
            (cols.pad_before, cols.pad_after),
            (0, 0),
        ],
    )
    crops = []
    for b, row in enumerate(cells):
        for cell in row:
            y = (cell // grid_size) * rows.stride
            x = (cell % grid_size) * cols.stride
            crops.append(
                padded[b, y : y + rows.cell_size, x : x + cols.cell_size]
            )
    return np.stack(crops)


@pytest.mark.parametrize("side,grid_size,fraction", PAPER_GRIDS)
def test_release_cropper_equals_crop_cells(side, grid_size, fraction):
    regions = (
        np.random.default_rng(side)
        .uniform(-1, 1, (2, side, side, 3))
        .astype(np.float32)
    )
    cells = np.array(
        [
            [grid_size**2 - 1, 0, grid_size],
            [1, grid_size**2 // 2, grid_size**2 - 2],
        ]
    )
    release, release_boxes = release_cropping.release_crop_cells(
        tf.constant(regions), tf.constant(cells), grid_size, fraction
    )
    ours, boxes = geometry.crop_cells(
        tf.constant(regions), tf.constant(cells), grid_size, fraction
    )
    expected = _numpy_crops(regions, cells, grid_size, fraction)
    # Both croppers cut the exact pixels, in the caller's cell order.
    np.testing.assert_array_equal(release.numpy(), expected)
    np.testing.assert_array_equal(ours.numpy(), expected)
    np.testing.assert_array_equal(release_boxes.numpy(), boxes.numpy())
    # With `parents` (anytime inference's narrowed batch), the cells of
    # regions 1, 1 and 0.
    parents = np.array([1, 1, 0], np.int32)
    picked = cells[[0, 1, 1]]
    expected = _numpy_crops(regions[parents], picked, grid_size, fraction)
    for crop in (release_cropping.release_crop_cells, geometry.crop_cells):
        crops, _ = crop(
            tf.constant(regions),
            tf.constant(picked),
            grid_size,
            fraction,
            parents=tf.constant(parents),
        )
        np.testing.assert_array_equal(crops.numpy(), expected)


def test_release_readers_swap_only_the_cropper():
    model_readers = common.region_readers("model")
    release = common.region_readers("release")
    assert model_readers["crop"].crop is geometry.crop_cells
    assert release["crop"].crop is release_cropping.release_crop_cells
    assert release["resample"] is model_readers["resample"]
    with pytest.raises(ValueError, match="gather"):
        common.region_readers("gather")


def test_release_readers_give_tnet_the_same_outputs():
    model = presets.build("tiny_test", region_sampling="crop")
    images = tf.random.stateless_uniform((2, 96, 96, 3), (1, 2), -1, 1)
    expected = model(images, locations_per_level=[2, 1])
    model.region_readers = common.region_readers("release")
    got = model(images, locations_per_level=[2, 1])
    np.testing.assert_array_equal(
        got["attended_cells"], expected["attended_cells"]
    )
    np.testing.assert_allclose(got["logits"], expected["logits"], atol=1e-6)


def test_scaling_breakdown_region_paths_agree():
    # The 896 px fMoW traversal: 448 px regions resampled, 224 px copied.
    config = common.Context().config("fmow_tnet_b0_896")
    assert scaling.resample_obstacle(config, 896, (2, 1)) is None
    images = tf.random.stateless_uniform(
        (1, 896, 896, 3), seed=[1, 2], minval=-1, maxval=1
    )
    cells = scaling.fixed_cells(1, (2, 1), config.grid_size)
    crop = scaling.breakdown_inputs("crop", images, cells, config)
    resample = scaling.breakdown_inputs("resample", images, cells, config)
    assert (
        [t.shape for t in crop]
        == [t.shape for t in resample]
        == [(1, 224, 224, 3), (2, 224, 224, 3), (2, 224, 224, 3)]
    )
    for a, b in zip(crop, resample):
        np.testing.assert_allclose(
            a.numpy(), b.numpy(), rtol=0, atol=scaling.REGIONS_TOLERANCE
        )
    assert scaling.region_paths_max_diff(images, cells, config) <= (
        scaling.REGIONS_TOLERANCE
    )
