"""The filter gradient of each 3x3 (and the stem 7x7) layer of ResNet-50 at 224x224, batch 32, one layer at a time,
2 threads: the forward convolution for reference, TensorFlow's Conv2DBackpropFilter, and our two forms
(resnet_perf.models.gemm_filter_grad: the forward-convolution form and the patches' GEMM). Medians of 9 calls, ms.

    python results/zen5-step-levers/three_by_three.py bfloat16|float32
"""
import statistics, sys, time
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
from resnet_perf.models.gemm_filter_grad import filter_gradient_forward_conv, filter_gradient_gemm
dt = tf.bfloat16 if sys.argv[1] == "bfloat16" else tf.float32
N = 32
LAYERS = [("stem 7x7 3>64 s2", 224, 3, 64, 7, 2), ("s1 3x3 64 56", 56, 64, 64, 3, 1), ("s2 3x3 128 s2", 56, 128, 128, 3, 2),
          ("s2 3x3 128 28", 28, 128, 128, 3, 1), ("s3 3x3 256 s2", 28, 256, 256, 3, 2), ("s3 3x3 256 14", 14, 256, 256, 3, 1),
          ("s4 3x3 512 s2", 14, 512, 512, 3, 2), ("s4 3x3 512 7", 7, 512, 512, 3, 1)]
def med(fn, *a, n=9):
    fn(*a).numpy()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(*a).numpy(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3
print("| layer | fwd ms | conv bwd-filter ms | fwd-conv form ms | gemm form ms | conv/fwd |")
print("|---|---|---|---|---|---|")
for name, size, cin, cout, k, s in LAYERS:
    x = tf.cast(tf.random.normal([N, size, size, cin]), dt)
    w = tf.cast(tf.random.normal([k, k, cin, cout]) * 0.05, dt)
    osz = -(-size // s)
    dy = tf.cast(tf.random.normal([N, osz, osz, cout]), dt)
    fwd = tf.function(lambda x, w: tf.nn.conv2d(x, w, s, "SAME"))
    conv = tf.function(lambda x, dy: tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[k, k, cin, cout], out_backprop=dy,
                                                                     strides=[1, s, s, 1], padding="SAME"))
    fc = tf.function(lambda x, dy: filter_gradient_forward_conv(x, dy, k, s))
    gm = tf.function(lambda x, dy: filter_gradient_gemm(x, dy, k, s))
    a, b, c, d = med(fwd, x, w), med(conv, x, dy), med(fc, x, dy), med(gm, x, dy)
    print(f"| {name} | {a:.1f} | {b:.1f} | {c:.1f} | {d:.1f} | {b/a:.2f} |", flush=True)
