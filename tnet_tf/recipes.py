"""The paper's experiments by name: preset + data + schedule.

A recipe is an `ExperimentConfig`: which model preset (`tnet_tf.presets`)
is trained on which dataset (`tnet_tf.data.datasets`), with which batch
size, epochs, learning rates and schedule, and which location settings are
evaluated afterwards. Every experiment of the paper is one registered
function returning its config; its docstring holds the command that runs it
and the number the paper reports. Later stages are derived from earlier ones
with `dataclasses.replace` (fMoW stage 2 from stage 1), never copied.

`get(name)` returns a recipe, `names()` lists them, `describe(name)` gives
the docstring, and `resolve(...)` turns a name (or a preset) plus
`"key=value"` overrides into the fully resolved config an experiment runs
with (`tnet_tf.experiment`).

Example:
>>> recipe = tnet_tf.recipes.get("fmow_tnet_stage2")
>>> recipe.restore_from, recipe.epochs
('fmow_tnet_stage1', 10)
>>> resolve("imagenet_tnet", overrides=["epochs=2", "model.dropout_rate=0.1"])

Reference: `original_implementation_detail.md` §10 (schedules and steps)
and §15 (the release's replication commands).
"""

import dataclasses
import inspect
import os
import typing

from tnet_tf import config as config_lib
from tnet_tf import losses
from tnet_tf import presets
from tnet_tf import training
from tnet_tf.data import datasets
from tnet_tf.registry import Registry

RECIPES = Registry("recipe")

# Prefix of `--override` keys that edit the model preset instead of the
# experiment, e.g. "model.dropout_rate=0.3".
MODEL_PREFIX = "model."

# Named learning-rate drops of the release (a key or explicit fractions).
SCHEDULE_DROPS = training.SCHEDULE_DROPS

