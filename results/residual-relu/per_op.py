"""A residual block's tail, one call at a time, on ResNet-50's tail shapes at 224x224, batch 32 (2 threads):
TensorFlow's ops (AddV2 then Relu; AddN then ReluGrad) against the native kernels (ResidualRelu; ResidualReluGrad
of two gradients), checking that both give the same bits. Medians of 31 calls, the two in turn, ms.

    python results/residual-relu/per_op.py
"""
import statistics
import time

import tensorflow as tf

from resnet_perf.kernels.build import native_kernels

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
kernels = native_kernels()
SHAPES = ([32, 56, 56, 256], [32, 28, 28, 512], [32, 14, 14, 1024], [32, 7, 7, 2048])


def median_ms(functions, *arguments, calls=31):
    """Each function's median call, ms, the functions called in turn (so that drift falls on all alike)."""
    times = {name: [] for name in functions}
    for function in functions.values():
        function(*arguments)
    for _ in range(calls):  # a function's call on the CPU returns when its kernels are done; no copy to NumPy
        for name, function in functions.items():
            start = time.perf_counter()
            function(*arguments)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def bits(tensor):
    return tf.bitcast(tensor, tf.int16 if tensor.dtype == tf.bfloat16 else tf.int32)


print("| dtype | shape | add + relu: TF ms | native ms | TF/native | AddN + ReluGrad: TF ms | native ms | TF/native | same bits |")
print("|---|---|---|---|---|---|---|---|---|")
for dtype in (tf.bfloat16, tf.float32):
    for shape in SHAPES:
        a, b, c, d = (tf.cast(tf.random.normal(shape), dtype) for _ in range(4))
        y = tf.nn.relu(a + b)
        forward = {"tf": tf.function(lambda a, b: tf.nn.relu(a + b)), "native": tf.function(kernels.residual_relu)}
        backward = {"tf": tf.function(lambda c, d, y: tf.raw_ops.ReluGrad(gradients=tf.add_n([c, d]), features=y)),
                    "native": tf.function(lambda c, d, y: kernels.residual_relu_grad([c, d], y))}
        same = all(bool(tf.reduce_all(bits(pair["tf"](*args)) == bits(pair["native"](*args))))
                   for pair, args in ((forward, (a, b)), (backward, (c, d, y))))
        f, g = median_ms(forward, a, b), median_ms(backward, c, d, y)
        print(f"| {dtype.name} | {'x'.join(map(str, shape))} | {f['tf']:.2f} | {f['native']:.2f} | {f['tf'] / f['native']:.2f}x "
              f"| {g['tf']:.2f} | {g['native']:.2f} | {g['tf'] / g['native']:.2f}x | {same} |", flush=True)
