"""The history in a pile of result files: every measured value as a point of a series (``report``).

A series is one quantity of one case on one machine: ``(kind, config, step, metric, machine)``.
Machines never share a series: ``machine`` is the result's fingerprint id (``unknown`` for a file
without one), so different hardware is never drawn as one line nor searched for changes as one.

- ``bench`` files (the suite; pytest-benchmark JSON too): per step row, images/s and MFU % (derived
  when read, ``resnet_perf.models.flops``); per memory row, its peak memory in MiB; the suite's
  Fashion-MNIST case counts as a training run.
- ``train`` files and training rows: final test accuracy, training time and time to the target
  accuracy (a run that missed it is a point without a value, noted ``not reached``; a suite run
  that was not told to train to the target has none); ``train_seeds`` files (``train --seeds``):
  the median time to target over the seeds, with min and max as its interval.
- ``ab`` files: B/A images/s with its interval, per configuration and step (``resnet_perf.analysis.ab_verdicts``).
- ``profile`` files add no value; their trace is linked from their case, as a step row's ``trace``.

An A/B run's own suite process files are left out (``results.is_ab_process_file``): each is half of a
pair measured in turns, not a run.  Files that are not result files are skipped, each with the reason.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_perf.analysis.ab_verdicts import verdict_frame
from resnet_perf.analysis.results import ResultSet, is_ab_process_file, load_result_set
from resnet_perf.analysis.tables import MIB
from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError
from resnet_perf.training.recipes import training_run_id


@dataclass(frozen=True)
class SeriesMetric:
    """A quantity tracked over time: its column name, label, direction and display format."""

    name: str
    label: str
    higher_is_better: bool
    format: str

    def show(self, value: float | None) -> str:
        return "" if value is None or math.isnan(value) else self.format.format(value)


SERIES_METRICS = {metric.name: metric for metric in (
    SeriesMetric("images_per_sec", "images/s", True, "{:.1f}"),
    SeriesMetric("mfu_pct", "MFU %", True, "{:.1f}"),
    SeriesMetric("host_memory_mib", "host RSS added MiB", False, "{:.0f}"),
    SeriesMetric("device_memory_mib", "device peak MiB", False, "{:.0f}"),
    SeriesMetric("time_to_target_s", "time to target s", False, "{:.0f}"),
    SeriesMetric("final_test_accuracy", "final test accuracy", True, "{:.4f}"),
    SeriesMetric("train_time_s", "training time s", False, "{:.0f}"),
    SeriesMetric("ab_ratio", "B/A images/s", True, "{:.3f}"),
)}
SERIES_KEY = ["kind", "config", "step", "metric", "machine"]
POINT_COLUMNS = [*SERIES_KEY, "time", "value", "low", "high", "note", "commit", "file", "trace"]
TRACE_COLUMNS = ["config", "step", "machine", "time", "trace"]
UNKNOWN_MACHINE = "unknown"
RUN_FIELDS = ("depth", "batch_size", "image_size", "channels", "num_classes", "precision", "xla", "layout")


@dataclass
class History:
    """Every point of every series (``POINT_COLUMNS``, oldest first), the profiler traces per case
    (``TRACE_COLUMNS``), the fingerprints of the machines seen, the files read and those skipped."""

    points: pd.DataFrame
    traces: pd.DataFrame
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def result_files(paths: Sequence[str | Path]) -> list[Path]:
    """The ``*.json`` files given or found under the given folders (an A/B run's process files
    excepted), each once; a path that does not exist is a ``UserError``."""
    found: dict[Path, None] = {}
    for given in map(Path, paths):
        if not given.exists():
            raise UserError(f"{given} does not exist")
        candidates = sorted(given.rglob("*.json")) if given.is_dir() else [given]
        for path in candidates:
            if path.is_file() and not is_ab_process_file(path):
                found.setdefault(path.resolve(), None)
    return list(found)


def _commit(result: ResultSet) -> str | None:
    commit = result.environment.get("git_commit")
    return commit if isinstance(commit, str) and commit else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _bench_values(row: dict[str, Any]) -> dict[str, float | None]:
    if row.get("bench") == "step":
        mfu = _number(row.get("mfu"))
        return {"images_per_sec": _number(row.get("images_per_sec")), "mfu_pct": mfu * 100 if mfu is not None else None}
    if row.get("bench") == "memory":
        host, device = _number(row.get("host_rss_added_bytes")), _number(row.get("device_peak_bytes"))
        return {"host_memory_mib": host / MIB if host is not None else None,
                "device_memory_mib": device / MIB if device is not None else None}
    return {}


def _training_points(result: ResultSet) -> Iterable[dict[str, Any]]:
    """Per training run in the file (rows of one ``run_id``, one per epoch): its final accuracy,
    training time and time to target (the clock at the end of the first evaluation that reached
    it; from the summary of a ``train`` file written before rows kept the clock)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in result.rows:
        if row.get("bench") == "train" and not row.get("skipped") and not row.get("error"):
            runs.setdefault(str(row["run_id"]), []).append(row)
    summary = result.metadata.get("summary") if isinstance(result.metadata.get("summary"), dict) else {}
    for run_id, rows in runs.items():
        rows = sorted(rows, key=lambda row: _number(row.get("epoch")) or 0)
        last, target = rows[-1], _number(rows[-1].get("target_accuracy"))
        run_id = _training_run_id(run_id, last)
        step = f"fashion-mnist to {target:g}" if target is not None else "fashion-mnist"
        for metric, column in (("final_test_accuracy", "test_accuracy"), ("train_time_s", "cumulative_train_time_s")):
            if _number(last.get(column)) is not None:
                yield {"config": run_id, "step": step, "metric": metric, "value": _number(last[column])}
        if target is None or not (result.kind == "train" or last.get("stop_at_target")):
            continue  # a suite run of a few epochs does not try to reach the target
        if all(_number(row.get("clock_s")) is not None for row in rows):
            reached = next((row["clock_s"] for row in rows if (_number(row.get("test_accuracy")) or 0) >= target), None)
        elif "time_to_target_s" in summary and len(runs) == 1:
            reached = _number(summary["time_to_target_s"])
        else:
            continue
        yield {"config": run_id, "step": step, "metric": "time_to_target_s", "value": reached,
               "note": "" if reached is not None else "not reached"}


