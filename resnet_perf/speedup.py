"""Which switch pays off: each configuration's throughput against its baseline configuration.

The baseline of a config is the same model, depth, batch, image size and step with the switches at
their reference values (fp32, XLA off, NHWC, unless told otherwise).  A speed-up pairs the two
configs' rounds (round ``i`` of both ran in the same stretch of time: ``resnet_perf.rounds``): the
geometric mean of the per-round images/s ratios with a Student-t interval over the rounds
(``resnet_perf.intervals.paired_ratio``).  It is claimed only when the interval excludes 1 and
the per-round ratios agree (a spread within ``intervals.ROUNDS_DISAGREE``): a slow spell that hit one
config's block of a round and not the other's shows as a round that disagrees.  Drift that hits
both blocks of a round alike cancels in the pairing, so a config whose own rounds differ (noted
``rounds disagree`` in its row) can still carry a claim.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from resnet_perf.cli import ON_OFF, ON_OFF_FIELDS
from resnet_perf.breakdown import explain
from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError
from resnet_perf.intervals import ROUNDS_DISAGREE, Ratio, paired_ratio, spread
from resnet_perf.regression import ALPHA, METRICS, is_true, round_values

SWITCHES = ("precision", "xla", "layout", "batch_norm", "threads", "onednn", "fpmath")
REFERENCE = {field: getattr(RunConfig(), field) for field in SWITCHES}
"""The reference value of every switch, its ``RunConfig`` default (fp32, XLA off, NHWC, Keras batch
norm, threads auto, oneDNN on, fpmath default): a result file written before a switch existed ran
with it."""
SAME = ("model", "depth", "batch_size", "image_size", "channels", "num_classes", "mode")


def switch_text(field: str, value: Any) -> str:
    """How a switch's value reads in a label: ``mixed_bf16``, ``xla``/``noxla``, ``nchw``,
    ``fused_bn``, ``threads 2:1``, ``onednn``/``noonednn``, ``fpmath bf16``."""
    if field in ON_OFF_FIELDS:
        return field if value else f"no{field}"
    if field == "batch_norm":
        return f"{value}_bn"
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


def _verdict(new: str, old: str, ratio: Ratio, per_round: list[float], agree: bool) -> str:
    claim = f"{new} = {ratio.value:.2f}x {old}"
    if not agree:
        return (f"{new} vs {old}: rounds disagree ({min(per_round):.2f}x to {max(per_round):.2f}x), "
                f"no speed-up claimed")
    if not ratio.significant:
        return f"{claim} (not significant: {ratio.interval_text()})"
    return f"{claim} {ratio.interval_text()}"


def speedups(frame: pd.DataFrame, reference: dict[str, Any] = REFERENCE, alpha: float = ALPHA) -> pd.DataFrame:
    """Per measured (non-derived) row: its baseline config, the switches that differ, the speed-up.

    Columns added: ``baseline`` (run_id), ``switches`` (e.g. ``mixed_bf16+xla``), ``speedup``
    (images/s ratio over paired rounds), ``speedup_low``/``speedup_high`` (its 1 - alpha interval),
    ``speedup_significant`` (the interval excludes 1 and the per-round ratios agree), ``vs_baseline`` (e.g.
    ``mixed_bf16+xla = 1.52x fp32+noxla [1.41, 1.63]``, and where both rows have a breakdown
    the op categories that account for it: ``resnet_perf.breakdown.explain``).  Rows without a
    baseline get none.
    """
    frame = with_switch_columns(frame)
    for column in ("baseline", "switches", "speedup", "speedup_low", "speedup_high", "speedup_significant",
                   "vs_baseline"):
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
        ratio = paired_ratio(mine, theirs, 1 - alpha)
        per_round = [a / b for a, b in zip(mine, theirs)]
        agree = len(per_round) < 2 or spread(per_round) <= ROUNDS_DISAGREE
        new = "+".join(switch_text(field, row[field]) for field in changed)
        old = "+".join(switch_text(field, base[field]) for field in changed)
        why = explain(row, base)
        frame.loc[index, ["baseline", "switches", "speedup", "speedup_low", "speedup_high", "speedup_significant",
                          "vs_baseline"]] = [
            base["run_id"], new, ratio.value, ratio.low, ratio.high, ratio.significant and agree,
            _verdict(new, old, ratio, per_round, agree) + (f": {why}" if why else "")]
    return frame


def best_configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model, depth, batch, image size and step of a ``speedups`` frame: the configuration with
    the most images/s, and its speed-up over the baseline configuration (``vs_baseline``)."""
    measured = frame[~frame["derived"].map(is_true) & frame["images_per_sec"].notna()]
    if measured.empty:
        return pd.DataFrame(columns=["config", "step", "img/s", "switches", "vs baseline"])
    best = measured.loc[measured.groupby(list(SAME), sort=False)["images_per_sec"].idxmax()]
    return pd.DataFrame({"config": best["run_id"], "step": best["mode"], "img/s": best["images_per_sec"],
                         "switches": best["switches"].where(best["switches"] != "", "(the baseline)"),
                         "vs baseline": best["vs_baseline"]}).reset_index(drop=True)
