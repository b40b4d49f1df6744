"""Running one of this package's modules in a fresh Python process (isolated measurements)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def run_module(module: str, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """``python -m {module} {args}`` with this package importable, output captured.

    Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds (the child is killed).
    """
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": path})
