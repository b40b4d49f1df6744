"""Forward, training-mode forward, forward+backward and training-step throughput, and peak memory,
per configuration.

Each step case times its first call (trace + compile) on its own, then lets pytest-benchmark run
``--warmup`` untimed and ``--steps`` timed rounds of one finished step each; the raw round times
are the step times every statistic is derived from.  The first step case of the session takes the
matmul peak readings MFU divides by (the last ones follow the last case: see conftest).

The memory cases measure in a process of their own and are not pytest-benchmark benchmarks: they
request the ``benchmark`` fixture only so that ``--benchmark-only`` runs them, never time anything
with it, and so never enter pytest-benchmark's step-time tables or ``--benchmark-compare-fail``.
Their figures are in the suite's own JSON and table.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resnet_perf.bench import memory_row, skipped_row, step_row
from resnet_perf.config import RunConfig
from resnet_perf.measure import time_call
from resnet_perf.memory import MemoryProbeError, measure_peak_memory
from resnet_perf.profile import capture
from resnet_perf.runtime import unsupported_reason
from resnet_perf.steps import Step


def _or_skip(recorder, config: RunConfig, bench: str, mode: str, work: Callable[[], Any]) -> Any:
    """Run ``work``; a case the device cannot run is recorded and skipped with the reason."""
    try:
        return work()
    except Exception as error:
        reason = unsupported_reason(error)
        if reason is None:
            raise
    recorder.add(skipped_row(config, bench, mode, reason))
    pytest.skip(reason)


def _trace(request: pytest.FixtureRequest, step: Step) -> str | None:
    """With ``--profile-dir``: a trace of the already measured step, so tracing costs no timed step."""
    option = request.config.option
    if not option.profile_dir:
        return None
    return str(capture(step, Path(option.profile_dir) / f"{step.config.run_id}-{step.mode}", option.profile_steps))


def _measure_step(benchmark, recorder, request, config: RunConfig, mode: str) -> None:
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled: nothing is measured")
    if not recorder.peak_readings:
        recorder.probe_peaks()
    step = _or_skip(recorder, config, "step", mode, lambda: Step(config, mode))
    compile_s = _or_skip(recorder, config, "step", mode, lambda: time_call(step))
    traced = step.tracing_count
    _or_skip(recorder, config, "step", mode, lambda: benchmark.pedantic(
        step, rounds=config.steps, warmup_rounds=config.warmup, iterations=1))
    row = step_row(step, benchmark.stats.stats.data, compile_s, step.problems(traced))
    trace = _trace(request, step)
    if trace:
        row["trace"] = trace
    benchmark.extra_info.update(row)  # the whole row, raw step times too: compare reads --benchmark-json
    recorder.add(row)
    if row.get("error"):
        pytest.fail(f"{config.run_id} {mode}: {row['error']}")


def test_forward(benchmark, recorder, request, run_config):
    _measure_step(benchmark, recorder, request, run_config, "forward")


def test_train_forward(benchmark, recorder, request, run_config):
    _measure_step(benchmark, recorder, request, run_config, "train_forward")


def test_fwd_bwd(benchmark, recorder, request, run_config):
    _measure_step(benchmark, recorder, request, run_config, "fwd_bwd")


def test_train(benchmark, recorder, request, run_config):
    _measure_step(benchmark, recorder, request, run_config, "train")


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_memory(benchmark, recorder, run_config, mode):
    """Peak memory in a fresh process per case (not timed: see the module docstring)."""
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled: nothing is measured")
    try:
        probe = measure_peak_memory(run_config, mode)
    except MemoryProbeError as error:
        if not error.unsupported:
            raise
        recorder.add(skipped_row(run_config, "memory", mode, str(error)))
        pytest.skip(str(error))
    recorder.add(memory_row(run_config, mode, probe))
