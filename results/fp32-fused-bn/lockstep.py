"""fp32 with the fused batch norm, which trained 0.2-0.6 points below Keras's (two sets of 3 seeds): in lockstep.

Four copies of the fast recipe's fp32 model (ResNet-18, 32x32, one channel, batch 256) start from the same
weights and take the same batches with the recipe's optimizer and schedule: Keras's batch norm with the GEMM
filter gradients (as the recipe trains in fp32 on an AVX-512 CPU), the fused batch norm likewise, Keras's
batch norm with TensorFlow's filter-gradient kernels (the same function summed in another order), and Keras's
batch norm with every weight nudged by a relative 1e-6 (``keras-nudged``): the last two, how far rounding alone
moves a trajectory.  Every 20 steps: each copy's mean training loss.  Every 80 steps: the fused layer's loss and
gradients at the Keras copy's weights, against Keras's own, and Keras's own gradients on the batch nudged by a
relative 1e-6: how far rounding-sized changes move the gradients of this model at all.

    python results/fp32-fused-bn/lockstep.py SEED [STEPS [REMAPPING]]

REMAPPING ``off`` turns grappler's remapper off, which otherwise fuses a batch norm and the ReLU after it into one
op (``_FusedBatchNormEx``) where the fused layer is used.
"""
from __future__ import annotations

import sys
import time

import keras
import numpy as np
import tensorflow as tf

from resnet_perf.models.objective import learning_rate_schedule, logits_and_loss, make_optimizer
from resnet_perf.models.resnet import build_resnet
from resnet_perf.training.fashion_mnist import load_split, locate, make_dataset
from resnet_perf.training.recipes import WARMUP_FRACTION, recipe_settings

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
REMAPPING = (sys.argv[3] if len(sys.argv) > 3 else "on") == "on"
RECIPE = recipe_settings("fast", "fp32")
BATCH = RECIPE["batch_size"]
NUDGE = 1e-6  # a relative change of the size of float32's rounding (its epsilon is 1.2e-7)


def build(batch_norm: str, filter_grad: str) -> keras.Model:
    return build_resnet(RECIPE["depth"], num_classes=10, input_shape=(RECIPE["image_size"],) * 2 + (1,),
                        precision="fp32", batch_norm=batch_norm, filter_grad=filter_grad)


def gradients_of(model: keras.Model):
    @tf.function
    def gradients(images, labels):
        with tf.GradientTape() as tape:
            _, loss = logits_and_loss(model, images, labels, global_batch_size=BATCH)
        return loss, tape.gradient(loss, model.trainable_variables)
    return gradients


def trainer_of(model: keras.Model):
    total = 60000 // BATCH * RECIPE["epochs"]
    schedule = learning_rate_schedule(RECIPE["schedule"], RECIPE["lr"], total, int(WARMUP_FRACTION * total))
    optimizer = make_optimizer("fp32", schedule, momentum=RECIPE["momentum"], nesterov=RECIPE["nesterov"],
                               weight_decay=RECIPE["weight_decay"], clip_norm=RECIPE["clip_norm"])
    optimizer.build(model.trainable_variables)
    gradients = gradients_of(model)

    @tf.function
    def step(images, labels):
        loss, grads = gradients(images, labels)
        optimizer.apply(grads, model.trainable_variables)
        return loss
    return step


def largest(model: keras.Model, expected, got, count: int = 3) -> str:
    """The ``count`` variables whose gradients differ most between ``expected`` and ``got``, relative to the norm."""
    errors = sorted(((float(tf.norm(a - b) / tf.norm(a)), variable.path) for variable, a, b
                     in zip(model.trainable_variables, expected, got)), reverse=True)
    return ", ".join(f"{path} {error:.1e}" for error, path in errors[:count])


def main() -> None:
    tf.config.optimizer.set_experimental_options({"remapping": REMAPPING})
    keras.utils.set_random_seed(SEED)
    copies = {"keras": build("keras", "gemm"), "fused": build("fused", "gemm"), "keras-conv": build("keras", "conv"),
              "keras-nudged": build("keras", "gemm")}
    for model in list(copies.values())[1:]:
        model.set_weights(copies["keras"].get_weights())
    noise = np.random.default_rng(SEED)
    copies["keras-nudged"].set_weights([
        weights * (1 + NUDGE * noise.standard_normal(weights.shape)).astype(weights.dtype)
        for weights in copies["keras"].get_weights()])
    probe = build("fused", "gemm")
    steps = {name: trainer_of(model) for name, model in copies.items()}
    keras_gradients, probe_gradients = gradients_of(copies["keras"]), gradients_of(probe)
    batches = iter(make_dataset(load_split(locate(), "train"), batch_size=BATCH, image_size=RECIPE["image_size"],
                                training=True, seed=SEED))
    losses: dict[str, list[float]] = {name: [] for name in copies}
    start = time.perf_counter()
    for step in range(STEPS):
        images, labels = next(batches)
        if step % 80 == 0:
            probe.set_weights(copies["keras"].get_weights())
            (keras_loss, expected), (probe_loss, got) = keras_gradients(images, labels), probe_gradients(images, labels)
            nudged = images * (1 + NUDGE * tf.random.stateless_normal(tf.shape(images), (SEED, step)))
            _, moved = keras_gradients(nudged, labels)
            print(f"step {step}: at Keras's weights, loss {float(keras_loss):.5f} (fused {float(probe_loss):.5f}); "
                  f"gradients' relative difference, largest: {largest(probe, expected, got)}; Keras's own on the "
                  f"batch nudged by {NUDGE:g}: {largest(probe, expected, moved)}", flush=True)
        for name, train_step in steps.items():
            losses[name].append(float(train_step(images, labels)))
        if step % 20 == 19:
            print(f"  steps {step - 19}-{step} mean loss: "
                  + ", ".join(f"{name} {np.mean(values[-20:]):.4f}" for name, values in losses.items())
                  + f" ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
