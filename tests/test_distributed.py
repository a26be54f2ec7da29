"""Distributed training equals single-device training, weight for weight.

MirroredStrategy runs on the two logical CPUs of conftest; the multi-worker
test starts two worker processes on 127.0.0.1. The model, the data and how
batch normalization is kept comparable are in `tests/multiworker_worker.py`.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import multiworker_worker as worker
from tnet_tf import distributed

REPO = pathlib.Path(__file__).resolve().parent.parent
WORKER_TIMEOUT_S = 150


def _dataset():
    return tf.data.Dataset.from_tensor_slices(worker.make_data()).batch(
        worker.GLOBAL_BATCH, drop_remainder=True
    )


@pytest.fixture(scope="module")
def reference():
    """Initial state, and the state after `worker.STEPS` single-device fit
    steps on the global batches of `worker.make_data()`."""
    model = worker.build_model()
    initial = model.get_weights()
    trainable = {id(v) for v in model.trainable_weights}
    images, labels = worker.make_data()
    model.fit(
        images,
        labels,
        batch_size=worker.GLOBAL_BATCH,
        shuffle=False,
        verbose=0,
    )
    weights, optimizer_state = worker.training_state(model)
    return {
        "initial": initial,
        "names": [v.path for v in model.weights],
        "trainable": [id(v) in trainable for v in model.weights],
        "weights": weights,
        "optimizer_state": optimizer_state,
    }


def _assert_same(got, expected, names):
    assert len(got) == len(expected)
    for name, value, want in zip(names, got, expected):
        np.testing.assert_allclose(
            value, want, rtol=1e-5, atol=1e-5, err_msg=name
        )


def _assert_same_optimizer_state(got, expected):
    """Same optimizer variables (iterations, learning rates, momentum slots
    of both optimizers), equal values."""
    assert set(got) == set(expected)
    names = sorted(expected)
    _assert_same([got[n] for n in names], [expected[n] for n in names], names)


def _update_norm(weights, reference):
    """Distance of the trainable weights from their initial values."""
    pairs = zip(weights, reference["initial"], reference["trainable"])
    return np.sqrt(sum(np.sum((w - w0) ** 2) for w, w0, keep in pairs if keep))


def test_mirrored_fit_matches_single_device(two_cpu_devices, reference):
    strategy = distributed.make_strategy("mirrored", devices=two_cpu_devices)
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = worker.build_model()
    model.set_weights(reference["initial"])
    images, labels = worker.make_data()
    model.fit(
        images, labels, batch_size=worker.GLOBAL_BATCH, shuffle=False, verbose=0
    )
    weights, optimizer_state = worker.training_state(model)
    # Every weight: kernels, the reward baseline and the (synchronized)
    # batch-norm moving statistics; then iterations and momentum slots.
    _assert_same(weights, reference["weights"], reference["names"])
    _assert_same_optimizer_state(optimizer_state, reference["optimizer_state"])
    # Summing the replicas' gradients of an unscaled per-replica loss would
    # double the SGD steps: the distance travelled must match, not double.
    ratio = _update_norm(weights, reference) / _update_norm(
        reference["weights"], reference
    )
    assert ratio == pytest.approx(1.0, abs=1e-3)
    baseline = reference["names"].index(model.reward_baseline.path)
    assert weights[baseline] != reference["initial"][baseline]


def test_train_loop_mirrored_matches_single_device(two_cpu_devices, reference):
    strategy = distributed.make_strategy("mirrored", devices=two_cpu_devices)
    with strategy.scope():
        model = worker.build_model()
    model.set_weights(reference["initial"])
    # Validation: 2 global batches and a partial one, which is dropped.
    images, labels = worker.make_data()
    count = 2 * worker.GLOBAL_BATCH
    validation = tf.data.Dataset.from_tensor_slices(
        (images[: count + 3], labels[: count + 3])
    ).batch(worker.GLOBAL_BATCH)
    history = distributed.train_loop(
        model,
        _dataset(),
        strategy=strategy,
        steps=worker.STEPS,
        global_batch_size=worker.GLOBAL_BATCH,
        verbose=0,
        validation_data=validation,
    )
    # Validating changed no weight and no optimizer state.
    weights, optimizer_state = worker.training_state(model)
    _assert_same(weights, reference["weights"], reference["names"])
    _assert_same_optimizer_state(optimizer_state, reference["optimizer_state"])
    assert int(model.optimizer.iterations.numpy()) == worker.STEPS
    assert int(model.backbone_optimizer.iterations.numpy()) == worker.STEPS
    logs = history.history
    assert {"loss", "top1", "baseline", "val_loss", "val_top1"} <= set(logs)
    assert len(logs["loss"]) == len(logs["val_loss"]) == 1  # one per epoch
    # The same weights evaluated on one device, on the whole global batches.
    single = worker.build_model()
    single.set_weights(weights)
    expected = single.evaluate(
        images[:count],
        labels[:count],
        batch_size=worker.GLOBAL_BATCH,
        verbose=0,
        return_dict=True,
    )
    for name in ("loss", "top1", "aggregate_ce"):
        assert logs[f"val_{name}"][0] == pytest.approx(expected[name], abs=1e-5)
    # validation_steps stops early (no training step: steps=0).
    first = distributed.train_loop(
        model,
        _dataset(),
        strategy=strategy,
        steps=0,
        global_batch_size=worker.GLOBAL_BATCH,
        verbose=0,
        validation_data=validation,
        validation_steps=1,
    ).history
    expected = single.evaluate(
        images[: worker.GLOBAL_BATCH],
        labels[: worker.GLOBAL_BATCH],
        verbose=0,
        return_dict=True,
    )
    assert first["val_loss"][0] == pytest.approx(expected["loss"], abs=1e-5)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _start_worker(index, cluster, tmp_path, log):
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
    inherited = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    python_path = [str(REPO)] + [path for path in inherited if path]
    env = dict(
        os.environ,
        TF_CONFIG=json.dumps(tf_config),
        CUDA_VISIBLE_DEVICES="",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join(python_path),
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.multiworker_worker",
            str(tmp_path / "initial.npz"),
            str(tmp_path / f"worker{index}.npz"),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_multi_worker_matches_single_device(tmp_path, reference):
    worker.save_state(tmp_path / "initial.npz", reference["initial"])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes, logs, codes = [], [], [None, None]
    try:
        for index in range(2):
            logs.append(open(tmp_path / f"worker{index}.log", "w"))
            processes.append(_start_worker(index, cluster, tmp_path, logs[-1]))
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        for index, process in enumerate(processes):
            try:
                codes[index] = process.wait(
                    timeout=max(1.0, deadline - time.monotonic())
                )
            except subprocess.TimeoutExpired:
                break
    finally:
        # No worker outlives the test, whatever happened above.
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
    outputs = "\n\n".join(
        f"worker {index} (exit {code}):\n"
        + (tmp_path / f"worker{index}.log").read_text()[-3000:]
        for index, code in enumerate(codes)
    )
    assert codes == [0, 0], outputs
    (first, first_slots), (second, second_slots) = [
        worker.load_state(tmp_path / f"worker{index}.npz") for index in range(2)
    ]
    names = reference["names"]
    _assert_same(second, first, names)
    _assert_same_optimizer_state(second_slots, first_slots)
    _assert_same(first, reference["weights"], names)
    _assert_same_optimizer_state(first_slots, reference["optimizer_state"])


def test_make_strategy_default_and_errors(monkeypatch):
    assert distributed.make_strategy() is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="kind"):
        distributed.make_strategy("tpu")
    with pytest.raises(ValueError, match="mirrored"):
        distributed.make_strategy("default", devices=["/CPU:0"])
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable"):
        distributed.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
        distributed.make_strategy("multi_worker")
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {"worker": ["127.0.0.1:1"]},
                "task": {"type": "worker", "index": 3},
            }
        ),
    )
    with pytest.raises(ValueError, match="index 3"):
        distributed.make_strategy("multi_worker")


def test_train_loop_requires_the_strategy_scope(two_cpu_devices):
    model = worker.build_model()  # created outside the strategy's scope
    strategy = distributed.make_strategy("mirrored", devices=two_cpu_devices)
    with pytest.raises(ValueError, match="strategy.scope"):
        distributed.train_loop(
            model,
            _dataset(),
            strategy=strategy,
            steps=1,
            global_batch_size=worker.GLOBAL_BATCH,
        )
