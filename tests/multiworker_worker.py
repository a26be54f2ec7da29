"""One worker of the two-process MultiWorkerMirroredStrategy test.

Run by `tests/test_distributed.py` as
`python -m tests.multiworker_worker INITIAL.npz OUTPUT.npz BACKUP_DIR`
with `TF_CONFIG` set: it builds the shared test model under the strategy,
loads the initial weights, trains `MULTI_WORKER_EPOCHS` epochs of
`MULTI_WORKER_STEPS` steps with `tnet_tf.distributed.train_loop`, backing
up into BACKUP_DIR after every step, and saves the final weights. A second
start with the same BACKUP_DIR after a kill resumes from the backup. The
test imports `build_model` and `make_data` from here so that the
single-device reference is the same model on the same data.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tnet_tf  # noqa: E402
from tnet_tf import distributed  # noqa: E402
from tnet_tf import presets  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 3  # of the single-process tests
IMAGE_SIZE = 64
# Two epochs, long enough for the resume test to kill the workers mid-epoch.
MULTI_WORKER_EPOCHS = 2
MULTI_WORKER_STEPS = 4


def build_model():
    """The tiny TNet of the distribution tests, compiled with SGD.

    Greedy selection makes every run attend the same cells (sampled cells
    would depend on each replica's random stream). Batch normalization is
    synchronized: with per-replica statistics each replica normalizes its
    own half batch, which legitimately changes the forward pass and
    gradients, so no distributed run could equal the single-device one.
    Global statistics keep the batch-norm training path (and its moving
    averages) in the comparison. SGD with momentum has optimizer state to
    compare and keeps the update proportional to the gradient, so a wrongly
    scaled loss shows as a doubled step (Adam would normalize it away). A
    separate backbone optimizer exercises the two-optimizer update.
    """
    config = presets.get("tiny_test").replace(
        selection="greedy", num_levels=2, locations_per_level=(2,)
    )
    model = tnet_tf.TNet(config)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        backbone_optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
    )
    return model


def training_state(model):
    """`(weights, optimizer_state)`: the model's weights as a list and the
    optimizers' variables as a dict keyed `"<optimizer index>:<name>"`."""
    optimizers = [model.optimizer, model.backbone_optimizer]
    return model.get_weights(), {
        f"{index}:{variable.name}": np.asarray(variable.numpy())
        for index, optimizer in enumerate(optimizers)
        if optimizer is not None
        for variable in optimizer.variables
    }


def save_state(path, weights, optimizer_state=None):
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    arrays.update({f"o:{k}": v for k, v in (optimizer_state or {}).items()})
    np.savez(path, **arrays)


def load_state(path):
    """`(weights, optimizer_state)` saved by `save_state`."""
    saved = np.load(path)
    count = sum(name.startswith("w") for name in saved.files)
    return [saved[f"w{i}"] for i in range(count)], {
        name[2:]: saved[name] for name in saved.files if name.startswith("o:")
    }


def make_data(steps=STEPS):
    """Deterministic images in [-1, 1] and labels, `steps` global batches."""
    rng = np.random.default_rng(1234)
    count = steps * GLOBAL_BATCH
    images = rng.uniform(-1, 1, (count, IMAGE_SIZE, IMAGE_SIZE, 3))
    labels = np.arange(count) % 10
    return images.astype("float32"), labels.astype("int32")


def main(initial_path, output_path, backup_dir):
    strategy = distributed.make_strategy("multi_worker")
    # One replica per worker: a worker that failed to join would show here.
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_model()
    model.set_weights(load_state(initial_path)[0])
    images, labels = make_data(MULTI_WORKER_STEPS)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(
        GLOBAL_BATCH, drop_remainder=True
    )
    distributed.train_loop(
        model,
        dataset.repeat(MULTI_WORKER_EPOCHS),
        strategy=strategy,
        steps=MULTI_WORKER_STEPS,
        epochs=MULTI_WORKER_EPOCHS,
        global_batch_size=GLOBAL_BATCH,
        verbose=2,
        backup_dir=backup_dir,
        backup_steps=1,
    )
    save_state(output_path, *training_state(model))


if __name__ == "__main__":
    main(*sys.argv[1:4])
