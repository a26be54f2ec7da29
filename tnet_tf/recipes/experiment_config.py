"""`ExperimentConfig`: one experiment, a model preset trained on a dataset.

The dataclass every recipe returns, with its validation at construction,
`resolve()` (every `None` filled in from the preset and the dataset) and
`to_dict()` (the `experiment` entry of a run's `experiment.json`).
`RECIPES` is the registry of recipe names that `restore_from` may name.
"""

import dataclasses
import functools
import os
import typing

from tnet_tf import config as config_lib
from tnet_tf import losses
from tnet_tf import presets
from tnet_tf import schedules
from tnet_tf.data import datasets
from tnet_tf.registry import Registry

RECIPES = Registry("recipe")

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
            `tnet_tf.schedules.SCHEDULE_DROPS`.
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
        early_stopping_patience: stop once the validation top-1 has not
            improved for this many epochs, and end with the best epoch's
            weights (`final.keras` is then that epoch); `None` trains every
            epoch and keeps the last, as the release.
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
    early_stopping_patience: typing.Optional[int] = None
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
            if drops not in schedules.SCHEDULE_DROPS:
                raise ValueError(
                    f"`schedule_drops` {drops!r} is not one of "
                    f"{sorted(schedules.SCHEDULE_DROPS)} (or give fractions)."
                )
            drops = schedules.SCHEDULE_DROPS[drops]
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
        for key in (
            "steps_per_epoch",
            "eval_steps",
            "early_stopping_patience",
        ):
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
        """The preset's config, with `image_size` and `model_overrides`.

        Derived once, when the recipe is validated; every later call (the
        run, its `experiment.json`, `is_tnet`) gets that same config.
        """
        return self._model_config

    @functools.cached_property
    def _model_config(self):
        # Cached outside the fields: equality, `to_dict` and
        # `dataclasses.replace` see the fields it is derived from, and a
        # replaced recipe derives its own.
        overrides = list(self.model_overrides)
        if self.image_size is not None:
            # One replace: the size is checked together with the edits, so
            # image_size and base_resolution can shrink together.
            overrides.insert(0, f"image_size={self.image_size!r}")
        return config_lib.apply_overrides(presets.get(self.preset), overrides)

    @property
    def is_tnet(self):
        """Whether the preset is a TNet (else a plain baseline)."""
        return self.model_config().attends_regions

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
                    f"{', '.join(RECIPES.names())}"
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
