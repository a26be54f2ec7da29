"""Model configurations: the single list of TNet and baseline hyperparameters.

`TNetConfig` describes one TNet (architecture and learning-rule switches);
`BaselineConfig` one plain CNN classifier used for comparison. Both are frozen
dataclasses validated at construction, serialised as plain dicts by
`to_dict`/`from_dict` (that is what `TNet.get_config` stores), and edited with
`apply_overrides(config, ["key=value", ...])`.
"""

import dataclasses
import typing
from collections.abc import Sequence

# Configs are edited with it (recipes too); its home is tnet_tf.overrides.
from tnet_tf.overrides import apply_overrides  # noqa: F401

SELECTION_MODES = ("sample", "greedy")
LOG_PROB_MODES = ("sequential", "sum")
REGION_SAMPLING_MODES = ("auto", "crop", "resample")
# What the backbone does to the [-1, 1] pixels it is given (see
# `TNetConfig.input_normalization`).
INPUT_NORMALIZATIONS = ("backbone", "none")


def is_positive_int(value: object) -> bool:
    """True for an int above 0 (a bool is not an int here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _as_pair(value, name):
    if isinstance(value, int):
        return (value, value)
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(
            f"`{name}` must be an int or a pair of ints, got {value!r}."
        )
    return pair


class _ConfigMixin:
    def to_dict(self):
        """A JSON-compatible dict of every field (tuples become lists)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = (
                list(value) if isinstance(value, tuple) else value
            )
        return out

    @classmethod
    def from_dict(cls, values):
        """Inverse of `to_dict`; unknown keys raise `ValueError`."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"Unknown {cls.__name__} fields {sorted(unknown)}. "
                f"Known fields: {sorted(known)}"
            )
        return cls(**values)

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class TNetConfig(_ConfigMixin):
    """Hyperparameters of one TNet: architecture, geometry and learning rule.

    Architecture (paper Section 3, `original_implementation_detail.md`):

    Args:
        name: model name, used for the Keras model and in reports.
        backbone: feature extraction backbone, a name from
            `tnet_tf.backbones.backbone_names()` (e.g. `"bagnet77"`,
            `"efficientnet_b0"`) or `"keras.applications.<ClassName>"`.
        backbone_weights: local path of pretrained backbone weights; `None`
            builds random weights (nothing is ever downloaded). A weights
            file (`keras.applications` `*_notop.h5`, or saved with
            `save_weights`), or for EfficientNets the prefix of a TF-TPU
            EfficientNet checkpoint (its `/ExponentialMovingAverage`
            variables, as the release restored them).
        input_normalization: what the backbone does to the [-1, 1] pixels
            it is given. `"backbone"`: the backbone's own convention
            (`keras.applications` EfficientNets apply the ImageNet mean and
            standard deviation their pretrained weights expect; BagNet-77
            and the tiny CNN take the pixels as they are). `"none"`: the
            pixels go in unchanged, as in the release's EfficientNet, whose
            trained checkpoints need it (`tnet_tf.release`). Part of the
            backbone's structure, so no weight loading changes it.
        num_classes: number of output classes.
        image_size: `(height, width)` (or one int) of the input the model is
            built and profiled for. Any input at or above `base_resolution`
            is accepted at call time.
        base_resolution: side of the square every level is resized to before
            the backbone (77 for BagNet-77, 224 for EfficientNet).
        antialias: low-pass filter when a level is downscaled to the base
            resolution (`tf.image.resize(..., antialias=True)`). The release
            resizes without it (False); on sparse images such as Megapixel
            MNIST thin strokes then vanish from the coarse levels and the
            location module has little to look at.
        region_sampling: how levels 2 and deeper reach the base resolution;
            the results agree up to float32 rounding. `"crop"` cuts the
            chosen cells from their parent at full resolution, then resizes
            them (the release's order; exact, any grid, `antialias`; the
            copies grow with the input). `"resample"` reads each region's
            base-resolution samples straight from the input image, so the
            cost does not grow with it; it needs unpadded grids, cells no
            smaller than the base resolution, static image sizes and no XLA
            (see `TNet.region_sampling_mode`). `"auto"`: resample where it
            applies, else crop.
        grid_size: `n`, the side of the `n x n` grid of candidate cells.
        cell_fraction: `o`, a cell's side as a fraction of its parent's side
            (the release's `overlap` flag: 0.34375, 0.5, 0.35).
        num_levels: processing levels used when `call` gets no
            `locations_per_level`.
        locations_per_level: cells attended in each grid, one value per level
            transition (`num_levels - 1` values): `(3,)` for ImageNet,
            `(2, 1)` for fMoW at 896 px.
        positional_encoding_divisor: the positional encoding has
            `feature_dim // divisor` dimensions (1 for BagNet, 4 for
            EfficientNet backbones).
        max_inverse_frequency: largest inverse frequency of the sinusoids.
        location_hidden_channels: width of the location module's hidden 1x1
            convolutions; `None` uses the reference (512 for BagNet, the tapped
            map's channels for EfficientNet).
        normalize_location_logits: L2-normalise the location logits before
            the softmax, a quirk of the release (Q3); the paper does not.
        uniform_initial_policy: zero-initialise the location module's output
            layer so the policy starts uniform over the cells.
        feature_weighting: aggregate with the feature weighting module
            (CUB, NABirds) instead of the mean.
        dropout_rate: dropout before the classifier.
        backbone_dropout_rate: spatial dropout inside BagNet-77 (1 - keep).
        drop_connect_rate: largest drop-connect rate of EfficientNet blocks;
            `None` keeps the backbone's default.
        tap_layer: overrides the backbone's layer tapped for the feature map F.
        tap_slice: overrides the `(start, stop, step)` slice of that map.

    Location selection and learning rule (paper Section 4):

    Args:
        selection: `"sample"` (without replacement, the paper) or `"greedy"`
            (top-k, the release) during training; evaluation is always greedy.
        log_prob: log-probability of the attended set: `"sequential"` (the
            exact without-replacement probability) or `"sum"` (the release's
            sum of per-cell log-probabilities).
        num_samples: `M`, Monte Carlo samples per image.
        reinforce_weight: `lambda_f`, weight of the REINFORCE terms.
        per_feature_ce_weight: `lambda_c`; `1 - lambda_c` goes to the
            per-feature cross-entropy.
        per_feature_reinforce_weight: `lambda_r`; `1 - lambda_r` goes to the
            per-feature REINFORCE term.
        per_feature_level_cap: highest level that enters the per-feature terms
            (`None`: all levels).
        l2_weight: L2 penalty on weights outside normalization layers.
        contrastive_weight: weight of the contrastive term (fine-tuning).
        contrastive_margin: margin of that term.
        baseline_momentum: momentum of the reward baseline's moving average.
        baseline_initial_value: the baseline's initial value.
        seed: seed of the location sampler.
    """

    name: str = "tnet"
    backbone: str = "bagnet77"
    backbone_weights: typing.Optional[str] = None
    input_normalization: str = "backbone"
    num_classes: int = 1000
    image_size: typing.Any = (224, 224)
    base_resolution: int = 77
    antialias: bool = False
    region_sampling: str = "auto"
    grid_size: int = 5
    cell_fraction: float = 0.34375
    num_levels: int = 2
    locations_per_level: typing.Any = (3,)
    positional_encoding_divisor: int = 1
    max_inverse_frequency: float = 100.0
    location_hidden_channels: typing.Optional[int] = None
    normalize_location_logits: bool = False
    uniform_initial_policy: bool = False
    feature_weighting: bool = False
    dropout_rate: float = 0.0
    backbone_dropout_rate: float = 0.0
    drop_connect_rate: typing.Optional[float] = None
    tap_layer: typing.Optional[str] = None
    tap_slice: typing.Any = None
    # === Learning rule ===
    selection: str = "sample"
    log_prob: str = "sequential"
    num_samples: int = 1
    reinforce_weight: float = 0.1
    per_feature_ce_weight: float = 0.3
    per_feature_reinforce_weight: float = 0.3
    per_feature_level_cap: typing.Optional[int] = None
    l2_weight: float = 0.0
    contrastive_weight: float = 0.0
    contrastive_margin: float = 0.4
    baseline_momentum: float = 0.9
    baseline_initial_value: float = 0.5
    seed: typing.Optional[int] = None
    # A TNet chooses the regions it attends; a baseline sees the image whole.
    attends_regions: typing.ClassVar[bool] = True

    def __post_init__(self):
        set_ = lambda key, value: object.__setattr__(self, key, value)
        set_("image_size", _as_pair(self.image_size, "image_size"))
        set_("locations_per_level", tuple(self.locations_per_level))
        if self.tap_slice is not None:
            set_("tap_slice", tuple(self.tap_slice))
        _check_input_normalization(self.input_normalization)
        _check(self.num_classes >= 1, "num_classes", self.num_classes)
        _check(
            self.base_resolution >= 1, "base_resolution", self.base_resolution
        )
        _check(
            self.grid_size >= 2, "grid_size", self.grid_size, "must be >= 2"
        )
        _check(
            0.0 < self.cell_fraction <= 1.0,
            "cell_fraction",
            self.cell_fraction,
            "must be in (0, 1]",
        )
        _check(self.num_levels >= 1, "num_levels", self.num_levels)
        if min(self.image_size) < self.base_resolution:
            raise ValueError(
                f"`image_size` {self.image_size} is smaller than "
                f"`base_resolution` {self.base_resolution}."
            )
        if len(self.locations_per_level) != self.num_levels - 1:
            raise ValueError(
                f"`locations_per_level` needs num_levels - 1 = "
                f"{self.num_levels - 1} values, got {self.locations_per_level}."
            )
        validate_locations(self.locations_per_level, self.grid_size)
        _check(
            self.positional_encoding_divisor >= 1,
            "positional_encoding_divisor",
            self.positional_encoding_divisor,
        )
        for key in ("dropout_rate", "backbone_dropout_rate"):
            _check(0.0 <= getattr(self, key) < 1.0, key, getattr(self, key))
        if self.drop_connect_rate is not None:
            _check(
                0.0 <= self.drop_connect_rate < 1.0,
                "drop_connect_rate",
                self.drop_connect_rate,
            )
        _check(
            self.selection in SELECTION_MODES,
            "selection",
            self.selection,
            f"must be one of {SELECTION_MODES}",
        )
        _check(
            self.log_prob in LOG_PROB_MODES,
            "log_prob",
            self.log_prob,
            f"must be one of {LOG_PROB_MODES}",
        )
        _check(
            self.region_sampling in REGION_SAMPLING_MODES,
            "region_sampling",
            self.region_sampling,
            f"must be one of {REGION_SAMPLING_MODES}",
        )
        if self.antialias and self.region_sampling == "resample":
            raise ValueError(
                "`antialias` needs the full-resolution regions: use "
                "region_sampling='crop' or 'auto' with it, not 'resample'."
            )
        _check(self.num_samples >= 1, "num_samples", self.num_samples)
        for key in (
            "per_feature_ce_weight",
            "per_feature_reinforce_weight",
            "baseline_momentum",
        ):
            _check(0.0 <= getattr(self, key) <= 1.0, key, getattr(self, key))
        for key in ("reinforce_weight", "l2_weight", "contrastive_weight"):
            _check(getattr(self, key) >= 0.0, key, getattr(self, key))
        if self.per_feature_level_cap is not None:
            _check(
                self.per_feature_level_cap >= 1,
                "per_feature_level_cap",
                self.per_feature_level_cap,
            )

    @property
    def cells_per_grid(self):
        """`K = n * n` candidate cells per grid."""
        return self.grid_size * self.grid_size


@dataclasses.dataclass(frozen=True)
class BaselineConfig(_ConfigMixin):
    """Hyperparameters of a plain CNN classifier run on the whole image.

    The paper's baselines: BagNet-77 on 224 px ImageNet images and
    EfficientNet-B0..B4 on fMoW, CUB and NABirds.

    Args:
        name: model name.
        backbone: backbone name (see `TNetConfig.backbone`).
        backbone_weights: local path of pretrained backbone weights or `None`
            (see `TNetConfig.backbone_weights`).
        input_normalization: `"backbone"` or `"none"` (see
            `TNetConfig.input_normalization`).
        num_classes: number of output classes.
        image_size: `(height, width)` (or one int) the model is profiled for;
            the network is fully convolutional and accepts any size.
        dropout_rate: dropout before the classifier.
        backbone_dropout_rate: spatial dropout inside BagNet-77.
        drop_connect_rate: largest EfficientNet drop-connect rate or `None`.
        l2_weight: L2 penalty on weights outside normalization layers.
        contrastive_weight: weight of the contrastive term (fine-tuning).
        contrastive_margin: margin of that term.
    """

    name: str = "baseline"
    backbone: str = "bagnet77"
    backbone_weights: typing.Optional[str] = None
    input_normalization: str = "backbone"
    num_classes: int = 1000
    image_size: typing.Any = (224, 224)
    dropout_rate: float = 0.0
    backbone_dropout_rate: float = 0.0
    drop_connect_rate: typing.Optional[float] = None
    l2_weight: float = 0.0
    contrastive_weight: float = 0.0
    contrastive_margin: float = 0.4
    attends_regions: typing.ClassVar[bool] = False

    def __post_init__(self):
        object.__setattr__(
            self, "image_size", _as_pair(self.image_size, "image_size")
        )
        _check_input_normalization(self.input_normalization)
        _check(self.num_classes >= 1, "num_classes", self.num_classes)
        for key in ("dropout_rate", "backbone_dropout_rate"):
            _check(0.0 <= getattr(self, key) < 1.0, key, getattr(self, key))


class LocationSettingError(ValueError):
    """A `locations_per_level` setting that the model or image cannot take.

    A `ValueError`; its own type lets entry points report a bad
    `--locations` as a usage error.
    """


def validate_locations(
    locations_per_level: Sequence[int], grid_size: int
) -> None:
    """Checks a `locations_per_level` sequence against an `n x n` grid."""
    cells = grid_size * grid_size
    for level, count in enumerate(locations_per_level):
        if not isinstance(count, int) or isinstance(count, bool):
            raise LocationSettingError(
                f"`locations_per_level` must hold ints, got {count!r} at "
                f"position {level} of {tuple(locations_per_level)}."
            )
        if not 0 <= count <= cells:
            raise LocationSettingError(
                f"`locations_per_level[{level}]` = {count} is impossible: a "
                f"{grid_size}x{grid_size} grid has {cells} cells."
            )


def _check_input_normalization(value):
    _check(
        value in INPUT_NORMALIZATIONS,
        "input_normalization",
        value,
        f"must be one of {INPUT_NORMALIZATIONS}",
    )


def _check(condition, key, value, message="is out of range"):
    if not condition:
        raise ValueError(f"`{key}` {message}, got {value!r}.")
