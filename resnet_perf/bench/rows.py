"""Result rows of one benchmark case: the pieces the pytest-benchmark suite assembles.

A row is flat: ``bench`` (``step`` or ``memory``), the config's fields, ``mode``, and the raw
measurements: a step row's ``step_times_s`` (all rounds' blocks, in order, with their stats),
its ``round_medians_s`` (the independent units: ``resnet_perf.analysis.intervals``), ``flops_per_step``
and ``compute_dtype``; images/s, FLOP/s and MFU are derived from these when the results are read
(``resnet_perf.models.flops``).  A row with ``error`` set carries no metric: a number measured under a
broken condition (retrace, XLA not in effect) is not reported as if it were fine.
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from resnet_perf.analysis.intervals import spread
from resnet_perf.bench.steps import Step
from resnet_perf.bench.timing import step_stats
from resnet_perf.config import RunConfig
from resnet_perf.precision import compute_dtype


def _base(config: RunConfig, bench: str, mode: str) -> dict[str, Any]:
    return {"bench": bench, **config.as_dict(), "mode": mode, "compute_dtype": compute_dtype(config.precision)}


def step_row(step: Step, blocks: Sequence[Sequence[float]], compile_s: float,
             problems: Sequence[str], stopped: str | None = None) -> dict[str, Any]:
    """The row for a timed step: its raw times per round and their stats, its FLOPs, its compile time.

    ``blocks`` holds one block of step times per completed round; ``stopped`` says why the rounds
    ended before the stopping rule ended them (an interrupt), and goes into the row.
    """
    row = _base(step.config, "step", step.mode)
    times = [time for block in blocks for time in block]
    medians = [statistics.median(block) for block in blocks]
    # ``rounds``: the rounds measured (the config's field is the cap of one-off measurements)
    row.update(step_times_s=times, round_medians_s=medians, block_steps=len(blocks[0]), rounds=len(blocks))
    if stopped:
        row["stopped"] = f"{stopped} after round {len(blocks)}"
    if problems:
        row["error"] = "; ".join(problems)
        return row
    row.update(compile_s=compile_s, flops_per_step=step.flops_per_step, round_spread=spread(medians),
               **step_stats(times).as_dict())
    return row


def memory_row(config: RunConfig, mode: str, probe: dict[str, Any]) -> dict[str, Any]:
    """The row for a memory probe's answer (see ``resnet_perf.bench.memory``)."""
    return {**_base(config, "memory", mode), **probe}


def skipped_row(config: RunConfig, bench: str, mode: str, reason: str) -> dict[str, Any]:
    """The row for a case the device cannot run, with the reason."""
    return {**_base(config, bench, mode), "skipped": reason}
