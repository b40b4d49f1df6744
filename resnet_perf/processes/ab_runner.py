"""Interleaved A/B: the same benchmark matrix under two variants, so that the machine's drift (a
neighbour, a slow spell, the CPU warming up) falls on both alike.  Two ways:

- In turn (the default, ``take_turns``): one suite process per variant, both alive; they time their
  blocks of steps in turn, block ``i`` of A and of B back to back (A B, B A, ...), for ``--rounds``
  rounds of every case.  Round ``i``'s two blocks of a case ran seconds apart, so they are a pair.
- Fresh processes (``alternate``): round ``i`` runs the whole suite once under A and once under B
  in fresh processes (A B, B A, ...); each process's median per case is one unit.  It needs nothing
  of the base revision's suite, but its pairs are a minute apart: on this project's shared VM the
  machine drifts by 10-20% over that time, which swamps a 5% change (README, "Interleaved A/B").

Either way rounds go on until every B/A verdict (``resnet_perf.analysis.ab_verdicts``) is decided or the
budget is spent, by the stopping rule the suite's switch verdicts use (``resnet_perf.analysis.sequential``).
"""
from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_perf.analysis.ab_verdicts import paired
from resnet_perf.analysis.regression import ALPHA
from resnet_perf.analysis.results import load_result_set
from resnet_perf.analysis.sequential import BAND, Budget, decide, keep_going
from resnet_perf.bench.rounds import round_order, run_rounds
from resnet_perf.bench.turns import Coordinator, RemoteCases, make_pipes
from resnet_perf.errors import UserError
from resnet_perf.processes.variants import Variant
from resnet_perf.spawn import last_words, stop_process

PROCESS_TIMEOUT_S = 4 * 3600
PROCESS_EXIT_S = 600
"""After ``stop``, a suite process writes its results and runs the rest of its session (cases that
do not take turns, pytest's teardown)."""
PROCESS_STOP_S = 60
"""After SIGTERM, a suite process writes the rows it measured and ends (seconds at most)."""
CONFIG_FIELDS = ("run_id", "mode", "model", "depth", "batch_size", "image_size", "precision", "xla", "layout")
@dataclass(frozen=True)
class Measured:
    """One suite process: which variant, which round, its result file and wall time."""

    variant: str
    round: int
    result_file: Path
    wall_s: float


def _last_line(log: Path) -> str:
    """Why a suite process failed, as its log says (``subprocess_run.last_words``)."""
    return last_words(log.read_text(errors="replace") if log.exists() else "")


def run_process(variant: Variant, number: int, suite_args: Sequence[str], directory: Path) -> Measured:
    """Run the suite once under ``variant``; its output goes to a log beside its results."""
    results = directory / f"round{number + 1}-{variant.name}"
    results.mkdir(parents=True, exist_ok=True)
    log = results / "suite.log"
    started = time.perf_counter()
    with log.open("w") as output:
        try:
            done = subprocess.run(variant.suite_command(suite_args, results), cwd=variant.tree,
                                  env=variant.environment(), stdout=output, stderr=subprocess.STDOUT,
                                  timeout=PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"{variant.name} ({variant.label}) round {number + 1} ran past "
                            f"{PROCESS_TIMEOUT_S} s: see {log}") from None
    files = sorted(results.glob("bench-*.json"))
    if done.returncode != 0 or not files:
        raise UserError(f"{variant.name} ({variant.label}) round {number + 1} failed (exit {done.returncode}): "
                        f"{_last_line(log)} (log: {log})")
    return Measured(variant.name, number, files[-1], time.perf_counter() - started)


@dataclass
class ABRun:
    """What an A/B run measured: one row per configuration and step (``ab_rows``, ``turn_rows``),
    the suite processes' result files, and the interrupt that stopped the rounds early, if one did
    (the rows then hold the rounds finished before it)."""

    rows: list[dict[str, Any]]
    process_files: list[str]
    interrupted: KeyboardInterrupt | None = None


def alternate(variants: Sequence[Variant], budget: Budget, suite_args: Sequence[str], directory: Path,
              report: Callable[[str], None] = print, alpha: float = ALPHA, band: float = BAND) -> ABRun:
    """Every variant once per round, in alternating order (A B, B A, ...), until every verdict is
    decided or the budget is spent (the stopping rule of ``resnet_perf.analysis.sequential``); stops at the
    first failure.  Ctrl-C or SIGTERM stops the process running (its round is left out) and keeps
    the processes that finished."""
    measured: list[Measured] = []
    started, slowest, going, number = time.monotonic(), 0.0, True, 0
    try:
        while going:
            round_started = time.monotonic()
            for variant in round_order(variants, number):
                done = run_process(variant, number, suite_args, directory)
                measured.append(done)
                report(f"round {number + 1}: {variant.name} ({variant.label}) in {done.wall_s:.0f} s")
            number += 1
            slowest = max(slowest, time.monotonic() - round_started)
            verdicts = [decide(*paired(row), alpha, band) for row in ab_rows(measured) if paired(row)[0]]
            going, why = keep_going(verdicts, number, budget, time.monotonic() - started, slowest)
    except KeyboardInterrupt as stop:
        return ABRun(ab_rows(measured) if measured else [], [str(done.result_file) for done in measured], stop)
    report(f"rounds stopped: {why}")
    return ABRun(ab_rows(measured), [str(done.result_file) for done in measured])


