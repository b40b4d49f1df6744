"""Result rows of one benchmark case: the pieces the pytest-benchmark suite assembles.

A row is flat: ``bench`` (``step`` or ``memory``), the config's fields, ``mode``, the metrics, and
for step rows the raw ``step_times_s``.  A row with ``error`` set carries no metric: a number
measured under a broken condition (retrace, XLA not in effect) is not reported as if it were fine.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from resnet_perf.config import RunConfig
from resnet_perf.flops import count_macs
from resnet_perf.measure import achieved, matmul_peak_flops, step_stats
from resnet_perf.precision import compute_dtype
from resnet_perf.steps import Step


def _base(config: RunConfig, bench: str, mode: str) -> dict[str, Any]:
    return {"bench": bench, **config.as_dict(), "mode": mode, "compute_dtype": compute_dtype(config.precision)}


def step_row(step: Step, times: Sequence[float], compile_s: float, problems: Sequence[str]) -> dict[str, Any]:
    """The row for a timed step: stats of ``times``, throughput, FLOP/s, MFU, compile time."""
    config = step.config
    row = _base(config, "step", step.mode)
    row["step_times_s"] = list(times)
    if problems:
        row["error"] = "; ".join(problems)
        return row
    flops_per_step = 2 * count_macs(step.model).macs * config.batch_size * step.cost_in_forwards
    stats = step_stats(times)
    row.update(compile_s=compile_s, **stats.as_dict(),
               **asdict(achieved(config.batch_size, stats, flops_per_step,
                                 matmul_peak_flops(row["compute_dtype"]))))
    return row


def rescale_to_session_peaks(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Set every measured step row's ``peak_flops`` and ``mfu`` to the best peak of the session.

    Rows measured early divided by the peak known then; at the end every row of a dtype shares one
    denominator, the session's best (see ``matmul_peak_flops``).  Returns the peaks used.
    """
    peaks = {}
    for row in rows:
        if row.get("bench") == "step" and row.get("achieved_flops"):
            dtype = row["compute_dtype"]
            peaks[dtype] = peak = matmul_peak_flops(dtype, remeasure=False)
            row.update(peak_flops=peak, mfu=row["achieved_flops"] / peak)
    return peaks


def memory_row(config: RunConfig, mode: str, probe: dict[str, Any]) -> dict[str, Any]:
    """The row for a memory probe's answer (see ``resnet_perf.memory``)."""
    return {**_base(config, "memory", mode), **probe}


def skipped_row(config: RunConfig, bench: str, mode: str, reason: str) -> dict[str, Any]:
    """The row for a case the device cannot run, with the reason."""
    return {**_base(config, bench, mode), "skipped": reason}
