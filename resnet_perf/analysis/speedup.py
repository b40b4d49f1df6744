"""Which switch pays off: each configuration's throughput against its baseline configuration.

The baseline of a config is the same model, depth, batch, image size and step with the switches at
their reference values (fp32, XLA off, NHWC, unless told otherwise).  A speed-up pairs the two
configs' rounds (round ``i`` of both ran in the same stretch of time: ``resnet_perf.bench.rounds``): the
geometric mean of the per-round images/s ratios with a Student-t interval over the rounds, read at
the last look of the stopping rule (``resnet_perf.analysis.sequential``), whose verdict is one of faster,
slower, no difference (within +-5%) or undecided.  Drift that hits both blocks of a round alike
cancels in the pairing; a slow spell that hit one block and not the other widens the interval.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from resnet_perf.analysis.regression import METRICS, is_true, round_values
from resnet_perf.analysis.sequential import ALPHA, BAND, decide
from resnet_perf.config import ON_OFF, ON_OFF_FIELDS
from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError
from resnet_perf.trace.breakdown import explain

SWITCHES = ("precision", "xla", "layout", "batch_norm", "filter_grad", "threads", "onednn", "fpmath")
REFERENCE = {field: getattr(RunConfig(), field) for field in SWITCHES}
"""The reference value of every switch, its ``RunConfig`` default (fp32, XLA off, NHWC, Keras batch
norm, TensorFlow's filter gradients, threads auto, oneDNN on, fpmath default): a result file written
before a switch existed ran with it."""
SAME = ("model", "depth", "batch_size", "image_size", "channels", "num_classes", "mode")


def switch_text(field: str, value: Any) -> str:
    """How a switch's value reads in a label: ``mixed_bf16``, ``xla``/``noxla``, ``nchw``,
    ``fused_bn``, ``gemm_filter_grad``, ``threads 2:1``, ``onednn``/``noonednn``, ``fpmath bf16``."""
    if field in ON_OFF_FIELDS:
        return field if value else f"no{field}"
    if field == "batch_norm":
        return f"{value}_bn"
    if field == "filter_grad":
        return f"{value}_filter_grad"
    if field in ("threads", "fpmath"):
        return f"{field} {value}"
    return str(value)


def with_switch_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every switch column, its reference value where a row has none (older results)."""
    frame = frame.copy()
    for field, value in REFERENCE.items():
        frame[field] = frame[field].where(frame[field].notna(), value) if field in frame else value
    return frame


def parse_baseline(text: str) -> dict[str, Any]:
    """``"precision=fp32,xla=off,layout=nhwc"`` (any subset of ``SWITCHES``) -> the reference switch values."""
    reference = dict(REFERENCE)
    for part in filter(None, (item.strip() for item in text.split(","))):
        field, _, value = part.partition("=")
        if field not in SWITCHES or not value:
            raise UserError(f"--baseline expects FIELD=VALUE for {', '.join(SWITCHES)}, got {part!r}")
        reference[field] = ON_OFF.get(value, value) if field in ON_OFF_FIELDS else value
    for field in ON_OFF_FIELDS:
        if not isinstance(reference[field], bool):
            raise UserError(f"--baseline: {field} must be on or off, got {reference[field]!r}")
    RunConfig(**reference)  # names must exist
    return reference


def switch_comparisons(cases: Sequence[tuple[RunConfig, str]],
                       reference: dict[str, Any] = REFERENCE) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """``((run_id, mode), (baseline run_id, mode))`` for every case whose baseline configuration
    (its switches at their ``reference`` values) is among ``cases``: the switch verdicts a run decides."""
    keys = {(config.run_id, mode) for config, mode in cases}
    pairs = []
    for config, mode in cases:
        base = (config.replace(**reference).run_id, mode)
        if base != (config.run_id, mode) and base in keys:
            pairs.append(((config.run_id, mode), base))
    return pairs


def speedups(frame: pd.DataFrame, reference: dict[str, Any] = REFERENCE, alpha: float = ALPHA,
             band: float = BAND) -> pd.DataFrame:
    """Per measured (non-derived) row: its baseline config, the switches that differ, the speed-up.

    Columns added: ``baseline`` (run_id), ``switches`` (e.g. ``mixed_bf16+xla``), ``speedup``
    (images/s ratio over paired rounds), ``speedup_low``/``speedup_high`` (its interval at the
    stopping rule's last look), ``speedup_verdict`` (faster, slower, no difference, undecided:
    ``resnet_perf.analysis.sequential``) and ``speedup_decision`` (that ``Verdict`` itself), ``speedup_why``
    (the breakdown's explanation, or ``None``), ``vs_baseline`` (e.g. ``mixed_bf16+xla vs fp32+noxla: faster:
    1.52x [1.41, 1.63] (5 rounds)``, and where both rows have a breakdown the op categories that
    account for it: ``resnet_perf.trace.breakdown.explain``).  Rows without a baseline get none.
    """
    frame = with_switch_columns(frame)
    for column in ("baseline", "switches", "speedup", "speedup_low", "speedup_high", "speedup_verdict",
                   "speedup_decision", "speedup_why", "vs_baseline"):
        frame[column] = None
    if not set(SAME + SWITCHES) <= set(frame.columns):
        return frame
    is_reference = pd.Series(True, index=frame.index)
    for field in SWITCHES:
        is_reference &= frame[field] == reference[field]
    derived = frame["derived"].map(is_true)
    baselines = frame[is_reference & ~derived]
    by_key = {tuple(row[field] for field in SAME): row for _index, row in baselines.iterrows()}
    images_per_sec = METRICS["images_per_sec"]
    for index, row in frame.iterrows():
        base = by_key.get(tuple(row[field] for field in SAME))
        if base is None or derived[index]:
            continue
        changed = [field for field in SWITCHES if row[field] != base[field]]
        if not changed:
            frame.loc[index, ["baseline", "switches", "vs_baseline"]] = [base["run_id"], "", "baseline"]
            continue
        mine, theirs = round_values(images_per_sec, row), round_values(images_per_sec, base)
        if not mine or not theirs:
            continue
        verdict = decide(mine, theirs, alpha, band)
        ratio = verdict.ratio
        new = "+".join(switch_text(field, row[field]) for field in changed)
        old = "+".join(switch_text(field, base[field]) for field in changed)
        why = explain(row, base)
        frame.loc[index, ["baseline", "switches", "speedup", "speedup_low", "speedup_high", "speedup_verdict",
                          "speedup_decision", "speedup_why", "vs_baseline"]] = [
            base["run_id"], new, ratio.value if ratio else None, ratio.low if ratio else None,
            ratio.high if ratio else None, verdict.kind, verdict, why,
            f"{new} vs {old}: {verdict.text(band)}" + (f"; {why}" if why else "")]
    return frame


def best_configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model, depth, batch, image size and step of a ``speedups`` frame: the configuration with
    the most images/s, its speed-up over the baseline configuration (``vs_baseline``), and its
    precision and batch norm (to look up how it trains: ``resnet_perf.analysis.accuracy``)."""
    measured = frame[~frame["derived"].map(is_true) & frame["images_per_sec"].notna()]
    if measured.empty:
        return pd.DataFrame(columns=["config", "step", "img/s", "switches", "vs baseline", "precision", "batch_norm"])
    best = measured.loc[measured.groupby(list(SAME), sort=False)["images_per_sec"].idxmax()]
    return pd.DataFrame({"config": best["run_id"], "step": best["mode"], "img/s": best["images_per_sec"],
                         "switches": best["switches"].where(best["switches"] != "", "(the baseline)"),
                         "vs baseline": best["vs_baseline"], "precision": best["precision"],
                         "batch_norm": best["batch_norm"].fillna("keras")}).reset_index(drop=True)
