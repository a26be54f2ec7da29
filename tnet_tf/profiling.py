"""Structural profiling: parameters and multiply-adds per image.

The paper reports "FLOPs" as multiply-adds of the convolution and dense
layers, measured at inference (original_implementation_detail.md §16). This
module counts them from the TensorFlow graph of one traced forward pass at
batch 1, so any Keras model (TNet, a baseline, a keras.applications net) can be
profiled without per-layer bookkeeping.

Command line (`parse_flags` and `main` of `tnet_tf.experiment.profile`,
which build on this module):

    python -m tnet_tf.profiling --preset NAME [--locations 2,1]
        [--image_size 896] [--json]
    python -m tnet_tf.profiling --all [--json]
"""

import importlib
import math
import sys
import warnings

import keras  # noqa: F401 (the docstrings' examples use it)
import tensorflow as tf

# Ops whose cost is a per-output-element dot product. Everything else
# (element-wise ops, pooling, normalisation, resizing, softmax) is not counted,
# like the paper's multiply-adds.
_CONVOLUTIONS = ("Conv2D", "Conv3D")
_MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
_CALLS = ("PartitionedCall", "StatefulPartitionedCall")
_CONDITIONALS = ("If", "StatelessIf", "Case", "StatelessCase")
_LOOPS = ("While", "StatelessWhile")


def count_multiply_adds(fn, input_signature):
    """Counts the multiply-adds of conv and dense ops in `fn`'s graph.

    `fn` is traced once with `tf.function(fn).get_concrete_function(
    *input_signature)`; the shapes in `input_signature` must be fully
    static. Only ops that the outputs depend on are counted, and calls into
    other graph functions are followed.

    Counted ops (output elements times the length of each dot product):
    `Conv2D`, `Conv3D` (including grouped convolutions),
    `DepthwiseConv2dNative`, `Conv2DBackpropInput` (transposed
    convolution), `MatMul`, `BatchMatMul*` and two-operand `Einsum`.
    Biases, activations, normalisation, pooling and resizing are not counted.
    Conditionals count their most expensive branch; loop bodies are counted
    once (with a warning), since the trip count is not known when tracing.

    Args:
        fn: a callable taking tensors, e.g. a Keras model or a lambda around
            one.
        input_signature: a list of `tf.TensorSpec` with static shapes, one per
            positional argument of `fn`.

    Returns:
        The number of multiply-adds as a Python int (per call of `fn`; use
        batch 1 in the signature to get a per-image number).

    Example:
    >>> layer = keras.layers.Dense(10)
    >>> count_multiply_adds(layer, [tf.TensorSpec([1, 20])])
    200
    """
    input_signature = list(input_signature)
    for spec in input_signature:
        if not spec.shape.is_fully_defined():
            raise ValueError(
                "count_multiply_adds needs fully static shapes; received "
                f"input_signature entry {spec}."
            )
    concrete = tf.function(fn).get_concrete_function(*input_signature)
    return _count_graph(concrete.graph)


def _count_graph(graph):
    """Multiply-adds of the ops that `graph`'s outputs depend on."""
    total = 0
    for op in _reachable_ops(graph):
        total += _count_op(op, graph)
    return total


def _reachable_ops(graph):
    """Ops on which the outputs or control outputs of `graph` depend."""
    stack = [tensor.op for tensor in graph.outputs]
    stack += list(graph.control_outputs)
    seen = set()
    ops = []
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        ops.append(op)
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
    return ops


