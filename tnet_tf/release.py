"""The authors' released models: their behaviour and their checkpoints.

The original release (Tpap/TNet) saved every trained model with its
`train.py` / `train_bl.py` as a `tf.train.Checkpoint` keyed by variable name
minus the model prefix (`feature_extraction/part4_block2/expand/conv2d/kernel`,
`location_prediction/init/conv2d/kernel`, `feature_posBurn/linear/kernel`,
`baseline_var`, ...; original_implementation_detail.md §10 "Checkpoints").
Its models differ from the paper's defaults in a few switches:

- `release_config(config)`: the release's behaviour for any preset: the
  EfficientNet sees the [-1, 1] pixels unchanged (`input_normalization`),
  location logits are L2-normalised, and training attends greedily with
  summed log-probabilities. `release_recipe(recipe)` also sets the release's
  loss (`loss_variant="release"`) for training.
- `load_release_checkpoint(model, path)`: every variable of a released
  TNet (BagNet-77, EfficientNet-B0..B4, with or without feature weighting)
  or baseline (`Baseline_CNN`: BagNet-77, EfficientNet-B0..B4), mapped by
  structure (`release_variables`); optimizer state and counters are ignored.
- `convert_release(config, checkpoint, output)`: the same, saved as a
  `.keras` file for the evaluate, export and predict tools
  (`python -m experiments.convert_release`).
"""

import dataclasses
import os
import re

import keras

from tnet_tf import backbones
from tnet_tf import checkpoints
from tnet_tf import models
from tnet_tf import presets
from tnet_tf import recipes
from tnet_tf.backbones import efficientnet
from tnet_tf.config import BaselineConfig
from tnet_tf.config import TNetConfig

# The release's values of the switches whose defaults follow the paper.
RELEASE_SETTINGS = {
    "input_normalization": "none",
    "normalize_location_logits": True,
    "selection": "greedy",
    "log_prob": "sum",
}
RELEASE_LOSS_VARIANT = "release"

# A release checkpoint keys a variable `name` as `escape(name)` + this suffix.
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# Top-level checkpoint entries that are not model variables (the step is
# `iter` under TF 2.4, `iteration` under tf-keras 2.21).
_COUNTERS = {"save_counter", "iter", "iteration", "step", "global_step"}

# MBConv block roles (efficientnet.BLOCK_ROLES) -> the release's scope in
# the block.
_RELEASE_BLOCK_SCOPES = {
    "expand_conv": "expand/conv2d",
    "expand_bn": "expand/batch_norm",
    "depthwise_conv": "depthwise/conv2d",
    "depthwise_bn": "depthwise/batch_norm",
    "se_reduce": "se/conv2d_1",
    "se_expand": "se/conv2d_2",
    "project_conv": "bottleneck/conv2d",
    "project_bn": "bottleneck/batch_norm",
}


def release_config(config):
    """`config` (a `TNetConfig` or `BaselineConfig`) with the release's
    behaviour: `RELEASE_SETTINGS` (the baselines only have the input
    convention). Architecture and weights are unchanged."""
    if not isinstance(config, (TNetConfig, BaselineConfig)):
        raise ValueError(f"Not a model config: {config!r}")
    if config.attends_regions:
        return config.replace(**RELEASE_SETTINGS)
    return config.replace(
        input_normalization=RELEASE_SETTINGS["input_normalization"]
    )


def release_recipe(recipe):
    """A recipe (name or `ExperimentConfig`) that trains like the release:
    its model gets `release_config`, a TNet also the release's loss."""
    if isinstance(recipe, str):
        recipe = recipes.get(recipe)
    model = recipe.model_config()
    target = release_config(model)
    edits = tuple(
        f"{field.name}={getattr(target, field.name)!r}"
        for field in dataclasses.fields(target)
        if getattr(target, field.name) != getattr(model, field.name)
    )
    return dataclasses.replace(
        recipe,
        model_overrides=recipe.model_overrides + edits,
        loss_variant=(
            RELEASE_LOSS_VARIANT if recipe.is_tnet else recipe.loss_variant
        ),
    )


def load_release_checkpoint(model, path):
    """Loads a released checkpoint; returns the model that gives its outputs.

    Args:
        model: a `TNet` or `BaselineClassifier`, its config or a preset name,
            matching the released model (e.g. preset `fmow_tnet_b0_896` for
            the fMoW TNet of stage 2).
        path: the checkpoint prefix (e.g. `.../ckpt-56799`), or its folder.

    Returns:
        `model` itself when its config is already `release_config(config)`,
        else a new model of that config (the input convention is part of the
        backbone's structure), with every variable loaded.

    Raises:
        FileNotFoundError: no checkpoint at `path`.
        ValueError: naming every model variable the checkpoint lacks, every
            checkpoint variable the model lacks and every shape mismatch.
    """
    checkpoints.check_exists(path)  # before a model is built
    if isinstance(model, str):
        model = presets.get(model)
    is_model = isinstance(model, models.ImageClassifier)
    target = release_config(model.config if is_model else model)
    if not is_model or model.config != target:
        # Every weight is loaded next.
        with backbones.loading_saved_weights():
            model = models.build_model(target, load_backbone_weights=False)
    checkpoints.load_variables(
        path,
        release_variables(model),
        description="release checkpoint",
        name_of=_release_name,
    )
    return model


