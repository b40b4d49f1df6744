"""The block tail's elementwise work on ResNet-50's widest tensor (32x56x56x256), TensorFlow's ops against the same
function compiled by XLA (one fused loop), 2 threads; medians of 15 calls, ms.

    python results/zen5-step-levers/elementwise_xla.py
"""
import time, statistics
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
shape = (32, 56, 56, 256)
def med(fn, *a, n=15):
    fn(*a)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); r = fn(*a); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3
for dt in (tf.bfloat16, tf.float32):
    a, b, dy = (tf.cast(tf.random.normal(shape), dt) for _ in range(3))
    y = tf.nn.relu(a)
    def addrelu(a, b): return tf.nn.relu(a + b)
    def addn_relugrad(g1, g2, y): return tf.raw_ops.ReluGrad(gradients=tf.add_n([g1, g2]), features=y)
    def relugrad(g, y): return tf.raw_ops.ReluGrad(gradients=g, features=y)
    def bits_relugrad(g, y):
        gi, yi = tf.bitcast(g, tf.int16), tf.bitcast(y, tf.int16)
        return tf.bitcast(tf.where(yi > 0, gi, tf.zeros_like(gi)), dt)
    for name, f, args in (("add+relu", addrelu, (a, b)), ("addn+relugrad", addn_relugrad, (a, b, y)), ("relugrad", relugrad, (a, y))) + \
            ((("bits relugrad", bits_relugrad, (a, y)),) if dt == tf.bfloat16 else ()):
        tfm = med(tf.function(f), *args)
        xla = med(tf.function(f, jit_compile=True), *args) if "bits" not in name else float("nan")
        print(f"{dt.name:9s} {name:15s} tf {tfm:6.1f} ms   xla {xla:6.1f} ms", flush=True)