def _count_op(op, graph):
    kind = op.type
    if kind in _CONVOLUTIONS:
        # Kernel (..., in_channels_per_group, out_channels): every output
        # element is a dot product over all kernel entries but the last axis.
        kernel = _static_shape(op, op.inputs[1])
        return _elements(_static_shape(op, op.outputs[0])) * math.prod(
            kernel[:-1]
        )
    if kind == "DepthwiseConv2dNative":
        # Kernel (height, width, in_channels, multiplier): each output
        # channel sees one input channel.
        kernel = _static_shape(op, op.inputs[1])
        return _elements(_static_shape(op, op.outputs[0])) * math.prod(
            kernel[:2]
        )
    if kind == "Conv2DBackpropInput":
        # Transposed convolution: each input element is multiplied with a
        # (height, width, out_channels) slice of the kernel.
        kernel = _static_shape(op, op.inputs[1])
        values = _static_shape(op, op.inputs[2])
        return _elements(values) * math.prod(kernel[:3])
    if kind in _MATMULS:
        first = _static_shape(op, op.inputs[0])
        transposed = _bool_attr(op, "transpose_a") or _bool_attr(op, "adj_x")
        inner = first[-2] if transposed else first[-1]
        return _elements(_static_shape(op, op.outputs[0])) * inner
    if kind == "Einsum":
        return _count_einsum(op)
    if kind in _CALLS:
        return _count_graph(_function_graph(graph, op, "f"))
    if kind in _CONDITIONALS:
        if kind.endswith("If"):
            branches = [
                _function_graph(graph, op, "then_branch"),
                _function_graph(graph, op, "else_branch"),
            ]
        else:
            branches = [
                _function_graph(graph, op, "branches", index)
                for index in range(len(op.get_attr("branches")))
            ]
        return max(_count_graph(branch) for branch in branches)
    if kind in _LOOPS:
        body = _count_graph(_function_graph(graph, op, "body"))
        if body:
            warnings.warn(
                f"count_multiply_adds: loop '{op.name}' has {body} "
                "multiply-adds per iteration; counted once because the "
                "trip count is unknown at trace time."
            )
        return body
    if "Conv" in kind or "MatMul" in kind:
        warnings.warn(
            f"count_multiply_adds: op '{op.name}' of type {kind} is not "
            "counted (unsupported op type)."
        )
    return 0


def _count_einsum(op):
    equation = op.get_attr("equation").decode()
    operands, output = equation.replace(" ", "").split("->")
    operands = operands.split(",")
    if len(operands) != 2 or len(op.inputs) != 2:
        raise ValueError(
            f"count_multiply_adds supports two-operand Einsum only; op "
            f"'{op.name}' has equation {equation!r}."
        )
    sizes = {}
    for subscripts, tensor in zip(operands, op.inputs):
        shape = _static_shape(op, tensor)
        if "..." in subscripts:
            head, tail = subscripts.split("...")
            named = list(zip(head, shape[: len(head)]))
            named += list(zip(tail, shape[len(shape) - len(tail) :]))
        else:
            named = list(zip(subscripts, shape))
        for letter, size in named:
            sizes[letter] = max(sizes.get(letter, 1), size)
    contracted = [letter for letter in sizes if letter not in output]
    # Output elements (ellipsis dimensions included) times the summed axes.
    return _elements(_static_shape(op, op.outputs[0])) * math.prod(
        sizes[letter] for letter in contracted
    )


def _function_graph(graph, op, attr, index=None):
    """The FuncGraph of the function named in `op`'s attribute `attr`."""
    value = op.get_attr(attr)
    if index is not None:
        value = value[index]
    name = value.name
    current = graph
    while current is not None:
        function = current._get_function(name)
        if function is not None:
            function_graph = getattr(function, "graph", None)
            if function_graph is None:
                break
            return function_graph
        current = getattr(current, "outer_graph", None)
    raise ValueError(
        f"count_multiply_adds cannot read the graph of function '{name}' "
        f"called by op '{op.name}' ({op.type})."
    )


def _static_shape(op, tensor):
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined():
        raise ValueError(
            f"count_multiply_adds needs static shapes, but op '{op.name}' "
            f"({op.type}) has a tensor of shape {shape}."
        )
    return shape.as_list()


def _elements(shape):
    return math.prod(shape)


def _bool_attr(op, name):
    try:
        return bool(op.get_attr(name))
    except ValueError:
        return False


