"""The hybrid REINFORCE loss of TNet, equations (1)-(3) of the paper.

Pure tensors in, a dict of scalars out; no flags, I/O or logging. The total
is this replica's mean; `ImageClassifier.minimize` (tnet_tf/models),
which `train_step` and the multi-worker loop share, divides it by the number
of replicas.

With `N` the examples of the (tiled) batch, `R_i` the top-1 correctness of
the aggregate prediction, `R_v` that of the single vector `v`, `b` the reward
baseline, `lambda_f = reinforce_weight`, `lambda_c = per_feature_ce_weight`
and `lambda_r = per_feature_reinforce_weight`:

    loss = lambda_c * mean_i CE_i                                   (3a)
         + lambda_f * lambda_r * mean_i (R_i - b) * -log p(l_i)     (3a)
         + (1 - lambda_c) * sum_v CE_v / (|V| N)                    (3b)
         + lambda_f * (1 - lambda_r) * sum_v (R_v - b) * -log p(l_v) / (|l| N)

where `v` runs over the attended vectors (paper: `|V| = |l|`, the attended
locations), limited to levels up to `per_feature_level_cap`, and
`log p(l_v)` is the model's `attended_log_probs` (with sequential sampling,
the probability of that draw given the earlier draws of its grid, which
stays bounded when the policy is sharp). With
`variant="release"` the per-feature cross-entropy also includes the level-1
vector and divides by `|l| + 1` (`original_implementation_detail.md` §9, Q5),
and the baseline target mixes both reward kinds (Q4). Both variants divide by
the tiled batch `N * M` as eq. (1) does; the release kept `N` when `M > 1`
(every one of its recipes used `M = 1`).
"""

import tensorflow as tf

LOSS_VARIANTS = ("paper", "release")


def rewards(labels, logits):
    """1.0 where the top-1 prediction is right, else 0.0 (no gradient)."""
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    correct = tf.equal(predicted, tf.cast(labels, tf.int32))
    return tf.stop_gradient(tf.cast(correct, tf.float32))


def _cross_entropy(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32)
    )


def hybrid_reinforce_loss(
    labels,
    outputs,
    baseline,
    reinforce_weight,
    per_feature_ce_weight,
    per_feature_reinforce_weight,
    per_feature_level_cap=None,
    variant="paper",
):
    """Loss terms of equations (1)-(3) for one (replica) batch.

    Args:
        labels: int `(N,)` class indices.
        outputs: the dict returned by `TNet.call` (uses `logits`,
            `per_feature_logits`, `attended_levels`, `attended_log_probs`,
            `location_log_prob`).
        baseline: scalar reward baseline `b`.
        reinforce_weight: `lambda_f`.
        per_feature_ce_weight: `lambda_c`.
        per_feature_reinforce_weight: `lambda_r`.
        per_feature_level_cap: highest level in the per-feature terms, or
            `None` for all.
        variant: `"paper"` or `"release"` (see the module docstring).

    Returns:
        Dict of scalars: `loss` (the weighted sum), `aggregate_ce`,
        `reinforce`, `per_feature_ce`, `per_feature_reinforce` (unweighted),
        and `baseline_target` (the reward mean the baseline moves towards).
    """
    if variant not in LOSS_VARIANTS:
        raise ValueError(
            f"`variant` must be one of {LOSS_VARIANTS}, got {variant!r}."
        )
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    baseline = tf.stop_gradient(tf.cast(baseline, tf.float32))
    batch = tf.cast(tf.shape(labels)[0], tf.float32)

    logits = outputs["logits"]
    reward = rewards(labels, logits)  # (N,)
    aggregate_ce = tf.reduce_mean(_cross_entropy(labels, logits))
    reinforce = tf.reduce_mean(
        (reward - baseline) * -outputs["location_log_prob"]
    )

    # Per-feature terms over the vectors of every level up to the cap.
    per_feature_logits = outputs["per_feature_logits"]  # (N, T, classes)
    levels = outputs["attended_levels"]  # (N, T)
    vectors = tf.shape(levels)[1]
    included = tf.ones_like(levels, tf.bool)
    if per_feature_level_cap is not None:
        included = levels <= per_feature_level_cap
    attended = tf.logical_and(included, levels > 1)  # (N, T)
    tiled_labels = tf.tile(labels[:, None], [1, vectors])
    vector_ce = _cross_entropy(tiled_labels, per_feature_logits)  # (N, T)
    vector_reward = rewards(tiled_labels, per_feature_logits)  # (N, T)
    attended_f = tf.cast(attended, tf.float32)
    num_attended = tf.reduce_sum(attended_f) / batch  # |l| per image
    ce_mask = (
        tf.cast(included, tf.float32) if variant == "release" else attended_f
    )
    ce_count = tf.reduce_sum(ce_mask)
    per_feature_ce = tf.math.divide_no_nan(
        tf.reduce_sum(vector_ce * ce_mask), ce_count
    )
    log_probs = outputs["attended_log_probs"]
    per_feature_reinforce = tf.math.divide_no_nan(
        tf.reduce_sum((vector_reward - baseline) * -log_probs * attended_f),
        num_attended * batch,
    )

    loss = (
        per_feature_ce_weight * aggregate_ce
        + reinforce_weight * per_feature_reinforce_weight * reinforce
        + (1.0 - per_feature_ce_weight) * per_feature_ce
        + reinforce_weight
        * (1.0 - per_feature_reinforce_weight)
        * per_feature_reinforce
    )
    mean_reward = tf.reduce_mean(reward)
    if variant == "release":
        mean_vector_reward = tf.math.divide_no_nan(
            tf.reduce_sum(vector_reward * attended_f), num_attended * batch
        )
        target = (
            per_feature_reinforce_weight * mean_reward
            + (1.0 - per_feature_reinforce_weight) * mean_vector_reward
        )
    else:
        target = mean_reward  # eq. (2)
    return {
        "loss": loss,
        "aggregate_ce": aggregate_ce,
        "reinforce": reinforce,
        "per_feature_ce": per_feature_ce,
        "per_feature_reinforce": per_feature_reinforce,
        "baseline_target": tf.stop_gradient(target),
        "reward": mean_reward,
    }


def l2_penalty(variables, weight):
    """`weight * sum ||w||^2` over `variables` (release: `2 * l2 * l2_loss`)."""
    if not variables or weight == 0.0:
        return tf.constant(0.0)
    return weight * tf.add_n(
        [tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables]
    )


def contrastive_loss(features, labels, margin):
    """The release's contrastive term on the aggregate features (§9, item 6).

    `mean_ij [S_ij (1 - cos_ij) + (1 - S_ij) max(cos_ij - margin, 0)]` over
    all pairs of the batch, `i = j` included; `S_ij = 1` for equal labels.
    """
    features = tf.cast(features, tf.float32)
    normalized = features / (tf.norm(features, axis=-1, keepdims=True) + 1e-10)
    cosine = tf.matmul(normalized, normalized, transpose_b=True)
    labels = tf.reshape(labels, [-1])
    same = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32)
    pair_loss = same * (1.0 - cosine) + (1.0 - same) * tf.nn.relu(
        cosine - margin
    )
    return tf.reduce_mean(pair_loss)
