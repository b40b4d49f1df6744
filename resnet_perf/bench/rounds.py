"""The suite's step cases measured together in rounds, round-major, so a slow spell of a shared
machine falls on every case alike instead of on the few that happened to run in it.

Three pieces, each usable alone:

- ``StepCases`` builds the cases (model, step, first call timed apart as trace + compile, then
  ``warmup`` untimed steps that also calibrate the block length: ``block_steps``) and times one
  block of a case when asked.  It keeps every case's raw step times per block and the CPU each
  block got (``resnet_perf.machine.cpu_usage``), and makes the rows.
- ``run_rounds`` is the schedule and the stopping rule: round after round it asks for one block
  of every case (A B C, then C B A, ... so no case always runs first), and after each round it reads
  the verdicts of the comparisons it was given (``resnet_perf.analysis.sequential``); it stops when they are
  all decided, or the budget is spent.  It measures nothing itself: a block is a callable, a local
  ``StepCases`` or a process taking turns (``resnet_perf.bench.turns``), so the suite, its worker processes
  and ``python -m resnet_perf.ab`` share one schedule and one rule.
- ``serve`` lets a coordinator in another process run the schedule over this process's cases.

Interrupted (Ctrl-C, SIGTERM), every case keeps the blocks it completed.  Asked to (``Tracing``),
each case is traced for a few steps after the rounds, so tracing costs no timed step: the trace
file, and with ``breakdown`` where its time went (``resnet_perf.trace.breakdown``), go into its row.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from resnet_perf.analysis.sequential import ALPHA, BAND, Budget, Verdict, decide, keep_going, last_look
from resnet_perf.bench.timing import time_call, time_steps
from resnet_perf.bench.turns import TurnsClosed
from resnet_perf.config import RunConfig, parse_threads
from resnet_perf.machine.cpu_usage import CpuCounters, read_counters, row_fields
from resnet_perf.machine.runtime import unsupported_reason
from resnet_perf.trace.breakdown import trace_fields
from resnet_perf.trace.capture import capture

Key = TypeVar("Key", bound=Hashable)

CaseKey = tuple[str, str]
"""A step case: ``(run_id, mode)``."""

MIN_BLOCK_S = 0.2
"""A block of steps lasts at least this long, and holds at least ``MIN_BLOCK_STEPS`` steps.  Why:
the first step after another process (or another case) had the cores runs on cold caches and a
just-woken thread pool, and its pace is not the case's; a block's median over three or more steps
leaves it out, and 0.2 s (pyperf calibrates its values to 0.1 s for the same reason) keeps the
hand-over between turns (a pipe write and a wake-up, well under a millisecond) and the machine's
sub-second pace changes a small part of every block, however fast the step."""
MIN_BLOCK_STEPS = 3
ANSWER_CONTENDERS = 2
"""Cases traced per baseline besides the baseline itself, fastest first: ``answer_units``."""


def block_steps(requested: int, warmup_times: Sequence[float]) -> int:
    """Steps per block: ``requested``, raised to ``MIN_BLOCK_STEPS`` and to what fills ``MIN_BLOCK_S``
    at the median warm-up step's pace."""
    pace = statistics.median(warmup_times) if warmup_times else 0.0
    filling = math.ceil(MIN_BLOCK_S / pace) if pace > 0 else 1
    return max(requested, MIN_BLOCK_STEPS, filling)


@dataclass(frozen=True)
class Tracing:
    """Trace ``steps`` steps of every case into ``directory/<run_id>-<mode>`` after its timing;
    ``breakdown``: read where the time went into the row; ``keep``: name the trace in the row (a
    trace in a temporary folder is not kept); ``answer_only``: only the cases the answer explains
    (``answer_units``)."""

    directory: Path
    steps: int = 3
    breakdown: bool = False
    keep: bool = True
    answer_only: bool = False

    def units(self, timed: Sequence[Hashable], medians: dict[Hashable, list[float]],
              comparisons: Sequence[Comparison]) -> list[Hashable]:
        """The units to trace, of those ``timed``."""
        return answer_units(medians, comparisons) if self.answer_only else list(timed)


def answer_units(medians: dict[Hashable, list[float]], comparisons: Sequence[Comparison]) -> list[Hashable]:
    """Per baseline of ``comparisons``: the baseline and the two fastest units of its group (the least
    medians of block medians), the cases whose breakdowns explain the answer.  Two, because the answer
    names the configuration with the most images/s over all its steps, a statistic that can put the
    second of two close units first: whichever it names has a trace (seen on the Zen 4 VM: 137.6 against
    139.7 ms by block medians, 142.0 against 140.4 ms by all steps)."""
    groups: dict[Hashable, set[Hashable]] = {}
    for new, old in comparisons:
        groups.setdefault(old, {old}).add(new)
    chosen: dict[Hashable, None] = {}
    for old, members in groups.items():
        ranked = sorted((unit for unit in members if medians.get(unit)),
                        key=lambda unit: statistics.median(medians[unit]))
        if ranked:
            chosen.update(dict.fromkeys([old, *ranked[:ANSWER_CONTENDERS]]))
    return [unit for unit in chosen if medians.get(unit)]


