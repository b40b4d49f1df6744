"""Where a step's time goes, by op category, read from a profiler trace of the step.

Every op event of the trace (``resnet_perf.trace.xplane``) falls into one category, by its TensorFlow op
type and, where the type alone cannot tell (a ``Mul`` of batch norm or of a residual branch), by
the layer in its name:

- convolution forward / backward (data) / backward (filter): ``Conv2D``, ``Conv2DBackpropInput``,
  ``Conv2DBackpropFilter`` and their oneDNN forms (``_MklNativeConv2D...``, ``_FusedConv2D``); the
  filter gradients computed as GEMMs (patches, matmul: every op in ``GEMM_FILTER_GRADIENT_SCOPE``);
- batch norm: ``FusedBatchNorm*`` kernels, and every op inside a batch norm layer (``*_bn``,
  ``*_bnN``: Keras's batch norm is a dozen loose ops per layer, moments, scaling and their gradients,
  moving-average updates);
- casts and layout reorders: ``Cast``, ``Transpose``, oneDNN's layout conversions;
- pooling and dense: pooling kernels, ``MatMul``/``BiasAdd`` and the ops of the ``avg_pool`` and
  ``fc`` layers;
- optimizer update: the optimizer's ops (``ResourceApply*``, everything under ``sgd/``);
- elementwise and activations: the remaining arithmetic (ReLU and its gradient, residual adds,
  gradient accumulation ``AddN``);
- other: the rest (variable reads, the loss, control).

Under XLA the events are HLO instructions, which carry no layer: convolutions of every direction
and dots are one category (XLA turns 1x1 convolutions into dots; the classifier's dot is tiny
beside them), pooling windows are pooling, fusions of nothing but copies, transposes, reverses and
converts are reorders, and the other fusions and reductions (batch norm and elementwise math fused
together) are a category of their own.

**Adding up to the step.**  Ops of one step overlap (inter-op threads), so their self times summed
over threads exceed the step's wall time.  A row keeps the raw figures, each category's op self
time per traced step (``breakdown_op_s``) and the traced steps' median wall time
(``breakdown_step_s``); ``step_shares`` apportions the step's wall time by them when read, so the
categories add up to the step exactly.  The step apportioned is the *timed* median where the row
has one: traced steps run slower than timed ones (the profiler's own cost, 10-50% on ResNet-50
here) and are only a few, so the trace gives the shares and the timing gives the milliseconds, and
the categories' changes between two rows add up to the change of their measured step times.
"""
from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resnet_perf.config import GEMM_FILTER_GRADIENT_SCOPE
from resnet_perf.errors import UserError
from resnet_perf.trace.xplane import PICOSECONDS, op_self_times, read_xspace, step_markers

CATEGORIES: dict[str, str] = {
    "conv_forward": "convolution forward",
    "conv_backward_data": "convolution backward (data)",
    "conv_backward_filter": "convolution backward (filter)",
    "conv_xla": "convolutions and dots (XLA, all directions)",
    "batch_norm": "batch norm",
    "cast_reorder": "casts and layout reorders",
    "elementwise": "elementwise and activations",
    "pool_dense": "pooling and dense",
    "optimizer": "optimizer update",
    "xla_fusion": "XLA fusions and reductions",
    "other": "other",
}
CONVOLUTIONS = ("conv_forward", "conv_backward_data", "conv_backward_filter", "conv_xla")

