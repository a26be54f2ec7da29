"""Training plumbing shared by `TNet` and the baselines.

An optional second optimizer for the backbone (fine-tuning with a smaller
learning rate, as the release did for CUB and NABirds), the L2 penalty on
weights outside normalization layers, the contrastive term, and one replica-scaled
gradient step that applies every optimizer to its own variables.

A step whose loss terms or gradients are not finite on any replica (one NaN
image is enough) is skipped: it changes no weight, batch-norm statistic,
reward baseline, optimizer slot or `optimizer.iterations`, and is counted in
the `skipped_steps` metric. `model.fit` and `tnet_tf.distributed.train_loop`
both run this step (`FineTuningModel.minimize`).
"""

import keras
import tensorflow as tf

from tnet_tf import losses

_NORMALIZATION_LAYERS = (
    keras.layers.BatchNormalization,
    keras.layers.GroupNormalization,
    keras.layers.LayerNormalization,
)


class FineTuningModel(keras.Model):
    """Base class of models with a `feature_extractor` and a `config`.

    Subclasses define `feature_extractor`, `config` (with `l2_weight`,
    `contrastive_weight`, `contrastive_margin`) and call `minimize` in their
    train step.
    """

    backbone_optimizer = None

    def track_metrics(self, terms):
        """Creates the trackers: the mean of each loss term in `terms`, top-1
        and top-5 accuracy, and the count of skipped training steps; `fit`
        resets them every epoch."""
        self._trackers = {
            name: keras.metrics.Mean(name=name) for name in terms
        }
        self._trackers["top1"] = keras.metrics.SparseCategoricalAccuracy(
            name="top1"
        )
        self._trackers["top5"] = keras.metrics.SparseTopKCategoricalAccuracy(
            k=5, name="top5"
        )
        self._trackers[SKIPPED_STEPS] = SkippedSteps()
        self._tracked_terms = tuple(terms)

    @property
    def metrics(self):
        return list(self._trackers.values())

    def update_metrics(self, labels, logits, terms):
        """Updates the trackers and returns the logs of a step.

        A training step's `terms` carry `step_skipped` (see `minimize`): a
        skipped step counts in `skipped_steps` and its non-finite terms stay
        out of the means. Evaluation logs have no `skipped_steps`.
        """
        # Under a mixed policy logits are float16/bfloat16; in_top_k takes
        # float32 only.
        logits = tf.cast(logits, tf.float32)

        def update_means():
            for name in self._tracked_terms:
                self._trackers[name].update_state(terms[name])
            self._trackers["top1"].update_state(labels, logits)
            self._trackers["top5"].update_state(labels, logits)

        skipped = terms.get("step_skipped")
        if skipped is None:
            update_means()
        else:
            self._trackers[SKIPPED_STEPS].update_state(skipped)
            # Metric variables are each replica's own (on-read), so this
            # branch needs no cross-replica call.
            tf.cond(skipped > 0, lambda: None, update_means)
        return {
            m.name: m.result()
            for m in self.metrics
            if m.name != SKIPPED_STEPS or skipped is not None
        }

    def compile(self, optimizer="adam", backbone_optimizer=None, **kwargs):
        """Configures training.

        Args:
            optimizer: optimizer of every trainable weight, or only of the
                modules around the backbone when `backbone_optimizer` is set.
            backbone_optimizer: optional second optimizer for the feature
                extractor. The L2 penalty then covers only the other
                modules, as in the release (Q5).
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).
                No `loss`: the model trains with its own.
        """
        if kwargs.get("loss") is not None:
            raise ValueError(
                f"{type(self).__name__} trains with its own loss (set by its "
                "config); do not pass `loss` to compile."
            )
        super().compile(optimizer=optimizer, **kwargs)
        self.backbone_optimizer = (
            keras.optimizers.get(backbone_optimizer)
            if backbone_optimizer is not None
            else None
        )
        self.compile_optimizers()

    def compile_optimizers(self):
        """Builds the optimizers' slots on the variables each one updates.

        Done at compile time, under the caller's strategy scope: slots
        created lazily inside a replica step are not allowed, and a first
        `fit` that creates variables is traced twice.
        """
        if not self.built:
            self.build()
        for optimizer, variables in self.optimizer_groups():
            if not optimizer.built:
                optimizer.build(variables)

    def optimizer_groups(self):
        """`[(optimizer, variables it updates)]`."""
        if self.backbone_optimizer is None:
            return [(self.optimizer, self.trainable_variables)]
        return [
            (self.optimizer, self._module_variables()),
            (self.backbone_optimizer, self._backbone_variables()),
        ]

    def _backbone_variables(self):
        return self.feature_extractor.trainable_variables

    def _module_variables(self):
        backbone = {id(v) for v in self._backbone_variables()}
        return [v for v in self.trainable_variables if id(v) not in backbone]

    def _l2_variables(self):
        # Normalization scales and offsets are not decayed (the release
        # skipped batch norm; group/layer norm are treated alike).
        normalization = set()
        for layer in self._flatten_layers():
            if isinstance(layer, _NORMALIZATION_LAYERS):
                normalization.update(id(v) for v in layer.weights)
        candidates = (
            self._module_variables()
            if self.backbone_optimizer is not None
            else self.trainable_variables
        )
        return [v for v in candidates if id(v) not in normalization]

    def regularization_terms(self, features, labels):
        """`{"l2", "contrastive"}` scalars from the config's weights."""
        config = self.config
        contrastive = tf.constant(0.0)
        if config.contrastive_weight > 0.0:
            contrastive = config.contrastive_weight * losses.contrastive_loss(
                features, labels, config.contrastive_margin
            )
        return {
            "l2": losses.l2_penalty(self._l2_variables(), config.l2_weight),
            "contrastive": contrastive,
        }

    def minimize(self, compute_loss, update_state=None):
        """One gradient step on `terms["loss"]` of `compute_loss()`, applied
        only when its loss terms and gradients are finite.

        The step is skipped on every replica when any replica's loss terms
        or gradients are not finite (e.g. a NaN or infinite pixel): no
        weight, batch-norm statistic, optimizer slot or
        `optimizer.iterations` changes (a learning-rate schedule counts
        applied steps), `update_state` does not run, and
        `terms["step_skipped"]` is 1.0 (0.0 for an applied step), which
        `update_metrics` counts in `skipped_steps`.

        Args:
            compute_loss: function returning `(outputs, terms)`, `terms` a
                dict of scalars with the `loss` to minimize.
            update_state: optional function of `terms` updating state other
                than the optimizers' (TNet's reward baseline), run only with
                an applied step.

        Returns:
            `compute_loss()`'s `(outputs, terms)`, `terms` with
            `step_skipped` added.
        """
        # Optimizers sum gradients over replicas, so each replica's loss is
        # divided by their number to follow the mean over the global batch.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        groups = self.optimizer_groups()
        # The forward pass itself moves the batch-norm statistics (and the
        # location sampler's seed); a skipped step puts them back.
        forward_state = self.non_trainable_variables
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
                self.optimizer_groups(), gradients
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


SKIPPED_STEPS = "skipped_steps"


class SkippedSteps(keras.metrics.Metric):
    """Training steps skipped for non-finite loss terms or gradients since
    the last reset (see `FineTuningModel.minimize`)."""

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
