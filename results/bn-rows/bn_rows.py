"""The fused batch norm's kernel (oneDNN's, through tf.compat.v1.nn.fused_batch_norm) on ResNet-50's batch-norm
shapes at 224x224, batch 32 (and two of the recipe's ResNet-18 at 32x32, batch 256), training mode, 2 threads:
the 4-D NHWC tensor against the same tensor reshaped to (N x H x W, 1, 1, C) rows. Medians of 11 calls, forward
alone and forward + backward (backward = the difference).

    python results/bn-rows/bn_rows.py > results/bn-rows/<date>-<machine>-bn-rows.txt
"""
import time, statistics, sys
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
def med(fn, *a, n=11):
    fn(*a)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(*a); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3
for dt in (tf.bfloat16, tf.float32):
    for base in ((32, 56, 56, 64), (32, 28, 28, 128), (32, 14, 14, 256), (32, 7, 7, 512), (32, 56, 56, 256), (32, 28, 28, 512),
                 (32, 14, 14, 1024), (32, 7, 7, 2048), (256, 8, 8, 128), (256, 4, 4, 256)):
        c = base[-1]
        g, b = tf.ones([c]), tf.zeros([c])
        x0 = tf.cast(tf.random.normal(base) * 2 + 1, dt); dy0 = tf.cast(tf.random.normal(base), dt)
        out = []
        for shape in (base, (-1, 1, 1, c)):
            x = tf.reshape(x0, shape); dy = tf.reshape(dy0, shape)
            def fwd(x):
                return tf.compat.v1.nn.fused_batch_norm(x, g, b, epsilon=1e-5, is_training=True)[0]
            def fwdbwd(x, dy):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = tf.compat.v1.nn.fused_batch_norm(x, g, b, epsilon=1e-5, is_training=True)[0]
                return tape.gradient(y, x, output_gradients=dy)
            f = med(tf.function(fwd), x); fb = med(tf.function(fwdbwd), x, dy)
            out.append((f, fb - f, fb))
        (f0, b0, t0), (f1, b1, t1) = out
        print(f"{dt.name:9s} {str(base):20s} 4-D fwd {f0:6.2f} bwd {b0:6.2f} | rows fwd {f1:6.2f} bwd {b1:6.2f} | fwd+bwd {t0:6.2f} -> {t1:6.2f} ({t0/t1:.2f}x)", flush=True)
