"""Tables from result rows (pandas, printed with tabulate): the benchmark suite's report and compare's tables.

Step rows (``bench == "step"``) and memory rows (``bench == "memory"``) of the same ``run_id`` and
``mode`` become one table row.  Backward time is derived where both ``train_forward`` and
``fwd_bwd`` were measured: ``backward = fwd_bwd - train_forward`` at the medians (the same
training-mode forward on both sides).  The rows come with their derived metrics
(``resnet_perf.models.flops.with_derived_metrics``), as ``resnet_perf.analysis.results`` reads them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from resnet_perf.analysis.intervals import ROUNDS_DISAGREE
from resnet_perf.config import MODES
from resnet_perf.machine.cpu_usage import starvation_note
from resnet_perf.models.flops import derived_step_metrics
from resnet_perf.trace.breakdown import breakdown_frame

MIB = 2**20

DISPLAY_COLUMNS = {
    "run_id": "config",
    "mode": "step",
    "images_per_sec": "img/s",
    "median_ms": "median ms",
    "p90_ms": "p90 ms",
    "p99_ms": "p99 ms",
    "cv_pct": "cv %",
    "gflops_per_sec": "GFLOP/s",
    "mfu_pct": "MFU %",
    "compile_s": "compile s",
    "host_rss_added_mib": "host RSS added MiB",
    "device_peak_mib": "device peak MiB",
    "note": "note",
}


def derive_backward(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for ``mode == "backward"``: fwd_bwd minus train_forward at the medians, where both exist."""
    measured = {(row["run_id"], row["mode"]): row for row in rows
                if row.get("bench") == "step" and not row.get("error") and not row.get("skipped")}
    derived = []
    for (run_id, mode), both in measured.items():
        forward = measured.get((run_id, "train_forward"))
        if mode != "fwd_bwd" or forward is None:
            continue
        seconds = both["median_s"] - forward["median_s"]
        flops = both["flops_per_step"] - forward["flops_per_step"]
        row = {key: both[key] for key in both if key not in ("step_times_s", "round_medians_s", "round_spread",
                                                             "cpu_time_s")}
        row.update(mode="backward", derived=True, median_s=seconds, p90_s=None, p99_s=None, cv=None, unstable=None,
                   compile_s=None, flops_per_step=flops)
        row.update(derived_step_metrics(row, {row["compute_dtype"]: both.get("peak_flops")}))
        derived.append(row)
    return derived


MEMORY_FIELDS = ("host_rss_added_bytes", "device_peak_bytes")
"""The two kinds of peak memory a memory row holds one of (see ``resnet_perf.bench.memory``)."""
NUMERIC_FIELDS = ("images_per_sec", "median_s", "p90_s", "p99_s", "cv", "achieved_flops", "mfu", "compile_s", *MEMORY_FIELDS)


def step_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (config, step) with throughput, latency, FLOP/s, MFU, compile time and memory."""
    steps = [row for row in rows if row.get("bench") == "step"]
    steps += derive_backward(steps)
    memory = [{key: row.get(key) for key in ("run_id", "mode", *MEMORY_FIELDS, "skipped", "error")}
              for row in rows if row.get("bench") == "memory"]
    frame = pd.DataFrame(steps)
    frame = pd.concat([frame, pd.DataFrame(memory)], ignore_index=True) if memory else frame
    frame = frame.reindex(columns=frame.columns.union(["run_id", "mode", "skipped", "error",
                                                       "unstable", "derived", "stopped", "round_spread",
                                                       *NUMERIC_FIELDS], sort=False))
    return frame.groupby(["run_id", "mode"], sort=False, as_index=False).first()


def rounds_disagree(row: pd.Series | dict[str, Any]) -> float | None:
    """The spread of a row's round medians when it is beyond ``ROUNDS_DISAGREE``, else ``None``."""
    spread = row.get("round_spread")
    return float(spread) if isinstance(spread, float) and spread > ROUNDS_DISAGREE else None


def round_notes(row: pd.Series | dict[str, Any]) -> list[str]:
    """What the rounds of a row say against trusting it: stopped early, rounds that disagree."""
    notes = [row["stopped"]] if isinstance(row.get("stopped"), str) and row["stopped"] else []
    spread = rounds_disagree(row)
    if spread is not None:
        notes.append(f"rounds disagree (spread {spread:.0%})")
    return notes


