"""Training around model.fit: schedules, metrics, baseline, two optimizers,
callbacks and an exact resume after a kill."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tnet_tf import TNet
from tnet_tf import backup
from tnet_tf import callbacks
from tnet_tf import config as config_lib
from tnet_tf import presets
from tnet_tf import schedules
from tnet_tf import training
from tnet_tf import viz
from tnet_tf.models import image_classifier

SIDE = 48  # input pixels: above the base resolution 32, small to be fast


def tiny_config(**changes):
    """tiny_test with two levels, greedy selection and no dropout."""
    fields = dict(
        num_levels=2,
        locations_per_level=(2,),
        selection="greedy",
        dropout_rate=0.0,
    )
    fields.update(changes)
    return presets.get("tiny_test").replace(**fields)


def compiled(config, **compile_kwargs):
    """A compiled TNet (`compile` builds its optimizers); XLA is off since
    compiling on CPU costs more than these few steps."""
    model = TNet(config)
    compile_kwargs.setdefault("optimizer", keras.optimizers.Adam(1e-3))
    model.compile(jit_compile=False, **compile_kwargs)
    return model


def random_batch(count, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1.0, 1.0, (count, SIDE, SIDE, 3)).astype("float32")
    labels = rng.integers(0, 10, count).astype("int32")
    return images, labels


def as_numpy(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


# === Learning-rate schedule ===


def test_schedule_presets_truncate_boundaries():
    imagenet = schedules.learning_rate_schedule(0.1, 4_003_600, "imagenet")
    assert imagenet.boundaries == [3_202_880]
    assert imagenet.values == pytest.approx([0.1, 0.01])
    # CUB B4 TNet: 0.9 * 11,625 = 10,462.5 steps, truncated (detail §10).
    cub = schedules.learning_rate_schedule(1e-3, 11_625, drops=(0.9,))
    assert cub.boundaries == [10_462]
    two_step = schedules.learning_rate_schedule(1.0, 1000, "two_step")
    assert two_step.boundaries == [700, 850]
    assert two_step.values == pytest.approx([1.0, 0.1, 0.01])
    assert schedules.SCHEDULE_DROPS["nabirds"] == (0.9,)
    with pytest.raises(ValueError, match="increasing"):
        schedules.learning_rate_schedule(1.0, 10, drops=(0.9, 0.8))
    with pytest.raises(ValueError, match="fractions"):
        schedules.learning_rate_schedule(1.0, 10, drops=(1.5,))


def test_optimizer_rate_drops_after_the_boundary_step():
    # SGD on a unit gradient moves the variable by exactly the rate in use.
    schedule = schedules.learning_rate_schedule(0.5, 10, drops=(0.8,))
    optimizer = keras.optimizers.SGD(schedule)
    variable = keras.Variable(0.0)
    moves = []
    for _ in range(10):
        before = float(variable)
        optimizer.apply([tf.constant(-1.0)], [variable])
        moves.append(float(variable) - before)
    # Updates made at iterations 0..8 (boundary 8 included) use 0.5.
    np.testing.assert_allclose(moves, [0.5] * 9 + [0.05], rtol=1e-5)


# === fit, metrics and the reward baseline ===


def test_fit_reports_every_term_and_moves_the_baseline(workdir):
    model = compiled(tiny_config(num_samples=2))
    images, _ = random_batch(4)
    # Labels that make exactly one of four greedy predictions right, so the
    # step's reward (the baseline target of eq. 2) is known: 0.25.
    outputs = model(images, training=True)
    predicted = np.argmax(keras.ops.convert_to_numpy(outputs["logits"]), -1)
    labels = ((predicted + np.array([0, 1, 1, 1])) % 10).astype("int32")
    _, terms = model.compute_loss_terms(images, labels, training=True)
    assert float(terms["reward"]) == pytest.approx(0.25)

    train = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    history = training.fit(
        model,
        train,
        epochs=1,
        validation_data=(images, labels),
        workdir=str(workdir),
        verbose=0,
    )
    logs = {name: values[-1] for name, values in history.history.items()}
    names = (
        "loss aggregate_ce reinforce per_feature_ce per_feature_reinforce l2 "
        "contrastive reward locations top1 top5 baseline"
    ).split()
    for name in names:
        assert name in logs, name
        assert f"val_{name}" in logs, name
    assert logs["reward"] == pytest.approx(0.25)
    assert logs["locations"] == 2.0
    # b <- 0.9 b + 0.1 target, from b = 0.5.
    assert logs["baseline"] == pytest.approx(0.9 * 0.5 + 0.1 * 0.25)
    assert float(model.reward_baseline) == pytest.approx(0.475)

    with open(workdir / "config.json") as f:
        assert json.load(f) == json.loads(json.dumps(model.config.to_dict()))
    assert (workdir / "checkpoints" / "best.keras").exists()
    assert os.listdir(workdir / "logs" / "attention")
    assert not (workdir / "backup").exists()  # deleted once fit completes


def test_baseline_is_mean_state_saved_with_the_weights(tmp_path):
    config = tiny_config()
    model = TNet(config)
    baseline = model.reward_baseline
    assert not baseline.trainable
    assert baseline.aggregation == "mean"
    assert all(v is not baseline for v in model.trainable_variables)
    baseline.assign(0.125)

    model.save_weights(str(tmp_path / "model.weights.h5"))
    restored = TNet(config)
    restored.load_weights(str(tmp_path / "model.weights.h5"))
    assert float(restored.reward_baseline) == 0.125

    model.save(str(tmp_path / "model.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "model.keras"))
    assert float(loaded.reward_baseline) == 0.125
    assert not loaded.reward_baseline.trainable


def test_evaluate_at_any_locations_per_level():
    model = compiled(tiny_config())
    images, labels = random_batch(4)
    weights = as_numpy(model.weights)
    for locations, expected in (([5], 5.0), ([0], 0.0), (None, 2.0)):
        logs = model.evaluate(
            images,
            labels,
            locations_per_level=locations,
            return_dict=True,
            verbose=0,
        )
        assert logs["locations"] == expected, locations
    for before, after in zip(weights, as_numpy(model.weights)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_fit_under_a_mixed_precision_policy(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = compiled(tiny_config())
        images, labels = random_batch(4)
        before = as_numpy(model.trainable_weights)
        logs = model.fit(
            images, labels, batch_size=2, epochs=1, verbose=0
        ).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert 0.0 <= logs["top1"][-1] <= 1.0 and np.isfinite(logs["loss"][-1])
    changed = [
        not np.array_equal(b, a)
        for b, a in zip(before, as_numpy(model.trainable_weights))
    ]
    assert any(changed)


def test_two_optimizers_split_learning_rates_and_l2():
    model = compiled(
        tiny_config(l2_weight=1e-3),
        optimizer=keras.optimizers.Adam(1e-3),
        backbone_optimizer=keras.optimizers.Adam(1e-5),
        run_eagerly=True,
    )
    backbone = model.feature_extractor.trainable_variables
    backbone_ids = {id(v) for v in backbone}
    modules = [
        v for v in model.trainable_variables if id(v) not in backbone_ids
    ]
    normalization = {
        id(v)
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.weights
    }
    penalized = [v for v in modules if id(v) not in normalization]
    assert {id(v) for v in model._l2_variables()} == {id(v) for v in penalized}
    expected_l2 = 1e-3 * sum(np.sum(w**2) for w in as_numpy(penalized))

    before_backbone, before_modules = as_numpy(backbone), as_numpy(modules)
    logs = model.train_on_batch(*random_batch(4), return_dict=True)
    assert logs["l2"] == pytest.approx(expected_l2, rel=1e-5)

    def largest_move(before, variables):
        return max(
            np.max(np.abs(a - b)) for a, b in zip(as_numpy(variables), before)
        )

    # Adam's first update is lr * g / (|g| + eps'), ~ lr * sign(g).
    backbone_move = largest_move(before_backbone, backbone)
    module_move = largest_move(before_modules, modules)
    assert backbone_move == pytest.approx(1e-5, rel=1e-2)
    assert module_move == pytest.approx(1e-3, rel=1e-2)
    assert model.optimizer.iterations.numpy() == 1
    assert model.backbone_optimizer.iterations.numpy() == 1


# === Callbacks ===


def test_attention_images_are_drawn_per_level(tmp_path):
    model = TNet(presets.get("tiny_test"))  # three levels: (2, 1)
    images, _ = random_batch(2)
    drawn = callbacks.draw_attended_boxes(model, images)
    assert drawn.shape == (2, SIDE, SIDE, 3) and drawn.dtype == np.uint8
    # Random pixels rarely hit a box colour exactly; box edges do.
    for colour in (viz.level_colour(2), viz.level_colour(3)):
        assert np.all(drawn == colour, axis=-1).any(), colour

    callback = callbacks.AttentionImagesCallback(
        images, str(tmp_path), every_n_epochs=2
    )
    callback.set_model(model)
    for epoch in range(4):
        callback.on_epoch_end(epoch)
    callback.on_train_end()
    steps = [
        event.step
        for name in os.listdir(tmp_path)
        for event in tf.compat.v1.train.summary_iterator(str(tmp_path / name))
        for value in event.summary.value
        if value.tag == "attended_regions"
    ]
    assert steps == [1, 3]


def test_make_callbacks_layout(tmp_path):
    resume, best, board, attention = callbacks.make_callbacks(
        str(tmp_path),
        validation_images=np.zeros((1, SIDE, SIDE, 3)),
        backup_steps=10,
    )
    assert isinstance(resume, callbacks.ResumableBackupAndRestore)
    assert resume.backup_dir == str(tmp_path / "backup")
    assert resume.backup_steps == 10
    assert best.filepath == str(tmp_path / "checkpoints" / "best.keras")
    assert best.monitor == "val_top1" and best.save_best_only
    assert isinstance(board, keras.callbacks.TensorBoard)
    assert isinstance(attention, callbacks.AttentionImagesCallback)
    only_best = callbacks.make_callbacks(
        str(tmp_path), backup=False, tensorboard=False
    )
    assert [type(c) for c in only_best] == [keras.callbacks.ModelCheckpoint]


# === Kill and resume ===


class _Kill(keras.callbacks.Callback):
    """Raises before batch `batch` of epoch `epoch`, like a killed job."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("killed")


