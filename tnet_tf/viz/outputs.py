"""Reading the output dict the pictures and tables are drawn from.

The dict of `TNet.__call__` or of an exported serving endpoint
(`tnet_tf.export`), as tensors or NumPy arrays: one image's entries, class
probabilities (from `probabilities` or `logits`) and class names.
"""

import numpy as np


def outputs_for_image(outputs, index):
    """The entries of a batch output dict for image `index`, as NumPy arrays.

    `location_probs` (a tuple of `(batch, grids, cells)`) becomes a tuple of
    `(grids, cells)` arrays.
    """
    single = {}
    for key, value in outputs.items():
        if key == "location_probs":
            single[key] = tuple(np.asarray(p)[index] for p in value)
        else:
            value = np.asarray(value)
            if value.ndim >= 1:
                single[key] = value[index]
    return single


def class_probabilities(outputs):
    """float64 class probabilities: `probabilities`, or the softmax of
    `logits` for a dict without them."""
    if "probabilities" in outputs:
        return np.asarray(outputs["probabilities"], dtype=np.float64)
    logits = np.asarray(outputs["logits"], dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def class_name(index, class_names):
    """The name of class `index`, or the index itself without names."""
    return class_names[index] if class_names is not None else str(index)
