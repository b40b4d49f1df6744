"""Forward, forward+backward and training-step throughput, and peak memory, per configuration.

Each step case times its first call (trace + compile) on its own, then lets pytest-benchmark run
``--warmup`` untimed and ``--steps`` timed rounds of one finished step each; the raw round times
are the step times every statistic is derived from.
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
from resnet_perf.runtime import environment, unsupported_reason
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
    recorder.add(row, benchmark.extra_info)
    benchmark.extra_info["environment"] = environment()
    if row.get("error"):
        pytest.fail(f"{config.run_id} {mode}: {row['error']}")


def test_forward(benchmark, recorder, request, run_config):
    _measure_step(benchmark, recorder, request, run_config, "forward")


def test_fwd_bwd(benchmark, recorder, request, run_config):
    _measure_step(benchmark, recorder, request, run_config, "fwd_bwd")


def test_train(benchmark, recorder, request, run_config):
    _measure_step(benchmark, recorder, request, run_config, "train")


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_memory(benchmark, recorder, run_config, mode):
    """Peak memory in a fresh process per case; the benchmark's time is that process's wall time."""
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled: nothing is measured")
    try:
        probe = benchmark.pedantic(measure_peak_memory, args=(run_config, mode), rounds=1, iterations=1)
    except MemoryProbeError as error:
        if not error.unsupported:
            raise
        recorder.add(skipped_row(run_config, "memory", mode, str(error)))
        pytest.skip(str(error))
    row = memory_row(run_config, mode, probe)
    recorder.add(row)
    benchmark.extra_info.update(row)
    benchmark.extra_info["environment"] = environment()
