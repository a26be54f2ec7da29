"""Backbone weights: what `weights=` may name and how it is loaded.

Nothing is ever downloaded: `weights` is `None` (random initialization,
logged as a warning unless `loading_saved_weights` says the weights come
next from a saved model) or a local weights file / TF checkpoint.
"""

import contextlib
import os

from absl import logging

from tnet_tf import checkpoints

_RANDOM_INIT_WARNING = {"enabled": True}


def check_weights(weights):
    """Raises unless `weights` is `None` or names a local file or checkpoint.

    Raises:
        ValueError: not a path, or `"imagenet"` (which would download).
        FileNotFoundError: no such file or TF checkpoint prefix.
    """
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None or the path of a local weights file. "
            f"Received: weights={weights!r}"
        )
    if os.fspath(weights) == "imagenet":
        raise ValueError(
            "weights='imagenet' is not supported: nothing is downloaded. "
            "Pass the path of a local weights file (e.g. a keras.applications "
            "'*_notop.h5' file), or None for random initialization."
        )
    if not (os.path.isfile(weights) or checkpoints.is_tf_checkpoint(weights)):
        raise FileNotFoundError(
            f"Backbone weights not found: '{os.fspath(weights)}' is neither a "
            "file nor a TensorFlow checkpoint prefix."
        )


def is_whole_model_h5(weights):
    """A legacy whole-model `.h5` file (keras.applications' format), loaded
    layer by layer in order, unlike Keras 3 `.weights.h5` files."""
    path = os.fspath(weights or "")
    return path.endswith((".h5", ".hdf5")) and not path.endswith(".weights.h5")


@contextlib.contextmanager
def loading_saved_weights():
    """Silences the random-initialization warning while a saved model loads.

    A `.keras` file rebuilds its backbones without weights and then
    restores them, so "starts from random initialization" would be false.
    """
    previous = _RANDOM_INIT_WARNING["enabled"]
    _RANDOM_INIT_WARNING["enabled"] = False
    try:
        yield
    finally:
        _RANDOM_INIT_WARNING["enabled"] = previous


def load_weights(model, weights, name):
    """Loads the checked `weights` file into `model`; `None` warns instead.

    Raises:
        ValueError: the file does not fit the model (`name` in the message).
    """
    if weights is None:
        if not _RANDOM_INIT_WARNING["enabled"]:
            return
        logging.warning(
            "Backbone '%s' starts from random initialization (weights=None); "
            "pass a local weights file path to load pretrained weights.",
            name,
        )
        return
    path = os.fspath(weights)
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises several types; re-raise one.
        raise ValueError(
            f"Could not load the weights file '{path}' into backbone "
            f"'{name}': {error}"
        ) from error