# What `tiny=True` changes: a smoke run of the real recipe (same model, same
# data) that trains two steps of two images and evaluates one batch.
TINY_SETTINGS = {
    "batch_size": 2,
    "epochs": 1,
    "steps_per_epoch": 2,
    "eval_steps": 1,
}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: a model preset trained and evaluated on a dataset.

    Fields left `None` are filled in by `resolve()` from the preset and the
    dataset's `DatasetSpec`; the resolved config is what a run writes into
    its working directory.

    Args:
        name: recipe name, also the default working-directory name.
        preset: model preset name (`tnet_tf.presets.names()`).
        dataset: dataset name (`tnet_tf.data.datasets.names()`).
        train_split: split to train on; `None`: the spec's training split.
        eval_split: split reported; `None`: the spec's evaluation split
            (fMoW reports on "test").
        image_size: input side (int) or `(height, width)`; `None`: the
            preset's. Also written into the model config.
        batch_size: global batch size over all replicas (the release: 64
            on 4 GPUs).
        epochs: training epochs.
        steps_per_epoch: `None`: `train records // batch_size`, as the
            release (§10).
        learning_rate: Adam learning rate (of the modules around the
            backbone when `backbone_learning_rate` is set).
        backbone_learning_rate: a second Adam for the backbone (CUB and
            NABirds fine-tuning), or `None` for one optimizer.
        schedule_drops: increasing fractions of the total steps where the
            rate is multiplied by `lr_decay_factor`, or a key of
            `SCHEDULE_DROPS`.
        lr_decay_factor: the drop factor (0.1 in every recipe).
        loss_variant: `"paper"` or `"release"` (`TNet.compile`).
        restore_from: the recipe whose final weights initialise this run
            (model weights only: step and schedule restart, as fMoW stage 2),
            or the path of a `.keras` checkpoint.
        evaluation_locations: the `locations_per_level` settings evaluated
            and profiled after training, e.g. `((0,), (1,), (3,))`; empty
            for a baseline (and for a TNet: its config's default only).
        eval_steps: batches evaluated (also the validation after each
            epoch); `None`: the whole split.
        model_overrides: `"key=value"` edits of the preset config, e.g.
            `("backbone_weights='/w/efficientnet-b0.h5'",)`.
        jit_compile: XLA-compile the train and test steps.
        tiny: smoke run (`TINY_SETTINGS`): same model and data, two steps.
        seed: seed of the input pipeline and of Keras' global RNG.
    """

    name: str
    preset: str
    dataset: str
    train_split: typing.Optional[str] = None
    eval_split: typing.Optional[str] = None
    image_size: typing.Any = None
    batch_size: int = 64
    epochs: int = 1
    steps_per_epoch: typing.Optional[int] = None
    learning_rate: float = 1e-3
    backbone_learning_rate: typing.Optional[float] = None
    schedule_drops: typing.Any = (0.8,)
    lr_decay_factor: float = 0.1
    loss_variant: str = "paper"
    restore_from: typing.Optional[str] = None
    evaluation_locations: typing.Any = ()
    eval_steps: typing.Optional[int] = None
    model_overrides: typing.Any = ()
    jit_compile: bool = False
    tiny: bool = False
    seed: int = 0

    def __post_init__(self):
        set_ = lambda key, value: object.__setattr__(self, key, value)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(
                f"`name` must be a non-empty string, got {self.name!r}."
            )
        drops = self.schedule_drops
        if isinstance(drops, str):
            if drops not in SCHEDULE_DROPS:
                raise ValueError(
                    f"`schedule_drops` {drops!r} is not one of "
                    f"{sorted(SCHEDULE_DROPS)} (or give fractions)."
                )
            drops = SCHEDULE_DROPS[drops]
        set_("schedule_drops", tuple(float(f) for f in drops))
        if self.image_size is not None:
            pair = config_lib._as_pair(self.image_size, "image_size")
            set_("image_size", pair)
        if isinstance(self.model_overrides, str):
            set_("model_overrides", (self.model_overrides,))
        set_("model_overrides", tuple(self.model_overrides))
        set_(
            "evaluation_locations",
            tuple(tuple(setting) for setting in self.evaluation_locations),
        )
        self._validate()

    def _validate(self):
        spec = datasets.get_spec(self.dataset)
        for key in ("train_split", "eval_split"):
            if getattr(self, key) is not None:
                spec.check_split(getattr(self, key))
        for key in ("batch_size", "epochs"):
            _check(getattr(self, key) >= 1, key, getattr(self, key))
        for key in ("steps_per_epoch", "eval_steps"):
            value = getattr(self, key)
            _check(value is None or value >= 1, key, value)
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate)
        _check(
            self.backbone_learning_rate is None
            or self.backbone_learning_rate > 0,
            "backbone_learning_rate",
            self.backbone_learning_rate,
        )
        drops = self.schedule_drops
        if not all(0.0 < f < 1.0 for f in drops) or list(drops) != sorted(
            set(drops)
        ):
            raise ValueError(
                "`schedule_drops` must be increasing fractions in (0, 1), "
                f"got {drops}."
            )
        _check(
            0.0 < self.lr_decay_factor <= 1.0,
            "lr_decay_factor",
            self.lr_decay_factor,
        )
        _check(
            self.loss_variant in losses.LOSS_VARIANTS,
            "loss_variant",
            self.loss_variant,
            f"must be one of {losses.LOSS_VARIANTS}",
        )
        model = self.model_config()  # validates the preset and the edits
        if model.num_classes != spec.num_classes:
            raise ValueError(
                f"Preset '{self.preset}' predicts {model.num_classes} classes "
                f"but dataset '{self.dataset}' has {spec.num_classes}."
            )
        if self.evaluation_locations and not self.is_tnet:
            raise ValueError(
                f"`evaluation_locations` applies to TNet presets only; "
                f"'{self.preset}' is a baseline, got "
                f"{self.evaluation_locations}."
            )
        for setting in self.evaluation_locations:
            config_lib.validate_locations(setting, model.grid_size)

    def model_config(self):
        """The preset's config, with `image_size` and `model_overrides`."""
        overrides = list(self.model_overrides)
        if self.image_size is not None:
            # One replace: the size is checked together with the edits, so
            # image_size and base_resolution can shrink together.
            overrides.insert(0, f"image_size={self.image_size!r}")
        return config_lib.apply_overrides(presets.get(self.preset), overrides)

    @property
    def is_tnet(self):
        """Whether the preset is a TNet (else a plain baseline)."""
        return isinstance(presets.get(self.preset), config_lib.TNetConfig)

    @property
    def total_steps(self):
        """`steps_per_epoch * epochs` (after `resolve()`)."""
        if self.steps_per_epoch is None:
            raise ValueError(
                f"Recipe '{self.name}' has no steps_per_epoch: call resolve()."
            )
        return self.steps_per_epoch * self.epochs

    def restore_path(self, runs_dir):
        """The checkpoint `restore_from` names, with recipe names looked up
        as `<runs_dir>/<recipe>/checkpoints/final.keras` (WORKSPACE.md)."""
        if self.restore_from is None:
            return None
        if self.restore_from in RECIPES:
            return os.path.join(
                runs_dir, self.restore_from, "checkpoints", "final.keras"
            )
        return self.restore_from

    def resolve(self):
        """A copy with every `None` filled in and `tiny` applied.

        Idempotent: resolving a resolved config changes nothing.
        """
        spec = datasets.get_spec(self.dataset)
        changes = dict(TINY_SETTINGS) if self.tiny else {}
        if self.tiny:
            changes["batch_size"] = min(self.batch_size, changes["batch_size"])
        changes["train_split"] = self.train_split or spec.training_split
        changes["eval_split"] = self.eval_split or spec.evaluation_split
        changes["image_size"] = self.model_config().image_size
        batch_size = changes.get("batch_size", self.batch_size)
        steps = changes.get("steps_per_epoch", self.steps_per_epoch)
        if steps is None:
            count = spec.num_examples(changes["train_split"])
            if count is None:
                raise ValueError(
                    f"The size of split '{changes['train_split']}' of "
                    f"'{self.dataset}' is unknown: set steps_per_epoch in "
                    f"recipe '{self.name}'."
                )
            steps = max(1, count // batch_size)
        changes["steps_per_epoch"] = steps
        restore = self.restore_from
        if restore is not None and restore not in RECIPES:
            if not restore.endswith(".keras"):
                raise ValueError(
                    f"`restore_from` must be a recipe name or a .keras "
                    f"checkpoint, got {restore!r}. Recipes: "
                    f"{', '.join(names())}"
                )
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """A JSON-compatible dict of every field (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


def _check(condition, key, value, message="is out of range"):
    if not condition:
        raise ValueError(f"`{key}` {message}, got {value!r}.")


# === Registry ===


def register(function):
    """Registers a recipe function under its own name (a decorator)."""
    RECIPES.register(function.__name__, function)
    return function


def get(name):
    """The `ExperimentConfig` registered as `name`."""
    return RECIPES.get(name)()


def names():
    """Sorted names of all recipes."""
    return RECIPES.names()


def describe(name):
    """The docstring of recipe `name`: what it is, its command, the paper's
    number."""
    return inspect.getdoc(RECIPES.get(name))


def for_preset(preset):
    """The first recipe (by name) training `preset`, for `--preset` runs."""
    presets.get(preset)  # an unknown preset raises with the known ones
    for name in names():
        recipe = get(name)
        if recipe.preset == preset:
            return recipe
    raise ValueError(
        f"No recipe trains preset '{preset}'; pass --recipe, or add one to "
        "tnet_tf/recipes.py."
    )


def apply_overrides(recipe, overrides):
    """`recipe` with `"key=value"` strings applied.

    Keys are `ExperimentConfig` fields; keys starting with `model.` edit the
    preset config and are appended to `model_overrides`. Values are parsed
    as in `tnet_tf.config.apply_overrides`.

    Example:
    >>> apply_overrides(get("imagenet_tnet"), ["epochs=1", "model.seed=3"])
    """
    plain, model = [], list(recipe.model_overrides)
    model_type = type(presets.get(recipe.preset))
    model_fields = {f.name for f in dataclasses.fields(model_type)}
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key.startswith(MODEL_PREFIX):
            model.append(item.strip()[len(MODEL_PREFIX) :])
            continue
        known = {f.name for f in dataclasses.fields(ExperimentConfig)}
        if key not in known and key in model_fields:
            raise ValueError(
                f"'{key}' is a model field: write {MODEL_PREFIX}{item}. "
                f"Experiment fields: {', '.join(sorted(known))}"
            )
        plain.append(item)
    recipe = dataclasses.replace(recipe, model_overrides=tuple(model))
    return config_lib.apply_overrides(recipe, plain)


def resolve(recipe=None, *, preset=None, overrides=(), tiny=None, seed=None):
    """The resolved config of a run, from a recipe name or a preset.

    Args:
        recipe: a recipe name or an `ExperimentConfig`.
        preset: instead of `recipe`: the first recipe of this preset
            (`for_preset`); override `dataset` etc. as needed.
        overrides: `"key=value"` strings (`apply_overrides`).
        tiny: when not `None`, sets the smoke-run switch.
        seed: when not `None`, sets the seed.

    Returns:
        A resolved `ExperimentConfig`.
    """
    if (recipe is None) == (preset is None):
        raise ValueError(
            "Give exactly one of a recipe (--recipe) and a preset (--preset); "
            f"got recipe={recipe!r}, preset={preset!r}. Recipes: "
            f"{', '.join(names())}"
        )
    if preset is not None:
        recipe = for_preset(preset)
    elif isinstance(recipe, str):
        recipe = get(recipe)
    recipe = apply_overrides(recipe, list(overrides or ()))
    if tiny is not None:
        recipe = dataclasses.replace(recipe, tiny=bool(tiny))
    if seed is not None:
        recipe = dataclasses.replace(recipe, seed=int(seed))
    return recipe.resolve()


# === ImageNet (Table 1) ===
# Global batch 64 as in the release (4 GPUs x 16); steps per epoch
# 1,281,167 // 64 = 20,018; the rate drops once at 80% of the steps.


@register
def imagenet_tnet():
    """TNet with BagNet-77 on ImageNet, 224 px, 2 levels, 3 locations.

    Command:
        python -m experiments.train --recipe=imagenet_tnet \\
            --workdir=runs/imagenet_tnet --data_dir=records/imagenet
        python -m experiments.evaluate --recipe=imagenet_tnet \\
            --workdir=runs/imagenet_tnet --data_dir=records/imagenet

    Paper (Table 1): 67.29 / 73.12 / 74.12 / 74.41 / 74.62 % top-1 and
    87.38 / 90.56 / 91.18 / 91.40 / 91.35 % top-5 at 0 / 1 / 2 / 3 / 5
    locations; 1.82 / 3.63 / 5.43 / 7.24 / 10.84 B FLOPs; 21.86 M
    parameters. 200 epochs of 20,018 steps, Adam 1e-4 dropped x0.1 at
    step 3,202,880.
    """
    return ExperimentConfig(
        name="imagenet_tnet",
        preset="imagenet_tnet",
        dataset="imagenet",
        batch_size=64,
        epochs=200,
        learning_rate=1e-4,
        schedule_drops="imagenet",
        evaluation_locations=((0,), (1,), (2,), (3,), (5,)),
    )


@register
def imagenet_bagnet77():
    """The BagNet-77 baseline on whole 224 px ImageNet images.

    Command:
        python -m experiments.train --recipe=imagenet_bagnet77 \\
            --workdir=runs/imagenet_bagnet77 --data_dir=records/imagenet

    Paper (Table 1): 73.42 % top-1, 91.1 % top-5, 18.42 B FLOPs, 20.55 M
    parameters. The paper early-stops at 175 epochs; the release's command
    (kept here, Q16) runs 200 with the drop at epoch 160.
    """
    return ExperimentConfig(
        name="imagenet_bagnet77",
        preset="imagenet_bagnet77",
        dataset="imagenet",
        batch_size=64,
        epochs=200,
        learning_rate=1e-4,
        schedule_drops="imagenet",
    )


# === fMoW (Table 2) ===
# Reported on the test split (the spec's evaluation split).


@register
def fmow_tnet_stage1():
    """TNet with EfficientNet-B0 on fMoW, stage 1: 448 px, 2 levels, [2].

    Trained from scratch; stage 2 (`fmow_tnet_stage2`) starts from its final
    weights.

    Command:
        python -m experiments.train --recipe=fmow_tnet_stage1 \\
            --workdir=runs/fmow_tnet_stage1 --data_dir=records/fmow

    Paper (Table 2, 448 px): 70.17 / 71.46 / 71.57 % top-1 at 1 / 2 / 3
    locations (47.79 % with the level-1 image alone); 0.77 / 1.16 / 1.55 B
    FLOPs; 4.56 M parameters. 40 epochs of 5,680 steps, Adam 1e-3 dropped
    at step 181,760.
    """
    return ExperimentConfig(
        name="fmow_tnet_stage1",
        preset="fmow_tnet_b0",
        dataset="fmow",
        batch_size=64,
        epochs=40,
        learning_rate=1e-3,
        schedule_drops="fmow",
        evaluation_locations=((), (1,), (2,), (3,)),
    )


@register
def fmow_tnet_stage2():
    """TNet on fMoW, stage 2: 896 px, 3 levels, [2, 1], from stage 1.

    Restores the final weights of `fmow_tnet_stage1` (model weights only:
    the step and the schedule restart) and fine-tunes 10 epochs with
    per-feature weights 0.05 capped at level 2 and drop-connect 0.5 (the
    `fmow_tnet_b0_896` preset).

    Command:
        python -m experiments.train --recipe=fmow_tnet_stage2 \\
            --workdir=runs/fmow_tnet_stage2 --data_dir=records/fmow

    Paper (Table 2, 896 px): 72.16 % top-1 at 4 locations ([2, 1]), 71.92 %
    at 6 ([2, 2] or [3, 1]; the release does not say which); 1.94 / 2.71 B
    FLOPs. 10 epochs of 5,680 steps, drop at step 45,440.
    """
    return dataclasses.replace(
        fmow_tnet_stage1(),
        name="fmow_tnet_stage2",
        preset="fmow_tnet_b0_896",
        epochs=10,
        restore_from="fmow_tnet_stage1",
        evaluation_locations=((2, 1), (2, 2), (3, 1)),
    )


def _fmow_baseline(name, dataset, epochs, batch_size, steps_per_epoch=None):
    return ExperimentConfig(
        name=name,
        preset=name,
        dataset=dataset,
        batch_size=batch_size,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        learning_rate=1e-3,
        schedule_drops="fmow",
    )


@register
def fmow_en_b0_crops():
    """EfficientNet-B0 on the fMoW bounding-box crops at 224 px.

    The release sized its epochs by the full-image count (Q10): 363,572 //
    64 = 5,680 steps.

    Command:
        python -m data_prep.fmow --crops ...  # records/fmow_crops
        python -m experiments.train --recipe=fmow_en_b0_crops \\
            --workdir=runs/fmow_en_b0_crops --data_dir=records/fmow_crops

    Paper (Table 2): 69.7 % top-1, 89.22 % top-5, 0.39 B FLOPs, 4.13 M
    parameters. 65 epochs.
    """
    return _fmow_baseline(
        "fmow_en_b0_crops", "fmow_crops", 65, 64, steps_per_epoch=5_680
    )


@register
def fmow_en_b0_224():
    """EfficientNet-B0 on whole fMoW images resized to 224 px.

    The release wrote its records with `maximum_min_dim` 275.

    Command:
        python -m experiments.train --recipe=fmow_en_b0_224 \\
            --workdir=runs/fmow_en_b0_224 --data_dir=records/fmow

    Paper (Table 2): 62.8 % top-1, 84.97 % top-5, 0.39 B FLOPs. 60 epochs.
    """
    return _fmow_baseline("fmow_en_b0_224", "fmow", 60, 64)


@register
def fmow_en_b0_448():
    """EfficientNet-B0 on whole fMoW images at 448 px (batch 32).

    Command:
        python -m experiments.train --recipe=fmow_en_b0_448 \\
            --workdir=runs/fmow_en_b0_448 --data_dir=records/fmow

    Paper (Table 2): 69.83 % top-1, 90.22 % top-5, 1.54 B FLOPs. 30 epochs
    of 11,361 steps, drop at step 272,664.
    """
    return _fmow_baseline("fmow_en_b0_448", "fmow", 30, 32)


@register
def fmow_en_b0_896():
    """EfficientNet-B0 on whole fMoW images at 896 px (batch 32).

    Command:
        python -m experiments.train --recipe=fmow_en_b0_896 \\
            --workdir=runs/fmow_en_b0_896 --data_dir=records/fmow

    Paper (Table 2): 70.6 % top-1, 90.81 % top-5, 6.18 B FLOPs. 30 epochs.
    """
    return _fmow_baseline("fmow_en_b0_896", "fmow", 30, 32)


# === CUB-200-2011 and NABirds (Fig. 3) ===
# Fine-tuned from ImageNet weights: pass them with
# --override "model.backbone_weights='<path>'" (nothing is downloaded).
# The paper's per-model numbers are in its Appendix 2.4.2 (Fig. 3 plots
# them); they are not in the reference text.

_BIRDS = {"cub": (200, "CUB-200-2011"), "nabirds": (100, "NABirds")}


def _birds_tnet(dataset, index):
    epochs = _BIRDS[dataset][0]
    if dataset == "cub" and index == 4:
        epochs = 125  # the release's TNet-B4 (detail §15)
    return ExperimentConfig(
        name=f"{dataset}_tnet_b{index}",
        preset=f"{dataset}_tnet_b{index}",
        dataset=dataset,
        batch_size=64,
        epochs=epochs,
        learning_rate=1e-3,
        backbone_learning_rate=1e-4,
        schedule_drops=dataset,
        evaluation_locations=tuple((k,) for k in range(6)),
    )


def _birds_baseline(dataset, index):
    return ExperimentConfig(
        name=f"{dataset}_en_b{index}",
        preset=f"{dataset}_en_b{index}",
        dataset=dataset,
        batch_size=64,
        epochs=_BIRDS[dataset][0],
        learning_rate=1e-3,
        backbone_learning_rate=5e-5,
        schedule_drops=dataset,
    )


def _birds_docstring(dataset, index, kind):
    title = _BIRDS[dataset][1]
    name = f"{dataset}_{kind}_b{index}"
    if kind == "tnet":
        what = (
            f"TNet-B{index} (EfficientNet-B{index} backbone, feature "
            f"weighting) fine-tuned on {title} at 448 px, 5x5 grid, 2 levels; "
            "Adam 1e-3 for the new modules and 1e-4 for the backbone."
        )
        paper = (
            f"Paper (Fig. 3, Appendix 2.4.2): TNet-B{index} evaluated at 0 to "
            "5 locations (the release reports 3)."
        )
    else:
        what = (
            f"EN-B{index} baseline fine-tuned on whole {title} images at "
            "448 px; Adam 1e-3 for the classifier and 5e-5 for the backbone."
        )
        paper = f"Paper (Fig. 3, Appendix 2.4.2): the EN-B{index} point."
    return (
        f"{what}\n\nCommand:\n"
        f"    python -m experiments.train --recipe={name} \\\n"
        f"        --workdir=runs/{name} --data_dir=records/{dataset} \\\n"
        f"        --override=\"model.backbone_weights='<weights of "
        f"EfficientNet-B{index}>'\"\n\n{paper}"
    )


for _dataset in _BIRDS:
    for _index in range(5):
        for _kind, _make in (("tnet", _birds_tnet), ("en", _birds_baseline)):
            _function = (
                lambda make=_make, d=_dataset, i=_index: make(d, i)
            )
            _function.__name__ = f"{_dataset}_{_kind}_b{_index}"
            _function.__doc__ = _birds_docstring(_dataset, _index, _kind)
            register(_function)


# === Tests and smoke runs ===


@register
def tiny_test():
    """The `tiny_test` preset on Megapixel MNIST records, for tests.

    A few steps of a 3-level TNet with a tiny CNN backbone on 96 px inputs;
    the flag-level tests of `experiments/` run it end to end.

    Command:
        python -m data_prep.megapixel_mnist --output_dir=records/mnist
        python -m experiments.train --recipe=tiny_test \\
            --workdir=runs/tiny_test --data_dir=records/mnist

    Paper: none (a test recipe).
    """
    return ExperimentConfig(
        name="tiny_test",
        preset="tiny_test",
        dataset="megapixel_mnist",
        image_size=96,
        batch_size=2,
        epochs=1,
        steps_per_epoch=2,
        eval_steps=1,
        learning_rate=1e-3,
        schedule_drops=(0.5,),
        evaluation_locations=((2, 1), (0,)),
    )
