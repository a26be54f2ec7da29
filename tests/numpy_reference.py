"""Independent NumPy references for the equations that tnet_tf implements.

Written from original_implementation_detail.md, not from tnet_tf: this module
must never import tnet_tf, so a bug there cannot hide in its own reference.
Everything is computed in float64. Dense and 1x1-conv weights are passed as
plain `(in, out)` matrices.
"""

import math

import numpy as np

# === Activations ===


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def swish(x):
    return x * sigmoid(x)


def leaky_relu(x, negative_slope=0.2):
    return np.where(x >= 0, x, negative_slope * x)


def softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / np.sum(exponentials, axis=axis, keepdims=True)


def dense(x, kernel, bias):
    """`x @ kernel + bias` on the last axis; a 1x1 conv is the same."""
    kernel = np.asarray(kernel, np.float64)
    kernel = kernel.reshape(kernel.shape[-2], kernel.shape[-1])
    return np.asarray(x, np.float64) @ kernel + np.asarray(bias, np.float64)


# === Positional encoding (detail §6) ===


def positional_encoding(positions, encoding_dim, max_inverse_frequency=100.0):
    """Sinusoidal encoding of `[y, x, scale]` triplets, element by element.

    Frequencies follow the release's form
    `exp(-j * ln(max_inverse_frequency) / (K - 1))`, `K = encoding_dim // 6`
    (a single frequency of 1 when `K == 1`); blocks
    `[sin y, cos y, sin x, cos x, sin s, cos s]`, then zeros.

    Args:
        positions: array `(batch, 3)`.
        encoding_dim: int.
        max_inverse_frequency: float.

    Returns:
        float64 array `(batch, encoding_dim)`.
    """
    positions = np.asarray(positions, np.float64)
    count = encoding_dim // 6
    step = math.log(max_inverse_frequency) / max(count - 1, 1)
    frequencies = [math.exp(-j * step) for j in range(count)]
    out = np.zeros((positions.shape[0], encoding_dim))
    for row, triplet in enumerate(positions):
        column = 0
        for value in triplet:
            for function in (math.sin, math.cos):
                for frequency in frequencies:
                    out[row, column] = function(value * frequency)
                    column += 1
    return out


def positional_encoding_bagnet(features, encoding, kernel, bias):
    """BagNet fusion: `Dense([V; p])`, linear."""
    return dense(np.concatenate([features, encoding], axis=-1), kernel, bias)


def positional_encoding_efficientnet(features, encoding, kernel, bias):
    """EfficientNet fusion: `swish(V + Dense(p))`."""
    return swish(
        np.asarray(features, np.float64) + dense(encoding, kernel, bias)
    )


# === Location module (detail §3) ===


def coordinate_channels(grid_size, kernel=(1.0, 1.0), bias=(0.0, 0.0)):
    """The two affine meshgrid channels `(n, n, 2)`: rows, then columns."""
    out = np.zeros((grid_size, grid_size, 2))
    step = 2.0 / (grid_size - 1) if grid_size > 1 else 0.0
    for row in range(grid_size):
        for column in range(grid_size):
            out[row, column, 0] = (-1.0 + row * step) * kernel[0] + bias[0]
            out[row, column, 1] = (-1.0 + column * step) * kernel[1] + bias[1]
    return out


def l2_normalize(x, axis=-1):
    return x / np.sqrt(np.sum(np.square(x), axis=axis, keepdims=True))


def location_logits_bagnet(
    feature_map, features, weights, normalize_logits=False
):
    """BagNet location module.

    Args:
        feature_map: `(b, n, n, C)`.
        features: `(b, D)`.
        weights: dict with `coordinate_kernel`, `coordinate_bias` (2,),
            `hidden_kernel`, `hidden_bias`, `output_kernel`, `output_bias`.
        normalize_logits: L2-normalise the logits of each grid.

    Returns:
        `(b, n * n)` logits, row-major.
    """
    batch, n = feature_map.shape[0], feature_map.shape[1]
    coordinates = coordinate_channels(
        n, weights["coordinate_kernel"], weights["coordinate_bias"]
    )
    cells = []
    for image in range(batch):
        for row in range(n):
            for column in range(n):
                cells.append(
                    np.concatenate(
                        [
                            feature_map[image, row, column],
                            features[image],
                            coordinates[row, column],
                        ]
                    )
                )
    x = np.stack(cells)  # (b * n * n, C + D + 2)
    x = leaky_relu(dense(x, weights["hidden_kernel"], weights["hidden_bias"]))
    logits = dense(x, weights["output_kernel"], weights["output_bias"])
    logits = logits.reshape(batch, n * n)
    return l2_normalize(logits) if normalize_logits else logits


