"""Distribution strategies and the multi-worker training loop.

`model.fit` trains a `TNet` on one device and under `MirroredStrategy`. Under
`MultiWorkerMirroredStrategy` Keras 3 `fit` fails before its first step on
TensorFlow 2.21 (keras-team/keras#20585, tensorflow/tensorflow#72388), so
`train_loop` runs the model's own `train_step` (the per-replica step of
`fit`) with `strategy.run`; it works under every strategy.

Example:
>>> strategy = make_strategy("multi_worker")  # reads TF_CONFIG
>>> with strategy.scope():
...     model = tnet_tf.TNet(config)
...     model.compile(optimizer=keras.optimizers.SGD(0.1))
>>> history = train_loop(model, dataset, strategy=strategy, steps=100,
...                      global_batch_size=64, backup_dir="runs/x/backup")

Run again after a kill (all workers), the same call resumes from the
backup; see `train_loop`.
"""

import itertools
import json
import os

import keras
import tensorflow as tf

from tnet_tf import training

STRATEGY_KINDS = ("default", "mirrored", "multi_worker")


def make_strategy(kind="default", devices=None):
    """A `tf.distribute` strategy.

    Args:
        kind: `"default"` (the current strategy, one device unless a scope
            is open), `"mirrored"` (the devices of this host) or
            `"multi_worker"` (one replica per worker process, described by
            the `TF_CONFIG` environment variable).
        devices: device names for `"mirrored"`, e.g. `["/CPU:0", "/CPU:1"]`;
            all visible GPUs (or the CPU) when `None`. CPU replicas reduce
            through one device, GPUs with TensorFlow's default (NCCL).

    Returns:
        A `tf.distribute.Strategy`.
    """
    if kind not in STRATEGY_KINDS:
        raise ValueError(f"`kind` must be one of {STRATEGY_KINDS}: {kind!r}.")
    if devices is not None and kind != "mirrored":
        raise ValueError(
            f"`devices` applies to 'mirrored' only, not {kind!r}."
        )
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        on_cpu = (
            all("CPU" in device.upper() for device in devices)
            if devices
            else not tf.config.list_physical_devices("GPU")
        )
        # On CPUs MirroredStrategy defaults to collective all-reduce, whose
        # keys restart with every strategy: a second strategy in the same
        # process then hits the first one's cached collectives ("Shape
        # mismatch in the collective instance", tensorflow/tensorflow#62790).
        # Reducing on one device avoids collectives at no cost on a CPU.
        return tf.distribute.MirroredStrategy(
            devices=devices,
            cross_device_ops=(
                tf.distribute.ReductionToOneDevice() if on_cpu else None
            ),
        )
    _check_tf_config(os.environ.get("TF_CONFIG"))
    # NCCL needs GPUs; on CPU-only workers collectives must use the ring.
    implementation = (
        tf.distribute.experimental.CommunicationImplementation.AUTO
        if tf.config.list_physical_devices("GPU")
        else tf.distribute.experimental.CommunicationImplementation.RING
    )
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation
        )
    )


