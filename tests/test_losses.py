"""The learning rule of paper Section 4 (eqs. 1-3) against a NumPy reference.

`tests.numpy_reference` computes every term loop by loop in float64 from the
equations; here `tnet_tf.losses` and `TNet.compute_loss_terms` must agree with
it to 1e-5. Logits are random normals, so top-1 ties (where the reward would
depend on the tie rule) do not occur; `_inputs` checks that.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import numpy_reference
from tnet_tf import losses
from tnet_tf import presets

TERMS = (
    "loss",
    "aggregate_ce",
    "reinforce",
    "per_feature_ce",
    "per_feature_reinforce",
    "baseline_target",
    "reward",
)
TOLERANCE = dict(rtol=1e-5, atol=1e-5)
# The model outputs the loss reads.
OUTPUT_NAMES = (
    "logits",
    "per_feature_logits",
    "attended_levels",
    "attended_log_probs",
    "location_log_prob",
)


def _levels(locations_per_level):
    """`[1, 2, 2, 3, 3, ...]`: the level of each vector, as the model orders them."""
    levels, per_image = [1], 1
    for level, k in enumerate(locations_per_level, start=2):
        per_image *= k
        levels += [level] * per_image
    return np.array(levels, np.int32)


def _has_top1_ties(logits):
    # Both sides take the arg-max of the same float32 values, so only exact
    # ties could make them disagree; a margin keeps the case clear.
    top2 = np.sort(logits, axis=-1)[..., -2:]
    return bool(np.any(top2[..., 1] - top2[..., 0] < 1e-5))


def _assert_no_top1_ties(logits):
    assert not _has_top1_ties(logits)


def _inputs(seed, batch, classes, locations_per_level):
    """Random float32 outputs of a model: about half the predictions right."""
    rng = np.random.default_rng(seed)
    while True:  # redraw in the (unlikely) case of a top-1 tie
        labels, arrays = _draw(rng, batch, classes, locations_per_level)
        if not (
            _has_top1_ties(arrays["logits"])
            or _has_top1_ties(arrays["per_feature_logits"])
        ):
            return labels, arrays


def _draw(rng, batch, classes, locations_per_level):
    levels = np.tile(_levels(locations_per_level), (batch, 1))
    vectors = levels.shape[1]
    labels = rng.integers(0, classes, size=batch).astype(np.int32)
    logits = rng.normal(size=(batch, classes))
    per_feature_logits = rng.normal(size=(batch, vectors, classes))
    # Push the label up in a random half of the predictions, so that both
    # rewards 0 and 1 occur in every term.
    logits[np.arange(batch), labels] += 3.0 * (rng.random(batch) < 0.5)
    boost = 3.0 * (rng.random((batch, vectors)) < 0.5)
    rows = np.arange(batch)[:, None]
    per_feature_logits[rows, np.arange(vectors), labels[:, None]] += boost
    cell_log_probs = np.log(rng.uniform(0.05, 0.9, size=(batch, vectors)))
    cell_log_probs[levels == 1] = 0.0
    set_log_prob = np.log(rng.uniform(0.01, 0.5, size=batch))
    arrays = dict(
        logits=logits.astype(np.float32),
        per_feature_logits=per_feature_logits.astype(np.float32),
        attended_levels=levels,
        attended_log_probs=cell_log_probs.astype(np.float32),
        location_log_prob=set_log_prob.astype(np.float32),
    )
    return labels, arrays


def _tensors(arrays):
    return {name: tf.constant(value) for name, value in arrays.items()}


def _reference(labels, arrays, baseline, weights, cap, variant):
    return numpy_reference.hybrid_reinforce_loss(
        labels,
        arrays["logits"],
        arrays["per_feature_logits"],
        arrays["attended_levels"],
        arrays["attended_log_probs"],
        arrays["location_log_prob"],
        baseline,
        lambda_f=weights["reinforce_weight"],
        lambda_c=weights["per_feature_ce_weight"],
        lambda_r=weights["per_feature_reinforce_weight"],
        level_cap=cap,
        variant=variant,
    )


WEIGHTS = (
    dict(
        reinforce_weight=0.1,
        per_feature_ce_weight=0.3,
        per_feature_reinforce_weight=0.3,
    ),
    dict(
        reinforce_weight=0.7,
        per_feature_ce_weight=0.05,
        per_feature_reinforce_weight=0.85,
    ),
)
# (batch, classes, locations_per_level, cap): two and three levels, each cap.
CASES = (
    (4, 5, (2,), None),
    (7, 10, (3,), 2),
    (5, 6, (2,), 1),
    (5, 6, (2, 1), None),
    (3, 4, (2, 2), 3),
    (6, 7, (3, 2), 2),
    (4, 5, (2, 1), 1),
)


def _case_id(case):
    batch, classes, locations, cap = case
    return f"n{batch}-c{classes}-k{'x'.join(map(str, locations))}-cap{cap}"


@pytest.mark.parametrize("variant", ["paper", "release"])
@pytest.mark.parametrize("weights", WEIGHTS, ids=["default", "other"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_hybrid_loss_matches_numpy_reference(case, weights, variant):
    batch, classes, locations, cap = case
    labels, arrays = _inputs(batch * 31 + classes, batch, classes, locations)
    baseline = 0.37
    terms = losses.hybrid_reinforce_loss(
        tf.constant(labels),
        _tensors(arrays),
        tf.constant(baseline),
        per_feature_level_cap=cap,
        variant=variant,
        **weights,
    )
    expected = _reference(labels, arrays, baseline, weights, cap, variant)
    assert set(TERMS) <= set(terms)
    for name in TERMS:
        assert terms[name].shape == (), name
        np.testing.assert_allclose(
            float(terms[name]), expected[name], err_msg=name, **TOLERANCE
        )


def test_the_two_variants_differ_where_documented():
    labels, arrays = _inputs(3, 6, 5, (2, 1))
    weights = WEIGHTS[0]
    paper, release = (
        losses.hybrid_reinforce_loss(
            labels, _tensors(arrays), 0.5, variant=variant, **weights
        )
        for variant in ("paper", "release")
    )
    for name in (
        "aggregate_ce",
        "reinforce",
        "per_feature_reinforce",
        "reward",
    ):
        np.testing.assert_allclose(
            float(paper[name]), float(release[name]), rtol=1e-6
        )
    # The release's per-feature CE includes the context vector (Q5) and its
    # baseline target mixes in the per-feature rewards (Q4).
    for name in ("per_feature_ce", "baseline_target"):
        assert abs(float(paper[name]) - float(release[name])) > 1e-3, name


@pytest.mark.parametrize("variant", ["paper", "release"])
def test_duplicating_the_batch_leaves_every_term_unchanged(variant):
    labels, arrays = _inputs(11, 5, 6, (2, 1))
    doubled = {
        name: np.concatenate([value, value]) for name, value in arrays.items()
    }
    terms = [
        losses.hybrid_reinforce_loss(
            np.concatenate([labels] * copies),
            _tensors(data),
            0.4,
            per_feature_level_cap=2,
            variant=variant,
            **WEIGHTS[1],
        )
        for copies, data in ((1, arrays), (2, doubled))
    ]
    for name in TERMS:
        np.testing.assert_allclose(
            float(terms[1][name]),
            float(terms[0][name]),
            rtol=1e-6,
            err_msg=name,
        )


@pytest.mark.parametrize("variant", ["paper", "release"])
@pytest.mark.parametrize("cap", [None, 2])
def test_reinforce_gradients_flow_only_into_the_log_probs(variant, cap):
    labels, arrays = _inputs(5, 6, 5, (2, 1))
    weights = WEIGHTS[1]
    baseline = 0.45
    tensors = _tensors(arrays)
    baseline_tensor = tf.constant(baseline)
    differentiable = (
        "logits",
        "per_feature_logits",
        "attended_log_probs",
        "location_log_prob",
    )
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(
            [tensors[name] for name in differentiable] + [baseline_tensor]
        )
        terms = losses.hybrid_reinforce_loss(
            labels,
            tensors,
            baseline_tensor,
            per_feature_level_cap=cap,
            variant=variant,
            **weights,
        )

    def gradient(term, name):
        source = baseline_tensor if name == "baseline" else tensors[name]
        return tape.gradient(
            terms[term],
            source,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        ).numpy()

    # d loss / d log p: (R - b) times the term's weight over its count.
    set_gradient, cell_gradient = numpy_reference.reinforce_log_prob_gradients(
        labels,
        arrays["logits"],
        arrays["per_feature_logits"],
        arrays["attended_levels"],
        baseline,
        lambda_f=weights["reinforce_weight"],
        lambda_r=weights["per_feature_reinforce_weight"],
        level_cap=cap,
    )
    np.testing.assert_allclose(
        gradient("loss", "location_log_prob"), set_gradient, atol=1e-7
    )
    np.testing.assert_allclose(
        gradient("loss", "attended_log_probs"), cell_gradient, atol=1e-7
    )
    assert np.any(set_gradient != 0) and np.any(cell_gradient != 0)
    # The REINFORCE terms reach neither the predictions (rewards are
    # indicators) nor the baseline.
    for term in ("reinforce", "per_feature_reinforce"):
        for name in ("logits", "per_feature_logits", "baseline"):
            assert not np.any(gradient(term, name)), (term, name)
    # The cross-entropy terms do not reach the log-probs, nor the baseline.
    for term in ("aggregate_ce", "per_feature_ce"):
        for name in ("attended_log_probs", "location_log_prob", "baseline"):
            assert not np.any(gradient(term, name)), (term, name)
    for name in ("baseline_target", "reward"):
        for source in differentiable:
            assert not np.any(gradient(name, source)), (name, source)


def test_rewards_are_top1_indicators_without_gradient():
    logits = tf.constant([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5], [0.0, 0.2, 0.1]])
    labels = tf.constant([1, 2, 1])
    np.testing.assert_array_equal(
        losses.rewards(labels, logits).numpy(), [1.0, 0.0, 1.0]
    )


def test_l2_penalty_matches_numpy():
    rng = np.random.default_rng(2)
    arrays = [
        rng.normal(size=shape).astype(np.float32)
        for shape in ((3, 4), (5,), (2, 2, 3))
    ]
    got = losses.l2_penalty([tf.Variable(a) for a in arrays], 1e-3)
    np.testing.assert_allclose(
        float(got), numpy_reference.l2_penalty(arrays, 1e-3), rtol=1e-6
    )
    assert float(losses.l2_penalty([tf.Variable(arrays[0])], 0.0)) == 0.0
    assert float(losses.l2_penalty([], 1e-3)) == 0.0


@pytest.mark.parametrize("margin", [0.0, 0.4])
def test_contrastive_loss_matches_numpy(margin):
    rng = np.random.default_rng(3)
    features = rng.normal(size=(7, 6)).astype(np.float32)
    features[3] = features[1] + 0.1  # a near-duplicate pair, same label below
    labels = np.array([0, 1, 2, 1, 0, 2, 2], np.int32)
    got = losses.contrastive_loss(
        tf.constant(features), tf.constant(labels), margin
    )
    assert got.shape == ()
    np.testing.assert_allclose(
        float(got),
        numpy_reference.contrastive_loss(features, labels, margin),
        **TOLERANCE,
    )


def test_baseline_reference_follows_equation_two():
    # b_n = 0.9 b_{n-1} + 0.1 mean R (paper); the release mixes in lambda_r.
    assert numpy_reference.baseline_update(0.5, 1.0) == pytest.approx(0.55)
    assert numpy_reference.baseline_target([1, 0, 1, 1], [0, 0], 0.3) == 0.75
    assert numpy_reference.baseline_target(
        [1, 0, 1, 1], [0, 1, 1, 1], 0.3, variant="release"
    ) == pytest.approx(0.3 * 0.75 + 0.7 * 0.75)


# === Model level: TNet.compute_loss_terms on the tiny_test preset ===

MODEL_WEIGHTS = dict(
    reinforce_weight=0.2,
    per_feature_ce_weight=0.25,
    per_feature_reinforce_weight=0.4,
)


def _tiny_model(cap):
    # Greedy selection and no dropout in tiny_test: deterministic outputs.
    return presets.build(
        "tiny_test",
        selection="greedy",
        per_feature_level_cap=cap,
        l2_weight=1e-3,
        contrastive_weight=2.0,
        contrastive_margin=0.3,
        baseline_initial_value=0.35,
        **MODEL_WEIGHTS,
    )


def _batch(model):
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(6, 96, 96, 3)).astype(np.float32)
    # Label half the images with the model's own prediction, so rewards of
    # both values occur.
    predicted = np.argmax(
        model(images, training=True)["logits"].numpy(), axis=-1
    )
    labels = rng.integers(0, model.config.num_classes, size=6)
    labels[::2] = predicted[::2]
    return images, labels.astype(np.int32)


def _is_batch_norm(variable):
    # Keras names BatchNormalization's trainable weights gamma and beta.
    return variable.name in ("gamma", "beta")


@pytest.mark.parametrize(
    "variant,cap,two_optimizers",
    [("paper", None, False), ("release", 2, False), ("paper", 2, True)],
)
def test_model_loss_terms_match_numpy_reference(variant, cap, two_optimizers):
    """compute_loss_terms == the reference on the model's own outputs, plus
    L2 over the non-batch-norm trainable weights and the contrastive term."""
    model = _tiny_model(cap)
    model.compile(
        optimizer="sgd",
        backbone_optimizer="sgd" if two_optimizers else None,
        loss_variant=variant,
    )
    images, labels = _batch(model)
    outputs, terms = model.compute_loss_terms(images, labels, training=True)
    arrays = {name: outputs[name].numpy() for name in OUTPUT_NAMES}
    _assert_no_top1_ties(arrays["logits"])
    _assert_no_top1_ties(arrays["per_feature_logits"])
    # Greedy selection and no dropout: a second pass gives the same outputs.
    again = model(images, training=True)
    np.testing.assert_allclose(
        again["logits"].numpy(), arrays["logits"], rtol=1e-6
    )

    baseline = float(model.reward_baseline.numpy())
    assert baseline == pytest.approx(0.35)
    expected = _reference(
        labels, arrays, baseline, MODEL_WEIGHTS, cap, variant
    )
    assert 0.0 < expected["reward"] < 1.0

    # L2 on the trainable weights that are not batch-norm parameters (only
    # the modules around the backbone when it has its own optimizer).
    trainable = model.trainable_variables
    backbone = {id(v) for v in model.feature_extractor.trainable_variables}
    penalised = [
        v
        for v in trainable
        if not _is_batch_norm(v) and not (two_optimizers and id(v) in backbone)
    ]
    assert any(_is_batch_norm(v) for v in trainable)
    assert len(penalised) < len(trainable)
    assert {id(v) for v in model._l2_variables()} == {id(v) for v in penalised}
    expected_l2 = numpy_reference.l2_penalty(
        [v.numpy() for v in penalised], 1e-3
    )
    expected_contrastive = 2.0 * numpy_reference.contrastive_loss(
        outputs["features"].numpy(), labels, 0.3
    )
    np.testing.assert_allclose(float(terms["l2"]), expected_l2, rtol=1e-5)
    np.testing.assert_allclose(
        float(terms["contrastive"]), expected_contrastive, **TOLERANCE
    )
    for name in TERMS:
        total = expected[name]
        if name == "loss":
            total += expected_l2 + expected_contrastive
        np.testing.assert_allclose(
            float(terms[name]), total, err_msg=name, **TOLERANCE
        )
    assert float(terms["locations"]) == 4.0


@pytest.mark.parametrize("variant", ["paper", "release"])
def test_train_step_moves_the_baseline_by_equation_two(variant):
    model = _tiny_model(None)
    # A zero learning rate keeps the weights, so the pass below sees the
    # outputs that the step sees.
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss_variant=variant,
        run_eagerly=True,
    )
    images, labels = _batch(model)
    outputs, terms = model.compute_loss_terms(images, labels, training=True)
    arrays = {name: outputs[name].numpy() for name in OUTPUT_NAMES}
    expected = _reference(labels, arrays, 0.35, MODEL_WEIGHTS, None, variant)
    model.train_on_batch(images, labels)
    np.testing.assert_allclose(
        float(model.reward_baseline.numpy()),
        numpy_reference.baseline_update(
            0.35, expected["baseline_target"], 0.9
        ),
        **TOLERANCE,
    )
