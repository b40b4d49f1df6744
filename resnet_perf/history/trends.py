"""What a history says: the changes detected in each series, and the latest state of every series.

Both tables are numbers (changes as percentages, times as datetimes); the site and the text summary
of ``python -m resnet_perf.report`` render them.  A/B ratios are not searched for changes: each A/B
run compares its own pair of revisions, so consecutive ratios are not one quantity drifting.
"""
from __future__ import annotations

import pandas as pd

from resnet_perf.history.changes import detect_changes
from resnet_perf.history.points import SERIES_KEY, SERIES_METRICS, series_groups

CHANGE_COLUMNS = [*SERIES_KEY, "time", "commit", "file", "before", "after", "change_pct", "worse"]
SERIES_COLUMNS = [*SERIES_KEY, "points", "latest_time", "latest", "latest_note", "previous", "vs_previous_pct",
                  "last_change_pct", "last_change_time", "last_change_commit", "trace"]
UNSEARCHED_KINDS = ("ab",)


def change_table(points: pd.DataFrame) -> pd.DataFrame:
    """Every change detected (``resnet_perf.history.changes``), newest first: where (the first run at the
    new level: its time, commit and file), the levels before and after, and whether it is worse."""
    records = []
    for key, group in series_groups(points):
        series = dict(zip(SERIES_KEY, key))
        if series["kind"] in UNSEARCHED_KINDS:
            continue
        measured = group[group["value"].notna()]
        for change in detect_changes(measured["value"].tolist()):
            at = measured.iloc[change.index]
            higher_is_better = SERIES_METRICS[series["metric"]].higher_is_better
            records.append({**series, "time": at["time"], "commit": at["commit"], "file": at["file"],
                            "before": change.before, "after": change.after, "change_pct": change.relative * 100,
                            "worse": (change.relative < 0) == higher_is_better})
    frame = pd.DataFrame.from_records(records, columns=CHANGE_COLUMNS)
    return frame.sort_values("time", ascending=False, kind="stable").reset_index(drop=True)


def _percent(new: float, old: float) -> float:
    return (new / old - 1) * 100 if pd.notna(new) and pd.notna(old) and old else float("nan")


def series_table(points: pd.DataFrame, changes: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """One row per series: its number of points, latest value (and note), the change of the latest
    against the run before it, its last detected change, and the newest trace of its case."""
    last_change = {tuple(row[SERIES_KEY]): row for _, row in changes.iloc[::-1].iterrows()}  # the newest wins
    newest_trace = {(row["config"], row["step"], row["machine"]): row["trace"] for _, row in traces.iterrows()}
    records = []
    for key, group in series_groups(points):
        latest, previous = group.iloc[-1], group.iloc[-2] if len(group) > 1 else None
        previous_value = previous["value"] if previous is not None else float("nan")
        change = last_change.get(key)
        series = dict(zip(SERIES_KEY, key))
        records.append({
            **series, "points": len(group), "latest_time": latest["time"], "latest": latest["value"],
            "latest_note": latest["note"] if isinstance(latest["note"], str) else "",
            "previous": previous_value, "vs_previous_pct": _percent(latest["value"], previous_value),
            "last_change_pct": change["change_pct"] if change is not None else float("nan"),
            "last_change_time": change["time"] if change is not None else None,
            "last_change_commit": change["commit"] if change is not None else None,
            "trace": newest_trace.get((series["config"], series["step"], series["machine"])),
        })
    return pd.DataFrame.from_records(records, columns=SERIES_COLUMNS)
