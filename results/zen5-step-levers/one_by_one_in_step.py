"""The stride-1 1x1 filter gradients at 28x28 output pixels or fewer as one matrix product (the flattened input,
transposed, times the output gradient: oneDNN's brgemm matmul instead of its JIT backward-weights kernel, which the
per-layer table in results/zen5-1x1/ found 1.1-1.6x faster there) in the whole training step: ResNet-50 with the
fused batch norm and gemm filter gradients as built, against the same model with those 1x1 layers changed, one step
each in alternating order in one process (``resnet_perf.interleave``; 224x224, batch 32, the suite's threads).

    python results/zen5-step-levers/one_by_one_in_step.py [PRECISION] [ROUNDS]     # default amp_bf16 12
"""
import sys

import tensorflow as tf

from resnet_perf.bench.steps import Step
from resnet_perf.config import GEMM_FILTER_GRADIENT_SCOPE, RunConfig
from resnet_perf.machine.switches import ProcessSettings, prepare_process
from resnet_perf.models import gemm_filter_grad
from resnet_perf.models.gemm_filter_grad import GemmFilterGradConv2D

from alternate import alternate, comparison  # beside this script

precision = sys.argv[1] if len(sys.argv) > 1 else "amp_bf16"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 12
config = RunConfig(depth=50, batch_size=32, image_size=224, precision=precision, batch_norm="fused", filter_grad="gemm")
prepare_process(ProcessSettings.of(config))


class OneByOneAsMatmul(GemmFilterGradConv2D):
    def build(self, input_shape) -> None:
        super().build(input_shape)
        pixels = input_shape[1] * input_shape[2]
        self.as_matmul = self.kernel_size[0] == 1 and self.strides[0] == 1 and pixels <= 28 * 28

    def convolution_op(self, inputs, kernel):
        if not self.as_matmul:
            return super().convolution_op(inputs, kernel)

        @tf.custom_gradient
        def convolution(images, weights):
            def gradient(output_gradient):
                image_gradient = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(images), filter=weights, out_backprop=output_gradient, strides=[1, 1, 1, 1],
                    padding="SAME")
                in_channels, filters = images.shape[-1], output_gradient.shape[-1]
                with tf.name_scope(GEMM_FILTER_GRADIENT_SCOPE):
                    product = tf.matmul(tf.reshape(images, [-1, in_channels]),
                                        tf.reshape(output_gradient, [-1, filters]), transpose_a=True)
                return image_gradient, tf.reshape(product, [1, 1, in_channels, filters])

            return tf.nn.conv2d(images, weights, strides=1, padding="SAME"), gradient

        return convolution(inputs, tf.convert_to_tensor(kernel))


steps = {"as built": Step(config, "train")}
steps["as built"]()
gemm_filter_grad.GemmFilterGradConv2D = OneByOneAsMatmul  # the model builder imports the layer from there
steps["1x1 as matmul"] = Step(config, "train")
steps["1x1 as matmul"]()
gemm_filter_grad.GemmFilterGradConv2D = GemmFilterGradConv2D
changed = [layer.name for layer in steps["1x1 as matmul"].model.layers if getattr(layer, "as_matmul", False)]
print(f"{len(changed)} layers' filter gradients as a matmul: {', '.join(changed[:3])}, ...", flush=True)

print(f"{precision}: {comparison(alternate(steps, rounds), 'as built', '1x1 as matmul')}")
