"""Experiment: the block tail relu(residual + shortcut) as one XLA fusion each way (forward add+ReLU, backward
ReLU gradient), against TensorFlow's AddV2 + Relu, both models built in one process and stepped in alternating rounds
of 3 steps (ResNet-50, 224x224, batch 32, 2 threads).

    python results/zen5-step-levers/block_tail_xla.py mixed_bf16 fused ROUNDS
"""
import statistics, sys, time
import keras
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
from resnet_perf.models import resnet
from resnet_perf.config import RunConfig
from resnet_perf.bench.steps import Step

@tf.function(jit_compile=True)
def _fwd(a, b):
    return tf.nn.relu(a + b)

@tf.function(jit_compile=True)
def _bwd(dy, y):
    return tf.where(y > 0, dy, tf.zeros_like(dy))

@tf.custom_gradient
def add_relu(a, b):
    y = _fwd(a, b)
    def grad(dy):
        d = _bwd(dy, y)
        return d, d
    return y, grad

class AddReLU(keras.layers.Layer):
    def call(self, inputs):
        return add_relu(*inputs)
    def compute_output_shape(self, shapes):
        return shapes[0]

built_merge = resnet._merge
def fused_merge(layers, residual, shortcut, name):
    return AddReLU(dtype=layers.policy, name=f"{name}_out")([residual, shortcut])

prec, bn, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = RunConfig(depth=50, batch_size=32, image_size=224, precision=prec, batch_norm=bn)
steps = {}
for variant in ("tf", "xla"):
    resnet._merge = fused_merge if variant == "xla" else built_merge
    steps[variant] = Step(config, "train")
    resnet._merge = built_merge
    steps[variant](); steps[variant]()
times = {v: [] for v in steps}
for r in range(rounds):
    for v in (("tf", "xla") if r % 2 == 0 else ("xla", "tf")):
        for _ in range(3):
            t = time.perf_counter(); steps[v](); times[v].append((time.perf_counter() - t) * 1e3)
for v, ts in times.items():
    print(f"{prec} {bn} {v}: median {statistics.median(ts):.0f} ms [{min(ts):.0f}-{max(ts):.0f}] n={len(ts)}")
