"""Running one of this package's modules in a fresh Python process (isolated measurements, workers)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def module_command(module: str, args: Sequence[str]) -> list[str]:
    """``python -m {module} {args}`` with this interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


def package_env() -> dict[str, str]:
    """This process's environment with this package importable (also from a source checkout)."""
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def run_module(module: str, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``module`` to its end with output captured.

    Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds (the child is killed).
    """
    return subprocess.run(module_command(module, args), capture_output=True, text=True, timeout=timeout,
                          env=package_env())
