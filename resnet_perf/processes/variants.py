"""The two sides of an A/B run: a source tree, a Python interpreter and environment settings each.

- ``--base REV``: A is git revision REV, checked out in a temporary worktree and imported from
  there (``PYTHONPATH`` puts its ``resnet_perf`` ahead of any installed one); B the working tree.
- ``--a-python/--b-python``: the working tree under two interpreters (two virtualenvs, e.g. two
  TensorFlow versions).
- ``--a-env/--b-env``: the working tree under two settings of environment variables.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from resnet_perf.errors import UserError
from resnet_perf.machine.switches import SUITE_VARIABLES
from resnet_perf.spawn import PACKAGE_ROOT


@dataclass(frozen=True)
class Variant:
    """One side of an A/B run: the suite of ``tree``, run by ``python``, with ``env`` set."""

    name: str
    label: str
    tree: Path = PACKAGE_ROOT
    python: str = sys.executable
    env: Mapping[str, str] = field(default_factory=dict)

    def suite_command(self, suite_args: Sequence[str], results_dir: Path) -> list[str]:
        """The benchmark suite of this variant's tree, writing its result file into ``results_dir``."""
        return [self.python, "-m", "pytest", "benchmarks/", "--benchmark-only", "-q", "-p", "no:cacheprovider",
                *suite_args, "--results-dir", str(results_dir)]

    def environment(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(self.tree), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path, **self.env}

    def describe(self) -> dict[str, str]:
        """What this variant is, for the result file."""
        return {"label": self.label, "tree": str(self.tree), "python": self.python,
                **({"env": " ".join(f"{key}={value}" for key, value in self.env.items())} if self.env else {})}


def parse_env(assignments: Sequence[str], option: str) -> dict[str, str]:
    """``["K=V", ...]`` -> ``{"K": "V"}``; a ``UserError`` for an item without ``=`` or a name."""
    env = {}
    for item in assignments:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise UserError(f"{option} expects NAME=VALUE, got {item!r}")
        env[key.strip()] = value
    owned = sorted(set(env) & set(SUITE_VARIABLES))
    if owned:  # the suite sets them per case: the variant's value would make its rows errors, or be undone
        raise UserError(f"{option} {', '.join(owned)}: the suite sets this per case from its own switches "
                        f"(--onednn on,off; --fpmath default,bf16): compare those in one suite run, e.g. "
                        f"pytest benchmarks/ --benchmark-only --onednn on,off")
    return env


def _git(tree: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise UserError(f"git {' '.join(args)}: {message}")
    return done.stdout.strip()


def resolve_revision(tree: Path, revision: str) -> str:
    """The commit ``revision`` names in the repository of ``tree``; a ``UserError`` if none."""
    try:
        return _git(tree, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except UserError:
        raise UserError(f"--base: {revision!r} names no commit in {tree}") from None


def default_base(tree: Path) -> str:
    """The revision a change is judged against: its merge-base with ``origin/main``, or ``HEAD~1``
    where there is none or it is ``HEAD`` itself (a checkout of main: the last commit is the change)."""
    head = resolve_revision(tree, "HEAD")
    try:
        base = _git(tree, "merge-base", "HEAD", "origin/main")
    except UserError:
        base = head
    return base if base != head else "HEAD~1"


@contextmanager
def base_worktree(tree: Path, revision: str) -> Iterator[Path]:
    """A temporary detached worktree of ``revision``, removed afterwards."""
    commit = resolve_revision(tree, revision)
    with tempfile.TemporaryDirectory(prefix="resnet_perf-base-") as parent:
        checkout = Path(parent) / "tree"
        _git(tree, "worktree", "add", "--detach", "--quiet", str(checkout), commit)
        try:
            yield checkout
        finally:
            subprocess.run(["git", "-C", str(tree), "worktree", "remove", "--force", str(checkout)],
                           capture_output=True, timeout=120)


def check_python(python: str, option: str) -> str:
    """``python`` if it runs and can import pytest (the suite's runner), else a ``UserError``."""
    try:
        done = subprocess.run([python, "-c", "import pytest_benchmark"], capture_output=True, timeout=120)
    except OSError as error:
        raise UserError(f"{option} {python}: cannot run it ({error.strerror or error})") from None
    if done.returncode != 0:
        raise UserError(f"{option} {python}: it cannot import pytest_benchmark (install this package's [test] "
                        f"extra into that environment)")
    return python
