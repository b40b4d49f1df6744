"""One fp32 batch-norm training step of a single layer, the fused one and Keras's, against float64 arithmetic.

The shape of the fast recipe's fp32 stem (batch 256, 16x16, 64 channels), inputs with mean 0.5 and spread 1, and
an upstream gradient whose per-channel mean (0.01) is ten times its spread: the gamma gradient, a sum that nearly
cancels, is where float32 loses most.  Each gradient's difference from numpy's float64 formulas, over their norm.
Run it with TF_ENABLE_ONEDNN_OPTS=1 and =0 (oneDNN's kernels and TensorFlow's own); another shape as NxHxWxC (the
recipe's stage 4: 256x1x1x512).

    TF_ENABLE_ONEDNN_OPTS=1 python results/fp32-fused-bn/single_layer.py [SHAPE]
"""
from __future__ import annotations

import os
import sys

import keras
import numpy as np
import tensorflow as tf

from resnet_perf.models.fused_bn import FusedBatchNorm

SHAPE = tuple(int(size) for size in sys.argv[1].split("x")) if len(sys.argv) > 1 else (256, 16, 16, 64)
EPSILON = 1.001e-5  # the fused kernel's floor, given to Keras's layer too so both compute the same function


def float64_gradients(images: np.ndarray, upstream: np.ndarray, gamma: np.ndarray) -> dict[str, np.ndarray]:
    x, g, axes = images.astype("float64"), upstream.astype("float64"), (0, 1, 2)
    mean = x.mean(axes)
    inverse_std = 1 / np.sqrt(((x - mean) ** 2).mean(axes) + EPSILON)
    normalized = (x - mean) * inverse_std
    return {"beta": g.sum(axes), "gamma": (g * normalized).sum(axes),
            "x": gamma * inverse_std * (g - g.mean(axes) - normalized * (g * normalized).mean(axes))}


def layer_gradients(layer: keras.layers.Layer, images: np.ndarray, upstream: np.ndarray) -> dict[str, np.ndarray]:
    @tf.function
    def step(values):
        with tf.GradientTape() as tape:
            tape.watch(values)
            objective = tf.reduce_sum(layer(values, training=True) * upstream)
        return tape.gradient(objective, [values, layer.gamma, layer.beta])
    gradients = step(tf.constant(images))
    return {name: np.asarray(value, dtype="float64") for name, value in zip(("x", "gamma", "beta"), gradients)}


def main() -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(0.5, 1.0, SHAPE).astype("float32")
    upstream = rng.normal(0.01, 1e-3, SHAPE).astype("float32")
    gamma = np.linspace(0.5, 1.5, SHAPE[-1]).astype("float32")
    exact = float64_gradients(images, upstream, gamma)
    for name, layer in (("fused", FusedBatchNorm(axis=-1, epsilon=1e-5)),
                        ("keras", keras.layers.BatchNormalization(axis=-1, epsilon=EPSILON))):
        layer.build(SHAPE)
        layer.gamma.assign(gamma)
        got = layer_gradients(layer, images, upstream)
        errors = {key: np.linalg.norm(got[key] - exact[key]) / np.linalg.norm(exact[key]) for key in exact}
        print(f"{'x'.join(map(str, SHAPE))}, oneDNN {os.environ.get('TF_ENABLE_ONEDNN_OPTS', '1')}, {name}: "
              "relative error of the gradients " + ", ".join(f"d{key} {value:.1e}" for key, value in errors.items()))


if __name__ == "__main__":
    main()
