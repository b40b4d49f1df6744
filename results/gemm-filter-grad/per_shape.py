"""One convolution's filter gradient at a time: TensorFlow's (oneDNN's backward-weights convolution) against
the GEMM over the input's patches (resnet_perf.models.gemm_filter_grad.filter_gradient_gemm), float32 and
bfloat16, at the layer shapes of ResNet-18 at 32x32 (batch 256, the fast recipe) and ResNet-50 at 224x224
(batch 32).  Medians of 8 calls after one, each a tf.function (where TensorFlow's oneDNN rewrite applies).

    python results/gemm-filter-grad/per_shape.py > results/gemm-filter-grad/<date>-<machine>.txt
"""
import statistics
import time

import tensorflow as tf

from resnet_perf.config import gemm_pays
from resnet_perf.models.gemm_filter_grad import filter_gradient_gemm

# (model, stage and layer, batch, input side, in channels, kernel, out channels, stride)
SHAPES = [
    ("resnet18@32", "stem 7x7", 256, 32, 3, 7, 64, 2),
    ("resnet18@32", "stage1 3x3", 256, 8, 64, 3, 64, 1),
    ("resnet18@32", "stage2 3x3 s2", 256, 8, 64, 3, 128, 2),
    ("resnet18@32", "stage2 3x3", 256, 4, 128, 3, 128, 1),
    ("resnet18@32", "stage3 3x3 s2", 256, 4, 128, 3, 256, 2),
    ("resnet18@32", "stage3 3x3", 256, 2, 256, 3, 256, 1),
    ("resnet18@32", "stage4 3x3 s2", 256, 2, 256, 3, 512, 2),
    ("resnet18@32", "stage4 3x3", 256, 1, 512, 3, 512, 1),
    ("resnet50@224", "stage1 3x3", 32, 56, 64, 3, 64, 1),
    ("resnet50@224", "stage1 1x1 up", 32, 56, 64, 1, 256, 1),
    ("resnet50@224", "stage2 3x3 s2", 32, 56, 128, 3, 128, 2),
    ("resnet50@224", "stage2 3x3", 32, 28, 128, 3, 128, 1),
    ("resnet50@224", "stage3 3x3 s2", 32, 28, 256, 3, 256, 2),
    ("resnet50@224", "stage3 3x3", 32, 14, 256, 3, 256, 1),
    ("resnet50@224", "stage3 1x1 up", 32, 14, 256, 1, 1024, 1),
    ("resnet50@224", "stage4 3x3 s2", 32, 14, 512, 3, 512, 2),
    ("resnet50@224", "stage4 3x3", 32, 7, 512, 3, 512, 1),
    ("resnet50@224", "stage4 1x1 up", 32, 7, 512, 1, 2048, 1),
    ("resnet50@224", "stage4 1x1 down", 32, 7, 2048, 1, 512, 1),
]


def tensorflows(images, gradient, kernel, stride):
    return tf.raw_ops.Conv2DBackpropFilter(input=images, filter_sizes=[kernel, kernel, images.shape[-1],
                                                                       gradient.shape[-1]],
                                           out_backprop=gradient, strides=[1, stride, stride, 1], padding="SAME")


def median_ms(function, *args, calls=8):
    function(*args).numpy()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function(*args).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    print("| model | layer | filter gradient shape | output pixels | gemm_pays | fp32 conv ms | fp32 gemm ms | "
          "fp32 conv/gemm | bf16 conv ms | bf16 gemm ms | bf16 conv/gemm |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model, layer, batch, side, channels, kernel, filters, stride in SHAPES:
        out = -(-side // stride)
        images = tf.random.normal([batch, side, side, channels])
        gradient = tf.random.normal([batch, out, out, filters])
        conv = tf.function(lambda x, dy: tensorflows(x, dy, kernel, stride))
        gemm = tf.function(lambda x, dy: filter_gradient_gemm(x, dy, kernel, stride))
        times = []
        for dtype in (tf.float32, tf.bfloat16):
            x, dy = tf.cast(images, dtype), tf.cast(gradient, dtype)
            times += [median_ms(conv, x, dy), median_ms(gemm, x, dy)]
        fp32_conv, fp32_gemm, bf16_conv, bf16_gemm = times
        print(f"| {model} | {layer} | {kernel}x{kernel}x{channels}x{filters}, {batch}x{side}x{side} | {out * out} | "
              f"{gemm_pays(kernel, out * out, filters)} | {fp32_conv:.1f} | {fp32_gemm:.1f} | "
              f"{fp32_conv / fp32_gemm:.2f}x | {bf16_conv:.1f} | {bf16_gemm:.1f} | {bf16_conv / bf16_gemm:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