def location_logits_efficientnet(feature_map, weights, normalize_logits=False):
    """EfficientNet location module.

    Args:
        feature_map: `(b, n, n, C)`.
        weights: dict with `coordinate_kernel`, `coordinate_bias`, and
            `{input,squeeze,excite,hidden,output}_{kernel,bias}`.
        normalize_logits: L2-normalise the logits of each grid.

    Returns:
        `(b, n * n)` logits, row-major.
    """
    batch, n = feature_map.shape[0], feature_map.shape[1]
    x = swish(
        dense(feature_map, weights["input_kernel"], weights["input_bias"])
    )
    context = x.mean(axis=(1, 2))  # (b, hidden)
    hidden = swish(
        dense(context, weights["squeeze_kernel"], weights["squeeze_bias"])
    )
    gates = sigmoid(
        dense(hidden, weights["excite_kernel"], weights["excite_bias"])
    )
    x = x * gates[:, None, None, :]
    coordinates = coordinate_channels(
        n, weights["coordinate_kernel"], weights["coordinate_bias"]
    )
    coordinates = np.broadcast_to(coordinates, (batch, n, n, 2))
    x = np.concatenate([x, coordinates], axis=-1)
    x = swish(dense(x, weights["hidden_kernel"], weights["hidden_bias"]))
    logits = dense(x, weights["output_kernel"], weights["output_bias"])
    logits = logits.reshape(batch, n * n)
    return l2_normalize(logits) if normalize_logits else logits


# === Feature weighting (detail §7) ===


def feature_weighting(vectors, weights):
    """Feature weighting module.

    Args:
        vectors: `(b, T, C)`.
        weights: dict with `{squeeze,excite,score}_{kernel,bias}`.

    Returns:
        `(aggregate (b, C), weights (b, T))`.
    """
    vectors = np.asarray(vectors, np.float64)
    squeezed = vectors.mean(axis=1)
    gates = sigmoid(
        dense(
            swish(
                dense(
                    squeezed,
                    weights["squeeze_kernel"],
                    weights["squeeze_bias"],
                )
            ),
            weights["excite_kernel"],
            weights["excite_bias"],
        )
    )
    scores = dense(
        vectors * gates[:, None, :],
        weights["score_kernel"],
        weights["score_bias"],
    )[..., 0]
    vector_weights = softmax(scores, axis=-1)
    aggregate = np.einsum("bt,btc->bc", vector_weights, vectors)
    return aggregate, vector_weights


# === Learning rule (paper Section 4, eqs. 1-3; detail §9) ===


def log_softmax(x, axis=-1):
    x = np.asarray(x, np.float64)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def cross_entropy(label, logits):
    """`-log softmax(logits)[label]` of one prediction."""
    return -log_softmax(logits)[int(label)]


def top1_reward(label, logits):
    """The indicator `R`: 1.0 when the arg-max class is `label` (no ties)."""
    return 1.0 if int(np.argmax(logits)) == int(label) else 0.0


