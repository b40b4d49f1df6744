"""The fused batch norm under mixed precision: its kernel in the compute dtype, checked against float32."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from resnet_perf.config import batch_norm_as_rows
from resnet_perf.models.fused_bn import FusedBatchNorm
from resnet_perf.models.resnet import build_resnet

BF16_TOLERANCES = {"outputs": 1e-2, "input gradient": 1e-2, "gamma gradient": 1e-3, "beta gradient": 1e-3,
                   "moving mean": 1e-3, "moving variance": 1e-3}
"""Relative error (norm of the difference over the norm of float32's) allowed per result.  Outputs and
the input gradient are rounded to the compute dtype, 2**-9 of each value for bfloat16 (about 0.2% of
the norm); the statistics and the gamma and beta gradients are sums of a whole batch's values per
channel, which the kernels take in float32: on inputs both dtypes hold exactly, they come out as float32's."""


def _representable(values: np.ndarray, policy: str) -> np.ndarray:
    """``values`` rounded to the compute dtype of ``policy``, as float32."""
    rounded = keras.ops.cast(keras.ops.cast(values.astype("float32"), policy.removeprefix("mixed_")), "float32")
    return keras.ops.convert_to_numpy(rounded)


def _run(policy: str, images: np.ndarray, upstream: np.ndarray, axis: int, rows: bool = True) -> dict[str, np.ndarray]:
    """One training step of a fresh layer under ``policy``, in a graph (where oneDNN's kernels run)."""
    import tensorflow as tf

    layer = FusedBatchNorm(axis=axis, momentum=0.5, dtype=policy, rows=rows)
    layer.build(images.shape)
    assert layer.as_rows is (rows and axis == -1 and batch_norm_as_rows(*images.shape[1:]))
    layer.gamma.assign(np.linspace(0.5, 1.5, images.shape[axis]).astype("float32"))
    layer.beta.assign(np.linspace(-1.0, 1.0, images.shape[axis]).astype("float32"))

    @tf.function
    def step(values):
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs = layer(tf.cast(values, layer.compute_dtype), training=True)
            objective = tf.reduce_sum(tf.cast(outputs, tf.float32) * upstream)
        return (outputs,) + tuple(tape.gradient(objective, [values, layer.gamma, layer.beta]))

    outputs, input_gradient, gamma_gradient, beta_gradient = step(tf.constant(images))
    results = {"outputs": outputs, "input gradient": input_gradient, "gamma gradient": gamma_gradient,
               "beta gradient": beta_gradient, "moving mean": layer.moving_mean, "moving variance": layer.moving_variance}
    return {name: np.asarray(keras.ops.convert_to_numpy(value), dtype="float64") for name, value in results.items()}


@pytest.mark.parametrize("policy, axis", [("mixed_bfloat16", -1), ("mixed_bfloat16", 1), ("mixed_float16", -1)])
def test_the_fused_kernel_in_the_compute_dtype_matches_float32(policy, axis):
    rng = np.random.default_rng(0)
    shape = (4, 8, 8, 32) if axis == -1 else (4, 32, 8, 8)
    # Values off centre (mean 2, spread 3) with a gradient that does not sum to zero per channel: the
    # sums that lose most when rounded.  Both are representable in the compute dtype, so both runs see
    # the same numbers and only the arithmetic differs.
    images, upstream = (_representable(rng.normal(mean, spread, shape), policy) for mean, spread in ((2, 3), (0.3, 1)))
    low, full = _run(policy, images, upstream, axis), _run("float32", images, upstream, axis)
    assert FusedBatchNorm(dtype=policy).compute_dtype == policy.removeprefix("mixed_")
    for name, tolerance in BF16_TOLERANCES.items():
        error = np.linalg.norm(low[name] - full[name]) / np.linalg.norm(full[name])
        assert error <= tolerance, f"{name}: relative error {error:.2e} above {tolerance:.0e}"


@pytest.mark.parametrize("height, channels, as_rows", [
    (56, 256, True), (28, 512, True), (14, 1024, True), (7, 2048, True),  # ResNet-50's expanded layers at 224
    (56, 64, False), (28, 128, False), (14, 256, False), (7, 512, False),  # its narrow ones
    (112, 64, False), (4, 256, False)])  # its stem; the recipe's ResNet-18 at 32x32, batch 256
def test_wide_layers_normalize_as_rows(height, channels, as_rows):
    assert batch_norm_as_rows(height, height, channels) is as_rows


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_rows_compute_what_the_four_dimensional_kernel_computes(policy):
    rng = np.random.default_rng(1)
    shape = (2, 20, 20, 256)  # 102,400 values per image: wide enough for rows
    images, upstream = (_representable(rng.normal(mean, spread, shape), policy) for mean, spread in ((2, 3), (0.3, 1)))
    as_rows, four_d = _run(policy, images, upstream, -1), _run(policy, images, upstream, -1, rows=False)
    tolerance = 1e-5 if policy == "float32" else 1e-2  # the same sums in another order; bfloat16 rounds outputs
    for name in BF16_TOLERANCES:
        error = np.linalg.norm(as_rows[name] - four_d[name]) / np.linalg.norm(four_d[name])
        assert error <= tolerance, f"{name}: relative error {error:.2e} above {tolerance:.0e}"


def test_no_batch_norm_a_relu_follows_normalizes_as_rows():
    # grappler fuses a ReLU into the fused kernel only when they are joined directly
    model = build_resnet(50, input_shape=(224, 224, 3), batch_norm="fused")
    as_rows = {layer.name for layer in model.layers if getattr(layer, "as_rows", False)}
    assert as_rows == {layer.name for layer in model.layers if layer.name.endswith(("_bn3", "_proj_bn"))}