_GEMM_FILTER_GRADIENT = re.compile(rf"(^|/){GEMM_FILTER_GRADIENT_SCOPE}(_\d+)?/")
_BATCH_NORM_LAYER = re.compile(r"(^|/)[^/]*(_bn\d*|batch_normalization)(_\d+)?(/|$)")
_POOL_DENSE_LAYER = re.compile(r"(^|/)(avg_pool|fc|predictions)(_\d+)?(/|$)")
_OPTIMIZER = re.compile(r"^(sgd|SGD|loss_scale_optimizer|adam|adamw)(_\d+)?/")
_CASTS_REORDERS = {"Cast", "Transpose", "DataFormatVecPermute", "_MklToTf", "_MklInputConversion"}
_POOL_DENSE = ("MaxPool", "AvgPool", "MatMul", "BiasAdd")
_ELEMENTWISE = {"Relu", "ReluGrad", "ResidualRelu", "ResidualReluGrad", "Relu6", "Relu6Grad", "AddV2", "Add", "AddN",
                "Mul", "Sub", "Neg", "Maximum", "Minimum", "Square", "SquaredDifference", "RealDiv", "Rsqrt",
                "RsqrtGrad", "Sqrt", "Identity", "Tile", "Sum", "Mean", "Select", "SelectV2", "ZerosLike", "OnesLike"}
_XLA_REORDERS = {"copy", "transpose", "reverse", "convert", "bitcast", "bitcast-convert", "copy-start", "copy-done"}
_XLA_PREFIX, _XLA_SUFFIX = "wrapped_", "_fusion"


def _xla_category(kind: str) -> str:
    """The category of an HLO instruction kind (``convolution``, ``copy_reverse_fusion``, ``wrapped_add``)."""
    if "convolution" in kind or kind == "dot" or kind.startswith("MatMul"):
        return "conv_xla"
    if "reduce-window" in kind or "select-and-scatter" in kind:
        return "pool_dense"
    parts = kind.removeprefix(_XLA_PREFIX).removesuffix(_XLA_SUFFIX).split("_")
    return "cast_reorder" if all(part in _XLA_REORDERS for part in parts) else "xla_fusion"


def category(kind: str, op_type: str, name: str) -> str:
    """The category (a key of ``CATEGORIES``) of one op event: ``kind`` ``tf`` or ``xla``."""
    if kind == "xla":
        return _xla_category(op_type)
    if "Conv2DBackpropFilter" in op_type or _GEMM_FILTER_GRADIENT.search(name):
        return "conv_backward_filter"
    if "Conv2DBackpropInput" in op_type:
        return "conv_backward_data"
    if "Conv2D" in op_type:
        return "conv_forward"
    if "FusedBatchNorm" in op_type or _BATCH_NORM_LAYER.search(name):
        return "batch_norm"
    if _OPTIMIZER.search(name) or op_type.startswith(("ResourceApply", "Apply")):
        return "optimizer"
    if op_type in _CASTS_REORDERS or "Reorder" in op_type:
        return "cast_reorder"
    if any(part in op_type for part in _POOL_DENSE) or _POOL_DENSE_LAYER.search(name):
        return "pool_dense"
    if op_type in _ELEMENTWISE:
        return "elementwise"
    return "other"


def op_seconds_by_category(space) -> dict[str, float]:
    """Op self time per category over the whole trace (every category, zero where none)."""
    totals = dict.fromkeys(CATEGORIES, 0)
    for kind, op_type, name, own in op_self_times(space):
        totals[category(kind, op_type, name)] += own
    return {key: total * PICOSECONDS for key, total in totals.items()}


def trace_fields(path: str | Path, space=None) -> dict[str, Any]:
    """The raw breakdown fields of a trace of whole steps, for a result row: op self time per
    category per traced step, the traced steps' median wall time and their number (``space``: the
    trace in ``path``, where the caller has already read it)."""
    if space is None:
        space = read_xspace(path)
    steps = [seconds for _number, seconds in step_markers(space)]
    if not steps:
        raise UserError(f"{path} has no step markers: cannot tell a step's time")
    per_step = {key: seconds / len(steps) for key, seconds in op_seconds_by_category(space).items()}
    return {"breakdown_op_s": per_step, "breakdown_step_s": statistics.median(steps), "breakdown_steps": len(steps)}


