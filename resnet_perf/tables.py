"""Tables from result rows (pandas, printed with tabulate): the benchmark suite's report and compare's tables.

Step rows (``bench == "step"``) and memory rows (``bench == "memory"``) of the same ``run_id`` and
``mode`` become one table row.  Backward time is derived where both ``forward`` and ``fwd_bwd``
were measured: ``backward = fwd_bwd - forward`` at the medians.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from resnet_perf.config import MODES, STEP_COST_IN_FORWARDS

MIB = 2**20

DISPLAY_COLUMNS = {
    "run_id": "config",
    "mode": "step",
    "images_per_sec": "img/s",
    "median_ms": "median ms",
    "p90_ms": "p90 ms",
    "cv_pct": "cv %",
    "gflops_per_sec": "GFLOP/s",
    "mfu_pct": "MFU %",
    "compile_s": "compile s",
    "memory_mib": "memory MiB",
    "memory_kind": "memory kind",
    "note": "note",
}


def derive_backward(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for ``mode == "backward"``: fwd_bwd minus forward at the medians, where both exist."""
    measured = {(row["run_id"], row["mode"]): row for row in rows
                if row.get("bench") == "step" and not row.get("error") and not row.get("skipped")}
    derived = []
    for (run_id, mode), both in measured.items():
        forward = measured.get((run_id, "forward"))
        if mode != "fwd_bwd" or forward is None:
            continue
        seconds = both["median_s"] - forward["median_s"]
        flops = forward["flops_per_step"] * (STEP_COST_IN_FORWARDS["fwd_bwd"] - 1)
        row = {key: both[key] for key in both if key not in ("step_times_s",)}
        row.update(mode="backward", derived=True, median_s=seconds, p90_s=None, cv=None, unstable=None,
                   compile_s=None,
                   images_per_sec=both["batch_size"] / seconds if seconds > 0 else None,
                   flops_per_step=flops, achieved_flops=flops / seconds if seconds > 0 else None,
                   mfu=flops / seconds / both["peak_flops"] if seconds > 0 else None)
        derived.append(row)
    return derived


NUMERIC_FIELDS = ("images_per_sec", "median_s", "p90_s", "cv", "achieved_flops", "mfu", "compile_s",
                  "peak_memory_bytes")


def step_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (config, step) with throughput, latency, FLOP/s, MFU, compile time and memory."""
    steps = [row for row in rows if row.get("bench") == "step"]
    steps += derive_backward(steps)
    memory = [{key: row.get(key) for key in ("run_id", "mode", "peak_memory_bytes", "memory_kind", "skipped", "error")}
              for row in rows if row.get("bench") == "memory"]
    frame = pd.DataFrame(steps)
    frame = pd.concat([frame, pd.DataFrame(memory)], ignore_index=True) if memory else frame
    frame = frame.reindex(columns=frame.columns.union(["run_id", "mode", "memory_kind", "skipped", "error",
                                                       "unstable", "derived", *NUMERIC_FIELDS], sort=False))
    return frame.groupby(["run_id", "mode"], sort=False, as_index=False).first()


def _note(row: pd.Series) -> str:
    parts = []
    for key in ("skipped", "error"):
        if isinstance(row.get(key), str) and row.get(key):
            parts.append(f"{key}: {row[key]}")
    if row.get("unstable") is True:
        parts.append(f"unstable (cv {row['cv']:.0%})")
    if row.get("derived") is True:
        parts.append("fwd_bwd - forward")
    if isinstance(row.get("mfu"), float) and row["mfu"] > 1:
        parts.append("MFU > 100%: the matmul peak probe read low (noisy machine)")
    return "; ".join(parts)


STEP_ORDER = {mode: index for index, mode in enumerate((*MODES[:2], "backward", *MODES[2:]))}
"""Steps of one config in the order they are read: forward, fwd_bwd, backward, train."""


def display_frame(rows: Sequence[dict[str, Any]], frame: pd.DataFrame | None = None,
                  extra: dict[str, str] | None = None) -> pd.DataFrame:
    """``step_frame`` in display units (ms, %, GFLOP/s, MiB) with readable column names.

    ``frame`` is a ``step_frame`` of ``rows`` with columns added (e.g. speed-ups); ``extra`` maps
    those columns to their display names, shown before the note.
    """
    frame = step_frame(rows) if frame is None else frame
    shown = pd.DataFrame({
        "run_id": frame["run_id"],
        "mode": frame["mode"],
        "images_per_sec": frame["images_per_sec"],
        "median_ms": frame["median_s"] * 1e3,
        "p90_ms": frame["p90_s"] * 1e3,
        "cv_pct": frame["cv"] * 100,
        "gflops_per_sec": frame["achieved_flops"] / 1e9,
        "mfu_pct": frame["mfu"] * 100,
        "compile_s": frame["compile_s"],
        "memory_mib": frame["peak_memory_bytes"] / MIB,
        "memory_kind": frame["memory_kind"],
        **{name: frame[column] for column, name in (extra or {}).items()},
        "note": [_note(row) for _, row in frame.iterrows()],
    })
    shown = shown.assign(_order=shown["mode"].map(STEP_ORDER)).sort_values(["run_id", "_order"], kind="stable")
    return shown.drop(columns="_order").rename(columns=DISPLAY_COLUMNS).reset_index(drop=True)


def tabulate_frame(frame: pd.DataFrame, table_format: str = "github") -> str:
    """A frame as a tabulate table; missing values print as blanks (tabulate leaves NaN as "nan")."""
    from tabulate import tabulate

    frame = frame.astype(object).where(frame.notna(), None)
    return tabulate(frame, headers="keys", tablefmt=table_format, showindex=False, floatfmt=".4g", missingval="")


def format_table(rows: Sequence[dict[str, Any]], table_format: str = "github") -> str:
    """The rows as a tabulate table (``github``, ``plain``, ...)."""
    return tabulate_frame(display_frame(rows), table_format)


TRAINING_COLUMNS = {
    "run_id": "training run",
    "replicas": "replicas",
    "epoch": "epoch",
    "epoch_time_s": "epoch s",
    "images_per_sec": "img/s",
    "train_loss": "train loss",
    "train_accuracy": "train acc",
    "test_accuracy": "test acc",
    "skipped": "note",
}


def training_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Fashion-MNIST training rows (``bench == "train"``), one per epoch, with readable column names."""
    frame = pd.DataFrame([row for row in rows if row.get("bench") == "train"])
    return frame.reindex(columns=list(TRAINING_COLUMNS)).rename(columns=TRAINING_COLUMNS)


def format_training_table(rows: Sequence[dict[str, Any]], table_format: str = "github") -> str:
    """``training_frame`` as a tabulate table."""
    return tabulate_frame(training_frame(rows), table_format)
