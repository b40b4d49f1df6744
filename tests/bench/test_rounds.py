"""Step cases measured in rounds, round-major: the order, the block length, the stopping rule's
schedule on fake blocks and a fake clock, a stopped run."""
from __future__ import annotations

import itertools
import math
import statistics

import pytest

from resnet_perf.analysis.sequential import Budget, FASTER, SAME, UNDECIDED
from resnet_perf.bench import rounds
from resnet_perf.bench.rounds import MIN_BLOCK_S, MIN_BLOCK_STEPS, StepCases, block_steps, round_major, run_rounds


def test_round_major_visits_every_key_once_a_round_in_alternating_order():
    order = list(round_major(["a", "b", "c"], 3))
    assert order == [(0, "a"), (0, "b"), (0, "c"), (1, "c"), (1, "b"), (1, "a"), (2, "a"), (2, "b"), (2, "c")]


def test_a_block_lasts_at_least_its_minimum_time_and_three_steps_however_fast_the_step():
    assert block_steps(1, [0.035, 0.030, 0.040]) == math.ceil(MIN_BLOCK_S / 0.035)
    assert block_steps(1, [2.0, 2.1]) == MIN_BLOCK_STEPS  # slow steps: three of them
    assert block_steps(10, [2.0]) == 10  # asked for more: kept
    assert block_steps(1, [0.0]) == MIN_BLOCK_STEPS


class FakeMachine:
    """Blocks whose median step time is ``pace[unit] * drift(t)`` with a little noise; a clock
    that advances by each block's length."""

    def __init__(self, pace: dict[str, float], noise: float = 0.01) -> None:
        self.pace, self.now, self.order = pace, 0.0, []
        self.noise = itertools.cycle([1 + noise, 1 - noise, 1 + noise / 2, 1 - noise / 2, 1.0])

    def clock(self) -> float:
        return self.now

    def time_block(self, unit: str) -> float:
        self.order.append(unit)
        drift = 1 + 0.3 * math.sin(self.now / 7)  # the machine changes pace, alike for every unit nearby
        median = self.pace[unit] * drift * next(self.noise)
        self.now += 3 * median
        return median


def test_rounds_stop_at_the_first_look_where_every_verdict_is_decided():
    machine = FakeMachine({"fp32": 0.10, "bf16": 0.05, "same": 0.10})
    outcome = run_rounds(["fp32", "bf16", "same"], machine.time_block, [("bf16", "fp32"), ("same", "fp32")],
                         Budget(seconds=1000), report=lambda _: None, clock=machine.clock)
    assert outcome.verdicts[("bf16", "fp32")].kind == FASTER
    assert outcome.verdicts[("same", "fp32")].kind == SAME
    assert outcome.rounds in (3, 5, 8, 12, 18, 27)  # a look
    assert "every verdict decided" in outcome.stopped_because
    assert machine.order[:6] == ["fp32", "bf16", "same", "same", "bf16", "fp32"]
    assert all(len(medians) == outcome.rounds for medians in outcome.medians.values())


def test_rounds_stop_before_the_look_that_would_pass_the_budget():
    machine = FakeMachine({"a": 0.10, "b": 0.103}, noise=0.05)  # 3% apart, noisy: not decided soon
    outcome = run_rounds(["a", "b"], machine.time_block, [("b", "a")], Budget(seconds=20), report=lambda _: None,
                         clock=machine.clock)
    assert outcome.verdicts[("b", "a")].kind == UNDECIDED
    assert "budget of 20 s" in outcome.stopped_because and machine.now <= 20
    assert outcome.rounds in (3, 5, 8, 12, 18, 27, 41)


def test_an_explicit_cap_below_the_first_look_runs_in_full_and_says_undecided():
    machine = FakeMachine({"a": 0.10, "b": 0.05})
    outcome = run_rounds(["a", "b"], machine.time_block, [("b", "a")], Budget(max_rounds=2), report=lambda _: None,
                         clock=machine.clock)
    assert outcome.rounds == 2 and outcome.verdicts[("b", "a")].kind == UNDECIDED
    assert "first look is at 3" in outcome.verdicts[("b", "a")].reason