# Each way to feed `fit`, by its `input_starts_at`: a finite dataset of 4
# batches read once per epoch, or one repeated stream cut into epochs of 3
# steps (not a whole pass: reading a pass from its start would give other
# data). Then `(steps_per_epoch, batch of epoch 2 before which the run is
# killed, the last backup's position)`: backups come every 2 batches of the
# run and at epoch ends, so the kill loses the last trained batch.
FEEDS = {
    "epoch": (None, 3, backup.TrainingPosition(1, 2, 6)),
    "run": (3, 2, backup.TrainingPosition(1, 1, 4)),
}


@pytest.mark.heavy
@pytest.mark.parametrize("input_starts_at", sorted(FEEDS))
def test_killed_run_resumes_to_the_uninterrupted_weights(
    tmp_path, input_starts_at
):
    # Sampled cells (the sampler state matters) and a schedule dropping in
    # epoch 2 (the optimizer's iterations matter).
    config = tiny_config(selection="sample", num_samples=2, l2_weight=1e-4)
    images, labels = random_batch(8)
    steps_per_epoch, kill_before, backed_up = FEEDS[input_starts_at]

    def dataset():
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
        return data if steps_per_epoch is None else data.repeat()

    def new_model():
        keras.utils.set_random_seed(7)
        model = TNet(config)
        model.compile(
            optimizer=keras.optimizers.Adam(
                schedules.learning_rate_schedule(1e-2, 8, drops=(0.6,))
            ),
            jit_compile=False,
        )
        return model

    def state(model):
        return as_numpy(
            model.weights
            + model.optimizer.variables
            + backup.seed_variables(model)
        )

    uninterrupted = new_model()
    uninterrupted.fit(
        dataset(),
        epochs=2,
        steps_per_epoch=steps_per_epoch,
        verbose=0,
        shuffle=False,  # as training.fit passes for a dataset
    )
    steps = steps_per_epoch or 4

    workdir = str(tmp_path / "run")
    options = dict(
        epochs=2,
        steps_per_epoch=steps_per_epoch,
        workdir=workdir,
        verbose=0,
        tensorboard=False,
        backup_steps=2,
        delete_backup=False,
    )
    killed = new_model()
    with pytest.raises(RuntimeError, match="killed"):
        training.fit(
            killed, dataset(), callbacks=[_Kill(1, kill_before)], **options
        )
    assert killed.optimizer.iterations.numpy() == steps + kill_before
    assert training.backup_position(workdir) == backed_up

    # As in a new process: a fresh model and optimizer.
    resumed = new_model()
    history = training.fit(resumed, dataset(), **options)
    assert history.epoch == [1]
    assert resumed.optimizer.iterations.numpy() == 2 * steps
    assert resumed._initial_epoch is None
    assert float(resumed.reward_baseline) != 0.5
    expected_state, resumed_state = state(uninterrupted), state(resumed)
    assert len(expected_state) == len(resumed_state)
    for expected, actual in zip(expected_state, resumed_state):
        np.testing.assert_array_equal(actual, expected)


