"""The loss and the optimizer, shared by the step benchmarks and Fashion-MNIST training.

One definition, so the training step the suite times is the step ``python -m resnet_perf.train``
runs: softmax cross-entropy on float32 logits, SGD with momentum, and dynamic loss scaling where
float16 gradients could underflow; and the learning-rate schedules training uses.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from resnet_perf.precision import LOSS_SCALED_PRECISIONS

MOMENTUM = 0.9


def logits_and_loss(model: keras.Model, images: tf.Tensor, labels: tf.Tensor, global_batch_size: int | None = None,
                    label_smoothing: float = 0.0) -> tuple[tf.Tensor, tf.Tensor]:
    """Training-mode logits (float32) and the mean cross-entropy (against labels smoothed by
    ``label_smoothing``: that share of each label's probability spread over all classes).

    ``global_batch_size``: under a distribution strategy, each replica's loss is averaged over the
    global batch so that summing the replicas' gradients gives the gradient of the global mean.
    """
    logits = tf.cast(model(images, training=True), tf.float32)  # peer models may return bf16/fp16
    if label_smoothing:
        per_image = keras.losses.categorical_crossentropy(tf.one_hot(labels, tf.shape(logits)[-1]), logits,
                                                          from_logits=True, label_smoothing=label_smoothing)
    else:
        per_image = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    if global_batch_size is None:
        return logits, tf.reduce_mean(per_image)
    return logits, tf.nn.compute_average_loss(per_image, global_batch_size=global_batch_size)


def make_optimizer(precision: str, learning_rate, *, momentum: float = MOMENTUM, nesterov: bool = False,
                   weight_decay: float | None = None, clip_norm: float | None = None) -> keras.optimizers.Optimizer:
    """SGD with momentum (0.9 unless told; optionally Nesterov, decoupled weight decay and gradients
    clipped to a global norm), wrapped in dynamic loss scaling under ``mixed_fp16`` (which unscales
    the gradients before they are clipped)."""
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov and momentum > 0,
                                     weight_decay=weight_decay or None, global_clipnorm=clip_norm or None)
    if precision in LOSS_SCALED_PRECISIONS:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def is_loss_scaled(optimizer: keras.optimizers.Optimizer) -> bool:
    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear from 0 up to ``peak`` over ``warmup`` steps, then linear down to 0 at step ``total``."""

    def __init__(self, peak: float, warmup: int, total: int) -> None:
        self.peak, self.warmup, self.total = peak, warmup, total

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rising = step / self.warmup
        falling = (self.total - step) / max(self.total - self.warmup, 1)
        return self.peak * tf.clip_by_value(tf.minimum(rising, falling), 0.0, 1.0)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


def learning_rate_schedule(name: str, peak: float, total_steps: int, warmup_steps: int):
    """``constant``: ``peak`` throughout; ``cosine`` / ``linear``: a linear warm-up to ``peak`` over
    ``warmup_steps``, then cosine or linear decay to 0 at ``total_steps``."""
    if name == "constant":
        return peak
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=total_steps - warmup_steps, warmup_target=peak,
                                                      warmup_steps=warmup_steps)
    return LinearWarmupDecay(peak, warmup_steps, total_steps)
