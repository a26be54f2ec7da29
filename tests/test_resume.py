"""Seeded training repeats, and a killed run resumes to the same weights.

Through the entry point, as a user runs it: `python -m experiments.train`
on the `tiny_test` recipe and a few Megapixel-MNIST records, killed with
SIGKILL mid-epoch and run again with the same command. The resumed run
must end with exactly the weights of an uninterrupted run started at the
same time. That equality also checks that a seeded run repeats: the killed
run trained its first steps in another process than the uninterrupted one.
"""

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tnet_tf import training
from tnet_tf.data import megapixel_mnist
from tnet_tf.data import pipelines

REPO = pathlib.Path(__file__).resolve().parent.parent
TRAIN_RECORDS = 8  # in 2 shards: 4 batches of tiny_test's 2 per pass
STEPS_PER_EPOCH = 6  # so the two epochs read three shuffled passes
BACKUP_STEPS = 2  # mid-epoch backups after steps 2 and 4 of each epoch
RUN_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    generator = megapixel_mnist.MegapixelMNIST(
        canvas_size=96, num_digits=3, num_label_digits=2, num_noise=2
    )
    path = str(root / "records")
    generator.write_records(
        path, "train", TRAIN_RECORDS, 2, num_workers=1, show_progress=False
    )
    generator.write_records(
        path, "test", 2, 1, num_workers=1, show_progress=False
    )
    return path


def _seeded_batches(data_dir, skip_batches=0, count=4):
    dataset = pipelines.make_dataset(
        "megapixel_mnist",
        data_dir,
        "train",
        training=True,
        batch_size=2,
        image_size=48,
        seed=5,
        skip_batches=skip_batches,
    )
    return [
        np.concatenate([images.numpy().ravel(), labels.numpy().ravel()])
        for images, labels in dataset.take(count)
    ]


def test_seeded_pipeline_repeats_and_skips_to_the_same_batches(data_dir):
    # A seed alone (no `deterministic=True`) gives the same batches; the
    # skip crosses a pass of the repeated, reshuffled records.
    first, second = (
        _seeded_batches(data_dir, count=7),
        _seeded_batches(data_dir, count=7),
    )
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first[5:], _seeded_batches(data_dir, 5, count=2)):
        np.testing.assert_array_equal(a, b)


def _train(workdir, data_dir, log):
    command = [
        sys.executable,
        "-m",
        "experiments.train",
        "--recipe=tiny_test",
        f"--workdir={workdir}",
        f"--data_dir={data_dir}",
        "--override=epochs=2",
        f"--override=steps_per_epoch={STEPS_PER_EPOCH}",
        "--seed=3",
        f"--backup_steps={BACKUP_STEPS}",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _finish(process, log_path):
    try:
        code = process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0, pathlib.Path(log_path).read_text()[-3000:]


def _final_weights(workdir):
    model = keras.saving.load_model(
        os.path.join(workdir, "checkpoints", "final.keras"), compile=False
    )
    return model.get_weights()


def test_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(
    data_dir, tmp_path
):
    # Killed once the backup after this many batches exists: step 2 of
    # either epoch, so the kill lands in the steps after it, mid-epoch.
    target = random.choice([BACKUP_STEPS, STEPS_PER_EPOCH + BACKUP_STEPS])
    uninterrupted_dir = tmp_path / "uninterrupted"
    killed_dir = tmp_path / "run"
    logs = {name: tmp_path / f"{name}.log" for name in ("u", "k", "r")}
    with open(logs["u"], "w") as u_log, open(logs["k"], "w") as k_log:
        uninterrupted = _train(uninterrupted_dir, data_dir, u_log)
        killed = _train(killed_dir, data_dir, k_log)
        try:
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while training.backup_position(str(killed_dir)).batches < target:
                assert killed.poll() is None, logs["k"].read_text()[-3000:]
                assert time.monotonic() < deadline, "no backup came"
                time.sleep(0.01)
            os.kill(killed.pid, signal.SIGKILL)
        finally:
            if killed.poll() is None:
                killed.kill()
            killed.wait()
        _finish(uninterrupted, logs["u"])
    assert killed.returncode == -signal.SIGKILL
    assert not (killed_dir / "checkpoints" / "final.keras").exists()
    position = training.backup_position(str(killed_dir))
    # Mid-epoch: the resumed run passes over trained steps of its epoch,
    # and its input starts at a batch inside a pass of the records.
    assert 0 < position.step < STEPS_PER_EPOCH, (target, position)
    with open(logs["r"], "w") as r_log:
        _finish(_train(killed_dir, data_dir, r_log), logs["r"])
    assert not (killed_dir / training.BACKUP_FOLDER).exists()
    expected, resumed = (
        _final_weights(uninterrupted_dir),
        _final_weights(killed_dir),
    )
    assert len(expected) == len(resumed)
    for want, got in zip(expected, resumed):
        np.testing.assert_array_equal(got, want)
