"""oneDNN's execution log: which kernel ran each primitive of a step, and what it cost.

With ``ONEDNN_VERBOSE=profile_exec`` (``machine.switches.VERBOSE_EXECUTIONS``) oneDNN prints one line
per primitive it executes, such as::

    onednn_verbose,v1,primitive,exec,cpu,convolution,jit_bf16:avx512_core_bf16,backward_weights,
    src:bf16::blocked:acdb::f0 wei:bf16:a:blocked:ABcd16b16a::f0 bia:undef::undef::: dst:bf16::blocked:acdb::f0,
    ,alg:convolution_direct,mb32_ic256oc256_ih14oh14kh3sh1dh0ph1_iw14ow14kw3sw1dw0pw1,4.2

(one line): the primitive kind, the implementation oneDNN chose (``brg...`` brgemm kernels, ``jit...``
older JIT kernels, ``gemm``, ``ref`` reference code; after the colon the instruction set: ``avx512_core``,
``avx512_core_bf16``, ``avx512_core_amx``), the propagation kind, the memory descriptors (data type
and layout of each argument), attributes, algorithm, problem shape and milliseconds.  TensorFlow's
profiler shows a ``Conv2DBackpropFilter`` op; this log says which kernel ran it in which data types.

The parsing and totals here are pure; ``native_output_to`` sends the log (native code's standard
output) into a file while Python's own output still reaches the terminal.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GROUP_FIELDS = ("kind", "propagation", "implementation", "data_types")
# Summed primitive time above the step by more than this means ops overlapped (timing noise stays below).
OVERLAP_TOLERANCE = 1.05


@dataclass(frozen=True)
class Execution:
    """One primitive execution from the log."""

    kind: str
    implementation: str
    propagation: str
    data_types: str
    problem: str
    ms: float


def _argument_and_type(descriptor: str) -> tuple[str, str]:
    """``src:bf16::blocked:...`` (oneDNN 3) or ``src_bf16::blocked:...`` (older) -> ``("src", "bf16")``."""
    head, _, rest = descriptor.partition(":")
    if "_" in head:
        argument, _, dtype = head.partition("_")
        return argument, dtype
    return head, rest.partition(":")[0]


def _data_types(descriptors: str) -> str:
    """``src:bf16::blocked:acdb::f0 wei:f32:...`` -> ``src bf16, wei f32`` (arguments without memory left out)."""
    pairs = (_argument_and_type(descriptor) for descriptor in descriptors.split())
    return ", ".join(f"{argument} {dtype}" for argument, dtype in pairs if dtype and dtype != "undef")


def parse_executions(lines: Iterable[str]) -> list[Execution]:
    """The execution lines of a oneDNN verbose log (v1 format of oneDNN 3.x, or the older one without
    ``v1``); every other line is skipped."""
    executions = []
    for line in lines:
        fields = line.rstrip("\n").split(",")
        if not fields[0].endswith("_verbose") or "exec" not in fields[:4]:
            continue
        at = fields.index("exec")
        try:
            kind, implementation, propagation, descriptors = fields[at + 2:at + 6]
            ms = float(fields[-1])
        except ValueError:  # a line cut short (the process ended while writing it)
            continue
        executions.append(Execution(kind, implementation, propagation, _data_types(descriptors), fields[-2], ms))
    return executions


def totals(executions: Iterable[Execution], steps: int, by: tuple[str, ...] = GROUP_FIELDS) -> list[dict[str, Any]]:
    """Calls and milliseconds per step of each group of executions (``by``: fields of ``Execution``),
    largest first; ``share`` is of all logged primitive time.  The times are each primitive's own,
    summed: where TensorFlow runs two ops at once (its inter-op threads) they overlap in the step."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    groups: dict[tuple, list[float]] = defaultdict(list)
    for execution in executions:
        groups[tuple(getattr(execution, name) for name in by)].append(execution.ms)
    overall = sum(sum(times) for times in groups.values())
    rows = [{**dict(zip(by, key)), "calls_per_step": len(times) / steps, "ms_per_step": sum(times) / steps,
             "share": sum(times) / overall if overall else 0.0} for key, times in groups.items()]
    return sorted(rows, key=lambda row: -row["ms_per_step"])


@dataclass(frozen=True)
class StepCoverage:
    """The primitives' summed time per step against the step's own (median) time."""

    primitive_ms: float
    step_ms: float

    @classmethod
    def of(cls, rows: Iterable[dict[str, Any]], step_s: float) -> StepCoverage:
        """From ``totals`` rows (all of them, not a top few) and the median logged step in seconds."""
        return cls(sum(row["ms_per_step"] for row in rows), step_s * 1e3)

    @property
    def ratio(self) -> float:
        return self.primitive_ms / self.step_ms

    @property
    def overlapped(self) -> bool:
        """More primitive time than step: TensorFlow ran ops at once (its inter-op threads), so a
        primitive's time includes cores another op held, and per-kernel comparisons are distorted."""
        return self.ratio > OVERLAP_TOLERANCE


@contextmanager
def native_output_to(path: Path) -> Iterator[None]:
    """Within the block, what native code writes to standard output (file descriptor 1: oneDNN's
    log) goes to ``path``; ``sys.stdout`` is moved to a copy of the terminal, so ``print`` still shows."""
    sys.stdout.flush()
    terminal = os.dup(1)
    python_stdout = sys.stdout
    try:
        with open(path, "wb") as log:
            os.dup2(log.fileno(), 1)
        sys.stdout = os.fdopen(os.dup(terminal), "w", buffering=1)
        yield
    finally:
        if sys.stdout is not python_stdout:
            sys.stdout.close()
            sys.stdout = python_stdout
        os.dup2(terminal, 1)
        os.close(terminal)
