"""Ways to compute a convolution's filter gradient with TensorFlow ops, one layer at a time (bfloat16, or the
dtype named on the command line):

- ``conv``: TensorFlow's ``Conv2DBackpropFilter`` (oneDNN's backward-weights convolution);
- ``gemm``: ``resnet_perf.models.gemm_filter_grad.filter_gradient_gemm`` (patches, then one matmul);
- ``transposed``: the same sum as a *forward* convolution, which oneDNN runs with its brgemm kernel on
  CPUs without AMX: the input with batch and channels swapped, (C_in, H, W, N), convolved with the
  output gradient as the kernel, (H_out, W_out, N, C_out), dilated by the stride; the result,
  (C_in, k, k, C_out), transposed to (k, k, C_in, C_out);
- ``width-folded``: as ``transposed``, with the kernel's width taps unrolled into the channels
  (N * W_out of them instead of N), so the forward convolution reduces over more channels per tap.

Shapes: ResNet-50 at 224x224, batch 32 (the issue's step) and ResNet-18 at 32x32, batch 256 (the
training recipe's model). Medians of 6 calls after 2, each a tf.function with one op at a time (2:1 pools).

    python results/bf16-step-limits/formulations.py [bfloat16|float32] \
        > results/bf16-step-limits/<date>-<machine>-<dtype>.md
"""
import statistics
import sys

import tensorflow as tf

from resnet_perf.bench.timing import finish, time_steps
from resnet_perf.models.gemm_filter_grad import filter_gradient_forward_conv, filter_gradient_gemm, same_padding

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)

# (model, layer, batch, input side, in channels, kernel, out channels, stride)
SHAPES = [
    ("resnet50@224", "stage1 3x3", 32, 56, 64, 3, 64, 1),
    ("resnet50@224", "stage2 3x3 s2", 32, 56, 128, 3, 128, 2),
    ("resnet50@224", "stage2 3x3", 32, 28, 128, 3, 128, 1),
    ("resnet50@224", "stage3 3x3 s2", 32, 28, 256, 3, 256, 2),
    ("resnet50@224", "stage3 3x3", 32, 14, 256, 3, 256, 1),
    ("resnet50@224", "stage4 3x3 s2", 32, 14, 512, 3, 512, 2),
    ("resnet50@224", "stage4 3x3", 32, 7, 512, 3, 512, 1),
    ("resnet18@32", "stage1 3x3", 256, 8, 64, 3, 64, 1),
    ("resnet18@32", "stage2 3x3 s2", 256, 8, 64, 3, 128, 2),
    ("resnet18@32", "stage2 3x3", 256, 4, 128, 3, 128, 1),
    ("resnet18@32", "stage3 3x3 s2", 256, 4, 128, 3, 256, 2),
    ("resnet18@32", "stage3 3x3", 256, 2, 256, 3, 256, 1),
    ("resnet18@32", "stage4 3x3 s2", 256, 2, 256, 3, 512, 2),
    ("resnet18@32", "stage4 3x3", 256, 1, 512, 3, 512, 1),
]


def conv(x, dy, k, s):
    return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[k, k, x.shape[-1], dy.shape[-1]], out_backprop=dy,
                                           strides=[1, s, s, 1], padding="SAME")


def width_folded(x, dy, k, s):
    n, _, _, c_in = x.shape
    _, h_out, w_out, c_out = dy.shape
    (top, bottom), (left, right) = (same_padding(x.shape[axis], dy.shape[axis], k, s) for axis in (1, 2))
    xp = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    # (N, H', W_out, k, C_in): each width tap's columns
    columns = tf.stack([xp[:, :, kw:kw + s * (w_out - 1) + 1:s, :] for kw in range(k)], axis=3)
    images = tf.reshape(tf.transpose(columns, [3, 4, 1, 0, 2]), [k * c_in, xp.shape[1], 1, n * w_out])
    kernel = tf.reshape(tf.transpose(dy, [1, 0, 2, 3]), [h_out, 1, n * w_out, c_out])
    out = tf.nn.conv2d(images, kernel, strides=1, padding="VALID", dilations=[s, 1])  # (k * C_in, k', 1, C_out)
    return tf.transpose(tf.reshape(out[:, :k], [k, c_in, k, c_out]), [2, 0, 1, 3])


FORMULATIONS = {"conv": conv, "gemm": filter_gradient_gemm, "transposed": filter_gradient_forward_conv,
                "width-folded": width_folded}


def median_ms(function, *args) -> float:
    return statistics.median(time_steps(lambda: finish(function(*args)), warmup=2, steps=6)) * 1e3


def main():
    dtype = tf.as_dtype(sys.argv[1] if len(sys.argv) > 1 else "bfloat16")
    print("| model | layer | filter gradient | GFLOP | " + " | ".join(f"{name} ms" for name in FORMULATIONS)
          + " | fastest | its GFLOP/s | largest error (of the norm) |")
    print("|---|---|---|---|" + "---|" * (len(FORMULATIONS) + 3))
    for model, layer, batch, side, channels, kernel, filters, stride in SHAPES:
        out = -(-side // stride)
        x = tf.cast(tf.random.normal([batch, side, side, channels], seed=1), dtype)
        dy = tf.cast(tf.random.normal([batch, out, out, filters], seed=2), dtype)
        reference = tf.cast(conv(x, dy, kernel, stride), tf.float32)
        times, error = {}, 0.0
        for name, formulation in FORMULATIONS.items():
            function = tf.function(lambda a, b, f=formulation: f(a, b, kernel, stride))
            error = max(error, float(tf.norm(tf.cast(function(x, dy), tf.float32) - reference) / tf.norm(reference)))
            times[name] = median_ms(function, x, dy)
        gflop = 2 * batch * out * out * channels * filters * kernel * kernel / 1e9
        fastest = min(times, key=times.get)
        print(f"| {model} | {layer} | {kernel}x{kernel}x{channels}x{filters}, {batch}x{side}x{side} | {gflop:.1f} | "
              + " | ".join(f"{ms:.1f}" for ms in times.values())
              + f" | {fastest} | {gflop / times[fastest] * 1e3:.0f} | {error:.0e} |", flush=True)


if __name__ == "__main__":
    main()
