"""An upper bound on fusing the batch norms' ReLU gradients away: the training step as built against the same model
whose ReLUs after a batch norm pass their gradient through unchanged (wrong math, timing only: no ``ReluGrad``),
one step each in alternating order in one process (``resnet_perf.interleave``; ResNet-50, 224x224, batch 32,
fused batch norm, gemm filter gradients). Prints the medians and the median of the per-round ratios.

    python results/zen5-step-levers/relu_gradient_bound.py [PRECISION] [ROUNDS] [THREADS]   # amp_bf16 8 auto
"""
import sys

import keras
import tensorflow as tf

from resnet_perf.bench.steps import Step
from resnet_perf.config import RunConfig
from resnet_perf.machine.switches import ProcessSettings, prepare_process
from resnet_perf.models import resnet

from alternate import alternate, comparison  # beside this script

precision = sys.argv[1] if len(sys.argv) > 1 else "amp_bf16"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
threads = sys.argv[3] if len(sys.argv) > 3 else "auto"
config = RunConfig(depth=50, batch_size=32, image_size=224, precision=precision, batch_norm="fused",
                   filter_grad="gemm", threads=threads)
prepare_process(ProcessSettings.of(config))


@tf.custom_gradient
def relu_passing_gradient(x):
    return tf.nn.relu(x), lambda gradient: gradient


class PassingReLU(keras.layers.Layer):
    def call(self, x):
        return relu_passing_gradient(x)


steps = {"as built": Step(config, "train")}
steps["as built"]()
relu = resnet._Layers.relu
resnet._Layers.relu = lambda layers, name: PassingReLU(dtype=layers.policy, name=name)
steps["no ReluGrad"] = Step(config, "train")
steps["no ReluGrad"]()
resnet._Layers.relu = relu

print(f"{precision}, threads {threads}: {comparison(alternate(steps, rounds), 'as built', 'no ReluGrad')}")