def hybrid_reinforce_loss(
    labels,
    logits,
    per_feature_logits,
    levels,
    cell_log_probs,
    set_log_prob,
    baseline,
    lambda_f,
    lambda_c,
    lambda_r,
    level_cap=None,
    variant="paper",
):
    """Loss whose gradient is minus the learning rule of eqs. (1)-(3).

    Each of the `N` rows (images times Monte Carlo samples) has an aggregate
    prediction `logits[i]` for the attended sequence `l^i`, and `T` vectors:
    the level-1 context vector (level 1) and one per attended location
    (levels 2 and up), each with its own prediction `per_feature_logits[i,
    t]` and `cell_log_probs[i, t] = log p(l_k^i)` (ignored at level 1).
    `set_log_prob[i] = log p(l^i)`. Written loop by loop from the equations:

        L_F^s = 1/N sum_i [lambda_c CE_i + lambda_f lambda_r (R_i - b)(-log p(l^i))]
        L_F^k = 1/N sum_i [(1 - lambda_c) CE_ik + lambda_f (1 - lambda_r)(R_ik - b)(-log p(l_k^i))]
        L_r = L_F^s + 1/|l| sum_k L_F^k                              (paper)

    The per-feature sums cover vectors of levels up to `level_cap`.
    `variant="release"` (detail §9 terms 3-4, Q4, Q5): the per-feature
    cross-entropy also covers the level-1 vector and is divided by
    `(|l| + 1) N`, and the baseline target mixes the two reward kinds.

    Returns:
        Dict of floats: `aggregate_ce`, `reinforce`, `per_feature_ce`,
        `per_feature_reinforce` (each unweighted, as a mean), `loss` (the
        weighted total), `reward` (mean `R_i`), `baseline_target` (the value
        eq. (2) or the release moves the baseline towards).
    """
    if variant not in ("paper", "release"):
        raise ValueError(variant)
    labels = np.asarray(labels)
    logits = np.asarray(logits, np.float64)
    per_feature_logits = np.asarray(per_feature_logits, np.float64)
    levels = np.asarray(levels)
    cell_log_probs = np.asarray(cell_log_probs, np.float64)
    set_log_prob = np.asarray(set_log_prob, np.float64)
    baseline = float(baseline)
    rows, vectors = levels.shape
    cap = np.inf if level_cap is None else level_cap

    aggregate_ce = 0.0
    reinforce = 0.0
    rewards = []
    for i in range(rows):
        reward = top1_reward(labels[i], logits[i])
        rewards.append(reward)
        aggregate_ce += cross_entropy(labels[i], logits[i]) / rows
        reinforce += (reward - baseline) * -set_log_prob[i] / rows

    ce_sum, ce_count = 0.0, 0
    reinforce_sum, attended_count = 0.0, 0
    vector_rewards = []
    for i in range(rows):
        for t in range(vectors):
            level = levels[i, t]
            if level > cap:
                continue
            is_attended = level >= 2
            ce = cross_entropy(labels[i], per_feature_logits[i, t])
            if is_attended or variant == "release":
                ce_sum += ce
                ce_count += 1
            if is_attended:
                reward = top1_reward(labels[i], per_feature_logits[i, t])
                vector_rewards.append(reward)
                reinforce_sum += (reward - baseline) * -cell_log_probs[i, t]
                attended_count += 1
    # |l| N attended vectors (paper); (|l| + 1) N with the context (release).
    per_feature_ce = ce_sum / ce_count if ce_count else 0.0
    per_feature_reinforce = (
        reinforce_sum / attended_count if attended_count else 0.0
    )
    loss = (
        lambda_c * aggregate_ce
        + lambda_f * lambda_r * reinforce
        + (1.0 - lambda_c) * per_feature_ce
        + lambda_f * (1.0 - lambda_r) * per_feature_reinforce
    )
    return {
        "loss": loss,
        "aggregate_ce": aggregate_ce,
        "reinforce": reinforce,
        "per_feature_ce": per_feature_ce,
        "per_feature_reinforce": per_feature_reinforce,
        "reward": float(np.mean(rewards)),
        "baseline_target": baseline_target(
            rewards, vector_rewards, lambda_r, variant
        ),
    }


def baseline_target(rewards, vector_rewards, lambda_r, variant="paper"):
    """Eq. (2)'s mean reward, or the release's mix (detail §9, Q4)."""
    mean_reward = float(np.mean(rewards))
    if variant == "paper":
        return mean_reward
    mean_vector_reward = (
        float(np.mean(vector_rewards)) if len(vector_rewards) else 0.0
    )
    return lambda_r * mean_reward + (1.0 - lambda_r) * mean_vector_reward


