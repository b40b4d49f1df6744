"""Batch normalization as one fused TensorFlow op per layer: ``FusedBatchNorm``.

Keras 3's ``BatchNormalization`` computes its moments and the normalization from separate ops
(mean, squared difference, multiply, add, ... in the forward pass and as many in the backward pass);
on a CPU those elementwise ops take a good share of a small ResNet's step.  TensorFlow's fused
kernel (``FusedBatchNormV3`` and its gradient, which oneDNN implements) does the same work as one op
each way.  This layer holds the same four weights as Keras's (gamma, beta, moving mean, moving
variance, in that order, float32 under mixed precision) and computes the same function:

- training: the batch's mean and biased variance normalize it; the moving averages are updated
  with the same momentum as Keras's (the fused kernel returns the unbiased variance, which is scaled
  back by (n - 1) / n, n the values per channel, so the moving variance matches Keras's);
- inference: the moving averages normalize.

Under a mixed policy the kernel runs in the compute dtype (bfloat16 or float16 values in and out)
with float32 statistics: the kernels (oneDNN's and TensorFlow's own) sum each channel's values, and
the gamma and beta gradients, in float32 (``tests/models/test_fused_bn.py`` holds them to float32's
results: ``BF16_TOLERANCES``), so the layer needs no float32 copy of its input, as Keras's layer makes.

One difference: TensorFlow raises an epsilon below 1.001e-5 to 1.001e-5 (this suite's 1e-5 becomes
1.001e-5), a relative change of the normalization below 1e-6 for any variance above 1e-3.  The
tests check the agreement with Keras's layer on the same weights.
"""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


class FusedBatchNorm(keras.layers.Layer):
    """Keras's ``BatchNormalization(axis, momentum, epsilon)`` on NHWC or NCHW, as fused ops."""

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, gamma_initializer: str = "ones",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if axis not in (-1, 1, 3):
            raise ValueError(f"FusedBatchNorm normalizes the channels of a 4-D input (axis 1, 3 or -1), not axis {axis}")
        self.axis, self.momentum, self.epsilon = axis, momentum, epsilon
        self.gamma_initializer = gamma_initializer

    def build(self, input_shape) -> None:
        shape = (input_shape[self.axis],)
        self.gamma = self.add_weight(shape=shape, name="gamma", initializer=self.gamma_initializer,
                                     autocast=False)
        self.beta = self.add_weight(shape=shape, name="beta", initializer="zeros", autocast=False)
        self.moving_mean = self.add_weight(shape=shape, name="moving_mean", initializer="zeros", trainable=False,
                                           autocast=False)
        self.moving_variance = self.add_weight(shape=shape, name="moving_variance", initializer="ones",
                                               trainable=False, autocast=False)

    def call(self, inputs, training: bool | None = None):
        data_format = "NCHW" if self.axis == 1 else "NHWC"
        if not training:
            outputs, _mean, _variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, data_format=data_format, is_training=False)
            return outputs
        outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, data_format=data_format, is_training=True)
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[self.axis], tf.float32)
        variance = unbiased * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "gamma_initializer": self.gamma_initializer}
