"""fp32 gradients of the fast recipe's model, Keras's batch norm and the fused one, against float64.

Keras's fp32 model trains STEPS steps with the recipe's optimizer and schedule as ``lockstep.py`` trains it (seed
SEED: the weights its probes see at those steps); at its weights and the next batch, three models compute the loss
and its gradients: fp32 with Keras's batch norm, fp32 with the fused one, and Keras's layers built with a float64
policy (the fused kernel has no float64). Printed: each fp32 model's
gradients against float64 (all variables together, the median variable, the largest), the variables where the
fused model's error most exceeds Keras's, and, at stage4_block1's tail (1x1 pixels in this model), the ReLU mask
elements that differ from float64's (inputs within rounding of zero) and the tail's input gradient with and without
them.

    python results/fp32-fused-bn/float64_reference.py SEED STEPS
"""
from __future__ import annotations

import sys

import keras
import numpy as np
import tensorflow as tf
from lockstep import BATCH, RECIPE, build, trainer_of  # the same model, optimizer and schedule (the same SEED)

import resnet_perf.models.resnet as resnet
from resnet_perf.training.fashion_mnist import load_split, locate, make_dataset

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 160


def build_float64() -> keras.Model:
    """The model with Keras's batch norm and TensorFlow's filter gradients, every layer in float64."""
    # precision names no float64 policy: the builder's resolver is replaced for this one model
    resolver, resnet.dtype_policy = resnet.dtype_policy, lambda precision: keras.DTypePolicy("float64")
    try:
        return resnet.build_resnet(RECIPE["depth"], num_classes=10, input_shape=(RECIPE["image_size"],) * 2 + (1,),
                                   batch_norm="keras", filter_grad="conv")
    finally:
        resnet.dtype_policy = resolver


def trained_weights_and_batch() -> tuple[list[np.ndarray], tf.Tensor, tf.Tensor]:
    keras.utils.set_random_seed(SEED)
    model = build("keras", "gemm")
    step = trainer_of(model)
    batches = iter(make_dataset(load_split(locate(), "train"), batch_size=BATCH, image_size=RECIPE["image_size"],
                                training=True, seed=SEED))
    for _ in range(STEPS):
        step(*next(batches))
    images, labels = next(batches)
    return model.get_weights(), images, labels


def outputs_and_gradients(model: keras.Model, images, labels, layer_names: list[str]):
    """The loss, the logits, the variables' gradients, and the named layers' outputs and the loss's gradients with
    respect to them (a layer handing out two copies gives both), in float64 numpy."""
    outputs = []
    for name in layer_names:
        output = model.get_layer(name).output
        outputs += list(output) if isinstance(output, (list, tuple)) else [output]
    probe = keras.Model(model.inputs, outputs + [model.outputs[0]])
    with tf.GradientTape() as tape:
        values = probe(tf.cast(images, model.compute_dtype), training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, values[-1]))
    gradients = tape.gradient(loss, model.trainable_variables + values[:-1])
    as_numpy = [np.asarray(value, dtype="float64") for value in gradients]
    count = len(model.trainable_variables)
    values = [np.asarray(value, dtype="float64") for value in values]
    return float(loss), values[-1], as_numpy[:count], values[:-1], as_numpy[count:]


def relative(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def main() -> None:
    weights, images, labels = trained_weights_and_batch()
    models = {"keras": build("keras", "gemm"), "fused": build("fused", "gemm"), "float64": build_float64()}
    for model in models.values():
        model.set_weights(weights)
    names = [variable.path for variable in models["keras"].trainable_variables]
    block = "stage4_block1"  # its tail's inputs and output, where the recipe's model is 1x1 pixels
    tail = [f"{block}_bn2", f"{block}_proj_bn", f"{block}_out"]
    ref_loss, ref_logits, ref_gradients, ref_values, ref_tail = outputs_and_gradients(models["float64"], images,
                                                                                      labels, tail)
    print(f"seed {SEED}, Keras's fp32 model after {STEPS} steps; float64 loss {ref_loss:.7f}")
    errors = {}
    for name in ("keras", "fused"):
        loss, logits, gradients, values, tail_gradients = outputs_and_gradients(models[name], images, labels, tail)
        errors[name] = np.array([relative(a, b) for a, b in zip(gradients, ref_gradients)])
        together = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(gradients, ref_gradients))
                           / sum(np.sum(b ** 2) for b in ref_gradients))
        worst = np.argsort(errors[name])[::-1][:3]
        print(f"{name}: loss {loss:.7f}, logits {relative(logits, ref_logits):.1e} from float64's; gradients against "
              f"float64: all {together:.1e}, median variable {np.median(errors[name]):.1e}, largest "
              + ", ".join(f"{names[i]} {errors[name][i]:.1e}" for i in worst))
        # the tail: relu(bn2 + proj_bn); its gradient is the consumers' gradients summed, where the ReLU passed
        mask, ref_mask = values[-1] > 0, (ref_values[0] + ref_values[1]) > 0
        upstream = sum(tail_gradients[2:])
        print(f"  {block}'s tail: gradient at its input {relative(tail_gradients[0], ref_tail[0]):.1e} from float64's, "
              f"the consumers' gradients summed {relative(upstream, ref_tail[2]):.1e}; ReLU mask elements that differ "
              f"from float64's: {int((mask != ref_mask).sum())} of {mask.size}; with float64's mask "
              f"{relative(ref_mask * upstream, ref_tail[0]):.1e}")
    ratio = errors["fused"] / errors["keras"]
    print("fused's error over Keras's, largest: " + ", ".join(
        f"{names[i]} {errors['fused'][i]:.1e} / {errors['keras'][i]:.1e}" for i in np.argsort(ratio)[::-1][:4]))


if __name__ == "__main__":
    main()