def _training_run_id(run_id: str, row: dict[str, Any]) -> str:
    """A training row's run_id as this version names it (``recipes.training_run_id``: rows written
    before run_ids named the training settings get them from their own fields)."""
    if not all(name in row for name in (*RUN_FIELDS, "epochs")):
        return run_id  # not a row this version can rebuild: its own name
    try:
        run = RunConfig(**{name: row[name] for name in RUN_FIELDS})
    except (TypeError, UserError):
        return run_id
    return training_run_id(run, row)


def _seeds_points(result: ResultSet) -> Iterable[dict[str, Any]]:
    """A ``train_seeds`` file: the median time to target over its seeds, min and max as the interval."""
    config = result.metadata.get("config") if isinstance(result.metadata.get("config"), dict) else {}
    summary = result.metadata.get("summary") if isinstance(result.metadata.get("summary"), dict) else {}
    target, seeds = _number(config.get("target_accuracy")), summary.get("of")
    if not isinstance(config.get("run_id"), str) or target is None or not isinstance(seeds, int):
        return
    yield {"config": config["run_id"], "step": f"fashion-mnist to {target:g}, {seeds} seeds",
           "metric": "time_to_target_s", "value": _number(summary.get("median_time_to_target_s")),
           "low": _number(summary.get("min_time_to_target_s")), "high": _number(summary.get("max_time_to_target_s")),
           "note": f"{summary.get('reached')} of {seeds} seeds reached it"}


def _ab_points(result: ResultSet) -> Iterable[dict[str, Any]]:
    frame = verdict_frame(result.rows)
    for _, row in frame.iterrows():
        ratio = _number(row.get("B/A"))
        yield {"config": row["config"], "step": row["step"], "metric": "ab_ratio", "value": ratio,
               "low": _number(row.get("low")), "high": _number(row.get("high")),
               "note": row["verdict"]}  # the verdict names its rounds


