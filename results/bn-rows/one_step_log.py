"""oneDNN's own time per primitive kind in one ResNet-50 training step (224x224, batch 32, 2 threads) of the
configuration given, from its verbose log (run with ONEDNN_VERBOSE=1; the lines after MARK are the third step).

    ONEDNN_VERBOSE=1 python results/bn-rows/one_step_log.py mixed_bf16 fused > log.txt 2>/dev/null
    awk '/^MARK/{m=1} m' log.txt | grep ,exec, | awk -F, '{t[$6" "$8]+=$NF} END {for (k in t) print t[k], k}'
"""
import os
import sys

import tensorflow as tf

from resnet_perf.bench.steps import Step
from resnet_perf.config import RunConfig

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
step = Step(RunConfig(depth=50, batch_size=32, image_size=224, precision=sys.argv[1], batch_norm=sys.argv[2]), "train")
step()
step()
os.write(1, b"MARK\n")
step()
