"""A residual block's tail, relu(residual + shortcut), as one native op each way: ``ResidualReLU``.

TensorFlow computes the tail as ``AddV2`` then ``Relu``, and where the block's output feeds two ops (the next
block's first convolution and its shortcut) the gradient as ``AddN`` then ``ReluGrad``: four passes over the
block's widest tensor, which its bfloat16 kernels make slow (``resnet_perf/kernels/residual_relu.cc``). This
layer computes the same bits with ``ResidualRelu`` and ``ResidualReluGrad``, and hands its output out once per
consumer (``copies``), so that the gradients of the two consumers reach its gradient apart and are summed in the
same pass as the ReLU's mask. Where the kernels are not built (no compiler: ``load_kernels().status``), the
dtype has none (float16) or TensorFlow sees a GPU (the kernels are CPU kernels: a GPU's tensors would travel to the
host and back for each block), it runs TensorFlow's ops: the same values.
"""
from __future__ import annotations

import warnings
from typing import Any

import keras
import tensorflow as tf

from resnet_perf.kernels.build import load_kernels, native_kernels
from resnet_perf.machine.runtime import gpus

NATIVE_DTYPES = (tf.float32, tf.bfloat16)


def residual_relu(residual: tf.Tensor, shortcut: tf.Tensor, copies: int = 1) -> list[tf.Tensor]:
    """relu(``residual`` + ``shortcut``) ``copies`` times (1 or 2), each consumer's gradient its own."""
    kernels = native_kernels()
    if kernels is None or residual.dtype not in NATIVE_DTYPES or gpus():
        output = tf.nn.relu(residual + shortcut)
        return [output] * copies

    @tf.custom_gradient
    def merge(residual: tf.Tensor, shortcut: tf.Tensor):
        output = kernels.residual_relu(residual, shortcut)

        def gradient(*upstream: tf.Tensor):
            backprop = kernels.residual_relu_grad(list(upstream), output)
            return backprop, backprop

        return [output] * copies, gradient

    return merge(residual, shortcut)


class ResidualReLU(keras.layers.Layer):
    """``relu(residual + shortcut)`` (Keras's ``Add`` then ``ReLU``): one tensor, or a list of two copies."""

    def __init__(self, copies: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if copies not in (1, 2):
            raise ValueError(f"ResidualReLU hands its output to one or two consumers, not {copies}")
        self.copies = copies
        if native_kernels() is None:  # once per process: warnings show a line once
            warnings.warn(f"native kernels {load_kernels().status}: the block tails run TensorFlow's ops (the same "
                          "values, slower)", stacklevel=2)

    def call(self, residual, shortcut):
        outputs = residual_relu(residual, shortcut, self.copies)
        return outputs if self.copies > 1 else outputs[0]

    def compute_output_shape(self, residual_shape, shortcut_shape):
        return [residual_shape] * self.copies if self.copies > 1 else residual_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "copies": self.copies}
