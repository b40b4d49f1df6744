"""The fused batch norm's rows in a whole training step: two models built in one process, one with the rows rule as
committed and one with it off (every batch norm 4-D), stepped in alternating rounds (ResNet-50, 224x224, batch 32,
2 threads), so that the machine's drift falls on both alike. Prints each round's medians and the median of the
per-round ratios.

    python results/bn-rows/rows_in_step.py [PRECISION] [ROUNDS]     # default mixed_bf16 20
"""
import statistics
import sys
import time

import tensorflow as tf

from resnet_perf.bench.steps import Step
from resnet_perf.config import RunConfig
from resnet_perf.models import fused_bn

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
precision = sys.argv[1] if len(sys.argv) > 1 else "mixed_bf16"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
STEPS_PER_ROUND = 3
config = RunConfig(depth=50, batch_size=32, image_size=224, precision=precision, batch_norm="fused")

rule = fused_bn.batch_norm_as_rows
steps = {"rows": Step(config, "train")}
fused_bn.batch_norm_as_rows = lambda height, width, channels: False
steps["4-D"] = Step(config, "train")
fused_bn.batch_norm_as_rows = rule
for name, step in steps.items():
    assert any(getattr(layer, "as_rows", False) for layer in step.model.layers) is (name == "rows")
    step()
    step()

ratios = []
for index in range(rounds):
    medians = {}
    for name in (("rows", "4-D") if index % 2 == 0 else ("4-D", "rows")):
        times = []
        for _ in range(STEPS_PER_ROUND):
            start = time.perf_counter()
            steps[name]()
            times.append((time.perf_counter() - start) * 1e3)
        medians[name] = statistics.median(times)
    ratios.append(medians["4-D"] / medians["rows"])
    print(f"round {index + 1}: rows {medians['rows']:.0f} ms, 4-D {medians['4-D']:.0f} ms, 4-D/rows {ratios[-1]:.3f}",
          flush=True)
print(f"{precision}: median of {rounds} per-round ratios 4-D/rows {statistics.median(ratios):.3f} "
      f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
