"""Measurement logic: stats, MFU arithmetic, validity checks, memory probes."""
from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
import tensorflow as tf

from resnet_perf.bench import memory, timing
from resnet_perf.bench.rows import step_row
from resnet_perf.config import RunConfig
from resnet_perf.models.flops import step_macs
from resnet_perf.bench.timing import (PEAK_READINGS, HostMemorySampler, measure_matmul_peak, probe_matmul_peaks, step_stats,
                                 time_steps)
from resnet_perf.bench.memory import measure_peak_memory, probe_here
from resnet_perf.bench.steps import Step
from resnet_perf.bench.workload import synthetic_batch


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
    # The threshold is 10%, as pyperf's: cv 9.4% is stable, 11.8% is not.
    assert not step_stats([1.0, 1.0, 1.0, 1.2]).unstable
    assert step_stats([1.0, 1.0, 1.0, 1.25]).unstable
    assert step_stats([1.0]).cv == 0.0
    with pytest.raises(ValueError):
        step_stats([])


def test_time_steps_runs_warmup_untimed_then_times_each_step(monkeypatch):
    calls, timed = [], []

    def fake_time_call(function):  # "lasts" as many seconds as its call number
        function()
        timed.append(len(calls))
        return float(len(calls))

    monkeypatch.setattr(timing, "time_call", fake_time_call)
    times = time_steps(lambda: calls.append(1), warmup=2, steps=3)
    assert len(calls) == 5 and timed == [3, 4, 5] and times == [3.0, 4.0, 5.0]


def test_matmul_peak_probe_measures_the_rate_of_its_matmul(monkeypatch):
    # Each timed call takes 0.5 s on a fake clock: 2 x 256^3 FLOPs / 0.5 s.
    ticks = iter(i * 0.5 for i in range(1000))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    assert measure_matmul_peak("float32", size=256, repeats=2) == pytest.approx(2 * 256**3 / 0.5)


def test_the_peak_procedure_takes_a_fixed_number_of_readings(monkeypatch):
    taken = []
    monkeypatch.setattr(timing, "measure_matmul_peak", lambda dtype: taken.append(dtype) or 1e11 * len(taken))
    readings = probe_matmul_peaks(["float32", "bfloat16"])
    assert readings == {"float32": [1e11, 2e11, 3e11], "bfloat16": [4e11, 5e11, 6e11]}
    assert len(taken) == 2 * PEAK_READINGS == 6


def test_step_row_keeps_raw_inputs_and_no_ratio(tiny_config):
    step = Step(tiny_config, "train")
    step()
    row = step_row(step, [[0.2, 0.25, 0.3], [0.4, 0.2, 0.3]], compile_s=1.5, problems=[])
    assert row["flops_per_step"] == 2 * step_macs(step.model, "train").macs * tiny_config.batch_size
    assert row["median_s"] == 0.275 and row["compute_dtype"] == "float32"
    assert row["compile_s"] == 1.5 and row["step_times_s"] == [0.2, 0.25, 0.3, 0.4, 0.2, 0.3]
    assert row["round_medians_s"] == [0.25, 0.3] and row["round_spread"] == pytest.approx(0.2)
    assert "stopped" not in row  # the tiny config asks for one round: all measured
    assert row["run_id"] == tiny_config.run_id and row["mode"] == "train"
    # Ratios are derived when results are read (resnet_perf.models.flops), never stored.
    assert not {"images_per_sec", "achieved_flops", "peak_flops", "mfu"} & set(row)


def test_a_problem_withholds_every_metric(tiny_config):
    step = Step(tiny_config, "forward")
    row = step_row(step, [[0.1, 0.1]], compile_s=1.0, problems=["the step was retraced 1 time(s)"])
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


def test_memory_of_a_training_step_includes_the_optimizer_state(tiny_config, monkeypatch):
    """The optimizer's slots are built while the memory is being measured, not before."""
    import keras

    events = []

    class Sampler(HostMemorySampler):
        def __enter__(self):
            events.append("measuring")
            return super().__enter__()

    build = keras.optimizers.SGD.build
    monkeypatch.setattr(keras.optimizers.SGD, "build", lambda self, variables: events.append("slots") or build(self, variables))
    monkeypatch.setattr("resnet_perf.bench.memory.HostMemorySampler", Sampler)  # the probe's sampler
    answer = probe_here(tiny_config, "train")
    assert events == ["measuring", "slots"]
    assert answer["host_rss_added_bytes"] == answer["peak_rss_bytes"] - answer["baseline_rss_bytes"] > 0


@pytest.mark.slow
def test_memory_probe_in_its_own_process_returns_host_memory(tiny_config):
    answer = measure_peak_memory(tiny_config, "train")
    assert 0 < answer["host_rss_added_bytes"] < answer["peak_rss_bytes"]
    assert "device_peak_bytes" not in answer  # a different quantity, measured on GPUs only


FAKE_PROBE = """
import json, os, sys, time
log, batch = sys.argv[1], int(sys.argv[2])
with open(log, "a") as out:
    out.write(f"start {batch} {time.monotonic()}\\n")
if batch == 7 and not os.path.exists(log + ".died"):  # killed the first time only
    open(log + ".died", "w").close()
    os.kill(os.getpid(), 9)
if batch == 9:
    print("Traceback (most recent call last):\\nValueError: broken", file=sys.stderr)
    sys.exit(1)
time.sleep(1.0)  # long enough for two to overlap on a busy machine
with open(log, "a") as out:
    out.write(f"end {batch} {time.monotonic()}\\n")
print("a line of TensorFlow's")
print(json.dumps({"host_rss_added_bytes": batch}))
"""


@pytest.fixture
def fake_probes(monkeypatch, tmp_path):
    """Probe processes that log when they start and end; batch 7 is killed the first time, batch 9 fails."""
    log = tmp_path / "probes.log"
    monkeypatch.setattr(memory, "module_command", lambda module, args: [
        sys.executable, "-c", FAKE_PROBE, str(log), str(json.loads(args[1])["batch_size"])])
    return log


def _cases(*batches: int) -> list:
    return [(dataclasses.replace(RunConfig(), batch_size=batch), "train") for batch in batches]


def test_memory_probes_run_two_at_a_time(fake_probes):
    cases = _cases(1, 2, 3, 4, 5)
    reported = []
    outcomes = memory.measure_peak_memories(cases, processes=2, report=reported.append)
    assert [outcome["host_rss_added_bytes"] for outcome in outcomes.values()] == [1, 2, 3, 4, 5]
    assert list(outcomes) == [(config.run_id, "train") for config, _mode in cases]
    events = sorted((float(at), kind) for kind, _batch, at in (line.split() for line in fake_probes.read_text().splitlines()))
    running = peak = 0
    for _at, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2 and len(reported) == 5 and reported[-1].startswith("memory 5/5: ")


def test_a_probe_killed_beside_another_is_measured_again_alone(fake_probes):
    outcomes = memory.measure_peak_memories(_cases(7, 2), processes=2)
    assert sorted(outcome["host_rss_added_bytes"] for outcome in outcomes.values()) == [2, 7]
    assert fake_probes.read_text().count("start 7 ") == 2


def test_a_failed_probe_says_why_in_one_error(fake_probes):
    (outcome,) = memory.measure_peak_memories(_cases(9), processes=2).values()
    assert isinstance(outcome, memory.MemoryProbeError) and not outcome.unsupported
    assert "failed (exit 1)" in str(outcome) and "ValueError: broken" in str(outcome)
