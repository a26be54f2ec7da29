"""Choosing cells from the location module's distribution, and their log-probabilities.

Pure tensor functions. The paper samples `k` cells of each grid without
replacement (Section 3.1); the release took the `k` most probable cells
(`original_implementation_detail.md` §5, Q1). Both are here, with the two
log-probabilities of the attended set: the exact sequential probability of
sampling without replacement and the release's sum of per-cell
log-probabilities (Q2).
"""

import keras
import tensorflow as tf


def greedy_cells(log_probs, k):
    """The `k` most probable cells, most probable first (ties: lower index).

    Args:
        log_probs: `(b, K)` log-probabilities over the cells of each grid.
        k: cells to choose per grid (Python int).

    Returns:
        int32 `(b, k)` cell indices.
    """
    return tf.math.top_k(log_probs, k=k, sorted=True).indices


def sample_cells(log_probs, k, seed=None):
    """Samples `k` distinct cells per grid without replacement.

    Uses the Gumbel-top-k trick: the order of the `k` largest perturbed
    log-probabilities is distributed exactly as `k` successive draws without
    replacement, so the returned order is the sampling order.

    Args:
        log_probs: `(b, K)` log-probabilities.
        k: cells per grid.
        seed: a `keras.random.SeedGenerator` or int seed.

    Returns:
        int32 `(b, k)` cell indices in sampling order.
    """
    uniform = keras.random.uniform(
        tf.shape(log_probs),
        minval=1e-20,
        maxval=1.0,
        dtype=log_probs.dtype,
        seed=seed,
    )
    gumbel = -tf.math.log(-tf.math.log(uniform))
    return tf.math.top_k(log_probs + gumbel, k=k, sorted=True).indices


def select_cells(log_probs, k, mode, seed=None):
    """`sample_cells` when `mode == "sample"`, `greedy_cells` for `"greedy"`."""
    if mode == "greedy":
        return greedy_cells(log_probs, k)
    if mode == "sample":
        return sample_cells(log_probs, k, seed=seed)
    raise ValueError(f"`mode` must be 'sample' or 'greedy', got {mode!r}.")


def cell_log_probs(log_probs, cells):
    """`log p(cell)` of each chosen cell in its own grid: `(b, k)`."""
    return tf.gather(log_probs, cells, batch_dims=1)


def sequential_cell_log_probs(log_probs, cells):
    """Log-probability of each draw given the earlier ones: `(b, k)`.

    Step `j` contributes `log p(c_j) - log(1 - sum_{m<j} p(c_m))`; the
    normaliser is a log-sum-exp over the cells still available, which stays
    accurate when the chosen cells hold almost all the mass. The terms sum to
    `sequential_log_prob`, and each stays bounded when the policy is sharp
    (a later draw from a near-deterministic grid is not a rare event).
    """
    chosen = cell_log_probs(log_probs, cells)  # (b, k)
    num_cells = tf.shape(log_probs)[1]
    # taken[:, j] marks the cells drawn before step j: (b, k, K)
    one_hot = tf.one_hot(cells, num_cells, dtype=log_probs.dtype)
    taken = tf.cumsum(one_hot, axis=1, exclusive=True)
    available = log_probs[:, None, :] + tf.math.log(1.0 - taken)
    return chosen - tf.reduce_logsumexp(available, axis=-1)


def sequential_log_prob(log_probs, cells):
    """Log-probability of drawing `cells` in this order without replacement.

    `sum_j [log p(c_j) - log(1 - sum_{m<j} p(c_m))]`.

    Args:
        log_probs: `(b, K)` log-probabilities.
        cells: int `(b, k)` chosen cells in drawing order.

    Returns:
        `(b,)` log-probabilities.
    """
    return tf.reduce_sum(sequential_cell_log_probs(log_probs, cells), axis=-1)


def summed_log_prob(log_probs, cells):
    """The release's `sum log p(cell)` over the chosen cells: `(b,)`."""
    return tf.reduce_sum(cell_log_probs(log_probs, cells), axis=-1)


def draw_log_probs(log_probs, cells, mode):
    """Per-cell terms of `set_log_prob`: `(b, k)`, summing to it.

    `"sequential"`: each draw's probability given the earlier draws;
    `"sum"`: each cell's own probability in its grid (the release).
    """
    if mode == "sequential":
        return sequential_cell_log_probs(log_probs, cells)
    if mode == "sum":
        return cell_log_probs(log_probs, cells)
    raise ValueError(f"`mode` must be 'sequential' or 'sum', got {mode!r}.")


def set_log_prob(log_probs, cells, mode):
    """Log-probability `(b,)` of the attended set: the sum of `draw_log_probs`."""
    return tf.reduce_sum(draw_log_probs(log_probs, cells, mode), axis=-1)
