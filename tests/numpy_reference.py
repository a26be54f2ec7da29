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
                    squeezed, weights["squeeze_kernel"], weights["squeeze_bias"]
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