def _check_tf_config(text):
    """Raises a readable error unless `text` is a usable TF_CONFIG."""
    example = (
        'e.g. {"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not text:
        raise ValueError(
            "kind='multi_worker' needs the TF_CONFIG environment variable "
            f"describing the cluster and this worker's task, {example}."
        )
    try:
        tf_config = json.loads(text)
        members = tf_config["cluster"][tf_config["task"]["type"]]
        index = int(tf_config["task"]["index"])
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"TF_CONFIG is not valid ({type(error).__name__}: {error}); "
            f"{example}. Got: {text!r}"
        ) from None
    if not 0 <= index < len(members):
        raise ValueError(
            f"TF_CONFIG task index {index} is outside its task list of "
            f"{len(members)}."
        )


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on the
    multi-worker workers other than the chief (or than worker 0 in a
    cluster without a chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    first_worker = resolver.task_type == "worker" and resolver.task_id == 0
    return first_worker and not has_chief


def distribute_dataset(dataset, strategy, global_batch_size):
    """Splits each global batch of `dataset` among the replicas.

    Every input pipeline (one per worker) cuts the global batches into
    per-replica batches and keeps every `num_input_pipelines`-th, so one
    step's replicas together see exactly the global batch that a
    single-device run sees, independently of auto-shard policies. Each
    worker reads the whole dataset; for large ones pass a function that
    reads only its share (e.g. `shard` the files by `input_pipeline_id`).

    Args:
        dataset: a `tf.data.Dataset` of `(images, labels)` batched by
            `global_batch_size`, or a function `input_context -> dataset`
            already yielding per-replica batches (passed on as is).
        strategy: the `tf.distribute.Strategy`.
        global_batch_size: examples per step over all replicas.

    Returns:
        A distributed dataset.
    """
    if callable(dataset) and not isinstance(dataset, tf.data.Dataset):
        return strategy.distribute_datasets_from_function(dataset)
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the "
            f"{replicas} replicas in sync."
        )
    static_batch = tf.nest.flatten(dataset.element_spec)[0].shape[0]
    if static_batch is not None and static_batch != global_batch_size:
        raise ValueError(
            f"The dataset yields batches of {static_batch}, not the "
            f"global_batch_size={global_batch_size}."
        )

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(global_batch_size)
        # A partial last global batch is dropped whole: split, it would give
        # some workers one step more than others, which then wait forever.
        return (
            dataset.rebatch(global_batch_size, drop_remainder=True)
            .rebatch(per_replica)
            .shard(context.num_input_pipelines, context.input_pipeline_id)
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def train_loop(
    model,
    dataset,
    *,
    strategy,
    steps,
    global_batch_size,
    epochs=1,
    callbacks=None,
    verbose=1,
    validation_data=None,
    validation_steps=None,
    backup_dir=None,
    backup_steps=training.DEFAULT_BACKUP_STEPS,
    input_starts_at="run",
    delete_backup=True,
):
    """Trains `model` for `epochs * steps` steps under `strategy`.

    The multi-host counterpart of `model.fit`: each step runs
    `model.train_step` on every replica with `strategy.run` (the optimizers
    sum the replicas' gradients; the baseline and metric updates are those of
    `fit`) and averages the returned logs over replicas. A step whose loss
    terms or gradients are not finite on any replica is skipped on all of
    them and counted in `skipped_steps`, as in `fit`
    (`tnet_tf.models.ImageClassifier.minimize`). Metrics are reset at
    each epoch, as in `fit`. With `validation_data`, every epoch ends with a
    pass of `model.test_step` over it, and its logs join the epoch's logs
    with a `val_` prefix, as in `fit`.

    With `backup_dir`, the loop backs up and resumes as
    `tnet_tf.training.fit` does, in the same format
    (`tnet_tf.training.TrainingBackup`): every `backup_steps` steps and at
    every epoch end, and a second call with the same `backup_dir` after a
    kill (of any worker: restart them all) continues from the last backup
    and ends with the weights of an uninterrupted run. The chief writes the
    backup; every worker reads it, so `backup_dir` must be on storage that
    all workers share.

    Args:
        model: a compiled `TNet` (or any Keras model whose `train_step`
            returns a dict of scalar logs), created and compiled under
            `strategy.scope()`.
        dataset: see `distribute_dataset`; it must hold at least
            `epochs * steps` global batches (e.g. use `repeat()`). One
            iterator runs through all epochs.
        strategy: the `tf.distribute.Strategy` (see `make_strategy`).
        steps: steps per epoch.
        global_batch_size: examples per step over all replicas.
        epochs: number of epochs.
        callbacks: optional list of `keras.callbacks.Callback`; they get the
            epoch and batch hooks with the averaged logs.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        validation_data: like `dataset` (batches of `global_batch_size`), a
            finite pass read again every epoch. Every worker must run the
            same number of steps, so a last partial global batch is
            dropped.
        validation_steps: validation batches per epoch; `None` reads the
            whole pass.
        backup_dir: the backup folder, e.g. `<workdir>/backup`; `None`
            makes no backup.
        backup_steps: steps between backups; 0 backs up at epoch ends only.
        input_starts_at: `"run"`: `dataset` starts at the run's first batch,
            and a resumed run reads and drops the batches trained before;
            `"backup"`: `dataset` was built to start after them
            (`tnet_tf.training.backup_position`).
        delete_backup: delete the backup once training completes.

    Returns:
        The `keras.callbacks.History` (also set as `model.history`).
    """
    # The variables must be the strategy's (e.g. mirrored), not plain ones.
    if not strategy.extended.variable_created_in_scope(model.weights[0].value):
        raise ValueError(
            "Create and compile the model under `strategy.scope()` before "
            "calling `train_loop` with that strategy."
        )
    if getattr(model, "optimizer", None) is None:
        raise ValueError("Compile the model before calling `train_loop`.")
    if input_starts_at not in ("run", "backup"):
        raise ValueError(
            "`input_starts_at` must be 'run' (one iterator runs through the "
            f"epochs) or 'backup', got {input_starts_at!r}."
        )
    backup = (
        None
        if backup_dir is None
        else training.TrainingBackup(backup_dir, writer=is_chief(strategy))
    )
    with strategy.scope():
        if not model.optimizer.built:
            # `TNet.compile` builds its optimizers; for other models, build
            # here as `fit` does: slots cannot be created in a replica step.
            model.optimizer.build(model.trainable_variables)
        position = (
            training.TrainingPosition()
            if backup is None
            else backup.restore(model)
        )
        distributed = distribute_dataset(dataset, strategy, global_batch_size)
        iterator = iter(distributed)
        for _ in range(position.batches_to_read(input_starts_at)):
            next(iterator)  # read by the killed run before its backup
        validation = (
            None
            if validation_data is None
            else distribute_dataset(
                validation_data, strategy, global_batch_size
            )
        )

    def step_function(step):
        # No AutoGraph, as in `fit`: both paths trace the same graph.
        @tf.function(autograph=False)
        def function(iterator):
            logs = strategy.run(step, args=(next(iterator),))
            return {
                name: strategy.reduce("MEAN", value, axis=None)
                for name, value in logs.items()
            }

        return function

    train_function = step_function(model.train_step)
    test_function = step_function(model.test_step)

    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
    )

    def validate():
        model.reset_metrics()
        callback_list.on_test_begin()
        logs, iterator = {}, iter(validation)
        batches = (
            itertools.count()
            if validation_steps is None
            else range(validation_steps)
        )
        for step in batches:
            callback_list.on_test_batch_begin(step)
            try:
                logs = test_function(iterator)
            except (StopIteration, tf.errors.OutOfRangeError):
                break
            logs = {name: float(value) for name, value in logs.items()}
            callback_list.on_test_batch_end(step, logs)
        if not logs:
            raise ValueError("`validation_data` yielded no global batch.")
        callback_list.on_test_end(logs)
        return {f"val_{name}": value for name, value in logs.items()}

    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    for epoch in range(position.epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        first_step = position.step if epoch == position.epoch else 0
        for step in range(first_step, steps):
            callback_list.on_train_batch_begin(step)
            try:
                logs = train_function(iterator)
            except (StopIteration, tf.errors.OutOfRangeError):
                raise ValueError(
                    f"The dataset ran out at epoch {epoch}, step {step}; it "
                    f"must hold epochs * steps = {epochs * steps} global "
                    "batches (use `repeat()`)."
                ) from None
            logs = {name: float(value) for name, value in logs.items()}
            batches = position.batches + 1
            position = training.TrainingPosition(epoch, step + 1, batches)
            callback_list.on_train_batch_end(step, logs)
            last_step = step + 1 == steps  # the epoch-end backup follows
            if (
                backup is not None
                and not last_step
                and training.backup_due(batches - 1, batches, backup_steps)
            ):
                backup.save(model, position)
            if model.stop_training:
                break
        if validation is not None:
            logs = {**logs, **validate()}
        callback_list.on_epoch_end(epoch, logs)
        position = training.TrainingPosition(epoch + 1, 0, position.batches)
        if backup is not None:
            backup.save(model, position)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    if backup is not None and delete_backup:
        backup.delete()
    return model.history