@pytest.fixture
def timed_order(monkeypatch) -> list[str]:
    """The cases in the order their blocks are timed (``time_steps`` is what times a block)."""
    order = []
    real = rounds.time_steps

    def time_steps(step, warmup, steps):
        order.append(f"{step.config.precision} {step.mode}")
        return real(step, warmup, steps)
    monkeypatch.setattr(rounds, "time_steps", time_steps)
    return order


def test_every_case_is_built_first_then_timed_round_major(tiny_config, timed_order):
    configs = [tiny_config, tiny_config.replace(precision="mixed_bf16")]
    cases = StepCases([(configs[0], "forward"), (configs[1], "forward"), (configs[0], "train")], report=lambda _: None)
    outcome = cases.measure([], Budget(max_rounds=3))
    a, b, c = "fp32 forward", "mixed_bf16 forward", "fp32 train"
    assert outcome.rounds == 3 and timed_order == [a, b, c, c, b, a, a, b, c]
    rows = cases.rows()
    assert len(rows) == 3
    row = rows[(configs[0].run_id, "train")]
    size = row["block_steps"]
    assert size >= MIN_BLOCK_STEPS and len(row["step_times_s"]) == 3 * size and len(row["round_medians_s"]) == 3
    blocks = [row["step_times_s"][start:start + size] for start in range(0, 3 * size, size)]
    assert row["round_medians_s"] == [statistics.median(block) for block in blocks]
    assert sum(row["step_times_s"][-size:]) >= MIN_BLOCK_S * 0.5  # calibrated to about MIN_BLOCK_S
    assert row["compile_s"] > 0 and "stopped" not in row and "error" not in row
    assert row["cpu_time_s"] > 0 and row["cpu_threads"] >= 1  # what the CPU gave its timed blocks


def test_a_stopped_run_keeps_the_rounds_it_completed(tiny_config, monkeypatch):
    config = tiny_config
    cases = StepCases([(config, "forward"), (config.replace(precision="mixed_bf16"), "forward")],
                      report=lambda _: None)
    calls = []
    real = rounds.time_steps

    def time_steps(step, warmup, steps):  # Ctrl-C in the second block of round 2
        calls.append(step)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(step, warmup, steps)
    monkeypatch.setattr(rounds, "time_steps", time_steps)
    with pytest.raises(KeyboardInterrupt):
        cases.measure([], Budget(max_rounds=5))
    rows = cases.rows()
    first, second = rows[(config.run_id, "forward")], rows[(config.replace(precision="mixed_bf16").run_id, "forward")]
    assert len(second["round_medians_s"]) == 2 and second["stopped"] == "interrupted after round 2"
    assert len(first["round_medians_s"]) == 1 and first["stopped"] == "interrupted after round 1"


def test_cases_measured_together_share_their_warm_up(tiny_config):
    with pytest.raises(ValueError, match="share their warm-up"):
        StepCases([(tiny_config, "forward"), (tiny_config.replace(warmup=5), "train")])


def test_a_row_whose_steps_got_little_cpu_is_noted():
    from resnet_perf.machine.cpu_usage import starvation_note, utilisation

    row = {"step_times_s": [1.0, 1.0], "cpu_time_s": 2.08, "cpu_threads": 2, "steal_s": 0.0, "throttled_s": 0.0}
    assert utilisation(row) == pytest.approx(0.52) and starvation_note(row) == "cpu 52% of 2 threads"
    assert starvation_note({**row, "steal_s": 0.4}) == "cpu 52% of 2 threads (steal 0.4 s)"
    assert starvation_note({**row, "cpu_time_s": 3.7}) is None  # 92%: not starved
    assert starvation_note({"step_times_s": [1.0]}) is None  # older rows: no counters, no note