def baseline_update(baseline, target, momentum=0.9):
    """Eq. (2): `b_n = momentum * b_{n-1} + (1 - momentum) * target`."""
    return momentum * float(baseline) + (1.0 - momentum) * float(target)


def reinforce_log_prob_gradients(
    labels,
    logits,
    per_feature_logits,
    levels,
    baseline,
    lambda_f,
    lambda_r,
    level_cap=None,
):
    """Analytic `d loss / d set_log_prob` `(N,)` and `d loss / d
    cell_log_probs` `(N, T)` of `hybrid_reinforce_loss` (either variant):
    `-lambda_f lambda_r (R_i - b) / N` and
    `-lambda_f (1 - lambda_r) (R_ik - b) / (|l| N)` on attended vectors."""
    levels = np.asarray(levels)
    rows, vectors = levels.shape
    cap = np.inf if level_cap is None else level_cap
    attended = (levels >= 2) & (levels <= cap)
    count = attended.sum()
    set_gradient = np.zeros(rows)
    cell_gradient = np.zeros((rows, vectors))
    for i in range(rows):
        reward = top1_reward(labels[i], logits[i])
        set_gradient[i] = -lambda_f * lambda_r * (reward - baseline) / rows
        for t in range(vectors):
            if attended[i, t]:
                reward = top1_reward(labels[i], per_feature_logits[i, t])
                cell_gradient[i, t] = (
                    -lambda_f * (1.0 - lambda_r) * (reward - baseline) / count
                )
    return set_gradient, cell_gradient


def l2_penalty(arrays, weight):
    """`weight * sum ||w||^2` (the release's `2 * l2 * tf.nn.l2_loss`)."""
    return weight * sum(
        float(np.sum(np.square(np.asarray(a, np.float64)))) for a in arrays
    )


def contrastive_loss(features, labels, margin):
    """Detail §9 item 6: `mean_ij [S_ij (1 - cos_ij) + (1 - S_ij)
    max(cos_ij - margin, 0)]` over all pairs, `i = j` included; features
    are divided by their norm plus 1e-10."""
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    count = features.shape[0]
    unit = [f / (np.sqrt(np.sum(f * f)) + 1e-10) for f in features]
    total = 0.0
    for i in range(count):
        for j in range(count):
            cosine = float(np.dot(unit[i], unit[j]))
            if labels[i] == labels[j]:
                total += 1.0 - cosine
            else:
                total += max(cosine - margin, 0.0)
    return total / count**2


# === Sampling without replacement (paper Section 3.1) ===


def sequential_selection_probability(probs, order):
    """Probability of drawing the cells `order` in this order without
    replacement: `prod_j p(c_j) / (1 - sum_{m<j} p(c_m))`."""
    probs = np.asarray(probs, np.float64)
    probability, taken = 1.0, 0.0
    for cell in order:
        probability *= probs[cell] / (1.0 - taken)
        taken += probs[cell]
    return probability


# === Resizing (detail §1: bilinear, half-pixel centres, no antialiasing) ===


def bilinear_resize(image, height, width):
    """`image` `(h, w, C)` resized to `(height, width, C)` the way
    `tf.image.resize(..., "bilinear", antialias=False)` samples: output pixel
    `i` reads input coordinate `(i + 0.5) * h / height - 0.5`, clamped to the
    image, interpolated between its two neighbours on each axis."""
    image = np.asarray(image, np.float64)

    def taps(out_size, in_size):
        position = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
        position = np.clip(position, 0, in_size - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, position - low

    y_low, y_high, y_weight = taps(height, image.shape[0])
    x_low, x_high, x_weight = taps(width, image.shape[1])
    rows = (
        image[y_low] * (1 - y_weight)[:, None, None]
        + image[y_high] * y_weight[:, None, None]
    )
    return (
        rows[:, x_low] * (1 - x_weight)[None, :, None]
        + rows[:, x_high] * x_weight[None, :, None]
    )
