"""The fast recipe's training step at a larger image size with the bfloat16 forward-convolution filter gradients in
layers of at most 4x4 output pixels (the rule as committed, "a") against the same with a larger threshold ("b"),
both built in one process and timed alternately, one step each, a first in even rounds: the per-round ratio a/b
cancels the VM's drift.

    SIZE=48 THRESHOLD=36 python results/recipe-image-size/bf16_pixel_threshold.py
"""
import os
import statistics

from resnet_perf import config as config_module
from resnet_perf.config import RunConfig
from resnet_perf.machine.switches import ProcessSettings, apply_here

size, threshold, rounds = (int(os.environ.get(name, default)) for name, default in
                           (("SIZE", 48), ("THRESHOLD", 36), ("ROUNDS", 20)))
config = RunConfig(depth=18, image_size=size, batch_size=256, channels=1, num_classes=10, precision="mixed_bf16",
                   batch_norm="fused", filter_grad="gemm")
apply_here(ProcessSettings.of(config))

from resnet_perf.bench.steps import Step  # noqa: E402
from resnet_perf.bench.timing import time_call  # noqa: E402

steps = {"a": Step(config, "train")}
steps["a"]()
config_module.BF16_MAX_OUTPUT_PIXELS = threshold
steps["b"] = Step(config, "train")
steps["b"]()
layers = {name: sum(getattr(layer, "uses_gemm", False) for layer in step.model.layers) for name, step in steps.items()}
for _ in range(3):
    steps["a"](), steps["b"]()
times = {"a": [], "b": []}
for round_ in range(rounds):
    for name in ("a", "b") if round_ % 2 == 0 else ("b", "a"):
        times[name].append(time_call(steps[name]))
ratios = sorted(a / b for a, b in zip(times["a"], times["b"]))
print(f"{config.run_id}: layers off TensorFlow's filter gradient: a (<= 16 pixels) {layers['a']}, "
      f"b (<= {threshold} pixels) {layers['b']}; median step a {statistics.median(times['a']) * 1e3:.1f} ms, "
      f"b {statistics.median(times['b']) * 1e3:.1f} ms; a/b per round: median {statistics.median(ratios):.3f}, "
      f"min {ratios[0]:.3f}, max {ratios[-1]:.3f} ({len(ratios)} rounds)")
