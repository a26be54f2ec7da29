"""Cell selection: without replacement, exact sequential probabilities."""

import itertools

import keras
import numpy as np
import tensorflow as tf

from tnet_tf import sampling


def test_sampling_never_repeats_a_cell():
    log_probs = tf.math.log_softmax(tf.random.normal((500, 9)) * 3.0)
    cells = sampling.sample_cells(
        log_probs, 5, seed=keras.random.SeedGenerator(1)
    ).numpy()
    assert cells.shape == (500, 5)
    for row in cells:
        assert len(set(row.tolist())) == 5


def test_greedy_is_top_k_most_probable_first():
    log_probs = tf.math.log(tf.constant([[0.1, 0.4, 0.2, 0.3]]))
    assert sampling.greedy_cells(log_probs, 2).numpy().tolist() == [[1, 3]]


def test_sequential_log_prob_sums_to_one_over_all_ordered_selections():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    log_probs = tf.math.log(tf.constant([probs], tf.float32))
    total = 0.0
    for order in itertools.permutations(range(4), 2):
        lp = sampling.sequential_log_prob(log_probs, tf.constant([order]))
        a, b = order
        expected = probs[a] * probs[b] / (1 - probs[a])
        np.testing.assert_allclose(np.exp(lp.numpy()[0]), expected, rtol=1e-5)
        total += np.exp(lp.numpy()[0])
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def test_sampled_frequencies_match_sequential_probabilities():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    draws = 20000
    log_probs = tf.math.log(
        tf.constant(np.tile(probs, (draws, 1)), tf.float32)
    )
    cells = sampling.sample_cells(
        log_probs, 2, seed=keras.random.SeedGenerator(7)
    ).numpy()
    counts = {}
    for a, b in cells.tolist():
        counts[(a, b)] = counts.get((a, b), 0) + 1
    for order in itertools.permutations(range(4), 2):
        a, b = order
        expected = probs[a] * probs[b] / (1 - probs[a])
        observed = counts.get(order, 0) / draws
        # 4.5 standard errors: a false failure is ~1e-5 likely per pair.
        assert abs(observed - expected) < 4.5 * np.sqrt(
            expected * (1 - expected) / draws
        )


def test_summed_log_prob_is_the_release_rule():
    log_probs = tf.math.log(tf.constant([[0.1, 0.2, 0.3, 0.4]]))
    lp = sampling.summed_log_prob(log_probs, tf.constant([[3, 1]]))
    np.testing.assert_allclose(
        lp.numpy(), [np.log(0.4) + np.log(0.2)], rtol=1e-6
    )
