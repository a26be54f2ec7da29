"""Training plumbing shared by `TNet` and the baselines.

An optional second optimizer for the backbone (fine-tuning with a smaller
learning rate, as the release did for CUB and NABirds), the L2 penalty on
weights outside normalization layers, the contrastive term, and one replica-scaled
gradient step that applies every optimizer to its own variables.
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
        """Creates the trackers: the mean of each loss term in `terms`, and
        top-1 and top-5 accuracy; `fit` resets them every epoch."""
        self._trackers = {
            name: keras.metrics.Mean(name=name) for name in terms
        }
        self._trackers["top1"] = keras.metrics.SparseCategoricalAccuracy(
            name="top1"
        )
        self._trackers["top5"] = keras.metrics.SparseTopKCategoricalAccuracy(
            k=5, name="top5"
        )
        self._tracked_terms = tuple(terms)

    @property
    def metrics(self):
        return list(self._trackers.values())

    def update_metrics(self, labels, logits, terms):
        """Updates the trackers and returns the logs of a step."""
        for name in self._tracked_terms:
            self._trackers[name].update_state(terms[name])
        # Under a mixed policy logits are float16/bfloat16; in_top_k takes
        # float32 only.
        logits = tf.cast(logits, tf.float32)
        self._trackers["top1"].update_state(labels, logits)
        self._trackers["top5"].update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}

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

    def minimize(self, compute_loss):
        """One gradient step on `terms["loss"]` of `compute_loss()`.

        Returns `compute_loss()`'s `(outputs, terms)`.
        """
        # Optimizers sum gradients over replicas, so each replica's loss is
        # divided by their number to follow the mean over the global batch.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        groups = self.optimizer_groups()
        with tf.GradientTape(persistent=True) as tape:
            outputs, terms = compute_loss()
            replica_loss = terms["loss"] / replicas
            # Under mixed precision each optimizer scales its own copy.
            scaled = [opt.scale_loss(replica_loss) for opt, _ in groups]
        for (optimizer, variables), loss in zip(groups, scaled):
            optimizer.apply(tape.gradient(loss, variables), variables)
        del tape
        return outputs, terms


def unpack_batch(data):
    """`(images, labels)` from `(images, labels[, sample_weight])`."""
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError(
            "The model trains on (images, labels) pairs; got a batch of "
            f"type {type(data).__name__}."
        )
    images, labels = data[0], data[1]
    return images, tf.reshape(tf.cast(labels, tf.int32), [-1])
