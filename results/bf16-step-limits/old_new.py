"""The training step with this commit's GEMM filter gradients ("new": in bfloat16, a forward convolution in every
layer with at most 4x4 output pixels) against the rule and form before it ("old": the patches' GEMM, in layers
with at most 7x7 output pixels and 256 channels), both built in one process and timed alternately, one step
each, old first in even rounds: the per-round ratio old/new cancels the VM's drift.

    python results/bf16-step-limits/old_new.py                            # the fast recipe's model, mixed_bf16
    DEPTH=50 SIZE=224 BATCH=32 PRECISION=amp_bf16 ROUNDS=12 python results/bf16-step-limits/old_new.py
"""
import os
import statistics

from resnet_perf.config import RunConfig
from resnet_perf.machine.switches import ProcessSettings, apply_here

depth, size, batch = (int(os.environ.get(name, default)) for name, default in
                      (("DEPTH", 18), ("SIZE", 32), ("BATCH", 256)))
recipe_shape = size == 32  # the recipe's Fashion-MNIST: one channel, ten classes
config = RunConfig(depth=depth, image_size=size, batch_size=batch, channels=1 if recipe_shape else 3,
                   num_classes=10 if recipe_shape else 1000, precision=os.environ.get("PRECISION", "mixed_bf16"),
                   batch_norm="fused", filter_grad="gemm")
apply_here(ProcessSettings.of(config))

from resnet_perf.bench.steps import Step  # noqa: E402
from resnet_perf.bench.timing import time_call  # noqa: E402
from resnet_perf.models import gemm_filter_grad  # noqa: E402

new = Step(config, "train")
new()  # traced with this commit's rule and forms
rule = gemm_filter_grad.gemm_pays
gemm_filter_grad.gemm_pays = lambda kernel, pixels, filters, bfloat16=False: rule(kernel, pixels, filters)
gemm_filter_grad.filter_gradient_forward_conv = gemm_filter_grad.filter_gradient_gemm
old = Step(config, "train")
old()
layers = {name: sum(getattr(layer, "uses_gemm", False) for layer in step.model.layers)
          for name, step in (("old", old), ("new", new))}
for _ in range(3):
    old(), new()
times = {"old": [], "new": []}
for round_ in range(int(os.environ.get("ROUNDS", 40))):
    for name in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
        times[name].append(time_call(old if name == "old" else new))
ratios = sorted(a / b for a, b in zip(times["old"], times["new"]))
print(f"{config.run_id}: layers off TensorFlow's filter gradient: old {layers['old']}, new {layers['new']}; "
      f"median step old {statistics.median(times['old']) * 1e3:.1f} ms, "
      f"new {statistics.median(times['new']) * 1e3:.1f} ms;"
      f" old/new per round: median {statistics.median(ratios):.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f} "
      f"({len(ratios)} rounds)")
