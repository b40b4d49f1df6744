"""ResNet-18/34/50/101/152 (v1.5) as Keras functional models.

Architecture (torchvision / MLPerf ResNet v1.5): 7x7/2 stem convolution, BN, ReLU, 3x3/2 max-pool;
four stages of residual blocks from ``resnet_perf.specs``; in a bottleneck block the stride sits
on the 3x3 convolution (v1 put it on the first 1x1); a 1x1 projection with BN on the shortcut
where the shape changes; no convolution biases (BN follows every convolution); global average pool
and a dense head.  BN uses torchvision's momentum (0.1, i.e. Keras 0.9) and epsilon (1e-5).

Padding is Keras ``same``.  It gives the same output sizes and MAC counts as torchvision's
symmetric padding (``ceil(size / stride)`` for every layer); for strided layers it pads one pixel
more on the bottom/right instead of splitting it, which only matters when porting weights.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import keras

from resnet_perf.config import BATCH_NORMS, FILTER_GRADS, GEMM_NEEDS_NHWC, gemm_changes_nothing
from resnet_perf.errors import UserError, require_choice
from resnet_perf.models.fused_bn import FusedBatchNorm
from resnet_perf.models.gemm_filter_grad import GemmFilterGradConv2D
from resnet_perf.models.residual import ResidualReLU
from resnet_perf.precision import dtype_policy
from resnet_perf.specs import BOTTLENECK_EXPANSION, TOTAL_STRIDE, ResNetSpec, get_spec

DATA_FORMATS = ("channels_last", "channels_first")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class _Layers:
    """Makes the layers of one model with the same data format, dtype policy and batch norm."""

    def __init__(self, data_format: str, policy: keras.DTypePolicy, batch_norm: str = "keras",
                 zero_init_residual: bool = False, filter_grad: str = "conv") -> None:
        self.data_format = data_format
        self.policy = policy
        self.channel_axis = 1 if data_format == "channels_first" else -1
        self.batch_norm = batch_norm
        self.zero_init_residual = zero_init_residual
        self.filter_grad = filter_grad

    def conv(self, filters: int, kernel: int, stride: int, name: str) -> keras.layers.Layer:
        layer = GemmFilterGradConv2D if self.filter_grad == "gemm" else keras.layers.Conv2D
        return layer(
            filters, kernel, strides=stride, padding="same", use_bias=False,
            data_format=self.data_format, kernel_initializer="he_normal",
            dtype=self.policy, name=name)

    def bn(self, name: str, gamma: str = "ones", before_relu: bool = False) -> keras.layers.Layer:
        if self.batch_norm == "fused":
            # a ReLU right after the fused op is fused into it by grappler; rows would come between them
            return FusedBatchNorm(axis=self.channel_axis, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                  gamma_initializer=gamma, rows=not before_relu, dtype=self.policy, name=name)
        return keras.layers.BatchNormalization(
            axis=self.channel_axis, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
            gamma_initializer=gamma, dtype=self.policy, name=name)

    def relu(self, name: str) -> keras.layers.Layer:
        return keras.layers.ReLU(dtype=self.policy, name=name)

    def conv_bn(self, x, filters: int, kernel: int, stride: int, prefix: str, suffix: str = "",
                gamma: str = "ones", before_relu: bool = False):
        """Convolution then BN (its scale initialised by ``gamma``), named ``{prefix}conv{suffix}`` /
        ``{prefix}bn{suffix}``."""
        x = self.conv(filters, kernel, stride, f"{prefix}conv{suffix}")(x)
        return self.bn(f"{prefix}bn{suffix}", gamma, before_relu)(x)

    def conv_bn_relu(self, x, filters: int, kernel: int, stride: int, prefix: str, suffix: str = ""):
        """``conv_bn`` then a ReLU named ``{prefix}relu{suffix}``."""
        x = self.conv_bn(x, filters, kernel, stride, prefix, suffix, before_relu=True)
        return self.relu(f"{prefix}relu{suffix}")(x)

    @property
    def residual_gamma(self) -> str:
        """The initial scale of a block's last BN: 0 with ``zero_init_residual``, so every block
        starts as its shortcut (Goyal et al. 2017, section 5.1), else 1."""
        return "zeros" if self.zero_init_residual else "ones"


def _inputs(x) -> tuple:
    """A block's input for its main path and for its shortcut: the two copies the previous block handed out
    (``ResidualReLU``), or one tensor used twice."""
    return tuple(x) if isinstance(x, (list, tuple)) else (x, x)


def _shortcut(layers: _Layers, x, out_channels: int, stride: int, name: str):
    """Identity when shapes match, else a strided 1x1 projection with BN."""
    in_channels = x.shape[layers.channel_axis]
    if stride == 1 and in_channels == out_channels:
        return x
    return layers.conv_bn(x, out_channels, 1, stride, f"{name}_proj_")


def _merge(layers: _Layers, residual, shortcut, name: str, copies: int):
    """relu(residual + shortcut): with the fused batch norm one ``ResidualReLU`` layer handing out ``copies``
    (2 for a next block's two paths), else Keras's ``Add`` and ``ReLU``."""
    if layers.batch_norm == "fused":
        return ResidualReLU(copies, dtype=layers.policy, name=f"{name}_out")(residual, shortcut)
    x = keras.layers.Add(dtype=layers.policy, name=f"{name}_add")([residual, shortcut])
    return layers.relu(f"{name}_out")(x)


def basic_block(layers: _Layers, x, width: int, stride: int, name: str, copies: int = 1):
    """Two 3x3 convolutions (ResNet-18/34)."""
    main, side = _inputs(x)
    shortcut = _shortcut(layers, side, width, stride, name)
    y = layers.conv_bn_relu(main, width, 3, stride, f"{name}_", "1")
    y = layers.conv_bn(y, width, 3, 1, f"{name}_", "2", gamma=layers.residual_gamma)
    return _merge(layers, y, shortcut, name, copies)


def bottleneck_block(layers: _Layers, x, width: int, stride: int, name: str, copies: int = 1):
    """1x1 reduce, 3x3 (carrying the stride: v1.5), 1x1 expand (ResNet-50/101/152)."""
    out_channels = width * BOTTLENECK_EXPANSION
    main, side = _inputs(x)
    shortcut = _shortcut(layers, side, out_channels, stride, name)
    y = layers.conv_bn_relu(main, width, 1, 1, f"{name}_", "1")
    y = layers.conv_bn_relu(y, width, 3, stride, f"{name}_", "2")
    y = layers.conv_bn(y, out_channels, 1, 1, f"{name}_", "3", gamma=layers.residual_gamma)
    return _merge(layers, y, shortcut, name, copies)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise UserError(f"input_shape must be three integers (height, width, channels), got {input_shape!r}")
    height, width, channels = shape
    if channels < 1:
        raise UserError(f"input_shape needs at least one channel, got {input_shape!r}")
    if min(height, width) < TOTAL_STRIDE:
        raise UserError(
            f"image size {height}x{width} is too small: ResNet downsamples by {TOTAL_STRIDE}, "
            f"so height and width must be at least {TOTAL_STRIDE}")
    return shape


def build_resnet(
    depth: int,
    *,
    num_classes: int = 1000,
    input_shape: Sequence[int] = (224, 224, 3),
    data_format: str = "channels_last",
    precision: str = "fp32",
    batch_norm: str = "keras",
    zero_init_residual: bool = False,
    filter_grad: str = "conv",
) -> keras.Model:
    """Build ResNet-``depth`` (v1.5) as an uncompiled ``keras.Model`` returning float32 logits.

    ``input_shape`` is always (height, width, channels); with ``data_format="channels_first"``
    the model takes NCHW tensors.  ``precision`` (``fp32``, ``mixed_fp16``, ``mixed_bf16``) is a
    dtype policy handed to every layer of this model only.  ``batch_norm`` (``BATCH_NORMS``) picks
    Keras's batch normalization or the fused equivalent: same weights, same function; with ``fused`` each block's
    tail, relu(residual + shortcut), is one ``ResidualReLU`` layer on the native kernels
    (``resnet_perf.models.residual``; the same bits as Keras's ``Add`` and ``ReLU``).
    ``zero_init_residual`` starts the scale of each block's last BN at 0 instead of 1.
    ``filter_grad`` (``FILTER_GRADS``): ``gemm`` computes the filter gradient of the layers with few
    pixels as one GEMM over the input's patches (float32) or one forward convolution (bfloat16) (NHWC only,
    ``resnet_perf.models.gemm_filter_grad``); same weights, same function.
    """
    spec: ResNetSpec = get_spec(depth)
    height, width, channels = _check_input_shape(input_shape)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, got {num_classes!r}")
    require_choice("data_format", data_format, DATA_FORMATS)
    require_choice("batch norm", batch_norm, BATCH_NORMS)
    require_choice("filter gradient", filter_grad, FILTER_GRADS)
    if filter_grad == "gemm" and data_format != "channels_last":
        raise UserError(GEMM_NEEDS_NHWC)
    layers = _Layers(data_format, dtype_policy(precision), batch_norm, zero_init_residual, filter_grad)

    shape = (channels, height, width) if data_format == "channels_first" else (height, width, channels)
    inputs = keras.Input(shape=shape, name="images")
    x = layers.conv_bn_relu(inputs, 64, 7, 2, "stem_")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", data_format=data_format,
                                  dtype=layers.policy, name="stem_pool")(x)
    block = BLOCKS[spec.block]
    for stage, (blocks, stage_width) in enumerate(zip(spec.blocks_per_stage, spec.widths), start=1):
        for index in range(1, blocks + 1):
            stride = 2 if stage > 1 and index == 1 else 1
            last = stage == len(spec.blocks_per_stage) and index == blocks  # its output feeds the pool alone
            x = block(layers, x, stage_width, stride, f"stage{stage}_block{index}", copies=1 if last else 2)
    x = keras.layers.GlobalAveragePooling2D(data_format=data_format, dtype=layers.policy, name="avg_pool")(x)
    x = keras.layers.Dense(num_classes, dtype=layers.policy, name="fc")(x)
    # Losses and softmax need float32 logits whatever the compute dtype (Keras mixed-precision guide).
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    model = keras.Model(inputs, logits, name=f"resnet{depth}")
    if filter_grad == "gemm" and not any(getattr(layer, "uses_gemm", False) for layer in model.layers):
        raise UserError(gemm_changes_nothing(depth, height, width))  # a switch that would change nothing
    return model


_STAGE_OUTPUT = re.compile(r"stage(\d+)_block\d+_out$")


def stage_output_shapes(model: keras.Model) -> list[tuple[str, str, tuple]]:
    """(label, what it is, output shape) for the stem layers, each stage, the pool and the head.

    The rows the seed article prints for its ResNet-18: one per stem layer, one per stage of
    residual blocks (the output of its last block), then the pool and the dense layer.
    """
    stages: dict[str, list[keras.layers.Layer]] = {}
    for layer in model.layers:
        match = _STAGE_OUTPUT.match(layer.name)
        if match:
            stages.setdefault(f"stage{match.group(1)}", []).append(layer)

    def shape(layer: keras.layers.Layer) -> tuple:
        output = layer.output  # a block's two copies (``ResidualReLU``) have one shape
        return tuple((output[0] if isinstance(output, (list, tuple)) else output).shape)

    def row(name: str) -> tuple[str, str, tuple]:
        layer = model.get_layer(name)
        return name, type(layer).__name__, shape(layer)

    rows = [row(name) for name in ("stem_conv", "stem_bn", "stem_relu", "stem_pool")]
    rows += [(stage, f"{len(blocks)} residual blocks", shape(blocks[-1])) for stage, blocks in stages.items()]
    rows += [row(name) for name in ("avg_pool", "fc")]
    return rows


def count_params(model: keras.Model) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts; BN moving statistics are the non-trainable ones."""
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    frozen = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    return trainable, frozen