def convert_release(config, checkpoint, output):
    """Loads a released checkpoint and saves the model as a `.keras` file.

    Nothing is written unless the checkpoint loads: the file is written
    under a temporary name, then renamed.

    Args:
        config: as `load_release_checkpoint`'s `model`.
        checkpoint: the release checkpoint's prefix or folder.
        output: the `.keras` file to write.

    Returns:
        The loaded model.
    """
    if not os.fspath(output).endswith(".keras"):
        raise ValueError(f"The output must be a .keras file, got '{output}'.")
    model = load_release_checkpoint(config, checkpoint)
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".partial.{os.path.basename(output)}")
    try:
        model.save(partial)
        os.replace(partial, output)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return model


def release_variables(model):
    """`{release name: variable or checkpoints.Element}` of every variable
    the release stores for `model` (a `TNet` or `BaselineClassifier`)."""
    extractor = model.feature_extractor
    backbone = extractor.backbone_model
    if extractor.family == "bagnet":
        mapping = _bagnet_variables(backbone)
    elif extractor.backbone in efficientnet.APPLICATIONS:
        mapping = _efficientnet_variables(backbone)
    else:
        raise ValueError(
            f"The release has no '{extractor.backbone}' backbone; its models "
            f"use bagnet77 or {', '.join(efficientnet.APPLICATIONS)}."
        )
    layers = {
        "feature_extraction/logits_layer/linear": model.classification_module.dense
    }
    if model.config.attends_regions:
        layers["feature_posBurn/linear"] = model.positional_encoding.projection
        if model.feature_weighting is not None:
            weighting = model.feature_weighting
            layers["feat_weighting/se/dense_1"] = weighting.squeeze
            layers["feat_weighting/se/dense_2"] = weighting.excite
            layers["feat_weighting/output_linear"] = weighting.score
        mapping.update(_location_variables(model.location_module))
        mapping["baseline_var"] = model.reward_baseline
    for scope, layer in layers.items():
        mapping.update(checkpoints.layer_variables(scope, layer))
    return mapping


def _bagnet_variables(backbone):
    # part1_conv -> part1/conv2d; part2_block1_conv3 -> part2_block1/comp_3;
    # part4_block1_shortcut -> part4_block1/shortcut_comp.
    mapping = {}
    for layer in backbone.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        match = re.fullmatch(
            r"(part\d)_(?:(block\d+)_(?:conv(\d)|(shortcut))|conv)", layer.name
        )
        part, block, index, shortcut = match.groups()
        if block is None:
            scope = part
        else:
            role = "shortcut_comp" if shortcut else f"comp_{index}"
            scope = f"{part}_{block}/{role}"
        mapping.update(
            checkpoints.layer_variables(
                f"feature_extraction/{scope}/conv2d", layer
            )
        )
    return mapping


def _efficientnet_variables(backbone):
    # Keras block group g, block letter j -> the release's part g+1, block j+1.
    mapping = {}
    for scope, layer in (
        ("stem/conv2d", "stem_conv"),
        ("stem/batch_norm", "stem_bn"),
        ("top/conv2d", "top_conv"),
        ("top/batch_norm", "top_bn"),
    ):
        mapping.update(
            checkpoints.layer_variables(
                f"feature_extraction/{scope}", backbone.get_layer(layer)
            )
        )
    for group, index, layers in efficientnet.block_layers(backbone):
        block = f"feature_extraction/part{group + 1}_block{index + 1}"
        for role, layer in layers.items():
            scope = f"{block}/{_RELEASE_BLOCK_SCOPES[role]}"
            mapping.update(checkpoints.layer_variables(scope, layer))
    return mapping


def _location_variables(module):
    if module.variant == "bagnet":
        root = "location_prediction_earlyLocs"
        layers = {"conv2d": module.hidden_conv}
    else:
        root = "location_prediction"
        layers = {
            "init/conv2d": module.input_conv,
            "se/conv2d_1": module.squeeze_conv,
            "se/conv2d_2": module.excite_conv,
            "final/conv2d": module.hidden_conv,
        }
    layers["output_linear"] = module.output_conv
    mapping = {}
    for scope, layer in layers.items():
        mapping.update(checkpoints.layer_variables(f"{root}/{scope}", layer))
    # The release's Dense(1) per coordinate channel (rows, then columns) is
    # one element of TNet's (2,) coordinate kernel and bias.
    for index, axis in enumerate(("height", "width")):
        scope = f"{root}/{axis}_scaling"
        mapping[f"{scope}/kernel"] = checkpoints.Element(
            module.coordinate_kernel, index, (1, 1)
        )
        mapping[f"{scope}/bias"] = checkpoints.Element(
            module.coordinate_bias, index, (1,)
        )
    return mapping


def _release_name(key):
    """The variable name a release checkpoint key stands for, or `None` for
    the object graph, optimizer state and counters."""
    if not key.endswith(_VALUE_SUFFIX) or ".OPTIMIZER_SLOT" in key:
        return None
    # tf.train.Checkpoint escapes "/" in an object name as ".S", "." as "..".
    name = re.sub(
        r"\.(.)",
        lambda match: "/" if match.group(1) == "S" else match.group(1),
        key[: -len(_VALUE_SUFFIX)],
    )
    if name in _COUNTERS or name.startswith("optimizer/"):
        return None
    return name
