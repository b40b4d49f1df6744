"""Ways to compute a 1x1 convolution's filter gradient with TensorFlow ops, one layer at a time, at ResNet-50's
1x1 shapes (224x224, batch 32), in bfloat16 or the dtype named on the command line:

- ``conv``: TensorFlow's ``Conv2DBackpropFilter`` (oneDNN's ``jit_bf16_1x1`` / ``jit_1x1`` backward-weights kernel
  on a CPU without AMX);
- ``mm_ta``: the pixels x in-channels input times the pixels x out-channels output gradient, ``transpose_a``
  (one oneDNN matmul; a stride-2 layer first takes every other pixel);
- ``tr_mm``: the input transposed by its own op, then the matmul;
- ``mm_tb_t``: the output gradient transposed times the input (the gradient transposed), then transposed;
- ``fwd1x1``: one forward 1x1 convolution, the transposed input (in channels as pixels, all pixels as channels)
  with the output gradient as the kernel;
- ``fwd_split``: the same with the batch as pixels and each image's pixels as channels.

Medians of 6 calls after 2, each a tf.function with one op at a time (2:1 pools). A second argument names the
forms besides ``conv`` (``mm_ta,tr_mm``).

    python results/zen5-1x1/one_by_one.py [bfloat16|float32] [FORMS] > results/zen5-1x1/<date>-<machine>-<dtype>.md
"""
import statistics
import sys

import tensorflow as tf

from resnet_perf.bench.timing import finish, time_steps

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)

# (layer, batch, input side, in channels, out channels, stride)
SHAPES = [
    ("s1 reduce 64>64", 32, 56, 64, 64, 1),
    ("s1 expand 64>256", 32, 56, 64, 256, 1),
    ("s1 reduce 256>64", 32, 56, 256, 64, 1),
    ("s2 reduce 256>128", 32, 56, 256, 128, 1),
    ("s2 expand 128>512", 32, 28, 128, 512, 1),
    ("s2 reduce 512>128", 32, 28, 512, 128, 1),
    ("s2 proj 256>512 s2", 32, 56, 256, 512, 2),
    ("s3 expand 256>1024", 32, 14, 256, 1024, 1),
    ("s3 reduce 1024>256", 32, 14, 1024, 256, 1),
    ("s4 expand 512>2048", 32, 7, 512, 2048, 1),
    ("s4 reduce 2048>512", 32, 7, 2048, 512, 1),
]


def conv(x, dy, s):
    return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[1, 1, x.shape[-1], dy.shape[-1]], out_backprop=dy,
                                           strides=[1, s, s, 1], padding="SAME")


def flat(x, dy, s):
    if s > 1:
        x = x[:, ::s, ::s, :]
    return tf.reshape(x, [-1, x.shape[-1]]), tf.reshape(dy, [-1, dy.shape[-1]])


def mm_ta(x, dy, s):
    a, b = flat(x, dy, s)
    return tf.reshape(tf.matmul(a, b, transpose_a=True), [1, 1, a.shape[1], b.shape[1]])


def tr_mm(x, dy, s):
    a, b = flat(x, dy, s)
    return tf.reshape(tf.matmul(tf.transpose(a), b), [1, 1, a.shape[1], b.shape[1]])


def mm_tb_t(x, dy, s):
    a, b = flat(x, dy, s)
    return tf.reshape(tf.transpose(tf.matmul(b, a, transpose_a=True)), [1, 1, a.shape[1], b.shape[1]])


def fwd1x1(x, dy, s):
    a, b = flat(x, dy, s)
    pixels = a.shape[0]
    images = tf.reshape(tf.transpose(a), [1, a.shape[1], 1, pixels])
    out = tf.nn.conv2d(images, tf.reshape(b, [1, 1, pixels, b.shape[1]]), strides=1, padding="VALID")
    return tf.reshape(out, [1, 1, a.shape[1], b.shape[1]])


def fwd_split(x, dy, s):
    if s > 1:
        x = x[:, ::s, ::s, :]
    n, h, w, c = x.shape
    images = tf.reshape(tf.transpose(tf.reshape(x, [n, h * w, c]), [2, 0, 1]), [c, 1, n, h * w])
    out = tf.nn.conv2d(images, tf.reshape(dy, [1, n, h * w, dy.shape[-1]]), strides=1, padding="VALID")
    return tf.reshape(out, [1, 1, c, dy.shape[-1]])


FORMS = {"conv": conv, "mm_ta": mm_ta, "tr_mm": tr_mm, "mm_tb_t": mm_tb_t, "fwd1x1": fwd1x1, "fwd_split": fwd_split}


def median_ms(function, *args) -> float:
    return statistics.median(time_steps(lambda: finish(function(*args)), warmup=2, steps=6)) * 1e3


def main():
    dtype = tf.as_dtype(sys.argv[1] if len(sys.argv) > 1 else "bfloat16")
    forms = {name: FORMS[name] for name in ["conv", *sys.argv[2].split(",")]} if len(sys.argv) > 2 else FORMS
    print("| layer | GFLOP | " + " | ".join(f"{name} ms" for name in forms) + " | best GFLOP/s | largest error |")
    print("|---|---|" + "---|" * (len(forms) + 2))
    totals = dict.fromkeys(forms, 0.0)
    for name, batch, side, channels, filters, stride in SHAPES:
        out = -(-side // stride)
        x = tf.cast(tf.random.normal([batch, side, side, channels], seed=1), dtype)
        dy = tf.cast(tf.random.normal([batch, out, out, filters], seed=2), dtype)
        reference = tf.cast(conv(x, dy, stride), tf.float32)
        times, error = {}, 0.0
        for form, compute in forms.items():
            function = tf.function(lambda a, b, f=compute: f(a, b, stride))
            error = max(error, float(tf.norm(tf.cast(function(x, dy), tf.float32) - reference) / tf.norm(reference)))
            times[form] = median_ms(function, x, dy)
            totals[form] += times[form]
        gflop = 2 * batch * out * out * channels * filters / 1e9
        print(f"| {name} | {gflop:.2f} | " + " | ".join(f"{ms:.1f}" for ms in times.values())
              + f" | {gflop / min(times.values()) * 1e3:.0f} | {error:.0e} |", flush=True)
    print("| total (one of each) | | " + " | ".join(f"{ms:.1f}" for ms in totals.values()) + " | | |")


if __name__ == "__main__":
    main()