def take_turns(variants: Sequence[Variant], budget: Budget, suite_args: Sequence[str], directory: Path,
               report: Callable[[str], None] = print, alpha: float = ALPHA, band: float = BAND) -> ABRun:
    """One suite process per variant, both alive at once, timing their blocks of steps in turn
    (``resnet_perf.bench.turns``): A's and B's block of a case back to back, A B, then B A, ..., round after
    round until every B/A verdict is decided or the budget is spent (``resnet_perf.bench.rounds.run_rounds``).
    Neither process exits before the last block of both is timed.  Ctrl-C or SIGTERM during the
    rounds stops both processes as Ctrl-C stops the suite, so each writes the rounds it finished."""
    pipes = directory / "pipes"
    pipes.mkdir(parents=True, exist_ok=True)
    make_pipes(pipes, [variant.name for variant in variants])
    labels = {variant.name: f"{variant.name} ({variant.label})" for variant in variants}
    processes: dict[str, subprocess.Popen] = {}
    logs = {}
    interrupted = None
    try:
        for variant in variants:
            results = directory / variant.name
            results.mkdir(parents=True, exist_ok=True)
            logs[variant.name] = results / "suite.log"
            with logs[variant.name].open("w") as output:
                processes[variant.name] = subprocess.Popen(
                    variant.suite_command([*suite_args, "--turns", str(pipes / variant.name)], results),
                    cwd=variant.tree, env=variant.environment(), stdout=output, stderr=subprocess.STDOUT,
                    start_new_session=True)
        report(f"both suites building their cases (logs: {', '.join(map(str, logs.values()))})")
        coordinator = Coordinator(pipes, processes, describe=lambda name: labels[name])
        try:
            remote = RemoteCases(coordinator, list(processes), report)
            a_name, b_name = (variant.name for variant in variants)
            cases = [key for name, key in remote.units if name == a_name and (b_name, key) in remote.index]
            units = [(name, key) for key in cases for name in (a_name, b_name)]
            comparisons = [((b_name, key), (a_name, key)) for key in cases]
            run_rounds(units, remote.time_block, comparisons, budget, report, alpha=alpha, band=band)
            coordinator.stop_all()  # only now: neither process exits beside the other's timed block
        except UserError as error:
            raise UserError(f"{error}{_failures(processes, logs)} (logs: {', '.join(map(str, logs.values()))})") from None
        except KeyboardInterrupt as stop:
            interrupted = stop
            for process in processes.values():  # stopped as the suite is: it writes what it measured, and exits
                stop_process(process, PROCESS_STOP_S)
        finally:
            coordinator.close()
        files = {}
        for name, process in processes.items():
            code = process.wait(timeout=PROCESS_EXIT_S)
            found = sorted((directory / name).glob("bench-*.json"))
            if found:
                files[name] = found[-1]
            if interrupted is None and (code != 0 or not found):
                raise UserError(f"{labels[name]} failed (exit {code}): {_last_line(logs[name])} (log: {logs[name]})")
        return ABRun(turn_rows(files), [str(path) for path in files.values()], interrupted)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def _failures(processes: dict[str, subprocess.Popen], logs: dict[str, Path]) -> str:
    """What the processes that failed said last, as `` (A: ...; B: ...)``, or nothing."""
    said = [f"{name}: {_last_line(logs[name])}" for name, process in processes.items()
            if process.poll() not in (None, 0)]
    return f" ({'; '.join(said)})" if said else ""


def turn_rows(files: dict[str, Path]) -> list[dict[str, Any]]:
    """One row per configuration and step: A's and B's round medians (round ``i`` of both ran back
    to back); an empty list for a side that did not measure it."""
    per_variant = {name: _step_rows(path) for name, path in files.items()}

    def medians(variant: str, key: tuple[str, str]) -> list[float]:
        row = per_variant.get(variant, {}).get(key)
        usable = row is not None and not row.get("error") and not row.get("skipped")
        return list(row.get("round_medians_s") or []) if usable else []
    return _rows_per_config(per_variant.values(), medians)


def _rows_per_config(sources: Collection[dict[tuple[str, str], dict[str, Any]]],
                     medians: Callable[[str, tuple[str, str]], list]) -> list[dict[str, Any]]:
    """A row per configuration and step found in any of ``sources`` (``{(run_id, mode): row}``
    each), with the config's fields and ``medians(variant, key)`` for A and B."""
    keys = list(dict.fromkeys(key for rows in sources for key in rows))
    rows = []
    for key in keys:
        template = next(rows[key] for rows in sources if key in rows)
        row = {"bench": "ab", **{name: template.get(name) for name in CONFIG_FIELDS}}
        for variant in ("A", "B"):
            row[f"{variant.lower()}_medians_s"] = medians(variant, key)
        rows.append(row)
    return rows


def _step_rows(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["run_id"], row["mode"]): row for row in load_result_set(path).rows if row.get("bench") == "step"}


def _median(row: dict[str, Any] | None) -> float | None:
    value = None if row is None or row.get("error") or row.get("skipped") else row.get("median_s")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else None


def ab_rows(measured: Sequence[Measured]) -> list[dict[str, Any]]:
    """One row per configuration and step: A's and B's per-round median step times (``None`` where a
    process did not measure it), the config's fields; ratios are derived when read."""
    rounds = 1 + max(done.round for done in measured)
    per_process = {(done.variant, done.round): _step_rows(done.result_file) for done in measured}

    def medians(variant: str, key: tuple[str, str]) -> list[float | None]:
        return [_median(per_process.get((variant, number), {}).get(key)) for number in range(rounds)]
    return _rows_per_config(per_process.values(), medians)


