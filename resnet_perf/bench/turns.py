"""Processes that time their blocks of steps in turn, driven by one coordinator: the suite's worker
processes (``resnet_perf.processes.isolated``) and the two suites of ``python -m resnet_perf.ab``.

Per process ``NAME``, two named pipes in one folder: ``NAME.go`` carries the coordinator's commands,
one a line (``build``, ``time I``, ``trace I``, ``stop``), ``NAME.done`` the process's answers
(``built [[run_id, mode], ...]`` once its cases are built, ``done SECONDS`` after each block with
the block's median step time).  The coordinator gives one command at a time and waits for its
answer, so exactly one process works at any moment: building is a turn too, and a process that
has timed its last block waits, idle in a blocking read, until every block of every process is
timed; only then does ``stop`` let them all write their results and exit.  Nothing ever runs beside
a timed block.

Deadlines follow what was measured: a block may take ``BLOCK_DEADLINE_FACTOR`` times the slowest
block seen so far (at least ``BLOCK_DEADLINE_FLOOR_S``); a process that stalls past it (stopped,
stuck) is named in the error, as is one that ends.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from resnet_perf.errors import UserError

POLL_S = 0.5
BUILD_DEADLINE_S = 3600.0
"""Building every case of a process (first calls, XLA compiles) before anything was measured."""
BLOCK_DEADLINE_FACTOR = 20.0
BLOCK_DEADLINE_FLOOR_S = 60.0
"""A block (or a trace) may take 20x the slowest block so far, and at least a minute: a quiet
machine's blocks of one case differ by well under 2x, a machine a neighbour crowds by 2-3x."""


class TurnsClosed(Exception):
    """The coordinator closed its end: no more commands will come."""


def make_pipes(directory: Path, names: list[str]) -> None:
    """The ``go`` and ``done`` pipes of every process name."""
    for name in names:
        for suffix in ("go", "done"):
            os.mkfifo(directory / f"{name}.{suffix}")


class Turns:
    """The process side: read a command, answer it."""

    def __init__(self, prefix: str) -> None:
        self.go_path, self.done_path = Path(f"{prefix}.go"), Path(f"{prefix}.done")
        if not (self.go_path.exists() and self.done_path.exists()):
            raise UserError(f"--turns {prefix}: no pipes {self.go_path.name}/{self.done_path.name} there "
                            f"(the option is for python -m resnet_perf.ab)")
        self._go = None
        self._done: int | None = None

    def _command(self) -> str:
        if self._go is None:
            self._go = open(self.go_path, encoding="ascii")  # waits for the coordinator's end
        line = self._go.readline()
        if not line:
            raise TurnsClosed()
        return line.strip()

    def _answer(self, text: str) -> None:
        if self._done is None:
            self._done = os.open(self.done_path, os.O_WRONLY)
        os.write(self._done, f"{text}\n".encode())

    def wait_build(self) -> None:
        """Wait for the turn to build."""
        command = self._command()
        if command != "build":
            raise RuntimeError(f"expected 'build' from the coordinator, got {command!r}")

    def reply_built(self, keys: list) -> None:
        self._answer("built " + json.dumps([list(key) for key in keys]))

    def next_command(self) -> tuple[str, int] | None:
        """``("time", I)`` or ``("trace", I)``; ``None`` for stop."""
        command = self._command()
        if command == "stop":
            return None
        action, _, index = command.partition(" ")
        if action not in ("time", "trace") or not index.isdigit():
            raise RuntimeError(f"unknown command from the coordinator: {command!r}")
        return action, int(index)

    def reply_done(self, seconds: float) -> None:
        self._answer(f"done {seconds!r}")


