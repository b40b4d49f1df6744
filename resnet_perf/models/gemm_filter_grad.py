"""A convolution whose filter gradient bypasses oneDNN's backward-weights kernel: ``GemmFilterGradConv2D``.

Without AMX, oneDNN (v3.7, TensorFlow 2.21) computes a convolution's filter gradient with its
older JIT kernels (``jit:avx512_core``, ``jit_bf16:avx512_core_bf16``: its brgemm backward-weights
convolution is registered for AMX only), and those lose most where a layer has few pixels and many
channels: a 3x3, 512-channel layer on 1x1 pixels (ResNet-18 at 32x32, batch 256) takes 37.6 ms in
bfloat16 and 16.6 ms in float32, and the same gradient as an im2col GEMM (``extract_patches`` then
one matrix product, which oneDNN runs with its brgemm matmul) 6.3 and 9.1 ms (Zen 4,
``docs/measurements/2026-12-07-zen4-gemm-filter-gradient.md``).  Where a layer has many pixels and
few channels the patches cost more than they save (a 3x3, 64-channel layer on 56x56 pixels: 2.1-2.5x
slower), so the GEMM is used only where ``resnet_perf.config.gemm_pays`` says so; every other layer
keeps TensorFlow's own gradient.

In bfloat16 the same sum runs faster as a *forward* convolution, which oneDNN computes with its brgemm
kernel on any AVX-512 CPU (``filter_gradient_forward_conv``): on the training recipe's model at 32x32 the filter
gradients of stages 2 to 4 then take 2.3-4.4 ms a layer against 2.4-8.0 as GEMMs and 5.7-25 with TensorFlow's
kernel, and its step 4-7% faster than with the GEMMs (``docs/measurements/2026-12-07-zen4-bf16-step-limits.md``);
in float32 neither form leads on the layers the rule takes (ResNet-18's stage 4: 7.9 ms as a GEMM, 9.2 as a
forward convolution; ResNet-50's: 42.1 against 40.7), so float32 keeps the GEMM and the layer picks the form
by its compute dtype.

The forward pass and the input gradient are TensorFlow's ``Conv2D`` and ``Conv2DBackpropInput``,
unchanged; the filter gradient is the same sum, in another order (within rounding of the conv
kernel's: ``tests/models/test_gemm_filter_grad.py``).
"""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from resnet_perf.config import GEMM_FILTER_GRADIENT_SCOPE, gemm_pays


def filter_gradient_gemm(inputs: tf.Tensor, output_gradient: tf.Tensor, kernel_size: int, stride: int) -> tf.Tensor:
    """d loss / d kernel of a ``same``-padded NHWC convolution: (patches of ``inputs``)^T x ``output_gradient``,
    shaped (kernel, kernel, in channels, out channels)."""
    in_channels, filters = inputs.shape[-1], output_gradient.shape[-1]
    with tf.name_scope(GEMM_FILTER_GRADIENT_SCOPE):  # so a trace's breakdown counts these ops as filter gradients
        patches = tf.image.extract_patches(inputs, sizes=[1, kernel_size, kernel_size, 1],
                                           strides=[1, stride, stride, 1], rates=[1, 1, 1, 1], padding="SAME")
        product = tf.matmul(tf.reshape(patches, [-1, kernel_size * kernel_size * in_channels]),
                            tf.reshape(output_gradient, [-1, filters]), transpose_a=True)
        return tf.reshape(product, [kernel_size, kernel_size, in_channels, filters])


def same_padding(size: int, output_size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """``same`` padding's (before, after) along one side, as TensorFlow pads (the odd pixel after)."""
    total = max((output_size - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def filter_gradient_forward_conv(inputs: tf.Tensor, output_gradient: tf.Tensor, kernel_size: int,
                                 stride: int) -> tf.Tensor:
    """``filter_gradient_gemm``'s result as one forward convolution: the padded input with batch and channels
    swapped, (in channels, height, width, batch), convolved with the output gradient as its kernel, (out height,
    out width, batch, out channels), dilated by the stride; each output pixel is one kernel tap."""
    with tf.name_scope(GEMM_FILTER_GRADIENT_SCOPE):
        padding = [[0, 0]] + [list(same_padding(inputs.shape[axis], output_gradient.shape[axis], kernel_size, stride))
                              for axis in (1, 2)] + [[0, 0]]
        images = tf.transpose(tf.pad(inputs, padding), [3, 1, 2, 0])
        kernel = tf.transpose(output_gradient, [1, 2, 0, 3])
        taps = tf.nn.conv2d(images, kernel, strides=1, padding="VALID", dilations=stride)
        # a stride that does not divide the padded size leaves a last row and column beyond the kernel
        return tf.transpose(taps[:, :kernel_size, :kernel_size, :], [1, 2, 0, 3])


class GemmFilterGradConv2D(keras.layers.Conv2D):
    """Keras's ``Conv2D`` (``same`` padding, NHWC, no dilation) whose filter gradient is ``filter_gradient_gemm``
    (float32) or ``filter_gradient_forward_conv`` (bfloat16) when ``gemm_pays`` for its shape and compute dtype
    (``uses_gemm``, decided when the layer is built), TensorFlow's otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.padding != "same" or self.data_format != "channels_last" or self.dilation_rate != (1, 1):
            raise ValueError("GemmFilterGradConv2D takes same padding, channels_last and no dilation")
        if self.kernel_size[0] != self.kernel_size[1] or self.strides[0] != self.strides[1]:
            raise ValueError("GemmFilterGradConv2D takes square kernels and strides")
        self.uses_gemm = False

    def build(self, input_shape) -> None:
        super().build(input_shape)
        if None in input_shape[1:3]:  # an image size known only when it runs: TensorFlow's gradient
            return
        height, width = (-(-size // self.strides[0]) for size in input_shape[1:3])
        self.uses_gemm = gemm_pays(self.kernel_size[0], height * width, self.filters,
                                   bfloat16=self.compute_dtype == "bfloat16")

    def convolution_op(self, inputs, kernel):
        if not self.uses_gemm:
            return super().convolution_op(inputs, kernel)
        size, stride, name = self.kernel_size[0], self.strides[0], self.name
        strides = [1, stride, stride, 1]

        @tf.custom_gradient
        def convolution(images, weights):
            def gradient(output_gradient):
                with tf.name_scope(name):  # a custom gradient's ops are named outside the layer's scope
                    image_gradient = tf.raw_ops.Conv2DBackpropInput(
                        input_sizes=tf.shape(images), filter=weights, out_backprop=output_gradient, strides=strides,
                        padding="SAME")
                    # under amp_bf16 the layer is float32 here, and grappler rewrites whichever form it takes
                    form = filter_gradient_forward_conv if images.dtype == tf.bfloat16 else filter_gradient_gemm
                    return image_gradient, form(images, output_gradient, size, stride)

            return tf.nn.conv2d(images, weights, strides=strides, padding="SAME"), gradient

        # a tensor, not the variable: the gradient reaches the variable through its read
        return convolution(inputs, tf.convert_to_tensor(kernel))