def test_backup_restores_both_optimizers(tmp_path):
    # Both optimizers' slots and step counts come back from the backup.
    def new_model():
        model = TNet(tiny_config())
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            backbone_optimizer=keras.optimizers.Adam(1e-5),
            run_eagerly=True,  # two steps: tracing would cost more
        )
        return model

    def fit(model):
        resume = callbacks.ResumableBackupAndRestore(
            str(tmp_path), delete_backup=False
        )
        model.fit(
            *random_batch(4), batch_size=2, callbacks=[resume], verbose=0
        )

    trained = new_model()
    fit(trained)
    restored = new_model()
    fit(restored)  # restores the finished epoch; nothing left to train
    assert restored.optimizer.iterations.numpy() == 2
    assert restored.backbone_optimizer.iterations.numpy() == 2
    for model_a, model_b in (
        (trained.optimizer, restored.optimizer),
        (trained.backbone_optimizer, restored.backbone_optimizer),
        (trained, restored),
    ):
        pairs = zip(as_numpy(model_a.variables), as_numpy(model_b.variables))
        for a, b in pairs:
            np.testing.assert_array_equal(a, b)


# === Non-finite steps (issue 13 item 5) ===


def _training_state(model):
    """Every model variable (weights, reward baseline, location sampler
    seed) and every optimizer variable (iterations, slots), as arrays."""
    variables = model.trainable_variables + model.non_trainable_variables
    return as_numpy(variables) + as_numpy(model.optimizer.variables)


