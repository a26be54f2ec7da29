"""Every recipe resolves, validates and carries its command and paper number;
steps and schedules match the release; bad recipes fail at construction."""

import dataclasses
import json

import pytest

from tnet_tf import presets
from tnet_tf import recipes
from tnet_tf import schedules

TEST_RECIPES = ("tiny_test",)


def release_steps(name):
    """(total steps, learning-rate drop step) of the release, detail §10."""
    if name.startswith("imagenet_"):
        return 4_003_600, 3_202_880
    table = {
        "fmow_tnet_stage1": (227_200, 181_760),
        "fmow_tnet_stage2": (56_800, 45_440),
        "fmow_en_b0_crops": (369_200, 295_360),  # 65 x 5,680, drop at 80%
        "fmow_en_b0_224": (340_800, 272_640),  # 60 x 5,680
        "fmow_en_b0_448": (340_830, 272_664),
        "fmow_en_b0_896": (340_830, 272_664),
        "cub_tnet_b4": (11_625, 10_462),
    }
    if name in table:
        return table[name]
    if name.startswith("cub_"):
        return 18_600, 16_740
    if name.startswith("nabirds_"):
        return 37_300, 33_570
    raise KeyError(f"No release step count for recipe {name!r}; add it.")


@pytest.mark.parametrize("name", recipes.names())
def test_recipe_resolves_and_validates(name):
    recipe = recipes.get(name)
    assert recipe.name == name
    resolved = recipe.resolve()
    assert resolved.resolve() == resolved  # idempotent
    config = resolved.model_config()
    assert tuple(config.image_size) == resolved.image_size
    assert resolved.steps_per_epoch >= 1
    for setting in resolved.evaluation_locations:
        assert len(setting) <= config.num_levels
    if resolved.restore_from is not None:
        assert resolved.restore_from in recipes.names()
    doc = recipes.describe(name)
    assert f"python -m experiments.train --recipe={name}" in doc
    assert "Paper" in doc


@pytest.mark.parametrize(
    "name", [n for n in recipes.names() if n not in TEST_RECIPES]
)
def test_steps_and_schedule_match_the_release(name):
    recipe = recipes.get(name).resolve()
    total, drop = release_steps(name)
    assert recipe.total_steps == total
    schedule = schedules.learning_rate_schedule(
        recipe.learning_rate, recipe.total_steps, recipe.schedule_drops
    )
    assert schedule.boundaries == [drop]


def test_fmow_stage2_is_derived_from_stage1():
    stage1 = recipes.get("fmow_tnet_stage1")
    stage2 = recipes.get("fmow_tnet_stage2")
    changed = {
        field.name
        for field in dataclasses.fields(stage1)
        if getattr(stage1, field.name) != getattr(stage2, field.name)
    }
    assert changed == {
        "name",
        "preset",
        "epochs",
        "restore_from",
        "evaluation_locations",
    }
    assert stage2.restore_from == "fmow_tnet_stage1"
    assert stage2.restore_path("/w/runs") == (
        "/w/runs/fmow_tnet_stage1/checkpoints/final.keras"
    )
    assert stage2.resolve().image_size == (896, 896)
    assert stage2.model_config().locations_per_level == (2, 1)


def test_birds_recipes_use_two_learning_rates():
    for name in recipes.names():
        if name.startswith(("cub_", "nabirds_")):
            recipe = recipes.get(name)
            expected = 1e-4 if "_tnet_" in name else 5e-5
            assert recipe.backbone_learning_rate == expected, name
            assert recipe.schedule_drops == (0.9,), name


def test_tiny_switch_shrinks_the_run_only():
    recipe = recipes.resolve("imagenet_tnet", tiny=True)
    assert (recipe.batch_size, recipe.epochs) == (2, 1)
    assert (recipe.steps_per_epoch, recipe.eval_steps) == (2, 1)
    assert recipe.preset == "imagenet_tnet"
    assert recipe.image_size == (224, 224)
    assert recipe.resolve() == recipe


