"""Did a run get slower than a baseline?  Changes per configuration, their intervals, the verdict.

Rows are matched by ``(run_id, mode)``.  A change is the ratio of the two runs' geometric means over
their rounds (each round median turned into the metric: images/s = batch / t, MFU = FLOPs / t /
peak), with a Welch t interval on the logarithms (``resnet_perf.analysis.intervals``); it is significant
when the interval excludes no change.  Rounds, not steps, are the units: consecutive steps share
the machine's slow spells, so a test over steps calls noise significant.  A run measured in one
round has no interval, so nothing in it is significant.  Peak memory is measured once per run, so
there is nothing to test it with; its threshold alone decides (host RSS added on CPU and device
peak on GPU are different quantities, each its own metric).
"""
from __future__ import annotations

import math
import numbers
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from resnet_perf.analysis.intervals import unpaired_ratio
from resnet_perf.analysis.tables import round_notes
from resnet_perf.errors import UserError
from resnet_perf.models.flops import mfu

ALPHA = 0.05
"""1 - the confidence of the intervals (95%)."""


@dataclass(frozen=True)
class Metric:
    """A metric a regression can be declared on."""

    name: str
    column: str
    higher_is_better: bool
    per_step: Callable[[pd.Series, float], float] | None  # (row, a step time) -> value; None: measured once


METRICS = {
    metric.name: metric for metric in (
        Metric("images_per_sec", "images_per_sec", True, lambda row, t: row["batch_size"] / t),
        Metric("mfu", "mfu", True, lambda row, t: mfu(row["flops_per_step"], t, row["peak_flops"])),
        Metric("median_s", "median_s", False, lambda row, t: t),
        Metric("host_memory", "host_rss_added_bytes", False, None),
        Metric("device_memory", "device_peak_bytes", False, None),
    )
}


@dataclass(frozen=True)
class Threshold:
    """``--fail-on METRIC:PCT``: fail when METRIC got worse by more than PCT percent, significantly."""

    metric: Metric
    percent: float

    def __str__(self) -> str:
        return f"{self.metric.name}:{self.percent:g}%"


def parse_threshold(text: str) -> Threshold:
    """``"images_per_sec:5%"`` -> Threshold; a ``UserError`` saying what is expected otherwise."""
    match = re.fullmatch(r"\s*([a-z_]+)\s*:\s*([0-9]*\.?[0-9]+)\s*%?\s*", text)
    if not match:
        raise UserError(f"--fail-on expects METRIC:PCT such as images_per_sec:5%, got {text!r}")
    name, percent = match.group(1), float(match.group(2))
    if name not in METRICS:
        raise UserError(f"--fail-on: unknown metric {name!r}: choose one of {', '.join(METRICS)}")
    return Threshold(METRICS[name], percent)


def round_values(metric: Metric, row: pd.Series) -> list[float]:
    """The metric at each round median of the row (one value from all its steps for a row without
    rounds); empty when the metric has no per-step form or the row no times."""
    if metric.per_step is None:
        return []
    medians = row.get("round_medians_s")
    if not isinstance(medians, list) or not medians:
        times = row.get("step_times_s")
        medians = [statistics.median(times)] if isinstance(times, list) and times else []
    try:
        values = [metric.per_step(row, t) for t in medians if isinstance(t, numbers.Real) and t > 0]
    except (KeyError, TypeError, ZeroDivisionError):
        return []
    return [value for value in values if isinstance(value, numbers.Real) and math.isfinite(value) and value > 0]