def _note(row: pd.Series) -> str:
    parts = []
    for key in ("skipped", "error"):
        if isinstance(row.get(key), str) and row.get(key):
            parts.append(f"{key}: {row[key]}")
    parts += round_notes(row)
    starved = starvation_note(row)
    if starved:
        parts.append(starved)
    if row.get("unstable") is True:
        parts.append(f"unstable (cv {row['cv']:.0%})")
    if row.get("derived") is True:
        parts.append("fwd_bwd - train_forward")
    if isinstance(row.get("mfu"), float) and row["mfu"] > 1:
        parts.append("MFU > 100%: the matmul peak probe read low (noisy machine)")
    return "; ".join(parts)


STEP_ORDER = {mode: index for index, mode in enumerate((*MODES[:3], "backward", *MODES[3:]))}
"""Steps of one config in the order they are read: forward, train_forward, fwd_bwd, backward, train."""


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
        "p99_ms": frame["p99_s"] * 1e3,
        "cv_pct": frame["cv"] * 100,
        "gflops_per_sec": frame["achieved_flops"] / 1e9,
        "mfu_pct": frame["mfu"] * 100,
        "compile_s": frame["compile_s"],
        "host_rss_added_mib": frame["host_rss_added_bytes"] / MIB,
        "device_peak_mib": frame["device_peak_bytes"] / MIB,
        **{name: frame[column] for column, name in (extra or {}).items()},
        "note": [_note(row) for _, row in frame.iterrows()],
    })
    # A CPU run has no device memory, a GPU run no host RSS figure: show only what was measured.
    shown = shown.drop(columns=[column for column in ("host_rss_added_mib", "device_peak_mib")
                                if shown[column].isna().all()])
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
    "compile_s": "first step s",
    "step_time_sum_s": "steps s",
    "data_wait_s": "input wait s",
    "other_s": "other s",
    "images_per_sec": "img/s",
    "train_loss": "train loss",
    "train_accuracy": "train acc",
    "test_accuracy": "test acc",
    "clock_s": "clock s",
}


def training_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Fashion-MNIST training rows (``bench == "train"``), one per epoch, with readable column names
    and a note: why it was skipped, or that its steps got little CPU (``starvation_note``)."""
    trained = [row for row in rows if row.get("bench") == "train"]
    frame = pd.DataFrame(trained).reindex(columns=list(TRAINING_COLUMNS)).rename(columns=TRAINING_COLUMNS)
    frame["note"] = ["; ".join(filter(None, [row.get("skipped"), starvation_note(row)])) for row in trained]
    return frame


def format_training_table(rows: Sequence[dict[str, Any]], table_format: str = "github") -> str:
    """``training_frame`` as a tabulate table."""
    return tabulate_frame(training_frame(rows), table_format)


def latency_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Batch-1 forward latency per configuration: p50 and p99 over every timed step of all rounds."""
    measured = [row for row in rows if row.get("bench") == "step" and row.get("mode") == "forward"
                and row.get("batch_size") == 1 and not row.get("error") and not row.get("skipped")]
    return pd.DataFrame({
        "config": [row["run_id"] for row in measured],
        "p50 ms": [row["median_s"] * 1e3 for row in measured],
        "p99 ms": [row["p99_s"] * 1e3 for row in measured],
        "steps": [row["count"] for row in measured],
        "note": ["; ".join(round_notes(row)) for row in measured],
    })


def max_batch_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The largest batch found per configuration (``resnet_perf.bench.maxbatch``) with its probes."""
    found = [row for row in rows if row.get("bench") == "max_batch"]

    def probes(row: dict[str, Any]) -> str:
        return " ".join(f"{batch}{'+' if fits else '-'}" for batch, fits, _why in row["max_batch_probes"])

    return pd.DataFrame({
        "config": [row["run_id"] for row in found],
        "step": [row["mode"] for row in found],
        "largest batch": [row["max_batch"] for row in found],
        "probes (+ fits, - does not)": [probes(row) for row in found],
        "memory limit GiB": [row["memory_limit_bytes"] / 2**30 for row in found],
        "note": ["the search's ceiling" if row.get("reached_ceiling") else "" for row in found],
    })


def extra_tables(rows: Sequence[dict[str, Any]]) -> list[tuple[str, pd.DataFrame]]:
    """The tables beside the main one that these rows have data for: latency, where the time went,
    the largest batch."""
    tables = [("batch-1 forward latency", latency_frame(rows)),
              ("where the step time went (the timed median step, apportioned by the traced op self time; "
               "ms and share)",
               breakdown_frame([row for row in rows if row.get("bench") == "step"])),
              ("largest batch that runs", max_batch_frame(rows))]
    return [(title, frame) for title, frame in tables if not frame.empty]
