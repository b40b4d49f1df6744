"""Step cases measured in rounds, round-major: the order, the blocks per round, a stopped run."""
from __future__ import annotations

import statistics

import pytest

from resnet_perf import measure
from resnet_perf.rounds import StepCases, round_major


def test_round_major_visits_every_key_once_a_round_in_alternating_order():
    order = list(round_major(["a", "b", "c"], 3))
    assert order == [(0, "a"), (0, "b"), (0, "c"), (1, "c"), (1, "b"), (1, "a"), (2, "a"), (2, "b"), (2, "c")]


@pytest.fixture
def timed_order(monkeypatch) -> list[str]:
    """The cases in the order their blocks are timed (``time_steps`` is what times a block)."""
    order = []
    real = measure.time_steps

    def time_steps(step, warmup, steps):
        order.append(f"{step.config.precision} {step.mode}")
        return real(step, warmup, steps)
    monkeypatch.setattr(measure, "time_steps", time_steps)
    return order


def test_every_case_is_built_first_then_timed_round_major(tiny_config, timed_order):
    configs = [tiny_config.replace(rounds=3, steps=2), tiny_config.replace(rounds=3, steps=2, precision="mixed_bf16")]
    cases = StepCases([(configs[0], "forward"), (configs[1], "forward"), (configs[0], "train")], report=lambda _: None)
    cases.measure()
    a, b, c = "fp32 forward", "mixed_bf16 forward", "fp32 train"
    assert timed_order == [a, b, c, c, b, a, a, b, c]
    rows = cases.rows()
    assert len(rows) == 3
    row = rows[(configs[0].run_id, "train")]
    assert len(row["step_times_s"]) == 6 and len(row["round_medians_s"]) == 3
    blocks = [row["step_times_s"][start:start + 2] for start in (0, 2, 4)]
    assert row["round_medians_s"] == [statistics.median(block) for block in blocks]
    assert row["round_spread"] == max(row["round_medians_s"]) / min(row["round_medians_s"]) - 1
    assert row["compile_s"] > 0 and "stopped" not in row and "error" not in row
    assert row["cpu_time_s"] > 0 and row["cpu_threads"] >= 1  # what the CPU gave its timed blocks


def test_a_stopped_run_keeps_the_rounds_it_completed(tiny_config, monkeypatch):
    config = tiny_config.replace(rounds=2, steps=2)
    cases = StepCases([(config, "forward"), (config.replace(precision="mixed_bf16"), "forward")],
                      report=lambda _: None)
    calls = []
    real = measure.time_steps

    def time_steps(step, warmup, steps):  # Ctrl-C in the second block of round 2
        calls.append(step)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(step, warmup, steps)
    monkeypatch.setattr(measure, "time_steps", time_steps)
    with pytest.raises(KeyboardInterrupt):
        cases.measure()
    rows = cases.rows()
    first, second = rows[(config.run_id, "forward")], rows[(config.replace(precision="mixed_bf16").run_id, "forward")]
    assert len(second["round_medians_s"]) == 2 and "stopped" not in second
    assert len(first["round_medians_s"]) == 1 and first["stopped"] == "stopped after round 1 of 2"


def test_cases_measured_together_share_their_rounds(tiny_config):
    with pytest.raises(ValueError, match="share their rounds"):
        StepCases([(tiny_config, "forward"), (tiny_config.replace(rounds=2), "train")])


def test_a_row_whose_steps_got_little_cpu_is_noted():
    from resnet_perf.cpu_usage import starvation_note, utilisation

    row = {"step_times_s": [1.0, 1.0], "cpu_time_s": 2.08, "cpu_threads": 2, "steal_s": 0.0, "throttled_s": 0.0}
    assert utilisation(row) == pytest.approx(0.52) and starvation_note(row) == "cpu 52% of 2 threads"
    assert starvation_note({**row, "steal_s": 0.4}) == "cpu 52% of 2 threads (steal 0.4 s)"
    assert starvation_note({**row, "cpu_time_s": 3.7}) is None  # 92%: not starved
    assert starvation_note({"step_times_s": [1.0]}) is None  # older rows: no counters, no note
