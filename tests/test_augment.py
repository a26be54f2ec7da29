"""The release's augmentation ops, eagerly and inside tf.data."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tnet_tf.data import augment

HEIGHT, WIDTH = 40, 60


def _random_image(seed=0, height=HEIGHT, width=WIDTH):
    rng = np.random.RandomState(seed)
    return (rng.rand(height, width, 3) * 255).astype(np.uint8)


def _seed(*values):
    return tf.constant(values, tf.int64)


@pytest.fixture(scope="module")
def encoded():
    image = _random_image()
    return {
        "pixels": image,
        "jpeg": tf.io.encode_jpeg(image, quality=95),
        "png": tf.io.encode_png(image),
    }


def test_decode_image_reads_jpeg_and_png(encoded):
    png = augment.decode_image(encoded["png"]).numpy()
    np.testing.assert_allclose(png, encoded["pixels"] / 255.0, atol=1e-6)
    jpeg = augment.decode_image(encoded["jpeg"])
    assert jpeg.shape == (HEIGHT, WIDTH, 3) and jpeg.dtype == tf.float32


def test_crop_window_follows_the_release_settings():
    boxes = tf.constant([[0.2, 0.1, 0.6, 0.5]])
    box_area = (0.4 * HEIGHT) * (0.4 * WIDTH)
    windows = [
        augment.distorted_crop_window(
            [HEIGHT, WIDTH, 3], boxes, _seed(s, 1)
        ).numpy()
        for s in range(30)
    ]
    for offset_y, offset_x, height, width in windows:
        assert offset_y >= 0 and offset_x >= 0
        assert offset_y + height <= HEIGHT and offset_x + width <= WIDTH
        # Area [0.85, 1] of the image (up to rounding), or the whole image.
        assert height * width >= 0.8 * HEIGHT * WIDTH
        if (height, width) != (HEIGHT, WIDTH):
            assert 0.5 - 0.1 <= width / height <= 2.0 + 0.1
        # min_object_covered 0.1 of the box.
        overlap_y = max(
            0,
            min(offset_y + height, 0.6 * HEIGHT) - max(offset_y, 0.2 * HEIGHT),
        )
        overlap_x = max(
            0, min(offset_x + width, 0.5 * WIDTH) - max(offset_x, 0.1 * WIDTH)
        )
        assert overlap_y * overlap_x >= 0.1 * box_area - 1e-6
    assert len({tuple(w) for w in windows}) > 1
    again = augment.distorted_crop_window([HEIGHT, WIDTH], boxes, _seed(0, 1))
    np.testing.assert_array_equal(again, windows[0])


def test_crop_window_without_boxes_uses_the_whole_image():
    window = augment.distorted_crop_window(
        [HEIGHT, WIDTH], tf.zeros([0, 4]), _seed(3, 4)
    ).numpy()
    assert window[2] * window[3] >= 0.8 * HEIGHT * WIDTH


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_decode_and_crop_equals_decode_then_slice(encoded, kind):
    window = [3, 7, 21, 30]
    cropped = augment.decode_and_crop(encoded[kind], window).numpy()
    full = augment.decode_image(encoded[kind]).numpy()
    np.testing.assert_array_equal(cropped, full[3:24, 7:37])


def test_image_shape_without_full_decode(encoded):
    for kind in ("jpeg", "png"):
        shape = augment.image_shape(encoded[kind]).numpy()
        np.testing.assert_array_equal(shape, [HEIGHT, WIDTH, 3])


def test_random_resize_draws_every_method_uniformly():
    image = tf.constant(
        np.random.RandomState(1).rand(HEIGHT, WIDTH, 3), tf.float32
    )
    references = [
        augment.resize(image, 32, m).numpy() for m in augment.RESIZE_METHODS
    ]
    counts = np.zeros(len(augment.RESIZE_METHODS), int)
    for s in range(160):
        out = augment.random_resize(image, 32, _seed(s, 0)).numpy()
        assert out.shape == (32, 32, 3)
        assert out.min() >= 0.0 and out.max() <= 1.0
        matches = [
            i for i, ref in enumerate(references) if np.array_equal(out, ref)
        ]
        assert len(matches) == 1
        counts[matches[0]] += 1
    # Uniform over 8: 20 expected each; every method is used.
    assert counts.min() >= 8, counts


def test_random_flip_flips_about_half_the_time():
    image = tf.constant(_random_image(2), tf.float32)
    flipped = 0
    for s in range(40):
        out = augment.random_flip(image, _seed(s, 5)).numpy()
        if np.array_equal(out, image.numpy()[:, ::-1]):
            flipped += 1
        else:
            np.testing.assert_array_equal(out, image.numpy())
    assert 8 <= flipped <= 32


def test_colour_distortion_range_and_fifth_case_untouched():
    image = tf.constant(_random_image(3) / 255.0, tf.float32)
    untouched = 0
    for s in range(60):
        out = augment.distort_colour(image, _seed(s, 7)).numpy()
        assert out.min() >= 0.0 and out.max() <= 1.0
        untouched += np.array_equal(out, image.numpy())
    # One case in five leaves the colours alone (12 expected of 60).
    assert 3 <= untouched <= 24
    a = augment.distort_colour(image, _seed(1, 1)).numpy()
    b = augment.distort_colour(image, _seed(1, 1)).numpy()
    np.testing.assert_array_equal(a, b)


def test_translate_shifts_with_zero_fill():
    image = np.arange(1, 1 + 5 * 6, dtype=np.float32).reshape(5, 6, 1)
    out = augment.translate(image, (1.0, 2.0)).numpy()
    expected = np.zeros_like(image)
    expected[1:, 2:] = image[:-1, :-2]
    np.testing.assert_array_equal(out, expected)
    back = augment.translate(image, (-2.0, -1.0)).numpy()
    expected = np.zeros_like(image)
    expected[:-2, :-1] = image[2:, 1:]
    np.testing.assert_array_equal(back, expected)


def test_rotate_quarter_turn_and_zero_corners():
    image = np.arange(36, dtype=np.float32).reshape(6, 6, 1)
    out = augment.rotate(image, math.pi / 2).numpy()
    np.testing.assert_array_equal(out[..., 0], np.rot90(image[..., 0]))
    ones = np.ones((31, 31, 1), np.float32)
    turned = augment.rotate(ones, math.radians(20)).numpy()[..., 0]
    assert turned[0, 0] == 0 and turned[-1, -1] == 0 and turned[15, 15] == 1
    assert set(np.unique(turned)) <= {0.0, 1.0}  # nearest neighbour


def test_random_translate_rotate_nearest_and_zero_fill():
    ones = tf.ones([32, 32, 3])
    filled = 0
    for s in range(10):
        out = augment.random_translate_rotate(ones, _seed(s, 9)).numpy()
        assert out.shape == (32, 32, 3)
        assert set(np.unique(out)) <= {0.0, 1.0}
        filled += (out == 0).any()
        # At most 10% shift plus a 20 degree turn: the centre stays.
        assert out[16, 16, 0] == 1.0
    assert filled >= 8


@pytest.mark.parametrize("augmentation", augment.AUGMENTATIONS)
def test_training_preprocessing_shape_range_determinism(encoded, augmentation):
    boxes = tf.constant([[0.1, 0.1, 0.9, 0.8]])
    outs = [
        augment.preprocess_for_training(
            encoded["jpeg"], boxes, (24, 32), augmentation, _seed(s, 2)
        ).numpy()
        for s in (0, 0, 1, 2, 3)
    ]
    for out in outs:
        assert out.shape == (24, 32, 3) and out.dtype == np.float32
        assert out.min() >= -1.0 and out.max() <= 1.0
    np.testing.assert_array_equal(outs[0], outs[1])
    if augmentation == "none":
        evaluation = augment.preprocess_for_evaluation(
            encoded["jpeg"], (24, 32)
        )
        np.testing.assert_array_equal(outs[0], evaluation.numpy())
    else:
        assert any(not np.array_equal(outs[0], other) for other in outs[2:])


def test_birds_fill_becomes_minus_one():
    white = tf.io.encode_png(np.full((48, 48, 3), 255, np.uint8))
    minimum = min(
        augment.preprocess_for_training(
            white, tf.zeros([0, 4]), 48, "birds", _seed(s, 0)
        )
        .numpy()
        .min()
        for s in range(5)
    )
    assert minimum == -1.0


def test_evaluation_is_a_square_bilinear_resize(encoded):
    out = augment.preprocess_for_evaluation(encoded["png"], 32).numpy()
    assert out.shape == (32, 32, 3)  # 40x60 squashed: no aspect, no crop
    pixels = tf.constant(encoded["pixels"] / 255.0, tf.float32)
    expected = tf.image.resize(pixels, (32, 32), "bilinear") * 2.0 - 1.0
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-6)
    same_size = augment.preprocess_for_evaluation(
        encoded["png"], (HEIGHT, WIDTH)
    )
    np.testing.assert_allclose(
        same_size.numpy(), encoded["pixels"] / 127.5 - 1.0, atol=1e-6
    )


def test_inside_tf_data_equals_eager(encoded):
    seeds = [(s, 11) for s in range(4)]
    boxes = tf.constant([[0.0, 0.0, 1.0, 1.0]])

    def augment_one(image_bytes, seed):
        return augment.preprocess_for_training(
            image_bytes, boxes, 24, "imagenet", seed
        )

    dataset = tf.data.Dataset.from_tensor_slices(
        ([encoded["jpeg"]] * len(seeds), tf.constant(seeds, tf.int64))
    ).map(augment_one)
    graph = [out.numpy() for out in dataset]
    for out, seed in zip(graph, seeds):
        eager = augment_one(encoded["jpeg"], _seed(*seed)).numpy()
        np.testing.assert_allclose(out, eager, atol=1e-6)


def test_bad_arguments_raise(encoded):
    with pytest.raises(ValueError, match="augmentation"):
        augment.preprocess_for_training(
            encoded["jpeg"], tf.zeros([0, 4]), 8, "autoaugment", _seed(0, 0)
        )
    with pytest.raises(ValueError, match="image_size"):
        augment.image_size_pair((0, 3))
