"""How the library's models learn: `TrainingStep`, a mixin of `ImageClassifier`.

Each model trains with its own loss (`compute_loss_terms`), an optional
second optimizer for the backbone (fine-tuning with a smaller learning
rate, as the release did for CUB and NABirds), the L2 penalty on weights
outside normalization layers and the contrastive term. One replica-scaled
gradient step applies every optimizer to its own variables and is skipped
on every replica when it is not finite (`minimize`); `model.fit` and
`tnet_tf.distributed.train_loop` both run it (`replica_step`).
"""

from typing import Any

import keras
import tensorflow as tf

from tnet_tf import losses
from tnet_tf.models import replica_steps

_NORMALIZATION_LAYERS = (
    keras.layers.BatchNormalization,
    keras.layers.GroupNormalization,
    keras.layers.LayerNormalization,
)


class TrainingStep:
    """Training of a Keras model with a `config` (`l2_weight`,
    `contrastive_weight`, `contrastive_margin`) and a `feature_extractor`.

    Subclasses implement `compute_loss_terms` and call `track_metrics` once
    their layers exist.
    """

    backbone_optimizer = None
    loss_variant = "paper"

    # === Steps ===

    def compute_loss_terms(self, images, labels, training):
        """`(outputs, terms)` of one replica's batch: the output dict and
        scalar loss terms, `terms["loss"]` the total to minimize."""
        raise NotImplementedError

    def replica_step(self, images, labels):
        """One training step on one replica: the math shared by `train_step`
        and `tnet_tf.distributed.train_loop`. The replica-scaled loss's
        gradients are applied, then `after_applied_step`; a step with
        non-finite terms or gradients on any replica changes nothing and is
        counted in `skipped_steps` (see `minimize`)."""
        outputs, terms = self.minimize(
            lambda: self.compute_loss_terms(images, labels, True),
            update_state=self.after_applied_step,
        )
        return self.step_logs(labels, outputs, terms)

    def after_applied_step(self, terms):
        """Updates state other than the optimizers' after an applied step
        (nothing here)."""

    def step_logs(self, labels, outputs, terms):
        """Updates the metrics and returns the step's logs."""
        return self.update_metrics(labels, outputs["logits"], terms)

    def train_step(self, data):
        return self.replica_step(*replica_steps.unpack_batch(data))

    def test_step(self, data):
        images, labels = replica_steps.unpack_batch(data)
        outputs, terms = self.compute_loss_terms(images, labels, False)
        return self.step_logs(labels, outputs, terms)

    # === Training ===

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
        self._trackers[replica_steps.SKIPPED_STEPS] = (
            replica_steps.SkippedSteps()
        )
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
            self._trackers[replica_steps.SKIPPED_STEPS].update_state(skipped)
            # Metric variables are each replica's own (on-read), so this
            # branch needs no cross-replica call.
            tf.cond(skipped > 0, lambda: None, update_means)
        return {
            m.name: m.result()
            for m in self.metrics
            if m.name != replica_steps.SKIPPED_STEPS or skipped is not None
        }

    def compile(
        self,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        backbone_optimizer: str | keras.optimizers.Optimizer | None = None,
        loss_variant: str = "paper",
        **kwargs: Any,
    ) -> None:
        """Configures training.

        Args:
            optimizer: optimizer of every trainable weight, or only of the
                modules around the backbone when `backbone_optimizer` is set.
            backbone_optimizer: optional second optimizer for the feature
                extractor. The L2 penalty then covers only the other
                modules, as in the release (Q5).
            loss_variant: `"paper"` (TNet's eq. 3) or `"release"` (the
                release's per-feature cross-entropy and baseline target;
                see `tnet_tf.losses`). A baseline's loss is the same under
                both.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).
                No `loss`: the model trains with its own.
        """
        if loss_variant not in losses.LOSS_VARIANTS:
            raise ValueError(
                f"`loss_variant` must be one of {losses.LOSS_VARIANTS}, "
                f"got {loss_variant!r}."
            )
        self.loss_variant = loss_variant
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
        return replica_steps.finite_step(
            self.optimizer_groups,
            self.non_trainable_variables,
            compute_loss,
            update_state,
        )