def step_seconds(row: Mapping[str, Any]) -> float | None:
    """The step a breakdown apportions: the row's timed median, else its traced steps' median."""
    for field in ("median_s", "breakdown_step_s"):
        value = row.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def step_shares(row: Mapping[str, Any]) -> dict[str, dict[str, float]] | None:
    """``{category: {"share", "ms"}}``: the step's wall time (``step_seconds``) apportioned by op self
    time (the shares sum to 1, the milliseconds to the step); ``None`` for a row without a breakdown."""
    op_seconds, step = row.get("breakdown_op_s"), step_seconds(row)
    if not isinstance(op_seconds, Mapping) or step is None:
        return None
    total = sum(op_seconds.values())
    if total <= 0:
        return None
    return {key: {"share": op_seconds.get(key, 0.0) / total, "ms": op_seconds.get(key, 0.0) / total * step * 1e3}
            for key in CATEGORIES}


def category_ms(shares: Mapping[str, Mapping[str, float]], keys: tuple[str, ...]) -> float:
    """The step milliseconds of some categories together, from ``step_shares``."""
    return sum(shares[key]["ms"] for key in keys)


NEGLIGIBLE = 0.005
"""A group below this share of the step is left out of an explanation."""
NEXT_TO_NOTHING = 0.02
"""A group whose time in one row is below this fraction of the other's "appeared" or is "gone": a
ratio to almost nothing (a cast that did not exist in float32) means nothing."""
EXPLAINED_GROUPS: dict[str, tuple[str, ...]] = {
    "convolutions": CONVOLUTIONS,
    "batch norm": ("batch_norm",),
    "casts + reorders": ("cast_reorder",),
    "elementwise": ("elementwise",),
    "XLA fusions": ("xla_fusion",),
    "pooling + dense": ("pool_dense",),
    "optimizer": ("optimizer",),
    "other": ("other",),
}
"""How ``explain`` groups categories: the convolutions' directions together."""


def explain(row: Mapping[str, Any], base: Mapping[str, Any], top: int = 3) -> str | None:
    """Why ``row``'s step differs from ``base``'s: the groups whose time changed most, e.g.
    ``convolutions 1.6x faster (-366 ms), batch norm 1.1x slower (+25 ms), casts + reorders appeared
    (+11 ms)``; ``None`` without both breakdowns."""
    my_shares, their_shares = step_shares(row), step_shares(base)
    if my_shares is None or their_shares is None:
        return None
    changes = []
    for label, keys in EXPLAINED_GROUPS.items():
        mine, theirs = category_ms(my_shares, keys), category_ms(their_shares, keys)
        if max(mine, theirs) < NEGLIGIBLE * step_seconds(row) * 1e3:
            continue
        changes.append((mine - theirs, label, mine, theirs))
    changes.sort(key=lambda change: -abs(change[0]))
    return ", ".join(f"{label} {_factor(mine, theirs)} ({delta:+.0f} ms)" for delta, label, mine, theirs in changes[:top])


def _factor(mine: float, theirs: float) -> str:
    if min(mine, theirs) < NEXT_TO_NOTHING * max(mine, theirs):
        return "appeared" if mine > theirs else "gone"
    ratio = max(mine, theirs) / min(mine, theirs)
    return f"{ratio:.{2 if ratio < 1.1 else 1}f}x {'faster' if mine < theirs else 'slower'}"


def breakdown_frame(rows: list[Mapping[str, Any]]):
    """A ``pandas.DataFrame``, one row per case with a breakdown: config, step, the step's ms
    (``step_seconds``), then per category (those with time in some case) its ms of the step and its share."""
    import pandas as pd

    records = []
    for row in rows:
        shares = step_shares(row)
        if shares is not None:
            records.append({"config": row.get("run_id"), "step": row.get("mode"),
                            "step ms": step_seconds(row) * 1e3,
                            **{key: shares[key] for key in CATEGORIES}})
    used = [key for key in CATEGORIES if any(record[key]["ms"] > 0 for record in records)]
    return pd.DataFrame([{**{name: record[name] for name in ("config", "step", "step ms")},
                          **{CATEGORIES[key]: f"{record[key]['ms']:.1f} ({record[key]['share']:.0%})" for key in used}}
                         for record in records])