def _value(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    return float(value) if isinstance(value, numbers.Real) and math.isfinite(value) else None


NO_CHANGE = {"change": None, "worse_pct": None, "low": None, "high": None, "significant": None}


def metric_change(metric: Metric, baseline: pd.Series, candidate: pd.Series, alpha: float = ALPHA) -> dict[str, Any]:
    """Relative change of ``metric`` with its (1 - alpha) interval (``low``, ``high``), ``worse_pct``
    signed so that positive is worse, and whether the interval excludes no change."""
    before, after = _value(baseline, metric.column), _value(candidate, metric.column)
    if before is None or after is None or before == 0:
        return dict(NO_CHANGE)
    if metric.per_step is None:
        change = (after - before) / before
        worse = -change if metric.higher_is_better else change
        return {**NO_CHANGE, "change": change, "worse_pct": worse * 100}
    then, now = round_values(metric, baseline), round_values(metric, candidate)
    if not then or not now:
        return dict(NO_CHANGE)
    ratio = unpaired_ratio(now, then, 1 - alpha)
    change = ratio.value - 1
    worse = -change if metric.higher_is_better else change
    return {"change": change, "worse_pct": worse * 100,
            "low": None if ratio.low is None else ratio.low - 1,
            "high": None if ratio.high is None else ratio.high - 1, "significant": ratio.significant}


def is_true(value: Any) -> bool:
    """True for a boolean true only (pandas hands back numpy booleans, and NaN where unset)."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def _problem(row: pd.Series) -> str | None:
    for key in ("error", "skipped"):
        if isinstance(row.get(key), str) and row[key]:
            return f"{key}: {row[key]}"
    return None


def compare_frames(frames: Sequence[tuple[str, pd.DataFrame]], alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (config, step, run), baseline run first, with each metric's change against it.

    ``frames`` are ``(label, step_frame)`` pairs; the first is the baseline.  A config found in some
    runs only gets a row per run it is in, with a note naming the runs it is missing from.
    """
    base_label = frames[0][0]
    keys = list(dict.fromkeys(key for _label, frame in frames for key in zip(frame["run_id"], frame["mode"])))
    indexed = [(label, frame.set_index(["run_id", "mode"], drop=False)) for label, frame in frames]
    records = []
    for key in keys:
        present = {label: frame.loc[key] for label, frame in indexed if key in frame.index}
        missing = [label for label, _frame in indexed if label not in present]
        reference = present.get(base_label)
        for label, row in present.items():
            record = {"run_id": key[0], "mode": key[1], "run": label, "derived": is_true(row.get("derived")),
                      **{metric.column: _value(row, metric.column) for metric in METRICS.values()}}
            notes = ([_problem(row)] if _problem(row) else []) + round_notes(row)
            if missing:
                notes.append(f"missing from {', '.join(missing)}")
            if label != base_label and reference is not None:
                for metric in METRICS.values():
                    change = metric_change(metric, reference, row, alpha)
                    record.update({f"{metric.name}_{field}": value for field, value in change.items()})
                if _problem(reference) is None and _problem(row) is not None:
                    record["broken"] = True  # measured in the baseline, not any more
            record["note"] = "; ".join(notes)
            records.append(record)
    return pd.DataFrame.from_records(records)


def regressions(comparison: pd.DataFrame, thresholds: Sequence[Threshold]) -> pd.DataFrame:
    """The rows that break a threshold, with ``regressed_on`` saying which.

    A row breaks a threshold when its metric got worse by more than the percent and the change is
    significant (or, for memory, untestable), or when the baseline has a value of the metric and
    the row has none (missing, or not finite); a config measured in the baseline but failing now
    breaks every threshold.  Derived (backward) rows are reported, never gated.  A ``UserError``
    when thresholds are given and not one value could be judged: nothing compared is no pass.
    """
    base_run = comparison["run"].iloc[0] if len(comparison) else None
    baseline = {(row["run_id"], row["mode"]): row for _index, row in comparison.iterrows() if row["run"] == base_run}
    reasons: dict[Any, list[str]] = {}
    judged = 0
    for index, row in comparison.iterrows():
        if is_true(row["derived"]) or row["run"] == base_run:
            continue
        found = ["failed in this run"] if is_true(row.get("broken")) else []
        reference = baseline.get((row["run_id"], row["mode"]))
        for threshold in thresholds:
            metric, name = threshold.metric, threshold.metric.name
            worse, significant = row.get(f"{name}_worse_pct"), row.get(f"{name}_significant")
            if isinstance(worse, float) and math.isfinite(worse):
                judged += 1
                confirmed = is_true(significant) or metric.per_step is None
                if worse > threshold.percent and confirmed:
                    found.append(f"{name} {worse:.1f}% worse > {threshold.percent:g}%")
            elif reference is not None and _value(reference, metric.column) is not None and not found:
                found.append(f"no {name} to compare (missing or not finite)")
        if found:
            reasons[index] = found
    if thresholds and judged == 0 and not reasons:
        raise UserError("nothing to compare: the runs share no configuration with a finite value of "
                        f"{', '.join(threshold.metric.name for threshold in thresholds)}")
    failing = comparison.loc[list(reasons)]
    return failing.assign(regressed_on=["; ".join(reasons[index]) for index in failing.index])
