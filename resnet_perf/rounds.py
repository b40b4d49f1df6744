"""The suite's step cases measured together in rounds, round-major, so a slow spell of a shared
machine falls on every case alike instead of on the few that happened to run in it.

Every case is built first: its model and step, its first call timed apart (trace + compile), then
``warmup`` untimed steps.  Then round 1 times a block of ``steps`` steps of every case, round 2
another block of every case (in reverse order: A B C, C B A, ... so no case always runs first),
and so on.  A case keeps its raw step times per round; the per-round medians are the independent
units its statistics use (``resnet_perf.intervals``); the CPU time, steal and throttling each block
got are summed per case (``resnet_perf.cpu_usage``).  Interrupted (Ctrl-C, SIGTERM), every case
keeps the rounds it completed.  Under ``python -m resnet_perf.ab``, and when cases need processes
of their own (``resnet_perf.isolated``), such processes take turns block by block
(``resnet_perf.turns``).

Asked to (``Tracing``), each case is then traced for a few steps, after its timing so tracing costs no
timed step: the trace file, and with ``breakdown`` where its time went (``resnet_perf.breakdown``),
go into its row.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from resnet_perf.config import RunConfig, parse_threads
from resnet_perf.cpu_usage import CpuCounters, read_counters, row_fields
from resnet_perf.turns import Turns

Key = TypeVar("Key")

CaseKey = tuple[str, str]
"""A step case: ``(run_id, mode)``."""


@dataclass(frozen=True)
class Tracing:
    """Trace ``steps`` steps of every case into ``directory/<run_id>-<mode>`` after its timing;
    ``breakdown``: read where the time went into the row; ``keep``: name the trace in the row (a
    trace in a temporary folder is not kept)."""

    directory: Path
    steps: int = 3
    breakdown: bool = False
    keep: bool = True


def round_major(keys: Sequence[Key], rounds: int) -> Iterator[tuple[int, Key]]:
    """``(round, key)`` for every round and key: all keys in round 0, then all in round 1, ...,
    forwards in even rounds and backwards in odd ones (A B C, C B A, A B C, ...)."""
    for number in range(rounds):
        for key in (keys if number % 2 == 0 else keys[::-1]):
            yield number, key


class StepCases:
    """Builds, warms up and times the suite's step cases in rounds; one result row per case."""

    def __init__(self, cases: Sequence[tuple[RunConfig, str]], report: Callable[[str], None] = print,
                 turns: Turns | None = None, tracing: Tracing | None = None) -> None:
        self.cases = {(config.run_id, mode): (config, mode) for config, mode in cases}
        first = cases[0][0] if cases else RunConfig()
        if any((config.rounds, config.warmup) != (first.rounds, first.warmup) for config, _mode in cases):
            raise ValueError("the cases measured in rounds together share their rounds and warm-up")
        self.rounds, self.warmup = first.rounds, first.warmup
        self.report, self.turns, self.tracing = report, turns, tracing
        self.steps_built: dict[CaseKey, Any] = {}
        self.compile_s: dict[CaseKey, float] = {}
        self.tracing_counts: dict[CaseKey, int] = {}
        self.blocks: dict[CaseKey, list[list[float]]] = {key: [] for key in self.cases}
        self.usage: dict[CaseKey, list[CpuCounters]] = {key: [] for key in self.cases}
        self.skipped: dict[CaseKey, str] = {}
        self.traced: dict[CaseKey, dict[str, Any]] = {}

    def _build(self, key: CaseKey) -> None:
        from resnet_perf.measure import time_call
        from resnet_perf.runtime import unsupported_reason
        from resnet_perf.steps import Step

        config, mode = self.cases[key]
        try:
            step = Step(config, mode)
            self.compile_s[key] = time_call(step)
            for _ in range(self.warmup):
                step()
        except Exception as error:
            reason = unsupported_reason(error)
            if reason is None:
                raise
            self.skipped[key] = reason
            return
        self.steps_built[key] = step
        self.tracing_counts[key] = step.tracing_count

    def measure(self) -> None:
        """Build every case, then time ``rounds`` rounds of ``steps`` steps of each, round-major;
        the configs' ``rounds``, ``steps`` and ``warmup``."""
        from resnet_perf.measure import time_steps

        started = time.perf_counter()
        if self.turns:  # building is a turn of its own
            self.turns.wait()
        for number, key in enumerate(self.cases, 1):
            self._build(key)
            self.report(f"built {number}/{len(self.cases)}: {' '.join(key)}"
                        + (f" (skipped: {self.skipped[key]})" if key in self.skipped else
                           f" (first call {self.compile_s[key]:.1f} s)"))
        steps = sorted({config.steps for config, _mode in self.cases.values()})
        self.report(f"{len(self.steps_built)} step cases built in {time.perf_counter() - started:.0f} s; "
                    f"timing {self.rounds} round(s) of {'/'.join(map(str, steps))} step(s) each, round-major")
        measuring = list(self.steps_built)
        if self.turns:
            self.turns.announce(len(measuring) * (self.rounds + (1 if self.tracing else 0)))
        for number, key in round_major(measuring, self.rounds):
            if self.turns:
                self.turns.wait()
            before = read_counters()
            block = time_steps(self.steps_built[key], 0, self.cases[key][0].steps)
            used = read_counters().since(before)
            self.blocks[key].append(block)
            self.usage[key].append(used)
            if self.turns:
                self.turns.done()
            if key == (measuring[-1] if number % 2 == 0 else measuring[0]):
                self.report(f"round {number + 1}/{self.rounds} done at {time.perf_counter() - started:.0f} s")
        if self.tracing:
            for key in measuring:
                if self.turns:
                    self.turns.wait()
                self.traced[key] = self._trace(key)
                if self.turns:
                    self.turns.done()
            self.report(f"{len(measuring)} case(s) traced")

    def _trace(self, key: CaseKey) -> dict[str, Any]:
        """Trace a measured case's step (its fields for the row)."""
        from resnet_perf.breakdown import trace_fields
        from resnet_perf.profile import capture

        tracing = self.tracing
        path = capture(self.steps_built[key], tracing.directory / "-".join(key), tracing.steps)
        return {**({"trace": str(path)} if tracing.keep else {}), **(trace_fields(path) if tracing.breakdown else {})}

    def rows(self) -> dict[CaseKey, dict[str, Any]]:
        """A row per case that was skipped or completed at least one round (all of them once measured)."""
        from resnet_perf.bench import skipped_row, step_row

        rows = {key: skipped_row(self.cases[key][0], "step", key[1], reason) for key, reason in self.skipped.items()}
        for key, blocks in self.blocks.items():
            if blocks:
                step = self.steps_built[key]
                rows[key] = {**step_row(step, blocks, self.compile_s[key], step.problems(self.tracing_counts[key])),
                             **row_fields(self.usage[key], (parse_threads(step.config.threads) or (None,))[0]),
                             **self.traced.get(key, {})}
        return rows

    def release(self, key: CaseKey) -> None:
        """Drop a case's step (its model and functions) once its row is reported."""
        self.steps_built.pop(key, None)
