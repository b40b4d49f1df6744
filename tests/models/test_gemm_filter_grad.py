"""Filter gradients as GEMMs: the same gradients as TensorFlow's convolution, where the rule says they pay."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from resnet_perf.config import RunConfig, gemm_layers, gemm_pays
from resnet_perf.errors import UserError
from resnet_perf.models import gemm_filter_grad
from resnet_perf.models.gemm_filter_grad import GemmFilterGradConv2D
from resnet_perf.models.resnet import build_resnet

FLOAT32_TOLERANCE = 1e-5
"""Relative error (norm of the difference over the norm of TensorFlow's) between the two float32 filter
gradients: the same products summed in another order."""
BF16_TOLERANCE = 1e-2
"""The same under mixed_bfloat16, against float32 on representable values: each gradient is rounded to
bfloat16 (2**-9 of each value, about 0.2% of the norm), whichever kernel summed it."""


def _relative_error(low, full) -> float:
    low, full = (np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(value, "float32")), dtype="float64")
                 for value in (low, full))
    return float(np.linalg.norm(low - full) / np.linalg.norm(full))


@pytest.mark.parametrize("kernel, pixels, filters, pays", [
    (3, 1, 512, True), (3, 49, 256, True),     # ResNet-18 at 32x32, stage 4; ResNet-50 at 224x224, stage 3's stride
    (3, 64, 512, False), (3, 4, 128, False),   # too many pixels; too few channels
    (1, 1, 2048, False), (7, 256, 64, False),  # a 1x1 convolution's gradient is a GEMM already; the stem
])
def test_the_gemm_is_used_for_spatial_kernels_on_few_pixels_and_many_channels(kernel, pixels, filters, pays):
    assert gemm_pays(kernel, pixels, filters) is pays


@pytest.mark.parametrize("kernel, pixels, filters, pays", [
    (3, 16, 128, True), (3, 4, 128, True),     # ResNet-18 at 32x32: stages 2 and 3 too
    (3, 64, 64, False), (1, 1, 2048, False),   # stage 1 keeps TensorFlow's; 1x1 convolutions too
    (3, 49, 512, True), (3, 196, 256, False),  # ResNet-50 at 224x224: stage 4 only, as in float32
])
def test_in_bfloat16_the_rule_also_takes_every_layer_on_few_pixels(kernel, pixels, filters, pays):
    assert gemm_pays(kernel, pixels, filters, bfloat16=True) is pays


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_whether_any_layer_takes_it_does_not_depend_on_the_dtype(depth):
    # what refuses a model the switch would not change, and the suite's twins, count float32 layers only
    for size in range(32, 577, 16):
        assert bool(gemm_layers(depth, size)) == bool(gemm_layers(depth, size, bfloat16=True)), size
        assert gemm_layers(depth, size) <= gemm_layers(depth, size, bfloat16=True)


@pytest.mark.parametrize("size, kernel, stride", [(7, 3, 1), (8, 3, 2), (7, 3, 2), (1, 3, 1), (2, 3, 2), (9, 7, 2)])
def test_the_forward_convolution_form_is_tensorflows_filter_gradient(size, kernel, stride):
    import tensorflow as tf

    rng = np.random.default_rng(2)
    images = tf.constant(rng.normal(size=(3, size, size, 5)).astype("float32"))
    out = -(-size // stride)
    upstream = tf.constant(rng.normal(size=(3, out, out, 4)).astype("float32"))
    tensorflows = tf.raw_ops.Conv2DBackpropFilter(input=images, filter_sizes=[kernel, kernel, 5, 4],
                                                  out_backprop=upstream, strides=[1, stride, stride, 1], padding="SAME")
    ours = gemm_filter_grad.filter_gradient_forward_conv(images, upstream, kernel, stride)
    assert ours.shape == (kernel, kernel, 5, 4)
    assert _relative_error(ours, tensorflows) <= FLOAT32_TOLERANCE


def _gradients(layer: keras.layers.Layer, images: np.ndarray, upstream: np.ndarray, xla: bool = False):
    import tensorflow as tf

    @tf.function(jit_compile=xla)
    def step(values):
        with tf.GradientTape() as tape:
            tape.watch(values)
            outputs = layer(tf.cast(values, layer.compute_dtype))
            objective = tf.reduce_sum(tf.cast(outputs, tf.float32) * upstream)
        return (outputs,) + tuple(tape.gradient(objective, [values, layer.kernel]))

    return step(tf.constant(images))


@pytest.mark.parametrize("size, stride, xla", [(2, 1, False), (3, 2, False), (4, 2, False), (3, 2, True)])
def test_the_layer_computes_tensorflows_gradients(size, stride, xla, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, size, size, 8)).astype("float32")
    out = -(-size // stride)
    upstream = rng.normal(size=(2, out, out, 256)).astype("float32")
    reference = keras.layers.Conv2D(256, 3, strides=stride, padding="same", use_bias=False)
    layer = GemmFilterGradConv2D(256, 3, strides=stride, padding="same", use_bias=False)
    for each in (reference, layer):
        each.build(images.shape)
    layer.kernel.assign(reference.kernel)
    calls = []
    gemm = gemm_filter_grad.filter_gradient_gemm
    monkeypatch.setattr(gemm_filter_grad, "filter_gradient_gemm", lambda *args: calls.append(args) or gemm(*args))

    ours, theirs = _gradients(layer, images, upstream, xla), _gradients(reference, images, upstream, xla)
    assert layer.uses_gemm and calls, "the layer should have taken the GEMM for its filter gradient"
    for name, mine, tensorflows in zip(("outputs", "input gradient", "filter gradient"), ours, theirs):
        error = _relative_error(mine, tensorflows)
        assert error <= FLOAT32_TOLERANCE, f"{name}: relative error {error:.2e}"


def test_under_mixed_bfloat16_the_gradients_match_float32(monkeypatch):
    rng = np.random.default_rng(1)
    rounded = lambda values: keras.ops.convert_to_numpy(  # noqa: E731 (values both dtypes hold)
        keras.ops.cast(keras.ops.cast(values.astype("float32"), "bfloat16"), "float32"))
    images, upstream = rounded(rng.normal(size=(4, 2, 2, 16))), rounded(rng.normal(size=(4, 1, 1, 256)))
    low = GemmFilterGradConv2D(256, 3, strides=2, padding="same", use_bias=False, dtype="mixed_bfloat16")
    full = keras.layers.Conv2D(256, 3, strides=2, padding="same", use_bias=False)
    for each in (low, full):
        each.build(images.shape)
    full.kernel.assign(rounded(full.kernel.numpy()))
    low.kernel.assign(full.kernel)
    assert low.uses_gemm
    calls = []
    form = gemm_filter_grad.filter_gradient_forward_conv
    monkeypatch.setattr(gemm_filter_grad, "filter_gradient_forward_conv",
                        lambda *args: calls.append(args) or form(*args))
    for name, mine, float32s in zip(("outputs", "input gradient", "filter gradient"),
                                    _gradients(low, images, upstream), _gradients(full, images, upstream)):
        error = _relative_error(mine, float32s)
        assert error <= BF16_TOLERANCE, f"{name}: relative error {error:.2e} above {BF16_TOLERANCE:.0e}"
    assert calls, "in bfloat16 the layer should have taken the forward-convolution form"


def test_a_resnet_takes_the_gemm_in_its_small_deep_layers_only():
    model = build_resnet(18, num_classes=10, input_shape=(32, 32, 3), filter_grad="gemm")
    gemm_layers = sorted(layer.name for layer in model.layers if getattr(layer, "uses_gemm", False))
    # at 32x32 stage 3 runs on 2x2 pixels with 256 channels, stage 4 on 1x1 with 512: their 3x3 convolutions
    assert gemm_layers == sorted(f"stage{stage}_block{block}_conv{index}"
                                 for stage in (3, 4) for block in (1, 2) for index in (1, 2))
    conv = build_resnet(18, num_classes=10, input_shape=(32, 32, 3))
    assert not any(isinstance(layer, GemmFilterGradConv2D) for layer in conv.layers)
    assert [weight.shape for weight in model.weights] == [weight.shape for weight in conv.weights]


@pytest.mark.parametrize("depth, size, precision, expected", [
    (18, 32, "fp32", 8), (50, 64, "fp32", 9), (50, 224, "fp32", 3), (18, 96, "fp32", 8),
    (18, 32, "mixed_bf16", 12), (50, 32, "mixed_bf16", 13), (50, 64, "mixed_bf16", 9), (50, 224, "mixed_bf16", 3),
    (18, 32, "amp_bf16", 8),  # grappler's rewrite: the model is built in float32
])
def test_the_layers_counted_from_the_spec_are_the_layers_built(depth, size, precision, expected):
    model = build_resnet(depth, num_classes=10, input_shape=(size, size, 1), filter_grad="gemm", precision=precision)
    built = sum(getattr(layer, "uses_gemm", False) for layer in model.layers)
    assert gemm_layers(depth, size, bfloat16=precision == "mixed_bf16") == built == expected


def test_the_gemm_filter_gradient_is_named_and_refused_where_it_cannot_run():
    assert RunConfig(filter_grad="gemm").run_id.endswith("-fgemm")
    assert "fgemm" not in RunConfig().run_id
    with pytest.raises(UserError, match="NHWC"):
        RunConfig(filter_grad="gemm", layout="nchw")
    with pytest.raises(UserError, match="NHWC"):
        build_resnet(18, input_shape=(32, 32, 3), data_format="channels_first", filter_grad="gemm")
    with pytest.raises(UserError, match="filter gradient"):
        RunConfig(filter_grad="im2col")
    with pytest.raises(UserError, match="variant of this package's model"):
        RunConfig(filter_grad="gemm", model="keras")
    with pytest.raises(UserError, match="changes no layer of ResNet-50 at 448x448"):
        RunConfig(filter_grad="gemm", image_size=448)
    with pytest.raises(UserError, match="changes no layer of ResNet-18 at 480x448"):
        build_resnet(18, input_shape=(480, 448, 1), filter_grad="gemm")
