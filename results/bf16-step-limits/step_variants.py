"""ResNet-50's training step (224x224, batch 32, fused batch norm, GEMM filter gradients) in one precision,
timed as the suite builds it, or with one change that the suite does not make:

- ``fused-sgd``: Keras's SGD update (five ops per variable: two multiplies, a subtract, an assign and an
  add) replaced by TensorFlow's one-op ``ResourceApplyKerasMomentum``, the same arithmetic;
- run under ``TF_XLA_FLAGS="--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit --tf_xla_ops_to_cluster=PW"`` to
  let XLA fuse the step's point-wise ops (ReLU gradients, residual adds, the update) and leave the
  convolutions and batch norms to oneDNN.

One process per run, 3 warm-up steps, then the median of 6 (``STEPS``):

    python results/bf16-step-limits/step_variants.py amp_bf16 [fused-sgd]
"""
import os
import statistics
import sys

from resnet_perf.config import RunConfig
from resnet_perf.machine.switches import ProcessSettings, apply_here

precision, changes = sys.argv[1], set(sys.argv[2:])
config = RunConfig(depth=50, precision=precision, batch_norm="fused", filter_grad="gemm")
apply_here(ProcessSettings.of(config))  # amp_bf16's grappler option, before TensorFlow starts

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from resnet_perf.models import objective  # noqa: E402


class FusedSGD(keras.optimizers.SGD):
    """Keras's SGD with momentum as one TensorFlow op per variable."""

    def update_step(self, gradient, variable, learning_rate):
        momentum = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=momentum.handle, lr=tf.cast(learning_rate, variable.dtype),
            grad=tf.cast(gradient, variable.dtype), momentum=tf.cast(self.momentum, variable.dtype),
            use_nesterov=self.nesterov)


if "fused-sgd" in changes:
    objective.keras.optimizers.SGD = FusedSGD

from resnet_perf.bench.steps import Step  # noqa: E402

from resnet_perf.bench.timing import time_steps  # noqa: E402

times = time_steps(Step(config, "train"), warmup=3, steps=int(os.environ.get("STEPS", 6)))
print(f"{precision} {' '.join(sorted(changes)) or 'as built'} TF_XLA_FLAGS={os.environ.get('TF_XLA_FLAGS', '')!r}: "
      f"median {statistics.median(times) * 1e3:.0f} ms [{', '.join(f'{t * 1e3:.0f}' for t in times)}]")
