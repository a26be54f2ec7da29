"""The Megapixel-MNIST demo: its pieces, and a smoke run of the whole job."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import demo
from tnet_tf import experiment
from tnet_tf import presets
from tnet_tf import profiling


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="epochs"):
        demo.DemoConfig(epochs=0)
    with pytest.raises(ValueError, match="pretrain_scales"):
        demo.DemoConfig(pretrain_scales=(7, 60))
    with pytest.raises(ValueError, match="equal_flops_locations"):
        demo.DemoConfig(evaluation_locations=(0, 1), equal_flops_locations=3)


def test_digit_pretraining_set_places_one_scaled_digit_per_image():
    config = demo.DemoConfig(pretrain_digits=200, pretrain_scales=(7, 12))
    images, labels = demo.digit_pretraining_set(config)
    assert images.shape == (200, 48, 48, 3)
    assert labels.shape == (200,) and set(labels) <= set(range(10))
    ink = images[..., 0] > -1.0
    for mask in ink:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        # One digit no larger than the largest scale.
        assert 0 < rows[-1] - rows[0] + 1 <= 12
        assert 0 < cols[-1] - cols[0] + 1 <= 12
    again, _ = demo.digit_pretraining_set(config)
    np.testing.assert_array_equal(images, again)


def test_equal_flops_resolution_is_the_closest_side():
    model = presets.build(demo.CNN_FULL_PRESET)
    target = 2.7e6
    side, macs = demo.equal_flops_resolution(target)
    assert macs == profiling.profile(model, side)["flops"]
    for other in (side - 1, side + 1):
        other_macs = profiling.profile(model, other)["flops"]
        assert abs(other_macs - target) >= abs(macs - target)


def _row(model, locations, top1, macs):
    return {"model": model, "locations": locations, "input_px": 256,
            "top1": top1, "macs": macs, "ms_per_image": 1.0}


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
    assert names == [("TNet", "0"), ("TNet", "1"), ("TNet", "2"),
                     ("CNN downscaled", ""), ("CNN full resolution", "")]
    tnet_macs = [row["macs"] for row in rows[:3]]
    assert tnet_macs == sorted(tnet_macs) and len(set(tnet_macs)) == 3
    low, full = rows[3], rows[4]
    assert full["input_px"] == 128 and low["input_px"] < 128
    # The downscaled CNN matches TNet's multiply-adds at one location.
    assert abs(low["macs"] - rows[1]["macs"]) < 0.1 * rows[1]["macs"]
    for row in rows:
        assert 0.0 <= row["top1"] <= 1.0 and row["ms_per_image"] > 0

    saved = experiment.read_csv(os.path.join(tmp_path, demo.RESULTS_CSV))
    assert [r["model"] for r in saved] == [r["model"] for r in rows]
    with open(os.path.join(tmp_path, demo.RESULTS_JSON)) as stream:
        summary = json.load(stream)
    assert summary["config"]["canvas_size"] == 128
    assert set(summary["training_seconds"]) == {
        "TNet", "CNN downscaled", "CNN full resolution"}
    for path in ("figures/attention.png", "figures/accuracy_vs_flops.png",
                 demo.TABLE_TXT, demo.PRETRAINED_WEIGHTS,
                 "tnet/checkpoints/final.keras",
                 "cnn_full/checkpoints/final.keras"):
        assert os.path.getsize(os.path.join(tmp_path, path)) > 0, path
    with open(os.path.join(tmp_path, "figures/attention.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    exported = tf.saved_model.load(
        os.path.join(tmp_path, "export", "saved_model"))
    images = tf.zeros((1, 128, 128, 3))
    outputs = exported.serve_locations_1(images)
    assert outputs["logits"].shape == (1, 10)
