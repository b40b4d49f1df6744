"""The verdicts of an A/B run (``resnet_perf.processes.ab_runner``): per configuration and step, B/A
images/s as the geometric mean of the per-round ratios with its interval at the stopping rule's last
look (``resnet_perf.analysis.sequential``), the verdict, and the gate's exit status.  Pure: rows in,
a frame and a status out; the runner and ``compare FILE.ab`` both judge with it."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from resnet_perf.analysis.regression import ALPHA, Threshold
from resnet_perf.analysis.sequential import BAND, FASTER, SLOWER, UNDECIDED, decide
from resnet_perf.errors import UserError

JUDGED_METRICS = ("images_per_sec",)


def paired(row: dict[str, Any] | pd.Series) -> tuple[list[float], list[float]]:
    """A's and B's median step times of the rounds both measured (a round is a pair)."""
    pairs = [(a, b) for a, b in zip(row["a_medians_s"], row["b_medians_s"]) if a and b]  # common rounds
    return [a for a, _b in pairs], [b for _a, b in pairs]


def verdict_frame(rows: Sequence[dict[str, Any]], alpha: float = ALPHA, band: float = BAND) -> pd.DataFrame:
    """Per configuration and step: A's and B's images/s, B/A with its interval at the stopping rule's
    last look, and the verdict (``resnet_perf.analysis.sequential``: B faster, B slower, no difference within
    +-``band``, or undecided and why)."""
    records = []
    for row in rows:
        a_times, b_times = paired(row)
        record = {"config": row["run_id"], "step": row["mode"], "rounds": len(a_times)}
        if not a_times:
            records.append({**record, "verdict": "not measured on both sides"})
            continue
        verdict = decide(a_times, b_times, alpha, band)  # A's time over B's: B's images/s over A's
        ratio = verdict.ratio
        batch = row["batch_size"]
        records.append({**record, "A img/s": batch / _geometric_mean(a_times),
                        "B img/s": batch / _geometric_mean(b_times),
                        "B/A": ratio.value if ratio else None, "low": ratio.low if ratio else None,
                        "high": ratio.high if ratio else None, "kind": verdict.kind,
                        "verdict": ("B " if verdict.kind in (FASTER, SLOWER) else "") + verdict.text(band)})
    return pd.DataFrame.from_records(records)


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(value) for value in values) / len(values))


def check_thresholds(thresholds: Sequence[Threshold]) -> None:
    """A ``UserError`` for a metric an A/B run does not judge."""
    for threshold in thresholds:
        if threshold.metric.name not in JUDGED_METRICS:
            raise UserError(f"ab judges {', '.join(JUDGED_METRICS)} (B/A over rounds), not {threshold.metric.name}")


def gate_band(thresholds: Sequence[Threshold]) -> float:
    """The equivalence band of a gate: its (smallest) ``--fail-on`` percentage as a fraction."""
    check_thresholds(thresholds)
    return min(threshold.percent for threshold in thresholds) / 100 if thresholds else BAND


GATE_PASSED, GATE_SLOWER, GATE_UNDECIDED = 0, 1, 3
"""Exit statuses of the gate: every verdict B faster or no difference; some B slower; none slower
but some undecided (the budget ran out first: measure longer, or on a quieter machine)."""


def gate_status(frame: pd.DataFrame) -> int:
    """The gate's exit status over a ``verdict_frame``; a ``UserError`` when nothing was compared."""
    if frame.empty or "kind" not in frame or frame["kind"].isna().all():
        raise UserError("nothing to compare: no configuration was measured by both A and B")
    kinds = set(frame["kind"].dropna())
    if SLOWER in kinds:
        return GATE_SLOWER
    return GATE_UNDECIDED if UNDECIDED in kinds or frame["kind"].isna().any() else GATE_PASSED


def gate_message(status: int, band: float, frame: pd.DataFrame) -> str:
    """What the gate's exit status means, naming the configurations where B was slower."""
    if status == GATE_PASSED:
        return f"gate passed: B faster or within +-{band:.0%} of A everywhere"
    if status == GATE_SLOWER:
        slower = frame[frame["kind"] == SLOWER]
        return "gate FAILED: B slower than A in " + ", ".join(f"{config} {step}" for config, step in
                                                               zip(slower["config"], slower["step"]))
    return ("gate undecided: no slowdown found, but some verdict was still undecided when the rounds stopped "
            "(exit 3: a larger --budget or --rounds, or a quieter machine, can decide it)")


def display(frame: pd.DataFrame) -> pd.DataFrame:
    """``verdict_frame`` ready to print (the verdict holds the interval and its rounds)."""
    if frame.empty or "B/A" not in frame:
        return frame
    return frame[["config", "step", "rounds", "A img/s", "B img/s", "B/A", "verdict"]]
