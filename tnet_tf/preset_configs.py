"""The configs of the named presets: every network of the paper, its
baselines, and test models.

Only configs live here (no model classes), so that the models can look a
preset up (`TNet.from_preset`) and `tnet_tf.presets` can build models
without an import circle. Values follow `original_implementation_detail.md`
§15 (the release's replication commands).
"""

from tnet_tf.config import BaselineConfig
from tnet_tf.config import TNetConfig
from tnet_tf.registry import Registry

PRESETS = Registry("preset")


def get(name: str) -> TNetConfig | BaselineConfig:
    """The config registered as `name`."""
    return PRESETS.get(name)


def names() -> list[str]:
    """Sorted names of all presets."""
    return PRESETS.names()


def _register(config):
    PRESETS.register(config.name, config)
    return config


# === ImageNet (Table 1) ===
_register(
    TNetConfig(
        name="imagenet_tnet",
        backbone="bagnet77",
        num_classes=1000,
        image_size=224,
        base_resolution=77,
        grid_size=5,
        cell_fraction=0.34375,
        num_levels=2,
        locations_per_level=(3,),
        backbone_dropout_rate=0.5,
        per_feature_ce_weight=0.3,
        per_feature_reinforce_weight=0.3,
    )
)
_register(
    BaselineConfig(
        name="imagenet_bagnet77",
        backbone="bagnet77",
        num_classes=1000,
        image_size=224,
        backbone_dropout_rate=0.625,
    )
)

# === fMoW (Table 2): stage 1 at 448 px, stage 2 at 896 px from stage 1 ===
FMOW_TNET_B0 = _register(
    TNetConfig(
        name="fmow_tnet_b0",
        backbone="efficientnet_b0",
        num_classes=62,
        image_size=448,
        base_resolution=224,
        grid_size=3,
        cell_fraction=0.5,
        num_levels=2,
        locations_per_level=(2,),
        positional_encoding_divisor=4,
        dropout_rate=0.5,
        drop_connect_rate=0.3,
        per_feature_ce_weight=0.2,
        per_feature_reinforce_weight=0.2,
    )
)
_register(
    FMOW_TNET_B0.replace(
        name="fmow_tnet_b0_896",
        image_size=896,
        num_levels=3,
        locations_per_level=(2, 1),
        drop_connect_rate=0.5,
        per_feature_ce_weight=0.05,
        per_feature_reinforce_weight=0.05,
        per_feature_level_cap=2,
    )
)
for _suffix, _size, _dropout, _drop_connect in (
    ("224", 224, 0.75, 0.5),
    ("448", 448, 0.75, 0.3),
    ("896", 896, 0.3, 0.2),
    ("crops", 224, 0.75, 0.5),
):
    _register(
        BaselineConfig(
            name=f"fmow_en_b0_{_suffix}",
            backbone="efficientnet_b0",
            num_classes=62,
            image_size=_size,
            dropout_rate=_dropout,
            drop_connect_rate=_drop_connect,
            l2_weight=1e-5,
        )
    )

# === CUB-200-2011 and NABirds (Fig. 3): fine-tuned TNet-B0..B4 and EN-B0..B4 ===
for _dataset, _classes, _contrastive in (
    ("cub", 200, 100.0),
    ("nabirds", 555, 50.0),
):
    for _index in range(5):
        _backbone = f"efficientnet_b{_index}"
        # The release trained NABirds TNet-B3/B4 with 3 locations (Q16).
        _locations = 3 if (_dataset == "nabirds" and _index >= 3) else 5
        _register(
            TNetConfig(
                name=f"{_dataset}_tnet_b{_index}",
                backbone=_backbone,
                num_classes=_classes,
                image_size=448,
                base_resolution=224,
                grid_size=5,
                cell_fraction=0.35,
                num_levels=2,
                locations_per_level=(_locations,),
                positional_encoding_divisor=4,
                feature_weighting=True,
                dropout_rate=0.75,
                drop_connect_rate=0.5,
                l2_weight=1e-4,
                per_feature_ce_weight=0.3,
                per_feature_reinforce_weight=0.3,
                contrastive_weight=_contrastive,
                contrastive_margin=0.4,
            )
        )
        _register(
            BaselineConfig(
                name=f"{_dataset}_en_b{_index}",
                backbone=_backbone,
                num_classes=_classes,
                image_size=448,
                dropout_rate=0.75,
                drop_connect_rate=0.5,
                l2_weight=1e-4,
                contrastive_weight=_contrastive,
                contrastive_margin=0.4,
            )
        )

# === Small models for tests and the demo ===
_register(
    TNetConfig(
        name="tiny_test",
        backbone="tiny_cnn",
        num_classes=10,
        image_size=96,
        base_resolution=32,
        grid_size=3,
        cell_fraction=0.5,
        num_levels=3,
        locations_per_level=(2, 1),
        positional_encoding_divisor=2,
    )
)

# The demo (`tnet_tf.demo`): 256 px Megapixel MNIST canvases. Level 1 sees the
# canvas at 32 px (antialiased), where a digit is a 3.5 px blob much like the
# noise: its best cell is the most probable one on only about half of the
# canvases, so TNet attends 8 of the 49 cells (README, Demo). A 7 x 7 grid of
# 64 px cells, 32 px apart, holds every 28 px digit wholly in some cell, read
# at 14 px; feature weighting lets the digit's cell outweigh the others.
_register(
    TNetConfig(
        name="megapixel_mnist_tnet",
        backbone="tiny_cnn",
        num_classes=10,
        image_size=256,
        base_resolution=32,
        antialias=True,
        grid_size=7,
        cell_fraction=0.25,
        num_levels=2,
        locations_per_level=(8,),
        positional_encoding_divisor=2,
        uniform_initial_policy=True,
        feature_weighting=True,
    )
)
# The same tiny CNN on the whole canvas, the demo's baselines.
_register(
    BaselineConfig(
        name="megapixel_mnist_cnn",
        backbone="tiny_cnn",
        num_classes=10,
        image_size=256,
    )
)
