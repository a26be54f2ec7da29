"""REINFORCE with sampling without replacement is unbiased (paper Section 4.1).

On a grid of K = 4 cells with k = 2 attended, every ordered selection can be
enumerated, so the exact gradient of the expected reward

    J(w) = sum_sel p_seq(sel | w) R(sel)

is computable. The Monte Carlo estimate `mean_s (R_s - b) grad log p(sel_s)`
over Gumbel-top-k samples must match it within sampling error when `p` is
the sequential probability (the default), and must not when it is the
release's sum of per-cell log-probabilities.

Per-sample gradients come from one backward pass: the logits are tiled to
`(S, K)` and each row only feeds its own sample's log-probability, so the
gradient with respect to the tiled tensor holds one gradient per sample,
whose spread gives the standard error of the mean.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import numpy_reference
from tnet_tf import sampling

CELLS = 4
ATTENDED = 2
LOGITS = np.array([1.2, 0.4, -0.3, -1.0])  # clearly non-uniform
ORDERS = list(itertools.permutations(range(CELLS), ATTENDED))
# An arbitrary reward for each ordered selection (the order matters).
REWARDS = np.random.default_rng(0).uniform(0.0, 1.0, size=len(ORDERS))
SAMPLES = 50_000
# Agreement within Z standard errors in every component: a false failure
# would be a ~1e-5 event per component (the seeds are fixed, so the test is
# deterministic anyway).
Z = 4.5


def _reward_table():
    table = np.zeros((CELLS, CELLS))
    for order, reward in zip(ORDERS, REWARDS):
        table[order] = reward
    return table


def _expected_reward_numpy(logits):
    probs = numpy_reference.softmax(np.asarray(logits, np.float64))
    return sum(
        numpy_reference.sequential_selection_probability(probs, order) * reward
        for order, reward in zip(ORDERS, REWARDS)
    )


def _exact_gradient():
    """`grad J` by enumerating all ordered selections (float64)."""
    logits = tf.Variable(LOGITS, dtype=tf.float64)
    with tf.GradientTape() as tape:
        log_probs = tf.tile(tf.nn.log_softmax(logits)[None], [len(ORDERS), 1])
        log_p = sampling.sequential_log_prob(log_probs, tf.constant(ORDERS))
        expected = tf.reduce_sum(tf.exp(log_p) * REWARDS)
    return tape.gradient(expected, logits).numpy()


def _expected_estimate(log_prob_fn, baseline=0.0):
    """`E[(R - b) grad log q(sel)]` under the true sampling distribution,
    by enumeration, for the log-probability `q` the estimator uses."""
    logits = tf.Variable(LOGITS, dtype=tf.float64)
    orders = tf.constant(ORDERS)
    with tf.GradientTape() as tape:
        log_probs = tf.tile(tf.nn.log_softmax(logits)[None], [len(ORDERS), 1])
        weights = tf.stop_gradient(
            tf.exp(sampling.sequential_log_prob(log_probs, orders))
        ) * (REWARDS - baseline)
        surrogate = tf.reduce_sum(weights * log_prob_fn(log_probs, orders))
    return tape.gradient(surrogate, logits).numpy()


def _monte_carlo(log_prob_fn, baseline=0.0, seed=1):
    """Per-sample REINFORCE gradients `(R_s - b) grad log q(sel_s)`: (S, K)."""
    tiled = tf.constant(np.tile(LOGITS, (SAMPLES, 1)), tf.float32)
    table = tf.constant(_reward_table().reshape(-1), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(tiled)
        log_probs = tf.nn.log_softmax(tiled)
        cells = sampling.sample_cells(
            tf.stop_gradient(log_probs),
            ATTENDED,
            seed=keras.random.SeedGenerator(seed),
        )
        reward = tf.gather(table, cells[:, 0] * CELLS + cells[:, 1])
        surrogate = tf.reduce_sum(
            (reward - baseline) * log_prob_fn(log_probs, cells)
        )
    return tape.gradient(surrogate, tiled).numpy().astype(np.float64)


def _mean_and_standard_error(per_sample):
    mean = per_sample.mean(axis=0)
    standard_error = per_sample.std(axis=0, ddof=1) / np.sqrt(len(per_sample))
    return mean, standard_error


def test_exact_gradient_matches_finite_differences_of_numpy_reference():
    step = 1e-6
    numeric = np.zeros(CELLS)
    for cell in range(CELLS):
        shift = np.eye(CELLS)[cell] * step
        numeric[cell] = (
            _expected_reward_numpy(LOGITS + shift)
            - _expected_reward_numpy(LOGITS - shift)
        ) / (2 * step)
    np.testing.assert_allclose(_exact_gradient(), numeric, atol=1e-8)
    # The expectation of the sequential estimator is the gradient itself.
    np.testing.assert_allclose(
        _expected_estimate(sampling.sequential_log_prob),
        _exact_gradient(),
        atol=1e-12,
    )


@pytest.mark.parametrize("baseline", [0.0, 0.6])
def test_sequential_reinforce_estimate_is_unbiased(baseline):
    exact = _exact_gradient()
    mean, standard_error = _mean_and_standard_error(
        _monte_carlo(sampling.sequential_log_prob, baseline)
    )
    # The test has power: the gradient is well resolved by S samples.
    assert np.max(np.abs(exact)) > 10 * np.max(standard_error)
    np.testing.assert_array_less(np.abs(mean - exact), Z * standard_error)


def test_baseline_leaves_the_expected_gradient_unchanged():
    # sum_sel grad p_seq(sel) = grad 1 = 0, so b drops out exactly.
    np.testing.assert_allclose(
        _expected_estimate(sampling.sequential_log_prob, baseline=0.6),
        _exact_gradient(),
        atol=1e-12,
    )


def test_summed_log_prob_gives_a_biased_estimate():
    exact = _exact_gradient()
    biased_expectation = _expected_estimate(sampling.summed_log_prob)
    mean, standard_error = _mean_and_standard_error(
        _monte_carlo(sampling.summed_log_prob)
    )
    # The samples follow the summed estimator's own expectation...
    np.testing.assert_array_less(
        np.abs(mean - biased_expectation), Z * standard_error
    )
    # ...which is not the gradient: the bias is many standard errors.
    assert np.max(np.abs(mean - exact) / standard_error) > 10
    assert np.max(np.abs(biased_expectation - exact)) > 0.02
    # Nor is it baseline-invariant: sum_sel p_seq grad summed != 0.
    shifted = _expected_estimate(sampling.summed_log_prob, baseline=0.6)
    assert np.max(np.abs(shifted - biased_expectation)) > 0.02


@pytest.mark.parametrize(
    "dtype,tolerance", [(tf.float64, 1e-12), (tf.float32, 1e-5)]
)
@pytest.mark.parametrize("draws", [1, 2, 3, 4])
def test_sequential_probability_sums_to_one(draws, dtype, tolerance):
    rng = np.random.default_rng(draws)
    for probs in rng.dirichlet(np.full(CELLS, 0.7), size=3):
        orders = list(itertools.permutations(range(CELLS), draws))
        log_probs = tf.math.log(
            tf.constant(np.tile(probs, (len(orders), 1)), dtype)
        )
        log_p = sampling.sequential_log_prob(log_probs, tf.constant(orders))
        probability = np.exp(log_p.numpy().astype(np.float64))
        expected = [
            numpy_reference.sequential_selection_probability(probs, order)
            for order in orders
        ]
        np.testing.assert_allclose(probability, expected, rtol=100 * tolerance)
        np.testing.assert_allclose(probability.sum(), 1.0, atol=tolerance)


def test_sequential_probability_is_accurate_when_one_cell_holds_the_mass():
    # 1 - p(first) loses most digits in float32 when p(first) ~ 1; the
    # log-sum-exp over the remaining cells does not.
    logits = np.array([12.0, 0.0, 0.5, -0.5])
    probs = numpy_reference.softmax(logits)
    orders = list(itertools.permutations(range(CELLS), 2))
    log_probs = tf.nn.log_softmax(
        tf.constant(np.tile(logits, (len(orders), 1)), tf.float32)
    )
    log_p = sampling.sequential_log_prob(
        log_probs, tf.constant(orders)
    ).numpy()
    expected = [
        numpy_reference.sequential_selection_probability(probs, order)
        for order in orders
    ]
    np.testing.assert_allclose(
        np.exp(log_p.astype(np.float64)), expected, rtol=1e-4
    )