def _image_size_pair(image_size):
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        pair = [image_size, image_size]
    elif isinstance(image_size, (list, tuple)) and len(image_size) == 2:
        pair = list(image_size)
    else:
        raise ValueError(
            "image_size must be an int or a (height, width) pair; received "
            f"image_size={image_size!r}."
        )
    if not all(isinstance(side, int) and side > 0 for side in pair):
        raise ValueError(
            "image_size must hold positive ints; received "
            f"image_size={image_size!r}."
        )
    return pair


def _accepts_locations(model):
    # The library's models share one call (TNet's); any other Keras model
    # is called with the images only.
    from tnet_tf.models import ImageClassifier

    return isinstance(model, ImageClassifier)


def profile(model, image_size, locations_per_level=None):
    """Parameters and multiply-adds per image of a Keras image model.

    The model runs at inference (`training=False`) on one image of
    `image_size` with 3 channels. The library's models (TNet and the
    baselines) get `locations_per_level` passed; any other Keras model is
    called with the images only.

    Args:
        model: a Keras model called as `model(images, training=False)` or
            `model(images, training=False, locations_per_level=...)`.
        image_size: int or `(height, width)` of the input image.
        locations_per_level: list of ints, locations chosen per level
            (TNet only), or None for the model's default.

    Returns:
        A dict with `params` (`model.count_params()`, i.e. all variables,
        including BN moving statistics as in the paper), `flops`
        (multiply-adds per image, conv and dense only), `image_size`
        (`[height, width]`) and `locations_per_level` (list or None).

    Example:
    >>> model = keras.applications.EfficientNetB0(
    ...     weights=None, include_top=False
    ... )
    >>> profile(model, 224)["flops"]
    384534752

    Reference:
        original_implementation_detail.md §16 (multiply-adds, conv and dense
        layers only).
    """
    height, width = _image_size_pair(image_size)
    if locations_per_level is not None:
        locations_per_level = [int(count) for count in locations_per_level]
        if not _accepts_locations(model):
            raise ValueError(
                f"{type(model).__name__}.call takes no locations_per_level; "
                f"received locations_per_level={locations_per_level}."
            )

    if _accepts_locations(model):

        def forward(images):
            return model(
                images,
                training=False,
                locations_per_level=locations_per_level,
            )["logits"]

    else:

        def forward(images):
            return model(images, training=False)

    signature = [tf.TensorSpec([1, height, width, 3], tf.float32)]
    flops = count_multiply_adds(forward, signature)
    return {
        "params": int(model.count_params()),
        "flops": int(flops),
        "image_size": [height, width],
        "locations_per_level": locations_per_level,
    }


def _presets():
    # Imported lazily (and through sys.modules, so tests can substitute it):
    # building presets pulls in the whole model library.
    return importlib.import_module("tnet_tf.presets")


def _config_value(config, name):
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)


def profile_preset(name, image_size=None, locations_per_level=None):
    """Builds preset `name` and profiles it.

    Args:
        name: a name from `tnet_tf.presets.names()`.
        image_size: int or `(height, width)`; None uses the preset's
            `image_size`.
        locations_per_level: list of ints; None uses the preset's
            `locations_per_level` (None for baselines).

    Returns:
        The dict of `profile` with the key `preset` added.
    """
    presets = _presets()
    config = presets.get(name)
    if image_size is None:
        image_size = _config_value(config, "image_size")
        if image_size is None:
            raise ValueError(
                f"Preset '{name}' has no image_size; pass image_size."
            )
    if locations_per_level is None:
        locations_per_level = _config_value(config, "locations_per_level")
    model = presets.build(name)
    result = profile(model, image_size, locations_per_level)
    return {"preset": name, **result}


if __name__ == "__main__":
    # The command line lives with the profile verb; imported here only, as
    # tnet_tf.experiment builds on this module. Not absl's app.run: it
    # requires the global absl FLAGS to be parsed, which this parser
    # deliberately leaves alone.
    from tnet_tf.experiment import profile as _command_line

    _command_line.main(_command_line.parse_flags(sys.argv))
