"""Configs validate at construction and round-trip through dicts and overrides."""

import json

import pytest

from tnet_tf import config as config_lib
from tnet_tf import presets
from tnet_tf.registry import Registry


def test_dict_round_trip_is_json_identical():
    for name in presets.names():
        config = presets.get(name)
        values = json.loads(json.dumps(config.to_dict()))
        assert type(config).from_dict(values) == config


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"grid_size": 1}, "grid_size"),
        ({"cell_fraction": 1.5}, "cell_fraction"),
        ({"locations_per_level": (26,)}, "impossible"),
        ({"locations_per_level": (2, 1)}, "num_levels - 1"),
        ({"image_size": 64}, "smaller than"),
        ({"selection": "topk"}, "selection"),
        ({"log_prob": "product"}, "log_prob"),
        ({"per_feature_ce_weight": 1.2}, "per_feature_ce_weight"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
    ],
)
def test_invalid_configs_fail_with_the_received_value(changes, message):
    with pytest.raises(ValueError, match=message):
        presets.get("imagenet_tnet").replace(**changes)


def test_overrides_parse_literals_and_reject_unknown_keys():
    base = presets.get("fmow_tnet_b0")
    changed = config_lib.apply_overrides(
        base,
        [
            "num_levels=3",
            "locations_per_level=(2, 1)",
            "selection=greedy",
            "seed=None",
        ],
    )
    assert changed.locations_per_level == (2, 1)
    assert changed.selection == "greedy" and changed.seed is None
    with pytest.raises(ValueError, match="Unknown TNetConfig field 'lpg'"):
        config_lib.apply_overrides(base, ["lpg=3"])
    with pytest.raises(ValueError, match="key=value"):
        config_lib.apply_overrides(base, ["num_levels"])


def test_registry_errors():
    registry = Registry("thing")
    registry.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 2)
    with pytest.raises(ValueError, match="Unknown thing 'b'. Available: a"):
        registry.get("b")