def _file_points(result: ResultSet) -> Iterable[dict[str, Any]]:
    if result.kind == "ab":
        yield from ({"kind": "ab", **point} for point in _ab_points(result))
        return
    if result.kind == "train_seeds":
        yield from ({"kind": "train", **point} for point in _seeds_points(result))
        return
    for row in result.rows:
        if row.get("error") or row.get("skipped"):
            continue  # measured under a broken condition, or not at all: no value to draw
        for metric, value in _bench_values(row).items():
            if value is not None:
                yield {"kind": "bench", "config": row["run_id"], "step": row["mode"], "metric": metric,
                       "value": value, "note": row.get("stopped") or "", "trace": row.get("trace")}
    yield from ({"kind": "train", **point} for point in _training_points(result))


def _profile_traces(result: ResultSet) -> Iterable[tuple[str, str]]:
    """(run_id, mode) of a profile file's rows, with its trace."""
    trace = result.metadata.get("trace")
    if isinstance(trace, str):
        yield from dict.fromkeys((str(row.get("run_id")), str(row.get("mode"))) for row in result.rows)


READ_KINDS = ("bench", "train", "train_seeds", "ab", "profile")


def load_history(paths: Sequence[str | Path]) -> History:
    """The history of every result file given or found under ``paths``; files that are not result
    files (or of a kind without history) are skipped, each with its reason in ``History.skipped``."""
    points, traces, machines, files, skipped = [], [], {}, [], []
    for path in result_files(paths):
        try:
            result = load_result_set(path)
        except UserError as error:
            skipped.append(str(error))
            continue
        moment = result.time
        reason = (f"{path}: kind {result.kind!r} has no history" if result.kind not in READ_KINDS
                  else f"{path}: no time in its name nor inside" if moment is None else None)
        if reason:
            skipped.append(reason)
            continue
        machine = result.machine or {}
        machine_id = machine.get("id", UNKNOWN_MACHINE)
        if machine:
            machines[machine_id] = machine
        files.append(path)
        common = {"machine": machine_id, "time": moment, "commit": _commit(result), "file": str(path)}
        if result.kind == "profile":
            traces += [{"config": config, "step": step, "machine": machine_id, "time": moment,
                        "trace": result.metadata["trace"]} for config, step in _profile_traces(result)]
            continue
        for point in _file_points(result):
            points.append({**common, **point})
            if point.get("trace"):
                traces.append({"config": point["config"], "step": point["step"], "machine": machine_id,
                               "time": moment, "trace": point["trace"]})
    return History(points=_frame(points, POINT_COLUMNS, SERIES_KEY),
                   traces=_frame(traces, TRACE_COLUMNS, TRACE_COLUMNS[:3]),
                   machines=machines, files=files, skipped=skipped)


def _frame(records: list[dict[str, Any]], columns: list[str], key: list[str]) -> pd.DataFrame:
    """Records as a frame, oldest first; the same value reached through two copies of a file once."""
    frame = pd.DataFrame.from_records(records, columns=columns)
    if "value" in frame:
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame = frame.drop_duplicates(subset=[*key, "time", *(["value"] if "value" in frame else [])])
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def series_groups(points: pd.DataFrame) -> Iterable[tuple[tuple, pd.DataFrame]]:
    """``(series key, its points oldest first)`` for every series."""
    return points.groupby(SERIES_KEY, sort=True, dropna=False)


def short_commit(commit: Any) -> str:
    """``abcdef1234`` or ``abcdef1234-dirty`` for a git commit; empty when unknown."""
    if not isinstance(commit, str) or not commit:
        return ""
    return commit[:10] + ("-dirty" if commit.endswith("-dirty") else "")


def time_text(moment: datetime) -> str:
    """A run's time as shown in tables: ``2026-11-28 17:11 UTC``."""
    return f"{moment:%Y-%m-%d %H:%M} UTC"