def test_overrides_edit_the_recipe_and_the_model():
    recipe = recipes.resolve(
        "fmow_tnet_stage1",
        overrides=["epochs=2", "model.dropout_rate=0.25", "batch_size=8"],
        seed=3,
    )
    assert (recipe.epochs, recipe.batch_size, recipe.seed) == (2, 8, 3)
    assert recipe.model_overrides == ("dropout_rate=0.25",)
    assert recipe.model_config().dropout_rate == 0.25
    assert recipe.steps_per_epoch == 363_572 // 8
    with pytest.raises(ValueError, match="write model.dropout_rate"):
        recipes.resolve("fmow_tnet_stage1", overrides=["dropout_rate=0.1"])
    with pytest.raises(ValueError, match="Unknown ExperimentConfig field"):
        recipes.resolve("fmow_tnet_stage1", overrides=["nope=1"])
    with pytest.raises(ValueError, match="Unknown TNetConfig field"):
        recipes.resolve("fmow_tnet_stage1", overrides=["model.nope=1"])


def test_model_config_is_derived_once_per_recipe(monkeypatch):
    recipe = recipes.resolve("tiny_test", overrides=["model.seed=3"])

    def derive_again(name):
        raise AssertionError(f"preset {name!r} looked up again")

    monkeypatch.setattr(presets, "get", derive_again)
    assert recipe.model_config() is recipe.model_config()
    assert recipe.model_config().seed == 3
    assert recipe.is_tnet


def test_resolve_from_a_preset():
    assert (
        recipes.resolve(preset="fmow_tnet_b0_896").name == "fmow_tnet_stage2"
    )
    assert recipes.resolve(preset="tiny_test").name == "tiny_test"
    with pytest.raises(ValueError, match="exactly one"):
        recipes.resolve("tiny_test", preset="tiny_test")
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        recipes.resolve(preset="nope")


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(ValueError, match="Unknown recipe 'nope'. Available: "):
        recipes.get("nope")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dataset": "cub"}, "predicts 1000 classes"),
        ({"eval_split": "test"}, "has no split 'test'"),
        ({"schedule_drops": (0.9, 0.5)}, "increasing fractions"),
        ({"schedule_drops": "weekly"}, "is not one of"),
        ({"evaluation_locations": ((26,),)}, "5x5 grid has 25 cells"),
        ({"batch_size": 0}, "batch_size"),
        ({"loss_variant": "mine"}, "loss_variant"),
        ({"image_size": 64}, "smaller than `base_resolution`"),
        ({"model_overrides": ("grid_size=1",)}, "grid_size"),
    ],
)
def test_invalid_recipes_fail_at_construction(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(recipes.get("imagenet_tnet"), **changes)


def test_baselines_take_no_location_settings():
    with pytest.raises(ValueError, match="TNet presets only"):
        dataclasses.replace(
            recipes.get("imagenet_bagnet77"), evaluation_locations=((1,),)
        )


def test_restore_from_must_name_a_recipe_or_checkpoint():
    recipe = dataclasses.replace(
        recipes.get("tiny_test"), restore_from="stage_one"
    )
    with pytest.raises(ValueError, match="recipe name or a .keras"):
        recipe.resolve()
    path = dataclasses.replace(recipe, restore_from="/w/a.keras")
    assert path.resolve().restore_path("/runs") == "/w/a.keras"


def test_to_dict_is_json_ready():
    values = recipes.get("fmow_tnet_stage2").resolve().to_dict()
    assert values["evaluation_locations"] == [[2, 1], [2, 2], [3, 1]]
    assert values["image_size"] == [896, 896]


def test_resolved_recipe_loads_back_from_its_json():
    resolved = recipes.resolve(
        "fmow_tnet_stage2", overrides=["model.dropout_rate=0.25"]
    )
    values = json.loads(json.dumps(resolved.to_dict()))
    loaded = recipes.ExperimentConfig(**values)
    assert loaded == resolved
    assert loaded.model_config() == resolved.model_config()
