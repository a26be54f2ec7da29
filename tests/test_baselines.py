"""Baselines train with the release's loss: cross-entropy, L2 and contrastive."""

import keras
import numpy as np
import pytest

from tests import numpy_reference
from tnet_tf import BaselineClassifier
from tnet_tf import BaselineConfig


def tiny_baseline(**changes):
    config = BaselineConfig(
        name="tiny_baseline", backbone="tiny_cnn", num_classes=4, image_size=32
    )
    return BaselineClassifier(config.replace(**changes))


def batch():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (6, 32, 32, 3)).astype(np.float32)
    return images, np.array([0, 1, 2, 3, 0, 1], np.int32)


def test_loss_terms_match_numpy():
    model = tiny_baseline(
        l2_weight=1e-3, contrastive_weight=2.0, contrastive_margin=0.3
    )
    images, labels = batch()
    outputs, terms = model.compute_loss_terms(images, labels, training=False)
    logits = np.asarray(outputs["logits"], np.float64)
    expected_ce = np.mean(
        [numpy_reference.cross_entropy(y, z) for y, z in zip(labels, logits)]
    )
    np.testing.assert_allclose(
        float(terms["cross_entropy"]), expected_ce, rtol=1e-5
    )
    # Group-norm scales and offsets (gamma, beta) are not decayed.
    weights = [
        np.asarray(v)
        for v in model.trainable_variables
        if v.name not in ("gamma", "beta")
    ]
    np.testing.assert_allclose(
        float(terms["l2"]),
        numpy_reference.l2_penalty(weights, 1e-3),
        rtol=1e-5,
    )
    features = np.asarray(model.feature_extractor(images))
    np.testing.assert_allclose(
        float(terms["contrastive"]),
        2.0 * numpy_reference.contrastive_loss(features, labels, 0.3),
        rtol=1e-5,
    )
    total = float(terms["cross_entropy"] + terms["l2"] + terms["contrastive"])
    np.testing.assert_allclose(float(terms["loss"]), total, rtol=1e-6)


def test_fit_with_a_backbone_optimizer_moves_each_part_at_its_rate():
    model = tiny_baseline()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        backbone_optimizer=keras.optimizers.Adam(1e-5),
        jit_compile=False,
    )
    backbone = [
        np.array(v) for v in model.feature_extractor.trainable_variables
    ]
    head = [
        np.array(v) for v in model.classification_module.trainable_variables
    ]
    logs = model.fit(*batch(), batch_size=6, epochs=1, verbose=0).history
    assert {
        "loss",
        "cross_entropy",
        "l2",
        "contrastive",
        "top1",
        "top5",
    } <= set(logs)
    move = lambda before, layer: max(
        np.abs(np.array(v) - b).max()
        for v, b in zip(layer.trainable_variables, before)
    )
    # Adam's first step moves each weight by about its learning rate.
    assert move(backbone, model.feature_extractor) == pytest.approx(
        1e-5, rel=1e-2
    )
    assert move(head, model.classification_module) == pytest.approx(
        1e-3, rel=1e-2
    )


def test_compile_rejects_a_loss():
    with pytest.raises(ValueError, match="its own loss"):
        tiny_baseline().compile(optimizer="adam", loss="mse")
