"""Analytic multiply-accumulate (MAC) count of a built Keras model.

Counts what the literature counts: convolutions and dense layers, with the spatial sizes of the
model's actual input.  BN, activations, pooling and additions are left out (they are memory-bound
and add well under 1%).  One MAC is one multiply plus one add, so FLOPs = 2 x MACs.

Reference figures at 224x224x3, 1000 classes, in GMACs (both sources call them "FLOPs"):

- torchvision's model zoo (v1.5, stride on the bottleneck 3x3): ResNet-18 1.81, -34 3.66, -50 4.09,
  -101 7.80, -152 11.51.  ``build_resnet`` matches these.
- He et al. 2015, Table 1 (v1, stride on the bottleneck's first 1x1): 1.8, 3.6, 3.8, 7.6, 11.3.
  For 18 and 34 there is no bottleneck, so v1 and v1.5 are the same network.  For 50/101/152 the
  v1 stride placement runs the 3x3 of each stage's first block on the already halved map, saving
  ~0.2-0.3 GMACs; ``keras.applications.ResNet50/101/152`` are v1 and match the paper.  The paper
  gives two significant digits, so it is matched to its own rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras


@dataclass(frozen=True)
class MacCount:
    """Multiply-accumulates of one forward pass for one image."""

    macs: int
    per_layer: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """Floating-point operations: 2 per MAC."""
        return 2 * self.macs

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def _conv_macs(layer: keras.layers.Conv2D) -> int:
    channel_axis = 1 if layer.data_format == "channels_first" else -1
    out_shape = layer.output.shape
    in_channels = layer.input.shape[channel_axis]
    spatial = out_shape[2:] if channel_axis == 1 else out_shape[1:-1]
    kernel = math.prod(layer.kernel_size)
    return math.prod(spatial) * out_shape[channel_axis] * kernel * in_channels // layer.groups


def _dense_macs(layer: keras.layers.Dense) -> int:
    positions = math.prod(layer.output.shape[1:-1])  # 1 for the usual (batch, features) input
    return positions * layer.input.shape[-1] * layer.units


def count_macs(model: keras.Model) -> MacCount:
    """MACs per image of a built functional ``model`` (convolutions and dense layers)."""
    per_layer = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            per_layer[layer.name] = _conv_macs(layer)
        elif isinstance(layer, keras.layers.Dense):
            per_layer[layer.name] = _dense_macs(layer)
    return MacCount(sum(per_layer.values()), per_layer)
