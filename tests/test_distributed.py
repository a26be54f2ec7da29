"""Distributed training equals single-device training, weight for weight.

MirroredStrategy runs on the two logical CPUs of conftest; the multi-worker
tests start two worker processes on 127.0.0.1, once uninterrupted and once
killed with SIGKILL mid-epoch and restarted, which must end with exactly the
uninterrupted run's state. The model, the data and how batch normalization
is kept comparable are in `tests/multiworker_worker.py`.
"""

import json
import os
import pathlib
import random
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import multiworker_worker as worker
from tnet_tf import distributed
from tnet_tf import training

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
        images,
        labels,
        batch_size=worker.GLOBAL_BATCH,
        shuffle=False,
        verbose=0,
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
        assert logs[f"val_{name}"][0] == pytest.approx(
            expected[name], abs=1e-5
        )
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


def _start_worker(index, cluster, directory, log, output, backup_dir):
    tf_config = {
        "cluster": cluster,
        "task": {"type": "worker", "index": index},
    }
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
            str(directory / "initial.npz"),
            str(output),
            str(backup_dir),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


class _Workers:
    """Two worker processes of `tests.multiworker_worker` on 127.0.0.1,
    backing up into `<directory>/backup` and writing `<name><index>.npz`
    and `<name><index>.log` in `directory`."""

    def __init__(self, directory, name):
        self.directory, self.name = directory, name
        self.backup_dir = directory / training.BACKUP_FOLDER
        cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
        self.processes, self.logs = [], []
        self.deadline = time.monotonic() + WORKER_TIMEOUT_S
        for index in range(2):
            self.logs.append(open(self._path(index, "log"), "w"))
            self.processes.append(
                _start_worker(
                    index,
                    cluster,
                    directory,
                    self.logs[-1],
                    self._path(index, "npz"),
                    self.backup_dir,
                )
            )

    def _path(self, index, suffix):
        return self.directory / f"{self.name}{index}.{suffix}"

    def position(self):
        """The `TrainingPosition` of their backup."""
        return training.backup_position(str(self.directory))

    def finish(self):
        """Waits for both workers, asserts they succeeded, and returns
        `[(weights, optimizer_state)]` saved by each."""
        codes = [None, None]
        try:
            for index, process in enumerate(self.processes):
                timeout = max(1.0, self.deadline - time.monotonic())
                try:
                    codes[index] = process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    break
        finally:
            self.kill()
        assert codes == [0, 0], self.outputs(codes)
        return [
            worker.load_state(self._path(index, "npz")) for index in range(2)
        ]

    def kill(self):
        """SIGKILL for the workers still running, as on a preemption."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()

    def outputs(self, codes):
        return "\n\n".join(
            f"worker {index} (exit {code}):\n"
            + self._path(index, "log").read_text()[-3000:]
            for index, code in enumerate(codes)
        )


@pytest.fixture(scope="module")
def multi_worker_run(tmp_path_factory, reference):
    """The states of an uninterrupted two-worker run, and of the same
    training on one device."""
    directory = tmp_path_factory.mktemp("multi_worker")
    worker.save_state(directory / "initial.npz", reference["initial"])
    workers = _Workers(directory, "uninterrupted")
    single = worker.build_model()
    single.set_weights(reference["initial"])
    images, labels = worker.make_data(worker.MULTI_WORKER_STEPS)
    single.fit(
        images,
        labels,
        batch_size=worker.GLOBAL_BATCH,
        epochs=worker.MULTI_WORKER_EPOCHS,
        shuffle=False,
        verbose=0,
    )
    return {
        "directory": directory,
        "workers": workers.finish(),
        "single_device": worker.training_state(single),
        "backup_left": workers.backup_dir.exists(),
    }


def test_multi_worker_matches_single_device(multi_worker_run, reference):
    (first, first_slots), (second, second_slots) = multi_worker_run["workers"]
    weights, slots = multi_worker_run["single_device"]
    names = reference["names"]
    _assert_same(second, first, names)
    _assert_same_optimizer_state(second_slots, first_slots)
    _assert_same(first, weights, names)
    _assert_same_optimizer_state(first_slots, slots)
    assert not multi_worker_run["backup_left"]  # deleted by the chief


def test_killed_multi_worker_run_resumes_to_the_uninterrupted_state(
    multi_worker_run, tmp_path
):
    (tmp_path / "initial.npz").symlink_to(
        multi_worker_run["directory"] / "initial.npz"
    )
    steps = worker.MULTI_WORKER_STEPS
    # Both workers are killed once the backup after this many steps exists:
    # step 1 of either epoch, so the kill lands mid-epoch.
    target = random.choice([1, steps + 1])
    killed = _Workers(tmp_path, "killed")
    try:
        while killed.position().batches < target:
            codes = [process.poll() for process in killed.processes]
            assert codes == [None, None], killed.outputs(codes)
            assert time.monotonic() < killed.deadline, "no backup came"
            time.sleep(0.01)
    finally:
        killed.kill()
    position = killed.position()
    assert 0 < position.step < steps, (target, position)
    resumed = _Workers(tmp_path, "resumed").finish()
    (expected, expected_slots), _ = multi_worker_run["workers"]
    for weights, slots in resumed:
        assert len(weights) == len(expected)
        for got, want in zip(weights, expected):
            np.testing.assert_array_equal(got, want)
        assert set(slots) == set(expected_slots)
        for name, want in expected_slots.items():
            np.testing.assert_array_equal(slots[name], want, err_msg=name)
    iterations = [
        value for name, value in expected_slots.items() if "iteration" in name
    ]
    assert iterations and all(
        value == worker.MULTI_WORKER_EPOCHS * steps for value in iterations
    ), iterations


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


def _with_a_non_finite_batch():
    """`worker.make_data()` with a global batch holding a NaN inserted
    before its last one: the NaN is in the second replica's half, so only
    that replica sees it."""
    images, labels = worker.make_data()
    last = slice(-worker.GLOBAL_BATCH, None)
    poisoned = images[last].copy()
    poisoned[worker.GLOBAL_BATCH - 1, 5, 5, 1] = np.nan
    insert_at = len(images) - worker.GLOBAL_BATCH
    return (
        np.insert(images, insert_at, poisoned, axis=0),
        np.insert(labels, insert_at, labels[last], axis=0),
    )


@pytest.mark.parametrize("loop", ["fit", "train_loop"])
def test_a_non_finite_step_is_skipped_on_every_replica(
    two_cpu_devices, reference, loop
):
    strategy = distributed.make_strategy("mirrored", devices=two_cpu_devices)
    with strategy.scope():
        model = worker.build_model()
    model.set_weights(reference["initial"])
    images, labels = _with_a_non_finite_batch()
    if loop == "fit":
        history = model.fit(
            images,
            labels,
            batch_size=worker.GLOBAL_BATCH,
            shuffle=False,
            verbose=0,
        )
    else:
        history = distributed.train_loop(
            model,
            tf.data.Dataset.from_tensor_slices((images, labels)).batch(
                worker.GLOBAL_BATCH
            ),
            strategy=strategy,
            steps=worker.STEPS + 1,
            global_batch_size=worker.GLOBAL_BATCH,
            verbose=0,
        )
    # Both replicas skipped the poisoned step: the state is that of the
    # single-device run without it, iterations included.
    assert history.history["skipped_steps"] == [1.0]
    weights, optimizer_state = worker.training_state(model)
    _assert_same(weights, reference["weights"], reference["names"])
    _assert_same_optimizer_state(optimizer_state, reference["optimizer_state"])
    assert int(model.optimizer.iterations.numpy()) == worker.STEPS
    assert int(model.backbone_optimizer.iterations.numpy()) == worker.STEPS
