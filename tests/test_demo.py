"""The Megapixel-MNIST demo: its pieces, and a smoke run of the whole job."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tnet_tf
from tnet_tf import demo
from tnet_tf import experiment
from tnet_tf import geometry
from tnet_tf import presets
from tnet_tf import profiling
from tnet_tf.demo import run as demo_run

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="max_epochs"):
        demo.DemoConfig(max_epochs=0)
    with pytest.raises(ValueError, match="patience"):
        demo.DemoConfig(patience=0)
    with pytest.raises(ValueError, match="pretrain_dropout_rate"):
        demo.DemoConfig(pretrain_dropout_rate=1.0)
    with pytest.raises(ValueError, match="pretrain_scales"):
        demo.DemoConfig(pretrain_scales=(7, 60))
    with pytest.raises(ValueError, match="equal_flops_locations"):
        demo.DemoConfig(evaluation_locations=(0, 1), equal_flops_locations=3)


def test_digit_pretraining_set_places_one_scaled_digit_per_image():
    config = demo.DemoConfig(pretrain_digits=200, pretrain_scales=(7, 12))
    images, labels = demo.digit_pretraining_set(config)
    assert images.shape == (200, 32, 32, 3)
    assert labels.shape == (200,) and set(labels) <= set(range(10))
    ink = images[..., 0] > -1.0
    for mask in ink:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        # One digit no larger than the largest scale.
        assert 0 < rows[-1] - rows[0] + 1 <= 12
        assert 0 < cols[-1] - cols[0] + 1 <= 12
    again, _ = demo.digit_pretraining_set(config)
    np.testing.assert_array_equal(images, again)
    # The backbone is scored on the test split's digits: other instances.
    test_images, _ = demo.digit_pretraining_set(config, "test", 50)
    assert test_images.shape == (50, 32, 32, 3)
    assert not np.any(np.all(test_images[:, None] == images[None], (2, 3, 4)))


def test_attended_centre_fraction_counts_cells_below_level_one():
    centres = np.array([[0.25, 0.25], [0.75, 0.75], [0.1, 0.9]], np.float32)
    whole = [0.0, 0.0, 1.0, 1.0]
    top_left = [0.0, 0.0, 0.5, 0.5]
    boxes = np.array([[whole, top_left]] * 3, np.float32)
    levels = np.array([[1, 2]] * 3)
    # Only the first centre lies in an attended cell; the whole image
    # (level 1) never counts.
    assert demo.attended_centre_fraction(boxes, levels, centres) == (
        pytest.approx(1 / 3)
    )
    assert (
        demo.attended_centre_fraction(boxes[:, :1], levels[:, :1], centres)
        == 0.0
    )


def test_chance_localization_matches_counting_and_sampling():
    # A 2x2 grid of half-side cells: each centre lies in exactly one cell.
    centres = np.array([[0.2, 0.3], [0.7, 0.1]], np.float32)
    for k, expected in ((0, 0.0), (1, 0.25), (2, 0.5), (4, 1.0)):
        assert demo.chance_localization(centres, k, 2, 0.5, 64) == (
            pytest.approx(expected)
        )
    # Overlapping cells: the exact value against random draws of cells.
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 1, (200, 2)).astype(np.float32)
    cells = np.array(geometry.grid_boxes(256, 256, 7, 0.25)) / 256
    hits = []
    for centre in centres:
        inside = (
            (cells[:, 0] <= centre[0])
            & (centre[0] < cells[:, 2])
            & (cells[:, 1] <= centre[1])
            & (centre[1] < cells[:, 3])
        )
        for _ in range(50):
            hits.append(inside[rng.choice(49, 3, replace=False)].any())
    assert demo.chance_localization(centres, 3, 7, 0.25, 256) == (
        pytest.approx(np.mean(hits), abs=0.02)
    )


def test_equal_flops_resolution_is_the_closest_side():
    model = presets.build(demo.CNN_FULL_PRESET)
    target = 2.7e6
    side, macs = demo.equal_flops_resolution(target)
    assert macs == profiling.profile(model, side)["flops"]
    for other in (side - 1, side + 1):
        other_macs = profiling.profile(model, other)["flops"]
        assert abs(other_macs - target) >= abs(macs - target)


def _row(model, locations, top1, macs):
    return {
        "model": model,
        "locations": locations,
        "image_size": 256,
        "top1": top1,
        "flops": macs,
        "ms_per_image": 1.0,
    }


def test_comparison_reads_the_two_claims_off_the_rows():
    rows = [
        _row("TNet", "0", 0.10, 10),
        _row("TNet", "1", 0.80, 20),
        _row("TNet", "3", 0.90, 40),
        _row("TNet", "5", 0.99, 60),  # over a third of the full CNN's 150
        _row("CNN downscaled", "", 0.30, 20),
        _row("CNN full resolution", "", 0.92, 150),
    ]
    claims = demo.comparison(rows, demo.DemoConfig(equal_flops_locations=1))
    assert claims["gain_over_equal_flops"] == pytest.approx(50.0)
    assert claims["best_within_third"]["locations"] == "3"
    assert claims["gap_to_full"] == pytest.approx(2.0)


def test_smoke_run_writes_the_table_export_and_pictures(tmp_path, capsys):
    config = demo.SMOKE.replace(canvas_size=128)
    rows = demo.run_demo(str(tmp_path), config, verbose=0)
    out = capsys.readouterr().out
    assert "[8/8] Results" in out and "CNN full resolution" in out

    names = [(row["model"], row["locations"]) for row in rows]
    assert names == [
        ("TNet", "0"),
        ("TNet", "1"),
        ("TNet", "2"),
        ("CNN downscaled", ""),
        ("CNN full resolution", ""),
    ]
    tnet_macs = [row["flops"] for row in rows[:3]]
    assert tnet_macs == sorted(tnet_macs) and len(set(tnet_macs)) == 3
    low, full = rows[3], rows[4]
    assert full["image_size"] == 128 and low["image_size"] < 128
    # The downscaled CNN matches TNet's multiply-adds at one location.
    assert abs(low["flops"] - rows[1]["flops"]) < 0.1 * rows[1]["flops"]
    for row in rows:
        assert 0.0 <= row["top1"] <= 1.0 and row["ms_per_image"] > 0
    # TNet rows carry their localization and its chance level; at 0
    # locations nothing is attended.
    assert rows[0]["localization"] == 0.0
    assert rows[0]["chance_localization"] == 0.0
    for row in rows[1:3]:
        assert 0.0 <= row["localization"] <= 1.0
        assert 0.0 < row["chance_localization"] < 1.0
    assert low["localization"] is None and full["localization"] is None

    saved = experiment.read_csv(os.path.join(tmp_path, demo.RESULTS_CSV))
    assert [r["model"] for r in saved] == [r["model"] for r in rows]
    with open(os.path.join(tmp_path, demo.RESULTS_JSON)) as stream:
        summary = json.load(stream)
    assert summary["config"]["canvas_size"] == 128
    assert set(summary["training_seconds"]) == {
        "TNet",
        "CNN downscaled",
        "CNN full resolution",
    }
    for result in summary["training"].values():
        assert 1 <= result["best_epoch"] <= result["epochs"] <= 2
        assert 0.0 <= result["validation_top1"] <= 1.0
    assert [r["localization"] for r in summary["rows"]] == [
        r["localization"] for r in rows
    ]
    assert "located %" in out and "chance %" in out
    for path in (
        "figures/attention.png",
        "figures/accuracy_vs_flops.png",
        "figures/location_probs.png",
        "tnet/checkpoints/best.keras",
        demo.TABLE_TXT,
        demo.PRETRAINED_WEIGHTS,
        "tnet/checkpoints/final.keras",
        "cnn_full/checkpoints/final.keras",
    ):
        assert os.path.getsize(os.path.join(tmp_path, path)) > 0, path
    with open(os.path.join(tmp_path, "figures/attention.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # The analysis script of the demo's limits, as a user runs it.
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.demo_policy",
            "--workdir",
            str(tmp_path),
            "--probe_epochs",
            "1",
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": REPOSITORY},
    )
    assert process.returncode == 0, process.stderr[-3000:]
    line = next(
        line
        for line in process.stdout.splitlines()
        if line.startswith("bench_demo_policy ")
    )
    analysis = json.loads(line.split(" ", 1)[1])
    assert analysis["locations"] == config.locations
    for key in ("probe_hit", "policy_hit", "located"):
        assert 0.0 <= analysis[key] <= 1.0
    # `located` counts the same canvases as the table's localization.
    assert analysis["located"] == pytest.approx(
        rows[config.evaluation_locations.index(config.locations)][
            "localization"
        ]
    )

    exported = tf.saved_model.load(
        os.path.join(tmp_path, "export", "saved_model")
    )
    images = tf.zeros((1, 128, 128, 3))
    outputs = exported.serve_locations_1(images)
    assert outputs["logits"].shape == (1, 10)
    # The trained TNet is also a preset directory, with the digits' names.
    preset = tnet_tf.TNet.from_preset(
        os.path.join(tmp_path, "export", "preset")
    )
    assert preset.class_names == tuple("0123456789")
    np.testing.assert_allclose(
        preset(images, locations_per_level=[1])["logits"],
        outputs["logits"],
        atol=1e-5,
    )


def test_export_info_logs_are_filtered_and_restored(caplog):
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        with caplog.at_level("INFO"):
            with demo_run._tensorflow_logs_at_warning():
                absl_logging.info("sharding took 1 microsecond")
                tf.get_logger().info("assets written")
                absl_logging.warning("a warning still shows")
            absl_logging.info("shown again after export")
    finally:
        absl_logging.set_verbosity(verbosity)
    messages = [record.getMessage() for record in caplog.records]
    assert "sharding took 1 microsecond" not in messages
    assert "assets written" not in messages
    assert "a warning still shows" in messages
    assert "shown again after export" in messages
