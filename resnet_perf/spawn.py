"""Running one of this package's modules in a fresh Python process (isolated measurements, workers)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CAUSE_LINE = re.compile(r"^(error: |ERROR: |FAILED |E   )")
"""How a process of this package names why it failed: a command's ``error:`` line, pytest's usage
``ERROR:``, its ``FAILED test - message`` summary, or the ``E   `` lines of a traceback."""


def last_words(output: str, limit: int = 300) -> str:
    """The line of a failed process's ``output`` that says why: the last one naming a cause
    (``CAUSE_LINE``), else the last line (a suite's last line is pytest's count of tests, which
    names nothing: "1 passed" after a results folder on a full disk)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    causes = [line for line in lines if CAUSE_LINE.match(line)]
    return ((causes or lines or ["(no output)"])[-1])[:limit]


def module_command(module: str, args: Sequence[str]) -> list[str]:
    """``python -m {module} {args}`` with this interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


def package_env(temp_dir: str | Path | None = None) -> dict[str, str]:
    """This process's environment with this package importable (also from a source checkout); with ``temp_dir``,
    that folder as the child's temporary directory (``TMPDIR``). A parent that removes the folder after its
    children leaves nothing of one killed before its exit handlers ran (SIGKILL: over a memory limit, out of
    memory, not stopping when asked), whose autograph sources of its ``tf.function``s would stay in /tmp."""
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **({"TMPDIR": str(temp_dir)} if temp_dir is not None else {})}


def run_module(module: str, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``module`` to its end with output captured.

    Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds (the child is killed).
    """
    return subprocess.run(module_command(module, args), capture_output=True, text=True, timeout=timeout,
                          env=package_env())


def stop_process(process: subprocess.Popen, wait_s: float) -> int:
    """End ``process`` as Ctrl-C would (SIGTERM: this package's processes then write what they measured),
    killing it if it has not ended within ``wait_s``; its exit status.  A stopped process (SIGSTOP,
    a debugger) acts on SIGTERM only once continued, so it is continued too."""
    if process.poll() is None:
        process.terminate()
        try:
            os.kill(process.pid, signal.SIGCONT)
        except ProcessLookupError:  # it ended meanwhile
            pass
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
