"""Anytime inference (tnet_tf.models.anytime): the fixed-k equivalence,
per-image stops, counts and multiply-adds, the per-batch budget, reading
only the undecided images, and bad arguments."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tnet_tf import config as config_lib
from tnet_tf import models
from tnet_tf import presets
from tnet_tf import profiling
from tnet_tf.models import anytime_steps

SIDE = 96
BATCH = 6


def tiny_tnet(**changes):
    keras.utils.set_random_seed(0)
    config = presets.get("tiny_test").replace(
        num_levels=2, locations_per_level=(3,), feature_weighting=True
    )
    return models.TNet(config.replace(**changes))


@pytest.fixture(scope="module")
def model():
    return tiny_tnet()


@pytest.fixture(scope="module")
def images():
    return helpers.random_images(batch=BATCH, height=SIDE, seed=3)


def assert_same_as_call(result, outputs):
    np.testing.assert_allclose(
        result.logits, outputs["logits"], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(
        result.attended_cells, outputs["attended_cells"]
    )
    np.testing.assert_array_equal(
        result.attended_levels, outputs["attended_levels"]
    )
    np.testing.assert_allclose(
        result.attended_boxes, outputs["attended_boxes"], atol=1e-6
    )


def test_never_confident_equals_the_fixed_call(model, images):
    assert model.region_sampling_mode(images, [3]) == "resample"
    result = model.predict_anytime(images, threshold=1.0, max_locations=3)
    # The threshold was checked after every step and never reached.
    assert np.all(result.confidence < 1.0)
    np.testing.assert_array_equal(result.locations, 3)
    assert result.batch_sizes == (BATCH,) * 3
    outputs = model(images, training=False, locations_per_level=[3])
    assert_same_as_call(result, outputs)
    # Without a threshold nor a budget: the same, checked once.
    plain = model.predict_anytime(images, max_locations=3)
    assert_same_as_call(plain, outputs)
    assert np.all(plain.multiply_adds == plain.cost.fixed(3))


def test_the_crop_reader_gives_the_same(images):
    # The fixture resamples its regions (`auto` at this size); the crop
    # reader is narrowed to the undecided images too.
    cropping = tiny_tnet(region_sampling="crop")
    assert cropping.region_sampling_mode(images, [3]) == "crop"
    result = cropping.predict_anytime(images, threshold=1.0)
    assert_same_as_call(
        result, cropping(images, training=False, locations_per_level=[3])
    )


def test_a_cell_with_its_subtree_is_one_step(images):
    # A [k, 1] model: each step attends a top-level cell and its best
    # child; the output layout is the call's.
    deep = tiny_tnet(num_levels=3, locations_per_level=(2, 1))
    result = deep.predict_anytime(images, threshold=1.0)
    np.testing.assert_array_equal(result.locations, 2)
    outputs = deep(images, training=False, locations_per_level=[2, 1])
    assert_same_as_call(result, outputs)
    assert result.cost.vectors_per_step == 2
    assert (
        result.cost.fixed(2)
        == (profiling.profile(deep, SIDE, [2, 1])["flops"])
    )


def test_a_tiny_threshold_stops_after_one_location(model, images):
    result = model.predict_anytime(images, threshold=1e-6, max_locations=3)
    np.testing.assert_array_equal(result.locations, 1)
    assert result.batch_sizes == (BATCH,)
    assert np.all(result.multiply_adds == result.cost.fixed(1))
    np.testing.assert_array_equal(result.attended_levels[:, 2:], 0)
    np.testing.assert_array_equal(result.attended_cells[:, 2:], -1)
    assert_same_as_call(
        model.predict_anytime(images, max_locations=1),
        model(images, training=False, locations_per_level=[1]),
    )
    # min_locations=0: level 1 alone decides.
    alone = model.predict_anytime(
        images, threshold=1e-6, max_locations=3, min_locations=0
    )
    np.testing.assert_array_equal(alone.locations, 0)
    assert alone.batch_sizes == ()
    np.testing.assert_allclose(
        alone.logits,
        model(images, training=False, locations_per_level=[])["logits"],
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_array_equal(alone.attended_levels[:, 1:], 0)


def confidences(model, images, k):
    logits = model(images, training=False, locations_per_level=[k])
    return np.asarray(tf.reduce_max(tf.nn.softmax(logits["logits"]), -1))


def test_each_image_stops_at_its_first_confident_step(model, images):
    at = {k: confidences(model, images, k) for k in (1, 2, 3)}
    # A threshold between the images' confidences after one location.
    threshold = float(np.median(at[1]))
    result = model.predict_anytime(
        images, threshold=threshold, max_locations=3
    )
    for i in range(BATCH):
        sure = [k for k in (1, 2) if at[k][i] >= threshold]
        expected = sure[0] if sure else 3
        assert result.locations[i] == expected, (i, at, threshold)
        one = model(
            images[i : i + 1], training=False, locations_per_level=[expected]
        )
        np.testing.assert_allclose(
            result.logits[i], one["logits"][0], rtol=1e-5, atol=1e-5
        )
    assert 1 <= result.locations.min() < result.locations.max()
    # Multiply-adds: level 1, the steps, and one aggregation per check.
    cost = result.cost
    for n, macs in zip(result.locations, result.multiply_adds):
        checks = sum(cost.aggregation(1 + j) for j in range(1, n + 1))
        assert macs == cost.level_one + n * cost.per_step + checks
    # The cost model is the profiler's count of the model's own call.
    for k in (1, 3):
        assert cost.fixed(k) == profiling.profile(model, SIDE, [k])["flops"]


def test_only_undecided_images_are_read(model, images):
    threshold = float(np.median(confidences(model, images, 1)))
    program = anytime_steps.program(model, (3,), SIDE, SIDE)
    read, step = [], program.step

    def counting(images, indices, cells, log_probs):
        levels = step(images, indices, cells, log_probs)
        read.append((indices.numpy().tolist(), levels[0]["vectors"].shape))
        return levels

    program.step = counting
    try:
        result = model.predict_anytime(
            images, threshold=threshold, max_locations=3
        )
    finally:
        program.step = step
    assert len(read) == 3
    for j, (indices, shape) in enumerate(read):
        undecided = np.flatnonzero(result.locations > j).tolist()
        assert indices == undecided
        assert shape[0] == len(undecided)
    assert result.batch_sizes == tuple(len(i) for i, _ in read)
    assert result.batch_sizes[-1] < BATCH


def test_the_budget_goes_to_the_least_certain_images(model, images):
    first = confidences(model, images, 1)
    order = np.argsort(first, kind="stable")
    # One location each, then 2 more for the batch in one round.
    result = model.predict_anytime(
        images, budget=BATCH + 2, max_locations=3, round_size=2
    )
    expected = np.ones(BATCH, np.int32)
    expected[order[:2]] = 2
    np.testing.assert_array_equal(result.locations, expected)
    assert result.batch_sizes == (BATCH, 2)
    # One at a time: each extra location to the least certain image then.
    greedy = model.predict_anytime(
        images, budget=BATCH + 3, max_locations=3, round_size=1
    )
    assert greedy.locations.sum() == BATCH + 3
    assert greedy.batch_sizes == (BATCH, 1, 1, 1)
    steps = np.ones(BATCH, np.int32)
    for _ in range(3):
        now = np.array(
            [
                confidences(model, images[i : i + 1], int(steps[i]))[0]
                if steps[i] < 3
                else np.inf
                for i in range(BATCH)
            ]
        )
        steps[np.argmin(now)] += 1
    np.testing.assert_array_equal(greedy.locations, steps)
    # Never over the budget; capped at max_locations each.
    for budget in (BATCH, BATCH + 5, 100):
        spent = model.predict_anytime(images, budget=budget, max_locations=3)
        assert spent.locations.sum() == min(budget, 3 * BATCH)
        assert spent.locations.max() <= 3
    # With a threshold, confident images take no more.
    both = model.predict_anytime(
        images, budget=100, max_locations=3, threshold=1e-6
    )
    np.testing.assert_array_equal(both.locations, 1)


def test_bad_arguments_are_refused(model, images):
    for threshold in (0, 0.0, -0.5, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="threshold"):
            model.predict_anytime(images, threshold=threshold)
    for budget in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="budget"):
            model.predict_anytime(images, budget=budget)
    with pytest.raises(ValueError, match="min_locations"):
        model.predict_anytime(images, budget=BATCH - 1)
    with pytest.raises(ValueError, match="max_locations"):
        model.predict_anytime(images, max_locations=0)
    with pytest.raises(config_lib.LocationSettingError):
        model.predict_anytime(images, max_locations=10)  # 9 cells
    with pytest.raises(ValueError, match="min_locations"):
        model.predict_anytime(images, max_locations=2, min_locations=3)
    with pytest.raises(ValueError, match="round_size"):
        model.predict_anytime(images, budget=10, round_size=0)
    baseline = models.BaselineClassifier(
        config_lib.BaselineConfig(
            name="tiny_baseline",
            backbone="tiny_cnn",
            num_classes=10,
            image_size=SIDE,
        )
    )
    with pytest.raises(ValueError, match="attends no regions"):
        baseline.predict_anytime(images, threshold=0.9)

    @tf.function
    def traced(x):
        return model.predict_anytime(x, threshold=0.9).logits

    with pytest.raises(RuntimeError, match="outside tf.function"):
        traced(images)


@pytest.mark.heavy
def test_the_benchmark_runs_as_a_user_runs_it():
    # --tiny: an untrained tiny TNet on a few canvases, no demo folder.
    process = helpers.run_module(
        "bench.anytime", "--tiny", "--reps", "1", timeout=240
    )
    assert process.returncode == 0, process.stderr[-3000:]
    line = next(
        line
        for line in process.stdout.splitlines()
        if line.startswith("bench_anytime ")
    )
    result = json.loads(line.split(" ", 1)[1])
    assert result["tiny"] and result["images"] == 16
    methods = result["methods"]
    assert {row["kind"] for row in methods.values()} == {
        "fixed",
        "threshold",
        "budget",
    }
    for row in methods.values():
        assert 0.0 <= row["top1"] <= 1.0 and row["ms_per_image"] > 0
        assert 1.0 <= row["locations"] <= 3.0
    # The budget of 2 per image is spent exactly.
    assert methods["budget 2/image"]["locations"] == 2.0
    assert result["summary"]["best_fixed"].startswith("fixed k=")
    assert "method" in process.stdout and "target_met" in process.stdout
