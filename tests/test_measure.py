"""Measurement logic: stats, MFU arithmetic, validity checks, memory probes."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from resnet_perf import measure
from resnet_perf.bench import rescale_to_session_peaks, step_row
from resnet_perf.flops import count_macs
from resnet_perf.measure import (UNSTABLE_CV, HostMemorySampler, achieved, matmul_peak_flops, measure_matmul_peak,
                                 step_stats, time_steps)
from resnet_perf.memory import measure_peak_memory
from resnet_perf.steps import Step
from resnet_perf.workload import synthetic_batch


def test_stats_from_known_step_times():
    stats = step_stats([0.5, 0.1, 0.2, 0.4, 0.3])
    assert stats.count == 5
    assert stats.mean_s == pytest.approx(0.3)
    assert stats.median_s == pytest.approx(0.3)
    assert stats.min_s == pytest.approx(0.1)
    assert stats.p90_s == pytest.approx(np.percentile([0.1, 0.2, 0.3, 0.4, 0.5], 90))
    assert stats.p99_s == pytest.approx(np.percentile([0.1, 0.2, 0.3, 0.4, 0.5], 99))
    assert stats.stddev_s == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4, 0.5], ddof=1))
    assert stats.cv == pytest.approx(stats.stddev_s / 0.3)


def test_unstable_flag_follows_the_coefficient_of_variation():
    assert not step_stats([1.0, 1.01, 0.99, 1.0]).unstable
    assert step_stats([1.0, 1.5, 0.6, 1.0]).unstable
    assert step_stats([1.0]).cv == 0.0
    with pytest.raises(ValueError):
        step_stats([])
    assert 0 < UNSTABLE_CV < 1


def test_mfu_is_achieved_flops_over_peak():
    stats = step_stats([0.5, 0.5, 0.5])
    result = achieved(batch_size=8, stats=stats, flops_per_step=10**9, peak_flops=4e9)
    assert result.images_per_sec == pytest.approx(16.0)
    assert result.achieved_flops == pytest.approx(2e9)
    assert result.mfu == pytest.approx(0.5)


def test_time_steps_runs_warmup_untimed_then_times_each_step():
    calls = []
    times = time_steps(lambda: calls.append(1), warmup=2, steps=3)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)


def test_matmul_peak_probe_measures_a_positive_rate():
    assert measure_matmul_peak("float32", size=256, repeats=2) > 1e6


def test_the_session_peak_is_the_best_measurement_so_far(monkeypatch):
    readings = iter([2e11, 1e11, 3e11])
    monkeypatch.setattr(measure, "measure_matmul_peak", lambda dtype: next(readings))
    monkeypatch.setattr(measure, "_BEST_PEAKS", {})
    assert [matmul_peak_flops("bfloat16") for _ in range(3)] == [2e11, 2e11, 3e11]
    assert matmul_peak_flops("bfloat16", remeasure=False) == 3e11  # no fourth reading taken


def test_rows_share_the_session_peak_at_the_end(monkeypatch):
    monkeypatch.setattr(measure, "_BEST_PEAKS", {"float32": 4e11})
    rows = [{"bench": "step", "compute_dtype": "float32", "achieved_flops": 1e11, "peak_flops": 2e11, "mfu": 0.5},
            {"bench": "step", "compute_dtype": "float32", "error": "retraced"}, {"bench": "memory"}]
    assert rescale_to_session_peaks(rows) == {"float32": 4e11}
    assert rows[0]["mfu"] == 0.25 and rows[0]["peak_flops"] == 4e11 and "mfu" not in rows[1]


def test_step_row_reports_flops_from_the_analytic_count(tiny_config):
    step = Step(tiny_config, "train")
    step()
    row = step_row(step, [0.2, 0.25, 0.3], compile_s=1.5, problems=[])
    macs = count_macs(step.model).macs
    assert row["flops_per_step"] == 2 * macs * tiny_config.batch_size * 3
    assert row["achieved_flops"] == pytest.approx(row["flops_per_step"] / 0.25)
    assert row["mfu"] == pytest.approx(row["achieved_flops"] / matmul_peak_flops("float32", remeasure=False))
    assert row["images_per_sec"] == pytest.approx(tiny_config.batch_size / 0.25)
    assert row["compile_s"] == 1.5 and row["step_times_s"] == [0.2, 0.25, 0.3]
    assert row["run_id"] == tiny_config.run_id and row["mode"] == "train"


def test_a_problem_withholds_every_metric(tiny_config):
    step = Step(tiny_config, "forward")
    row = step_row(step, [0.1, 0.1], compile_s=1.0, problems=["the step was retraced 1 time(s)"])
    assert row["error"].startswith("the step was retraced")
    assert "images_per_sec" not in row and "mfu" not in row and row["step_times_s"] == [0.1, 0.1]


def test_retrace_during_timing_is_detected(tiny_config):
    step = Step(tiny_config, "forward")
    step()
    traced = step.tracing_count
    step()
    assert step.problems(traced) == []
    step.args = synthetic_batch(tiny_config.replace(batch_size=3))  # a new shape forces a retrace
    step()
    assert any("retraced" in problem for problem in step.problems(traced))


def test_xla_in_effect_is_checked(tiny_config):
    with_xla = Step(tiny_config.replace(xla=True), "forward")
    with_xla()
    assert with_xla.xla_compiled() and with_xla.problems(with_xla.tracing_count) == []
    without = Step(tiny_config, "forward")
    without()
    assert not without.xla_compiled()
    # The flag lost on the way: the config says XLA, the function was made without it.
    with_xla.function = without.function
    assert any("XLA was requested" in problem for problem in with_xla.problems(with_xla.tracing_count))


def test_global_auto_jit_makes_xla_off_untrue(tiny_config):
    step = Step(tiny_config, "forward")
    step()
    tf.config.optimizer.set_jit(True)
    try:
        assert any("auto-clustering" in problem for problem in step.problems(step.tracing_count))
    finally:
        tf.config.optimizer.set_jit(False)


def test_host_memory_sampler_sees_an_allocation():
    with HostMemorySampler() as sampler:
        block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, touched
        block.sum()
    assert sampler.added_bytes >= 48 * 2**20
    assert sampler.peak_bytes >= sampler.baseline_bytes > 0


@pytest.mark.slow
def test_memory_probe_in_its_own_process_returns_host_memory(tiny_config):
    answer = measure_peak_memory(tiny_config, "train")
    assert answer["memory_kind"] == "host_rss_added"
    assert 0 < answer["peak_memory_bytes"] < answer["peak_rss_bytes"]