def round_order(keys: Sequence[Key], number: int) -> Sequence[Key]:
    """The order of round ``number`` (from 0): forwards in even rounds, backwards in odd ones
    (A B C, C B A, A B C, ...), so no key always runs first."""
    return keys if number % 2 == 0 else keys[::-1]


def round_major(keys: Sequence[Key], rounds: int) -> Iterator[tuple[int, Key]]:
    """``(round, key)`` for every round and key: all keys in round 0, then all in round 1, ...
    (``round_order``)."""
    for number in range(rounds):
        for key in round_order(keys, number):
            yield number, key


Comparison = tuple[Hashable, Hashable]
"""``(new, old)``: two units whose images/s ratio (new over old) gets a verdict.  Both run the same
batch, so that ratio is old's step time over new's."""


@dataclass
class RoundsOutcome:
    """What ``run_rounds`` did: each unit's block medians (seconds per step), the verdicts of the
    comparisons, the rounds timed, and why it stopped."""

    medians: dict[Hashable, list[float]]
    verdicts: dict[Comparison, Verdict] = field(default_factory=dict)
    rounds: int = 0
    stopped_because: str = ""


def judge(medians: dict[Hashable, list[float]], comparisons: Sequence[Comparison], alpha: float = ALPHA,
          band: float = BAND) -> dict[Comparison, Verdict]:
    """The verdict of every comparison on the rounds both of its units completed."""
    return {(new, old): decide(medians[old], medians[new], alpha, band) for new, old in comparisons}


def run_rounds(units: Sequence[Hashable], time_block: Callable[[Hashable], float],
               comparisons: Sequence[Comparison], budget: Budget, report: Callable[[str], None] = print,
               clock: Callable[[], float] = time.monotonic, alpha: float = ALPHA,
               band: float = BAND) -> RoundsOutcome:
    """Time round after round of one block per unit (``time_block(unit)`` -> its median step time),
    round-major in alternating order, until ``sequential.keep_going`` says stop.  Stopped by an
    exception (Ctrl-C), it raises it: the blocks timed so far stay with whoever timed them."""
    outcome = RoundsOutcome({unit: [] for unit in units})
    if not units:
        outcome.stopped_because = "nothing to time"
        return outcome
    started, slowest = clock(), 0.0
    going = True
    while going:
        round_started = clock()
        for unit in round_order(units, outcome.rounds):
            outcome.medians[unit].append(time_block(unit))
        outcome.rounds += 1
        slowest = max(slowest, clock() - round_started)
        outcome.verdicts = judge(outcome.medians, comparisons, alpha, band)
        going, outcome.stopped_because = keep_going(list(outcome.verdicts.values()), outcome.rounds, budget,
                                                    clock() - started, slowest)
        if outcome.rounds == last_look(outcome.rounds)[1] or outcome.rounds == 1 or not going:  # not every round
            undecided = sum(not verdict.decided for verdict in outcome.verdicts.values())
            report(f"round {outcome.rounds} done at {clock() - started:.0f} s"
                   + (f"; {len(comparisons) - undecided}/{len(comparisons)} verdicts decided" if comparisons else ""))
    report(f"rounds stopped: {outcome.stopped_because}")
    return outcome


