"""The native residual tail (``ResidualReLU``) in a whole training step: two fused-batch-norm models built in one
process, one whose block tails run the native kernels and one whose tails run TensorFlow's ops (AddV2, Relu; AddN,
ReluGrad: the layer's fallback), one step each in alternating order (``resnet_perf.interleave``; 224x224, batch 32,
2 threads), so that the machine's drift falls on both alike. Prints each round's steps and the median of the
per-round ratios.

    python results/residual-relu/tail_in_step.py [PRECISION] [ROUNDS] [DEPTH]     # default mixed_bf16 20 50
"""
import statistics
import sys

from resnet_perf.bench.steps import Step
from resnet_perf.bench.timing import time_call
from resnet_perf.config import RunConfig
from resnet_perf.interleave import interleave
from resnet_perf.machine.switches import ProcessSettings, prepare_process
from resnet_perf.models import residual

precision = sys.argv[1] if len(sys.argv) > 1 else "mixed_bf16"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
depth = int(sys.argv[3]) if len(sys.argv) > 3 else 50
config = RunConfig(depth=depth, batch_size=32, image_size=224, precision=precision, batch_norm="fused", threads="2:1")
prepare_process(ProcessSettings.of(config))  # the thread pools; amp_bf16: grappler's option

assert residual.native_kernels() is not None, "the native kernels are not built here"
steps = {"native": Step(config, "train")}
steps["native"]()  # traced with the kernels
kernels = residual.native_kernels
residual.native_kernels = lambda: None  # this one traces TensorFlow's ops instead
steps["tf"] = Step(config, "train")
steps["tf"]()
residual.native_kernels = kernels

times = {"native": [], "tf": []}
for label, seconds in interleave(steps, rounds, warmup=2, time_call=time_call):
    times[label].append(seconds * 1e3)
    if len(times["native"]) == len(times["tf"]):
        print(f"round {len(times['tf'])}: native {times['native'][-1]:.0f} ms, tf {times['tf'][-1]:.0f} ms, "
              f"tf/native {times['tf'][-1] / times['native'][-1]:.3f}", flush=True)
ratios = [slow / fast for slow, fast in zip(times["tf"], times["native"])]
print(f"resnet{depth} {precision}: median of {rounds} per-round ratios tf/native {statistics.median(ratios):.3f} "
      f"(min {min(ratios):.3f}, max {max(ratios):.3f}); native faster in {sum(ratio > 1 for ratio in ratios)} of "
      f"{rounds} rounds; medians native {statistics.median(times['native']):.0f} ms, tf "
      f"{statistics.median(times['tf']):.0f} ms")
