"""The learning rule finds the informative cell; without its location term it does not.

Each 64 px image has a 2x2 grid of 32 px cells. One random cell holds a bright
16 px patch striped with the class pattern (vertical, horizontal or
checkerboard, period 2 px); the other three hold zero-mean patches striped with
random classes (clutter). Level 1 sees the image at 32 px: the bilinear 2x
downscale averages every pixel pair, which erases all the stripes, so the
whole image alone cannot tell the class (accuracy at 0 locations is chance),
but the bright patch still shows where to look. A level-2 crop is seen at full
resolution. The policy starts uniform (`uniform_initial_policy`), so any
preference for the right cell is learned.
"""

import keras
import numpy as np

import tnet_tf

CLASSES = 3
CELLS = 4


def make_images(count, seed, canvas=64, patch=16):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:patch, 0:patch]
    stripes = (
        np.stack([xx % 2, yy % 2, (xx + yy) % 2]).astype(np.float32) * 2 - 1
    )
    images = rng.normal(0.0, 0.2, (count, canvas, canvas)).astype(np.float32)
    labels = rng.integers(0, CLASSES, count)
    informative = rng.integers(0, CELLS, count)
    half, offset = canvas // 2, (canvas // 2 - patch) // 2
    for i in range(count):
        for cell in range(CELLS):
            y0 = (cell // 2) * half + offset
            x0 = (cell % 2) * half + offset
            window = images[i, y0 : y0 + patch, x0 : x0 + patch]
            if cell == informative[i]:
                window[:] = 0.5 + 0.5 * stripes[labels[i]]
            else:
                window[:] = 0.8 * stripes[rng.integers(0, CLASSES)]
    images = np.repeat(np.clip(images, -1.0, 1.0)[..., None], 3, axis=-1)
    return images, labels.astype(np.int32), informative


def train(reinforce_weight, seed=0, steps=200, batch_size=32):
    keras.utils.set_random_seed(seed)
    config = tnet_tf.TNetConfig(
        name="learning_test",
        backbone="tiny_cnn",
        num_classes=CLASSES,
        image_size=64,
        base_resolution=32,
        grid_size=2,
        cell_fraction=0.5,
        num_levels=2,
        locations_per_level=(1,),
        positional_encoding_divisor=2,
        uniform_initial_policy=True,
        selection="sample",
        reinforce_weight=reinforce_weight,
        seed=seed,
    )
    model = tnet_tf.TNet(config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    images, labels, _ = make_images(steps * batch_size // 4, seed=1)
    model.fit(images, labels, batch_size=batch_size, epochs=4, verbose=0)
    return model


def attention_report(model):
    images, labels, informative = make_images(500, seed=2)  # held out
    one = model(images, locations_per_level=[1])
    zero = model(images, locations_per_level=[0])
    accuracy = lambda out: np.mean(
        np.argmax(out["logits"].numpy(), -1) == labels
    )
    return {
        "right_cell": np.mean(
            one["attended_cells"].numpy()[:, 1] == informative
        ),
        "accuracy_1": accuracy(one),
        "accuracy_0": accuracy(zero),
    }


def test_policy_learns_where_to_look_and_only_through_the_location_term():
    learned = attention_report(train(reinforce_weight=0.1))
    assert learned["right_cell"] >= 0.9, learned
    assert learned["accuracy_1"] >= learned["accuracy_0"] + 0.30, learned
    assert learned["accuracy_0"] <= 1.0 / CLASSES + 0.08, learned

    # Same run, location term off: the policy never moves from uniform.
    untrained = attention_report(train(reinforce_weight=0.0))
    assert abs(untrained["right_cell"] - 1.0 / CELLS) <= 0.07, untrained
    assert untrained["accuracy_1"] <= learned["accuracy_1"] - 0.3, untrained
