"""Suite processes that time their blocks of steps in turn, so that A's block of a case and B's
block of the same case and round run back to back (``python -m resnet_perf.ab``).

Per process ``NAME``, two named pipes in one folder: ``NAME.go`` (the coordinator writes one byte:
your turn) and ``NAME.done`` (the process writes ``blocks N`` once it has built its cases, then
``done`` after each block).  Building is a turn too (the first one), so processes do not compile
side by side.  A process that waits for its turn sleeps in a blocking read, so the others have the
machine to themselves.  The same pipes serve the worker processes of ``resnet_perf.isolated``.
"""
from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from resnet_perf.errors import UserError

POLL_S = 0.5


def make_pipes(directory: Path, names: list[str]) -> None:
    """The ``go`` and ``done`` pipes of every process name."""
    for name in names:
        for suffix in ("go", "done"):
            os.mkfifo(directory / f"{name}.{suffix}")


class Turns:
    """The process side: announce the blocks, wait for each turn, say when a block is done."""

    def __init__(self, prefix: str) -> None:
        self.go_path, self.done_path = Path(f"{prefix}.go"), Path(f"{prefix}.done")
        if not (self.go_path.exists() and self.done_path.exists()):
            raise UserError(f"--turns {prefix}: no pipes {self.go_path.name}/{self.done_path.name} there "
                            f"(the option is for python -m resnet_perf.ab)")
        self._go: int | None = None
        self._done: int | None = None

    def announce(self, blocks: int) -> None:
        self._done = os.open(self.done_path, os.O_WRONLY)  # waits for the coordinator to listen
        os.write(self._done, f"blocks {blocks}\n".encode())

    def wait(self) -> None:
        if self._go is None:
            self._go = os.open(self.go_path, os.O_RDONLY)
        if os.read(self._go, 1) != b"g":
            raise RuntimeError("the A/B coordinator went away before giving this process its turn")

    def done(self) -> None:
        os.write(self._done, b"done\n")


class Coordinator:
    """The coordinator side: gives processes their turns one at a time, watching that they live."""

    def __init__(self, directory: Path, processes: Mapping[str, subprocess.Popen], turn_timeout_s: float,
                 describe: Callable[[str], str] = str) -> None:
        self.directory, self.processes, self.timeout = directory, processes, turn_timeout_s
        self.describe = describe
        self._done = {name: os.open(directory / f"{name}.done", os.O_RDONLY | os.O_NONBLOCK) for name in processes}
        self._go: dict[str, int] = {}
        self._buffer = {name: b"" for name in processes}

    def _check_alive(self, name: str) -> None:
        code = self.processes[name].poll()
        if code is not None:
            raise UserError(f"{self.describe(name)} ended (exit {code}) while the other was waiting for it")

    def read_line(self, name: str) -> str:
        """The next line process ``name`` writes (a ``UserError`` when it dies or takes too long)."""
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buffer[name]:
            if time.monotonic() > deadline:
                raise UserError(f"{self.describe(name)} took longer than {self.timeout:.0f} s for one block")
            ready, _, _ = select.select([self._done[name]], [], [], POLL_S)
            chunk = os.read(self._done[name], 4096) if ready else b""
            if chunk:
                self._buffer[name] += chunk
            else:  # nothing yet, or no writer yet / any more: is it still running?
                self._check_alive(name)
        line, _, self._buffer[name] = self._buffer[name].partition(b"\n")
        return line.decode()

    def blocks(self, name: str) -> int:
        """Let process ``name`` build its cases; how many blocks it will then time (it says so once
        they are built)."""
        os.write(self._go_fd(name), b"g")
        line = self.read_line(name)
        if not line.startswith("blocks "):
            raise UserError(f"{self.describe(name)} said {line!r} instead of its number of blocks")
        return int(line.split()[1])

    def _go_fd(self, name: str) -> int:
        while name not in self._go:
            try:
                self._go[name] = os.open(self.directory / f"{name}.go", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: the process has not opened its end yet
                self._check_alive(name)
                time.sleep(0.01)
        return self._go[name]

    def turn(self, name: str) -> None:
        """Let process ``name`` time one block, and wait until it has."""
        os.write(self._go_fd(name), b"g")
        line = self.read_line(name)
        if line != "done":
            raise UserError(f"{self.describe(name)} said {line!r} instead of 'done'")

    def close(self) -> None:
        for fd in [*self._done.values(), *self._go.values()]:
            os.close(fd)


def alternate_blocks(coordinator: Coordinator, names: tuple[str, str],
                     report: Callable[[str], None] = print) -> dict[str, int]:
    """Block ``i`` of both processes back to back, A B, then B A, ...; a process with more blocks
    than the other times its extra blocks alone.  Returns each process's number of blocks."""
    counts = {name: coordinator.blocks(name) for name in names}
    total = max(counts.values())
    for index in range(total):
        for name in (names if index % 2 == 0 else names[::-1]):
            if index < counts[name]:
                coordinator.turn(name)
        if (index + 1) % max(1, total // 4) == 0 or index + 1 == total:
            report(f"block {index + 1}/{total} of each")
    return counts


def rounds_in_turn(coordinator: Coordinator, names: Sequence[str], rounds: int, extra_blocks: int = 0,
                   report: Callable[[str], None] = print) -> dict[str, int]:
    """Processes that each time ``rounds`` rounds of their cases (one block per case and round, round
    after round) and then ``extra_blocks`` blocks per case: round ``r`` of every process back to
    back (processes in order, then in reverse order, ...), then the extra blocks process by process.
    Builds come first, one process at a time.  Returns each process's number of blocks."""
    counts = {}
    for name in names:
        counts[name] = coordinator.blocks(name)
        report(f"{coordinator.describe(name)} has built its cases ({len(counts)}/{len(names)})")
    per_round = {name: count // (rounds + extra_blocks) for name, count in counts.items()}
    for number in range(rounds):
        for name in (names if number % 2 == 0 else names[::-1]):
            for _ in range(per_round[name]):
                coordinator.turn(name)
        report(f"round {number + 1}/{rounds} done in every process")
    for name in names:
        for _ in range(per_round[name] * extra_blocks):
            coordinator.turn(name)
    return counts
