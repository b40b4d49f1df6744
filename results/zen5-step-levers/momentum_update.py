"""The SGD-momentum update of ResNet-50's 161 variables alone, as the step applies it (Keras's ``SGD.apply``: a few
loose ops per variable) against one fused op per variable (``ResourceApplyKerasMomentum``, the same arithmetic),
each a ``tf.function`` on fixed gradients; medians of 30 calls, 3 times, 2 threads.

    python results/zen5-step-levers/momentum_update.py
"""
import statistics
import time

import tensorflow as tf

from resnet_perf.bench.workload import build_model
from resnet_perf.config import RunConfig
from resnet_perf.machine.switches import ProcessSettings, prepare_process
from resnet_perf.models.objective import make_optimizer

config = RunConfig(depth=50, batch_size=32, image_size=224, precision="amp_bf16", batch_norm="fused", threads="2:1")
prepare_process(ProcessSettings.of(config))
variables = build_model(config).trainable_variables
gradients = [tf.random.normal(variable.shape) * 1e-3 for variable in variables]
optimizer = make_optimizer("fp32", 0.01)
optimizer.build(variables)
accumulators = [tf.Variable(tf.zeros(variable.shape)) for variable in variables]


@tf.function
def keras_update():
    optimizer.apply(gradients, variables)


@tf.function
def fused_update():
    for variable, accumulator, gradient in zip(variables, accumulators, gradients):
        tf.raw_ops.ResourceApplyKerasMomentum(var=variable.handle, accum=accumulator.handle, lr=tf.constant(0.01),
                                              grad=gradient, momentum=tf.constant(0.9), use_nesterov=False)


def median_ms(update, calls: int = 30) -> float:
    update()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        update()
        variables[0].numpy()  # waits for the update
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


for _ in range(3):
    keras_ms, fused_ms = median_ms(keras_update), median_ms(fused_update)
    print(f"{len(variables)} variables: Keras's SGD {keras_ms:.1f} ms, fused {fused_ms:.1f} ms")
