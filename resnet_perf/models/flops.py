"""FLOP and MFU arithmetic, in one place: MAC counts of a model and of each step, and the ratios
derived from raw measurements when results are read.

**Counting.**  Counts what the literature counts: convolutions and dense layers, with the spatial
sizes of the model's actual input.  BN, activations, pooling and additions are left out (they are
memory-bound and add well under 1%).  One MAC is one multiply plus one add, so FLOPs = 2 x MACs.

Reference figures at 224x224x3, 1000 classes, in GMACs (both sources call them "FLOPs"):

- torchvision's model zoo (v1.5, stride on the bottleneck 3x3): ResNet-18 1.81, -34 3.66, -50 4.09,
  -101 7.80, -152 11.51.  ``build_resnet`` matches these.
- He et al. 2015, Table 1 (v1, stride on the bottleneck's first 1x1): 1.8, 3.6, 3.8, 7.6, 11.3.
  For 18 and 34 there is no bottleneck, so v1 and v1.5 are the same network.  For 50/101/152 the
  v1 stride placement runs the 3x3 of each stage's first block on the already halved map, saving
  ~0.2-0.3 GMACs; ``keras.applications.ResNet50/101/152`` are v1 and match the paper.  The paper
  gives two significant digits, so it is matched to its own rounding.

A training step's backward pass computes, for each convolution and dense layer, the gradient of
its weights (as many MACs as its forward) and the gradient of its input (as many again) -- except
where no layer upstream has weights: the stem convolution's input is the image, whose gradient
nobody asks for, so it is never computed.  ``step_macs`` counts exactly that, layer by layer.

**Deriving.**  Result rows keep raw inputs (step times, ``flops_per_step``, ``compute_dtype``) and a
result file keeps its matmul peak readings once; images/s, FLOP/s and MFU are computed from them by
``with_derived_metrics`` when the file is read, so a ratio never depends on when it was written.

This module imports Keras only to count a built model, so reading results does not start TensorFlow.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resnet_perf.config import BACKWARD_MODES, MODES

if TYPE_CHECKING:
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
    """MACs per image of a built functional ``model``'s forward pass (convolutions and dense layers)."""
    import keras

    per_layer = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            per_layer[layer.name] = _conv_macs(layer)
        elif isinstance(layer, keras.layers.Dense):
            per_layer[layer.name] = _dense_macs(layer)
    return MacCount(sum(per_layer.values()), per_layer)


def _weights_upstream(model: keras.Model) -> dict[str, bool]:
    """For each layer: whether some layer feeding it (directly or not) has trainable weights,
    i.e. whether backpropagation needs the gradient of this layer's input."""
    upstream: dict[str, bool] = {}
    for layer in model.layers:  # topological order in a functional model
        parents = [parent.operation for node in layer._inbound_nodes for parent in node.parent_nodes]
        upstream[layer.name] = any(bool(parent.trainable_weights) or upstream.get(parent.name, False)
                                   for parent in parents)
    return upstream


def step_macs(model: keras.Model, mode: str) -> MacCount:
    """MACs per image of one ``mode`` step: the forward, plus for a backward step each layer's
    weight gradient and, where a layer with weights lies upstream, its input gradient."""
    if mode not in MODES:
        raise ValueError(f"unknown step mode {mode!r}: choose one of {', '.join(MODES)}")
    forward = count_macs(model)
    if mode not in BACKWARD_MODES:
        return forward
    upstream = _weights_upstream(model)
    per_layer = {name: macs * (3 if upstream[name] else 2) for name, macs in forward.per_layer.items()}
    return MacCount(sum(per_layer.values()), per_layer)


def flops_per_step(model: keras.Model, mode: str, batch_size: int) -> int:
    """Analytic FLOPs of one ``mode`` step over a batch (2 per MAC)."""
    return 2 * step_macs(model, mode).macs * batch_size


def peak_from_readings(readings: Sequence[float]) -> float | None:
    """The matmul peak a session's readings stand for: the best one (a shared machine's slow
    spells only ever make a reading lower).  ``None`` without readings."""
    valid = [reading for reading in readings if isinstance(reading, (int, float)) and reading > 0]
    return max(valid) if valid else None


def session_peaks(readings: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """``{dtype: readings}`` -> ``{dtype: peak FLOP/s}`` for the dtypes with a valid reading."""
    peaks = {dtype: peak_from_readings(values) for dtype, values in readings.items()}
    return {dtype: peak for dtype, peak in peaks.items() if peak is not None}


def mfu(flops: float, seconds: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the FLOP/s a step achieved over the machine's matmul peak."""
    return flops / seconds / peak_flops


def _positive(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def derived_step_metrics(row: Mapping[str, Any], peaks: Mapping[str, float]) -> dict[str, float | None]:
    """images/s, FLOP/s, the peak and MFU of a step row from its raw inputs, at the median step time."""
    median, batch = _positive(row.get("median_s")), _positive(row.get("batch_size"))
    flops, peak = _positive(row.get("flops_per_step")), _positive(peaks.get(row.get("compute_dtype")))
    achieved = flops / median if flops and median else None
    return {"images_per_sec": batch / median if batch and median else None,
            "achieved_flops": achieved,
            "peak_flops": peak,
            "mfu": mfu(flops, median, peak) if achieved and peak else None}


def with_derived_metrics(rows: Sequence[dict[str, Any]], peaks: Mapping[str, float]) -> list[dict[str, Any]]:
    """Copies of ``rows`` with the derived metrics added to every measured step row."""
    derived = []
    for row in rows:
        if row.get("bench") == "step" and not row.get("error") and not row.get("skipped"):
            row = {**row, **derived_step_metrics(row, peaks)}
        derived.append(row)
    return derived
