"""TNet's traversal: outputs, geometry of attended regions, errors, saving."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

import tnet_tf
from tnet_tf import geometry
from tnet_tf import presets


@pytest.fixture(scope="module")
def model():
    return presets.build("tiny_test")


@pytest.fixture(scope="module")
def images():
    return tf.random.stateless_uniform((2, 96, 96, 3), (1, 2), -1.0, 1.0)


def test_output_shapes_for_three_levels(model, images):
    out = model(images, locations_per_level=[2, 1])
    classes, cells = model.config.num_classes, model.config.cells_per_grid
    # T = 1 + 2 + 2 * 1 feature vectors per image.
    assert out["logits"].shape == (2, classes)
    assert out["per_feature_logits"].shape == (2, 5, classes)
    assert [p.shape for p in out["location_probs"]] == [
        (2, 1, cells),
        (2, 2, cells),
    ]
    assert out["attended_boxes"].shape == (2, 5, 4)
    assert out["attended_levels"].numpy().tolist() == [[1, 2, 2, 3, 3]] * 2
    assert out["features"].shape[0] == 2
    for probs in out["location_probs"]:
        np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, rtol=1e-5)


def test_locations_are_chosen_at_call_time(model, images):
    assert model(images, locations_per_level=[])["attended_boxes"].shape == (
        2,
        1,
        4,
    )
    zero = model(images, locations_per_level=[0])
    assert (
        len(zero["location_probs"]) == 1
        and zero["per_feature_logits"].shape[1] == 1
    )
    assert model(images, locations_per_level=[3])["attended_levels"].shape == (
        2,
        4,
    )
    # The default comes from the config.
    assert model(images)["attended_levels"].shape == (2, 5)


def test_level_one_vector_alone_matches_first_level_only(model, images):
    only = model(images, locations_per_level=[])
    np.testing.assert_allclose(
        only["logits"].numpy(),
        only["per_feature_logits"][:, 0].numpy(),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        only["attended_boxes"].numpy(), [[[0, 0, 1, 1]]] * 2
    )


@pytest.mark.parametrize("antialias", [False, True])
def test_level_one_sees_the_image_resized_with_or_without_antialiasing(
    model, images, antialias
):
    # A one-pixel checkerboard: antialiasing averages it to grey, plain
    # bilinear sampling keeps samples of it.
    checker = (np.indices((96, 96)).sum(0) % 2 * 2 - 1).astype("float32")
    board = np.repeat(checker[None, :, :, None], 3, axis=-1)
    variant = tnet_tf.TNet(model.config.replace(antialias=antialias))
    variant.set_weights(model.get_weights())
    side = model.config.base_resolution
    resized = tf.image.resize(board, (side, side), antialias=antialias)
    features = variant.feature_extractor(resized, training=False)[0]
    positions = tf.zeros((1, 3))
    expected = variant.classification_module(
        variant.positional_encoding(features, positions), training=False
    )
    out = variant(board, locations_per_level=[])
    np.testing.assert_allclose(
        out["logits"].numpy(), expected.numpy(), atol=1e-5
    )
    other = tf.image.resize(board, (side, side), antialias=not antialias)
    assert np.abs(resized.numpy() - other.numpy()).max() > 0.1


def test_attended_boxes_follow_the_grid_of_their_parents(model, images):
    config = model.config
    grid, fraction = config.grid_size, config.cell_fraction
    out = model(images, locations_per_level=[2, 1])
    boxes = out["attended_boxes"].numpy() * 96.0
    cells = out["attended_cells"].numpy()
    level2 = geometry.grid_boxes(96, 96, grid, fraction)
    for b in range(2):
        for j in (1, 2):
            np.testing.assert_allclose(
                boxes[b, j], level2[cells[b, j]], atol=1e-4
            )
        # Level-3 vector j = 3 + i is a child of level-2 vector 1 + i.
        for i in (0, 1):
            parent = boxes[b, 1 + i]
            size = int(round(parent[2] - parent[0]))
            child = geometry.grid_boxes(size, size, grid, fraction)[
                cells[b, 3 + i]
            ]
            expected = np.array(child) + np.tile(parent[:2], 2)
            np.testing.assert_allclose(boxes[b, 3 + i], expected, atol=1e-4)


def test_greedy_picks_the_most_probable_cells(model, images):
    out = model(images, locations_per_level=[3])
    probs = out["location_probs"][0].numpy()[:, 0]
    top = np.argsort(-probs, axis=-1, kind="stable")[:, :3]
    assert out["attended_cells"].numpy()[:, 1:].tolist() == top.tolist()
    chosen = np.take_along_axis(probs, top, axis=-1)
    # Sequential (default): each draw given the earlier ones.
    taken = np.concatenate(
        [np.zeros((2, 1)), np.cumsum(chosen, -1)[:, :-1]], -1
    )
    expected = np.log(chosen) - np.log(1.0 - taken)
    log_probs = out["attended_log_probs"].numpy()
    np.testing.assert_allclose(log_probs[:, 1:], expected, atol=1e-5)
    np.testing.assert_allclose(
        log_probs.sum(-1), out["location_log_prob"].numpy(), atol=1e-5
    )
    # The release's rule: each cell's own probability, summed.
    release = tnet_tf.TNet(model.config.replace(log_prob="sum"))
    release.set_weights(model.get_weights())
    out = release(images, locations_per_level=[3])
    np.testing.assert_allclose(
        out["attended_log_probs"].numpy()[:, 1:], np.log(chosen), atol=1e-5
    )
    np.testing.assert_allclose(
        out["location_log_prob"].numpy(), np.log(chosen).sum(-1), atol=1e-5
    )


def test_training_samples_without_replacement(model):
    images = tf.random.uniform((16, 96, 96, 3), -1, 1)
    seen = set()
    for _ in range(3):
        out = model(
            images, training=True, locations_per_level=[4], selection="sample"
        )
        for row in out["attended_cells"].numpy()[:, 1:]:
            assert len(set(row.tolist())) == 4
            seen.add(tuple(row.tolist()))
    assert len(seen) > 1  # sampling, not a fixed choice


def test_non_square_and_large_inputs(model):
    out = model(tf.zeros((1, 64, 150, 3)), locations_per_level=[1, 1])
    boxes = out["attended_boxes"].numpy()[0]
    assert boxes.shape == (3, 4)
    # The cell of a 150 px wide region is 75 px: 0.5 of the width.
    np.testing.assert_allclose(boxes[1, 3] - boxes[1, 1], 0.5, atol=1e-6)


def test_dynamic_input_shapes_match_eager(model, images):
    fn = tf.function(
        lambda x: model(x, locations_per_level=[2, 1])["logits"],
        input_signature=[tf.TensorSpec([None, None, None, 3])],
    )
    np.testing.assert_allclose(
        fn(images).numpy(),
        model(images, locations_per_level=[2, 1])["logits"].numpy(),
        atol=1e-5,
    )


def test_clear_errors(model):
    with pytest.raises(ValueError, match="smaller than the base resolution"):
        model(tf.zeros((1, 20, 96, 3)))
    with pytest.raises(ValueError, match="impossible"):
        model(tf.zeros((1, 96, 96, 3)), locations_per_level=[10])
    with pytest.raises(ValueError, match="selection"):
        model(tf.zeros((1, 96, 96, 3)), selection="random")
    with pytest.raises(ValueError, match="must hold ints"):
        model(tf.zeros((1, 96, 96, 3)), locations_per_level=[1.5])
    with pytest.raises(ValueError, match="must hold ints"):
        model(tf.zeros((1, 96, 96, 3)), locations_per_level=[True])
    with pytest.raises(ValueError, match="one value per level"):
        model(tf.zeros((1, 96, 96, 3)), locations_per_level=2)
    with pytest.raises(ValueError, match="image_size"):
        presets.get("tiny_test").replace(image_size=16)
    with pytest.raises(ValueError, match="locations_per_level"):
        presets.get("tiny_test").replace(locations_per_level=(2,))


def test_an_image_without_its_batch_axis_gets_a_rank_error(model):
    with pytest.raises(
        ValueError,
        match=r"batch of images .* shape \(96, 96, 3\) \(rank 3\): add the "
        "batch axis",
    ):
        model(tf.zeros((96, 96, 3)))


def test_too_deep_locations_name_the_deepest_valid_setting(model):
    # 96 px: cells of 48, 24, 12, 6, 3, 2 and 1 px, then 0 px.
    out = model(tf.zeros((1, 96, 96, 3)), locations_per_level=[1] * 7)
    assert out["attended_levels"].shape == (1, 8)
    with pytest.raises(
        ValueError,
        match=r"at most 7 .* deepest valid setting is \[1, 1, 1, 1, 1, 1, 1\]"
        r", or use images of at least 683 px",
    ):
        model(tf.zeros((1, 96, 96, 3)), locations_per_level=[1] * 10)
    # Traced without a size, the graph asserts the side the depth needs.
    traced = tf.function(
        lambda images: model(images, locations_per_level=[1] * 8)["logits"],
        input_signature=[tf.TensorSpec([None, None, None, 3])],
    )
    assert traced(tf.zeros((1, 171, 200, 3))).shape == (1, 10)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="at least 171 px"
    ):
        traced(tf.zeros((1, 170, 200, 3)))


def test_config_and_keras_file_round_trip(model, images, tmp_path, caplog):
    config = model.get_config()
    clone = tnet_tf.TNet.from_config(config)
    assert clone.get_config() == config
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    with caplog.at_level(logging.WARNING, logger="absl"):
        loaded = keras.saving.load_model(path)
    # The backbone's weights come from the file: no random-init warning.
    assert "random initialization" not in caplog.text
    assert type(loaded) is tnet_tf.TNet
    assert loaded.get_config() == config
    for lpl in ([2, 1], [0], [3]):
        a = model(images, locations_per_level=lpl)
        b = loaded(images, locations_per_level=lpl)
        for key in ("logits", "attended_boxes", "attended_log_probs"):
            np.testing.assert_allclose(
                a[key].numpy(), b[key].numpy(), atol=1e-6
            )


def test_feature_weighting_outputs():
    config = presets.get("tiny_test").replace(feature_weighting=True)
    out = tnet_tf.TNet(config)(tf.zeros((2, 96, 96, 3)))
    weights = out["feature_weights"].numpy()
    assert weights.shape == (2, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


# === Region sampling: crop then resize, or resample from the input ===


def test_region_sampling_mode_follows_the_grid_and_the_config(model):
    square = (1, 128, 128, 3)
    # 128 px: 64 px cells (resampled), then 32 px (the base: copied).
    assert model.region_sampling_mode(square, [2, 1]) == "resample"
    # 96 px: 48 px, then 24 px cells, smaller than the base resolution.
    assert model.region_sampling_mode((1, 96, 96, 3), [2, 1]) == "crop"
    assert model.region_sampling_mode((1, 96, 96, 3), [2]) == "resample"
    assert model.region_sampling_mode((1, 96, 96, 3), [2, 0]) == "resample"
    assert model.region_sampling_mode((1, None, None, 3), [2]) == "crop"
    config = model.config
    for changes in ({"region_sampling": "crop"}, {"antialias": True}):
        assert (
            tnet_tf.TNet(config.replace(**changes)).region_sampling_mode(
                square
            )
            == "crop"
        )
    forced = tnet_tf.TNet(config.replace(region_sampling="resample"))
    assert forced.region_sampling_mode(square) == "resample"
    with pytest.raises(ValueError, match="neither the base resolution"):
        forced(tf.zeros((1, 96, 96, 3)), locations_per_level=[2, 1])
    # XLA has no crop_and_resize kernel.
    compiled = tnet_tf.TNet(config)
    compiled.jit_compile = True
    assert compiled.region_sampling_mode(square) == "crop"


def test_region_sampling_config_errors():
    config = presets.get("tiny_test")
    with pytest.raises(ValueError, match="region_sampling"):
        config.replace(region_sampling="fused")
    with pytest.raises(ValueError, match="antialias"):
        config.replace(antialias=True, region_sampling="resample")


@pytest.mark.parametrize("locations", [[2, 1], [3], [2, 0]])
def test_resampling_gives_the_crop_paths_outputs(model, locations):
    images = tf.random.stateless_uniform((2, 128, 128, 3), (4, 5), -1.0, 1.0)
    cropping = tnet_tf.TNet(model.config.replace(region_sampling="crop"))
    cropping.set_weights(model.get_weights())
    assert model.region_sampling_mode(images, locations) == "resample"
    ours = model(images, locations_per_level=locations)
    reference = cropping(images, locations_per_level=locations)
    for key in ("attended_cells", "attended_boxes", "attended_levels"):
        np.testing.assert_array_equal(
            ours[key].numpy(), reference[key].numpy()
        )
    # Every level's vectors, not only the aggregate.
    np.testing.assert_allclose(
        ours["per_feature_logits"].numpy(),
        reference["per_feature_logits"].numpy(),
        atol=1e-4,
    )
    for a, b in zip(ours["location_probs"], reference["location_probs"]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    # The comparison can fail: cells cut one pixel off give other vectors.
    shifted = tf.roll(images, 1, axis=1)
    moved = cropping(shifted, locations_per_level=locations)
    assert (
        np.abs(
            moved["per_feature_logits"].numpy()[:, 1:]
            - ours["per_feature_logits"].numpy()[:, 1:]
        ).max()
        > 1e-3
    )


def test_only_the_crop_path_casts_the_full_image_to_the_compute_dtype():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        config = presets.get("tiny_test")
        models = {
            mode: tnet_tf.TNet(config.replace(region_sampling=mode))
            for mode in ("auto", "crop")
        }
    finally:
        keras.config.set_dtype_policy(previous)
    spec = tf.TensorSpec((1, 128, 128, 3))
    full_casts = {}
    for mode, variant in models.items():
        graph = (
            tf.function(lambda x, variant=variant: variant(x)["logits"])
            .get_concrete_function(spec)
            .graph
        )
        full_casts[mode] = [
            op
            for op in graph.get_operations()
            if op.type == "Cast" and op.outputs[0].shape == spec.shape
        ]
    # Resampling reads its samples from the float32 input; the crop path
    # first copies the whole image into bfloat16.
    assert models["auto"].region_sampling_mode(spec.shape) == "resample"
    assert not full_casts["auto"]
    assert [op.outputs[0].dtype for op in full_casts["crop"]] == [tf.bfloat16]