def test_a_non_finite_image_skips_the_step_and_is_counted():
    # Sampled cells: the sampler's seed is state the forward pass moves.
    model = compiled(tiny_config(selection="sample"))
    images, labels = random_batch(4)
    model.train_on_batch(images, labels)  # Adam slots, baseline moved
    before = _training_state(model)
    images[2, 5, 7, 1] = np.nan
    logs = model.train_on_batch(images, labels, return_dict=True)
    assert logs["skipped_steps"] == 1.0
    after = _training_state(model)
    assert len(after) == len(before)
    for got, want in zip(after, before):
        np.testing.assert_array_equal(got, want)
    assert int(model.optimizer.iterations) == 1  # counts applied steps

    # In fit, between finite batches: one skip is reported, the other
    # steps train, and the epoch's means leave the skipped step out.
    clean, clean_labels = random_batch(8, seed=1)
    infinite = images.copy()
    infinite[2, 5, 7, 1] = np.inf
    history = model.fit(
        np.concatenate([clean[:4], infinite, clean[4:]]),
        np.concatenate([clean_labels[:4], labels, clean_labels[4:]]),
        batch_size=4,
        shuffle=False,
        verbose=0,
    ).history
    assert history["skipped_steps"] == [1.0]
    assert np.isfinite(history["loss"][0])
    assert int(model.optimizer.iterations) == 3
    assert all(np.isfinite(value).all() for value in _training_state(model))
    # Evaluation logs have no skip count.
    assert "skipped_steps" not in model.evaluate(
        clean, clean_labels, verbose=0, return_dict=True
    )


class BatchNormClassifier(image_classifier.ImageClassifier):
    """A convolution, batch normalization and a linear classifier: a model
    whose forward pass moves state (the moving statistics)."""

    config_class = config_lib.TNetConfig

    def __init__(self):
        super().__init__(presets.get("tiny_test").replace(l2_weight=0.0))
        self.feature_extractor = keras.Sequential(
            [
                keras.layers.Conv2D(4, 3),
                keras.layers.BatchNormalization(),
                keras.layers.GlobalAveragePooling2D(),
            ]
        )
        self.classifier = keras.layers.Dense(10)
        self.track_metrics(["loss"])

    def call(self, images, training=None):
        features = self.feature_extractor(images, training=training)
        return {"logits": self.classifier(features)}

    def compute_loss_terms(self, images, labels, training):
        outputs = self(images, training=training)
        loss = keras.losses.sparse_categorical_crossentropy(
            labels, outputs["logits"], from_logits=True
        )
        return outputs, {"loss": tf.reduce_mean(loss)}


def test_a_skipped_step_leaves_batch_norm_statistics_unchanged():
    model = BatchNormClassifier()
    images, labels = random_batch(4)
    model(images)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.train_on_batch(images, labels)
    before = _training_state(model)
    images[0, 0, 0, 0] = np.nan
    assert (
        model.train_on_batch(images, labels, return_dict=True)["skipped_steps"]
        == 1.0
    )
    for got, want in zip(_training_state(model), before):
        np.testing.assert_array_equal(got, want)
