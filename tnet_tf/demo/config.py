"""The demo's configuration: `DemoConfig`, its `SMOKE` size, and names.

- The presets the demo builds (`TNET_PRESET`, `CNN_FULL_PRESET`).
- The files it writes in its working directory (`RESULTS_CSV`,
  `RESULTS_JSON`, `TABLE_TXT`, `PRETRAINED_WEIGHTS`).
- The model names of its result rows (`TNET`, `CNN_DOWNSCALED`,
  `CNN_FULL`).
- The seeds and sizes of the digit pretraining set (`SPLIT_SEEDS`,
  `PRETRAIN_TEST_DIGITS`).
"""

import dataclasses
import os
import typing

TNET_PRESET = "megapixel_mnist_tnet"
CNN_FULL_PRESET = "megapixel_mnist_cnn"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
TABLE_TXT = "table.txt"
PRETRAINED_WEIGHTS = os.path.join("pretrain", "tiny_cnn_digits.weights.h5")
# Keeps the pretraining set of each split its own random stream.
SPLIT_SEEDS = {"train": 0, "test": 1}
# Test-split digits the pretrained backbone is scored on.
PRETRAIN_TEST_DIGITS = 2000
# Model names in the result rows.
TNET = "TNet"
CNN_DOWNSCALED = "CNN downscaled"
CNN_FULL = "CNN full resolution"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo's data and training.

    Args:
        train_canvases, validation_canvases, test_canvases: canvases per
            part. Validation canvases are further canvases of the train
            split (the same digit instances, other canvases), held out for
            early stopping; test canvases use the test split's digits.
        canvas_size, num_digits, num_label_digits, num_noise: the Megapixel
            MNIST generator's settings (see `MegapixelMNIST`).
        pretrain_digits: single-digit images the backbone is pretrained on.
        pretrain_size: side of those images; each digit is scaled to a random
            side between `pretrain_scales` and placed at random.
        pretrain_epochs: epochs of backbone pretraining.
        pretrain_dropout_rate: dropout of the pretraining network (before
            and after pooling); with only 4,000 training digits it is what
            lets the backbone generalise to the test split's digits.
        max_epochs: the most epochs TNet and the downscaled CNN train.
        full_cnn_max_epochs: the most epochs of the full-resolution CNN,
            which costs about 30 times TNet's multiply-adds per image: the
            15-minute budget of `make demo` allows it only a few epochs,
            and the table says when it ended still improving.
        patience: each model stops after this many epochs without a better
            validation top-1 and keeps its best epoch's weights.
        batch_size: training batch size of every stage.
        learning_rate: Adam's learning rate of every stage.
        backbone_learning_rate: Adam's learning rate of the pretrained
            backbone while the three models train (a second optimizer, as
            the paper's fine-tuning); `None` uses `learning_rate`.
        locations: the number of cells TNet attends while it trains and by
            default (`locations_per_level=(locations,)`).
        evaluation_locations: TNet's settings evaluated (one level: `k`);
            `locations` is always evaluated too.
        equal_flops_locations: the TNet setting whose multiply-adds the
            downscaled CNN matches.
        pictures: test canvases drawn with their attended boxes.
        seed: seed of data, initialisation and location sampling.
    """

    train_canvases: int = 5000
    validation_canvases: int = 500
    test_canvases: int = 1000
    canvas_size: int = 256
    num_digits: int = 1
    num_label_digits: int = 1
    num_noise: int = 10
    pretrain_digits: int = 24000
    pretrain_size: int = 32
    pretrain_scales: tuple = (10, 28)
    pretrain_epochs: int = 12
    pretrain_dropout_rate: float = 0.2
    max_epochs: int = 20
    full_cnn_max_epochs: int = 4
    patience: int = 3
    batch_size: int = 32
    learning_rate: float = 2e-3
    backbone_learning_rate: typing.Optional[float] = None
    locations: int = 8
    evaluation_locations: tuple = (0, 1, 2, 3, 4, 5, 8)
    equal_flops_locations: int = 1
    pictures: int = 8
    seed: int = 0

    def __post_init__(self):
        for key in (
            "train_canvases",
            "validation_canvases",
            "test_canvases",
            "pretrain_digits",
            "pretrain_epochs",
            "max_epochs",
            "full_cnn_max_epochs",
            "patience",
            "batch_size",
            "locations",
            "pictures",
        ):
            if getattr(self, key) < 1:
                raise ValueError(
                    f"`{key}` must be >= 1, got {getattr(self, key)}."
                )
        low, high = self.pretrain_scales
        if not 1 <= low <= high <= self.pretrain_size:
            raise ValueError(
                f"`pretrain_scales` must satisfy 1 <= low <= high <= "
                f"pretrain_size={self.pretrain_size}, got {(low, high)}."
            )
        if not 0.0 <= self.pretrain_dropout_rate < 1.0:
            raise ValueError(
                "`pretrain_dropout_rate` must be in [0, 1), got "
                f"{self.pretrain_dropout_rate}."
            )
        if self.equal_flops_locations not in self.evaluation_locations:
            raise ValueError(
                f"`equal_flops_locations`={self.equal_flops_locations} must "
                f"be one of `evaluation_locations` "
                f"{self.evaluation_locations}."
            )

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def evaluated_settings(self):
        """TNet's location settings the table reports: every
        `evaluation_locations` and `locations`, ascending, as `[k]`."""
        return [
            [k]
            for k in sorted(set(self.evaluation_locations) | {self.locations})
        ]


# Small enough for a test: the same steps on a few canvases.
SMOKE = DemoConfig(
    train_canvases=16,
    validation_canvases=8,
    test_canvases=8,
    pretrain_digits=64,
    pretrain_epochs=1,
    max_epochs=2,
    full_cnn_max_epochs=2,
    patience=1,
    batch_size=8,
    locations=2,
    evaluation_locations=(0, 1, 2),
    pictures=2,
)
