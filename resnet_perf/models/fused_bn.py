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

In training, a wide NHWC input (``resnet_perf.config.batch_norm_as_rows``: ResNet-50's expanded layers at 224x224)
goes to the kernel reshaped to (N x H x W, 1, 1, C) rows, a view of the same memory with the same values per
channel: oneDNN's batch norm (``bnorm_tbb_jit``) walks such rows 1.2-1.8x faster than the 4-D tensor in bfloat16
(1.03-1.16x in float32); a ResNet-50 bf16 training step's batch norms took 135 ms instead of 184 (Zen 5,
docs/models.md).
Inference keeps the 4-D shape, where grappler folds the kernel into the convolution before it; ``rows=False``
keeps it where a ReLU follows, which grappler fuses into the kernel only when nothing comes between them.

One difference: TensorFlow raises an epsilon below 1.001e-5 to 1.001e-5 (this suite's 1e-5 becomes
1.001e-5), a relative change of the normalization below 1e-6 for any variance above 1e-3.  The
tests check the agreement with Keras's layer on the same weights.
"""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from resnet_perf.config import batch_norm_as_rows


class FusedBatchNorm(keras.layers.Layer):
    """Keras's ``BatchNormalization(axis, momentum, epsilon)`` on NHWC or NCHW, as fused ops; ``rows``: may train on a
    wide NHWC input viewed as rows (``as_rows``, decided when built)."""

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, gamma_initializer: str = "ones",
                 rows: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if axis not in (-1, 1, 3):
            raise ValueError(f"FusedBatchNorm normalizes the channels of a 4-D input (axis 1, 3 or -1), not axis {axis}")
        self.axis, self.momentum, self.epsilon = axis, momentum, epsilon
        self.gamma_initializer = gamma_initializer
        self.rows = rows

    def build(self, input_shape) -> None:
        shape = (input_shape[self.axis],)
        self.gamma = self.add_weight(shape=shape, name="gamma", initializer=self.gamma_initializer,
                                     autocast=False)
        self.beta = self.add_weight(shape=shape, name="beta", initializer="zeros", autocast=False)
        self.moving_mean = self.add_weight(shape=shape, name="moving_mean", initializer="zeros", trainable=False,
                                           autocast=False)
        self.moving_variance = self.add_weight(shape=shape, name="moving_variance", initializer="ones",
                                               trainable=False, autocast=False)
        height, width = (input_shape[1], input_shape[2]) if self.axis != 1 else (None, None)
        self.as_rows = self.rows and None not in (height, width) and batch_norm_as_rows(height, width, shape[0])

    def call(self, inputs, training: bool | None = None):
        data_format = "NCHW" if self.axis == 1 else "NHWC"
        if not training:
            outputs, _mean, _variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, data_format=data_format, is_training=False)
            return outputs
        values = tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]]) if self.as_rows else inputs
        outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            values, self.gamma, self.beta, epsilon=self.epsilon, data_format=data_format, is_training=True)
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[self.axis], tf.float32)
        variance = unbiased * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.reshape(outputs, tf.shape(inputs)) if self.as_rows else outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "gamma_initializer": self.gamma_initializer, "rows": self.rows}