class Coordinator:
    """The coordinator side: one command at a time, watching that the processes live and keep pace."""

    def __init__(self, directory: Path, processes: Mapping[str, subprocess.Popen],
                 describe: Callable[[str], str] = str) -> None:
        self.directory, self.processes, self.describe = directory, processes, describe
        self._done = {name: os.open(directory / f"{name}.done", os.O_RDONLY | os.O_NONBLOCK) for name in processes}
        self._go: dict[str, int] = {}
        self._buffer = {name: b"" for name in processes}
        self.slowest_block_s = 0.0

    def _check_alive(self, name: str) -> None:
        code = self.processes[name].poll()
        if code is not None:
            raise UserError(f"{self.describe(name)} ended (exit {code}) while the others were waiting for it")

    def _read_line(self, name: str, deadline_s: float) -> str:
        """The next line process ``name`` writes (a ``UserError`` when it dies or misses the deadline)."""
        deadline = time.monotonic() + deadline_s
        while b"\n" not in self._buffer[name]:
            if time.monotonic() > deadline:
                raise UserError(f"{self.describe(name)} did not answer within {deadline_s:.0f} s "
                                f"(stalled or stopped?)")
            ready, _, _ = select.select([self._done[name]], [], [], POLL_S)
            chunk = os.read(self._done[name], 1 << 16) if ready else b""
            if chunk:
                self._buffer[name] += chunk
            else:  # nothing yet, or no writer yet / any more: is it still running?
                self._check_alive(name)
        line, _, self._buffer[name] = self._buffer[name].partition(b"\n")
        return line.decode()

    def _send(self, name: str, command: str) -> None:
        while name not in self._go:
            try:
                self._go[name] = os.open(self.directory / f"{name}.go", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: the process has not opened its end yet
                self._check_alive(name)
                time.sleep(0.01)
        os.write(self._go[name], f"{command}\n".encode())

    def build(self, name: str) -> list[tuple[str, str]]:
        """Let process ``name`` build its cases; the keys of those it can time, in its order."""
        self._send(name, "build")
        line = self._read_line(name, BUILD_DEADLINE_S)
        if line.startswith("blocks "):
            raise UserError(f"{self.describe(name)} runs an older suite, whose turns predate this coordinator's "
                            f"commands: compare with it using --fresh-processes")
        if not line.startswith("built "):
            raise UserError(f"{self.describe(name)} said {line[:200]!r} instead of the cases it built")
        return [tuple(key) for key in json.loads(line[len("built "):])]

    def _turn(self, name: str, command: str) -> float:
        started = time.monotonic()
        self._send(name, command)
        line = self._read_line(name, max(BLOCK_DEADLINE_FLOOR_S, BLOCK_DEADLINE_FACTOR * self.slowest_block_s))
        action, _, value = line.partition(" ")
        if action != "done":
            raise UserError(f"{self.describe(name)} said {line[:200]!r} instead of 'done'")
        self.slowest_block_s = max(self.slowest_block_s, time.monotonic() - started)
        return float(value)

    def time_block(self, name: str, index: int) -> float:
        """Let process ``name`` time one block of its case ``index``; the block's median step time."""
        return self._turn(name, f"time {index}")

    def trace(self, name: str, index: int) -> None:
        """Let process ``name`` trace its case ``index``."""
        self._turn(name, f"trace {index}")

    def stop_all(self) -> None:
        """Every block is timed: let every process write its results and exit."""
        for name in self.processes:
            if self.processes[name].poll() is None:
                self._send(name, "stop")

    def close(self) -> None:
        for fd in [*self._done.values(), *self._go.values()]:
            os.close(fd)
        self._done, self._go = {}, {}


class RemoteCases:
    """The built cases of processes taking turns, as units ``(process name, case key)`` for
    ``resnet_perf.bench.rounds.run_rounds``: each process builds in its own turn, one after another."""

    def __init__(self, coordinator: Coordinator, names: list[str], report: Callable[[str], None] = print) -> None:
        self.coordinator = coordinator
        self.index: dict[tuple[str, tuple[str, str]], int] = {}
        for number, name in enumerate(names, 1):
            keys = coordinator.build(name)
            self.index.update({(name, key): index for index, key in enumerate(keys)})
            report(f"{coordinator.describe(name)} has built {len(keys)} case(s) ({number}/{len(names)})")

    @property
    def units(self) -> list[tuple[str, tuple[str, str]]]:
        return list(self.index)

    def time_block(self, unit: tuple[str, tuple[str, str]]) -> float:
        return self.coordinator.time_block(unit[0], self.index[unit])

    def trace(self, unit: tuple[str, tuple[str, str]]) -> None:
        self.coordinator.trace(unit[0], self.index[unit])
