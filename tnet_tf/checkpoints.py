"""Loading TensorFlow name-keyed checkpoints into Keras variables.

Foreign checkpoints (the release's `tf.train.Checkpoint`s, the TF-TPU
EfficientNet checkpoints) are read by name with `tf.train.load_checkpoint`;
a caller gives the mapping from checkpoint names to the model's variables,
and `load_variables` checks it against the checkpoint as a whole before it
assigns anything, so a bad checkpoint leaves the model untouched and the
error names every missing, mis-shaped and unexpected name at once.
`layer_variables` names a Keras layer's weights as TF 1 / Keras 2 layers
named theirs, which both kinds of checkpoint use.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Element:
    """One element of a Keras variable, stored as its own checkpoint tensor.

    The release keeps each coordinate channel's scalar affine map as a
    `Dense(1)` (a `(1, 1)` kernel and a `(1,)` bias); TNet keeps the two maps
    in one `(2,)` variable each.

    Attributes:
        variable: the Keras variable.
        index: the element's index in it.
        shape: the shape of the checkpoint tensor (one element).
    """

    variable: object
    index: int
    shape: tuple


def layer_variables(scope, layer):
    """`{scope/weight: variable}` of a conv, depthwise conv, dense or BN
    layer, with the weight names of TF 1 / Keras 2 layers, which the TF-TPU
    checkpoints and the release use (`kernel`, `bias`, `depthwise_kernel`,
    `gamma`, `beta`, `moving_mean`, `moving_variance`).

    Args:
        scope: the layer's scope in the checkpoint, e.g. `"stem/conv2d"`.
        layer: a Keras `Conv2D`, `DepthwiseConv2D`, `Dense` or
            `BatchNormalization`.
    """
    if isinstance(layer, keras.layers.BatchNormalization):
        return {
            f"{scope}/gamma": layer.gamma,
            f"{scope}/beta": layer.beta,
            f"{scope}/moving_mean": layer.moving_mean,
            f"{scope}/moving_variance": layer.moving_variance,
        }
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        variables = {f"{scope}/depthwise_kernel": layer.kernel}
    else:
        variables = {f"{scope}/kernel": layer.kernel}
    if layer.bias is not None:
        variables[f"{scope}/bias"] = layer.bias
    return variables


def is_tf_checkpoint(path):
    """Whether `path` is a TF checkpoint prefix or a folder holding one."""
    path = os.fspath(path)
    if os.path.isfile(path + ".index"):
        return True
    return os.path.isdir(path) and tf.train.latest_checkpoint(path) is not None


def check_exists(path):
    """`path` as a string; `FileNotFoundError` unless `is_tf_checkpoint`."""
    path = os.fspath(path)
    if not is_tf_checkpoint(path):
        raise FileNotFoundError(
            f"No TensorFlow checkpoint at '{path}' (expected the prefix of "
            f"'{path}.index' and its data files, or a folder holding them)."
        )
    return path


def load_variables(
    path, mapping, *, description, name_of=None, allow_unexpected=False
):
    """Assigns checkpoint tensors to variables, all or nothing.

    Args:
        path: a checkpoint prefix, or a folder with a `checkpoint` file.
        mapping: `{name: variable or Element}`.
        description: what the checkpoint is, for the error messages.
        name_of: maps a checkpoint key to the name used in `mapping`, or to
            `None` for keys to ignore (optimizer state, counters). Default:
            the key itself.
        allow_unexpected: accept checkpoint names that `mapping` lacks
            (else they are an error).

    Raises:
        FileNotFoundError: no checkpoint at `path`.
        ValueError: naming every name of `mapping` the checkpoint lacks, every
            checkpoint name `mapping` lacks (unless allowed) and every shape
            mismatch.
    """
    path = check_exists(path)
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    name_of = name_of or (lambda key: key)
    keys = {}  # name -> checkpoint key
    for key in shapes:
        name = name_of(key)
        if name is not None:
            keys[name] = key

    missing = sorted(set(mapping) - set(keys))
    unexpected = [] if allow_unexpected else sorted(set(keys) - set(mapping))
    misshaped = []
    for name in sorted(set(mapping) & set(keys)):
        expected = tuple(mapping[name].shape)
        found = tuple(shapes[keys[name]])
        if found != expected:
            misshaped.append(f"{name}: checkpoint {found}, model {expected}")
    problems = []
    for title, items in (
        ("missing from the checkpoint", missing),
        ("in the checkpoint but not in the model", unexpected),
        ("with the wrong shape", misshaped),
    ):
        if items:
            problems.append(f"{len(items)} {title}:\n  " + "\n  ".join(items))
    if problems:
        raise ValueError(
            f"The {description} at '{path}' does not fit the model: "
            + "\n".join(problems)
        )

    elements = {}
    for name, target in mapping.items():
        value = reader.get_tensor(keys[name])
        if isinstance(target, Element):
            # Several checkpoint scalars share one variable: gather them.
            variable_id = id(target.variable)
            current = elements.setdefault(
                variable_id,
                (target.variable, np.array(target.variable.numpy())),
            )[1]
            current[target.index] = np.reshape(value, ())
        else:
            target.assign(value)
    for variable, value in elements.values():
        variable.assign(value)
