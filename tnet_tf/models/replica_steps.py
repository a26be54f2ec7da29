"""Distributed-safe pieces of a training step: skipping a step everywhere.

A step whose loss terms or gradients are not finite on any replica (one NaN
image is enough) is skipped on every replica and counted in the
`skipped_steps` metric (see `ImageClassifier.minimize`).
"""

import keras
import tensorflow as tf

SKIPPED_STEPS = "skipped_steps"


class SkippedSteps(keras.metrics.Metric):
    """Training steps skipped for non-finite loss terms or gradients since
    the last reset (see `ImageClassifier.minimize`)."""

    def __init__(self, name=SKIPPED_STEPS, **kwargs):
        super().__init__(name=name, **kwargs)
        # Every replica skips the same steps, so the count is one replica's,
        # not the sum over replicas (the default of metric variables).
        self.count = self.add_variable(
            shape=(),
            initializer="zeros",
            aggregation="only_first_replica",
            name="count",
        )

    def update_state(self, skipped):
        self.count.assign_add(tf.cast(skipped, self.dtype))

    def result(self):
        return tf.identity(self.count)


def all_replicas_finite(tensors):
    """Whether every value of `tensors` is finite on every replica.

    A scalar bool, the same on all replicas (reduced across them): a
    replica that skipped a step alone would leave the mirrored weights
    different on each device. `None` entries (no gradient) are ignored.
    """
    finite = [
        tf.reduce_all(tf.math.is_finite(tensor))
        for tensor in tensors
        if tensor is not None
    ]
    bad = tf.cast(tf.logical_not(tf.reduce_all(finite)), tf.float32)
    context = tf.distribute.get_replica_context()
    bad = context.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    return tf.equal(bad, 0.0)


def replica_cond(condition, true_fn, false_fn, args=()):
    """`true_fn(*args)` if `condition` else `false_fn(*args)`, on every
    replica, from a train step (replica context).

    The branches may update mirrored variables (`optimizer.apply`, a
    MEAN-aggregated weight's `assign`). `condition` must be the same on all
    replicas (e.g. from `all_replicas_finite`). Strategies that update
    through `merge_call` (MirroredStrategy, multi-worker on CPU) cannot run
    it inside a `tf.cond` built in a replica ("merge_call called while
    defining a new graph"), so, as Keras' `LossScaleOptimizer` does, the
    condition is taken in cross-replica context and each branch re-enters
    the replicas. Per-replica values (gradients, ...) must come in `args`,
    not in the branches' closures, which are the first replica's.
    """
    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(condition, lambda: true_fn(*args), lambda: false_fn(*args))
        return

    def cross_replica(distribution, condition, *args):
        # All replicas agree; take the first one's.
        condition = distribution.experimental_local_results(condition)[0]
        tf.cond(
            condition,
            lambda: distribution.extended.call_for_each_replica(
                true_fn, args=args
            ),
            lambda: distribution.extended.call_for_each_replica(
                false_fn, args=args
            ),
        )

    tf.distribute.get_replica_context().merge_call(
        cross_replica, args=(condition,) + tuple(args)
    )


def unpack_batch(data):
    """`(images, labels)` from `(images, labels[, sample_weight])`."""
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError(
            "The model trains on (images, labels) pairs; got a batch of "
            f"type {type(data).__name__}."
        )
    images, labels = data[0], data[1]
    return images, tf.reshape(tf.cast(labels, tf.int32), [-1])


def finite_step(
    optimizer_groups, forward_state, compute_loss, update_state=None
):
    """One gradient step on `terms["loss"]` of `compute_loss()`, applied on
    every replica only when every replica's terms and gradients are finite
    (`ImageClassifier.minimize` documents the contract).

    Args:
        optimizer_groups: function returning `[(optimizer, variables)]`.
        forward_state: the variables the forward pass itself moves
            (batch-norm statistics, the location sampler's seed), put back
            when the step is skipped.
        compute_loss, update_state: as in `ImageClassifier.minimize`.
    """
    # Optimizers sum gradients over replicas, so each replica's loss is
    # divided by their number to follow the mean over the global batch.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    groups = optimizer_groups()
    # The forward pass itself moves the batch-norm statistics (and the
    # location sampler's seed); a skipped step puts them back.
    state_before = [tf.identity(v.value) for v in forward_state]
    with tf.GradientTape(persistent=True) as tape:
        outputs, terms = compute_loss()
        replica_loss = terms["loss"] / replicas
        # Under mixed precision each optimizer scales its own copy.
        scaled = [opt.scale_loss(replica_loss) for opt, _ in groups]
    gradients = [
        tape.gradient(loss, variables)
        for (_, variables), loss in zip(groups, scaled)
    ]
    del tape
    # A LossScaleOptimizer's scaled gradients overflow now and then by
    # design: it skips those steps itself and lowers its scale, which it
    # can only do if it sees them.
    checked = [
        gradient
        for (optimizer, _), group in zip(groups, gradients)
        if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        for gradient in group
    ]
    finite = all_replicas_finite(list(terms.values()) + checked)

    def apply_step(gradients, terms, state_before):
        for (optimizer, variables), group in zip(
            optimizer_groups(), gradients
        ):
            optimizer.apply(group, variables)
        if update_state is not None:
            update_state(terms)

    def restore_forward_state(gradients, terms, state_before):
        for variable, value in zip(forward_state, state_before):
            variable.assign(value)

    replica_cond(
        finite,
        apply_step,
        restore_forward_state,
        args=(gradients, terms, state_before),
    )
    terms = dict(terms, step_skipped=1.0 - tf.cast(finite, tf.float32))
    return outputs, terms
