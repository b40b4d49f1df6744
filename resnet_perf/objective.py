"""The loss and the optimizer, shared by the step benchmarks and Fashion-MNIST training.

One definition, so the training step the suite times is the step ``python -m resnet_perf.train``
runs: softmax cross-entropy on float32 logits, SGD with momentum, and dynamic loss scaling where
float16 gradients could underflow.
"""
from __future__ import annotations

import keras
import tensorflow as tf

MOMENTUM = 0.9


def logits_and_loss(model: keras.Model, images: tf.Tensor, labels: tf.Tensor,
                    global_batch_size: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Training-mode logits (float32) and the mean cross-entropy.

    ``global_batch_size``: under a distribution strategy, each replica's loss is averaged over the
    global batch so that summing the replicas' gradients gives the gradient of the global mean.
    """
    logits = tf.cast(model(images, training=True), tf.float32)  # peer models may return bf16/fp16
    per_image = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    if global_batch_size is None:
        return logits, tf.reduce_mean(per_image)
    return logits, tf.nn.compute_average_loss(per_image, global_batch_size=global_batch_size)


def make_optimizer(precision: str, learning_rate, *, nesterov: bool = False,
                   weight_decay: float | None = None) -> keras.optimizers.Optimizer:
    """SGD with momentum 0.9 (optionally Nesterov and decoupled weight decay), wrapped in dynamic
    loss scaling under ``mixed_fp16``."""
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=MOMENTUM, nesterov=nesterov,
                                     weight_decay=weight_decay or None)
    if precision == "mixed_fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def is_loss_scaled(optimizer: keras.optimizers.Optimizer) -> bool:
    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