class StepCases:
    """Builds, warms up and times the suite's step cases, a block at a time; one result row per case."""

    def __init__(self, cases: Sequence[tuple[RunConfig, str]], report: Callable[[str], None] = print,
                 tracing: Tracing | None = None, exact_blocks: bool = False) -> None:
        """``exact_blocks``: a block is each config's ``steps``, not raised to ``MIN_BLOCK_STEPS`` and
        ``MIN_BLOCK_S`` (``interleave``'s single steps)."""
        self.cases = {(config.run_id, mode): (config, mode) for config, mode in cases}
        self.exact_blocks = exact_blocks
        first = cases[0][0] if cases else RunConfig()
        if any(config.warmup != first.warmup for config, _mode in cases):
            raise ValueError("the cases measured in rounds together share their warm-up")
        self.warmup = first.warmup
        self.report, self.tracing = report, tracing
        self.steps_built: dict[CaseKey, Any] = {}
        self.compile_s: dict[CaseKey, float] = {}
        self.block_steps: dict[CaseKey, int] = {}
        self.tracing_counts: dict[CaseKey, int] = {}
        self.blocks: dict[CaseKey, list[list[float]]] = {key: [] for key in self.cases}
        self.usage: dict[CaseKey, list[CpuCounters]] = {key: [] for key in self.cases}
        self.skipped: dict[CaseKey, str] = {}
        self.traced: dict[CaseKey, dict[str, Any]] = {}
        self.stopped: str | None = None

    def _build(self, key: CaseKey) -> None:
        from resnet_perf.bench.steps import Step  # loads TensorFlow, which must wait for the process settings

        config, mode = self.cases[key]
        try:
            step = Step(config, mode)
            self.compile_s[key] = time_call(step)
            # At least one warm-up step, timed: its pace sets the block length.
            warm = [time_call(step) for _ in range(max(1, self.warmup))]
        except Exception as error:
            reason = unsupported_reason(error)
            if reason is None:
                raise
            self.skipped[key] = reason
            return
        self.steps_built[key] = step
        self.block_steps[key] = config.steps if self.exact_blocks else block_steps(config.steps, warm)
        self.tracing_counts[key] = step.tracing_count

    def build(self) -> list[CaseKey]:
        """Build and warm up every case; the keys of those that can be timed (the others are skipped)."""
        started = time.perf_counter()
        for number, key in enumerate(self.cases, 1):
            self._build(key)
            self.report(f"built {number}/{len(self.cases)}: {' '.join(key)}"
                        + (f" (skipped: {self.skipped[key]})" if key in self.skipped else
                           f" (first call {self.compile_s[key]:.1f} s, {self.block_steps[key]} steps a block)"))
        self.report(f"{len(self.steps_built)} step case(s) built in {time.perf_counter() - started:.0f} s")
        return list(self.steps_built)

    def time_block(self, key: CaseKey) -> float:
        """Time one block of a built case; its median step time."""
        before = read_counters()
        block = time_steps(self.steps_built[key], 0, self.block_steps[key])
        self.usage[key].append(read_counters().since(before))
        self.blocks[key].append(block)
        return statistics.median(block)

    def trace(self, key: CaseKey) -> None:
        """Trace a measured case's step (its fields go into the row)."""
        tracing = self.tracing
        path, space = capture(self.steps_built[key], tracing.directory / "-".join(key), tracing.steps)
        self.traced[key] = {**({"trace": str(path)} if tracing.keep else {}),
                            **(trace_fields(path, space) if tracing.breakdown else {})}

    def measure(self, comparisons: Sequence[Comparison], budget: Budget,
                alpha: float = ALPHA, band: float = BAND) -> RoundsOutcome:
        """Build every case, time rounds until the comparisons are decided or the budget is spent,
        then trace each case when asked to."""
        measuring = self.build()
        wanted = [(new, old) for new, old in comparisons if new in self.steps_built and old in self.steps_built]
        try:
            outcome = run_rounds(measuring, self.time_block, wanted, budget, self.report, alpha=alpha, band=band)
        except KeyboardInterrupt:
            self.stopped = "interrupted"
            raise
        if self.tracing:
            traced = self.tracing.units(measuring, outcome.medians, wanted)
            for key in traced:
                self.trace(key)
            self.report(f"{len(traced)} case(s) traced")
        return outcome

    def rows(self) -> dict[CaseKey, dict[str, Any]]:
        """A row per case that was skipped or completed at least one block (all of them once measured)."""
        from resnet_perf.bench.rows import skipped_row, step_row  # loads TensorFlow

        rows = {key: skipped_row(self.cases[key][0], "step", key[1], reason) for key, reason in self.skipped.items()}
        for key, blocks in self.blocks.items():
            if blocks:
                step = self.steps_built[key]
                rows[key] = {**step_row(step, blocks, self.compile_s[key], step.problems(self.tracing_counts[key]),
                                        self.stopped),
                             **row_fields(self.usage[key], (parse_threads(step.config.threads) or (None,))[0]),
                             **self.traced.get(key, {})}
        return rows

    def release(self, key: CaseKey) -> None:
        """Drop a case's step (its model and functions) once its row is reported."""
        self.steps_built.pop(key, None)


def serve(cases: StepCases, turns: Any) -> None:
    """Let a coordinator run the schedule over ``cases`` (``resnet_perf.bench.turns``): build when told,
    then time or trace the case it names, one turn at a time, until it says stop.  Told nothing
    more (the coordinator went away), the cases are marked stopped."""
    try:
        turns.wait_build()
        built = cases.build()
        turns.reply_built(built)
        while (command := turns.next_command()) is not None:
            action, index = command
            key = built[index]
            if action == "time":
                turns.reply_done(cases.time_block(key))
            else:
                cases.trace(key)
                turns.reply_done(0.0)
    except TurnsClosed:
        cases.stopped = "the coordinator went away"
    except KeyboardInterrupt:
        cases.stopped = "interrupted"
        raise
