"""ResNet-50 training step at 224x224, batch 32: one replica on 2 intra-op threads against 2 replicas (logical
CPU devices, MirroredStrategy, 16 images each) on 1 thread each, taking the two cores by data parallelism instead
of inside each oneDNN kernel.  Random images; 3 warm-up steps, then STEPS timed.

    python results/zen5-first-look/replicas_step.py REPLICAS INTRA INTER PRECISION BATCH_NORM FILTER_GRAD [STEPS]
    e.g. ... 1 2 1 mixed_bf16 fused gemm 4   and   ... 2 1 2 mixed_bf16 fused gemm 4
"""
import statistics
import sys
import time

replicas, intra, inter = (int(v) for v in sys.argv[1:4])
precision, bn, fg = sys.argv[4], sys.argv[5], sys.argv[6]
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(intra)
tf.config.threading.set_inter_op_parallelism_threads(inter)
from resnet_perf.training.strategies import make_strategy
strategy = make_strategy(replicas)
import keras
from resnet_perf.models.resnet import build_resnet
from resnet_perf.models.objective import logits_and_loss, make_optimizer
batch = 32
with strategy.scope():
    model = build_resnet(50, num_classes=1000, input_shape=(224, 224, 3), precision=precision, batch_norm=bn, filter_grad=fg)
    opt = make_optimizer(precision, 0.01, momentum=0.9)
    opt.build(model.trainable_variables)
images = tf.random.uniform((batch, 224, 224, 3)); labels = tf.random.uniform((batch,), 0, 1000, tf.int32)
ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
it = iter(strategy.experimental_distribute_dataset(ds.unbatch().batch(batch)))
def replica(images, labels):
    with tf.GradientTape() as tape:
        _, loss = logits_and_loss(model, images, labels, global_batch_size=batch)
    opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return loss
@tf.function
def step(b):
    return strategy.reduce("SUM", strategy.run(replica, args=b), axis=None)
b = next(it)
for _ in range(3):
    float(step(b))
times = []
for _ in range(int(sys.argv[7]) if len(sys.argv) > 7 else 8):
    t = time.perf_counter(); float(step(b)); times.append(time.perf_counter() - t)
print(f"RESULT replicas={replicas} intra={intra} inter={inter} {precision} {bn} {fg}: median {statistics.median(times)*1000:.0f} ms  {[round(x*1000) for x in times]}", flush=True)
