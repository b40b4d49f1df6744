"""python -m resnet_perf.interleave: alternation order, warm-up untimed, the summary, bad input."""
from __future__ import annotations

import pytest

from resnet_perf.errors import UserError
from resnet_perf.machine.cpu import cpu_flags
from resnet_perf.precision import has_native_bf16
from resnet_perf.interleave import complete_rounds, interleave, main, summary_rows


class FakeStep:
    """A step that records its calls; ``problems`` as ``Step.problems`` reads them."""

    def __init__(self, name: str, calls: list[str], problem: str = "", retrace_at: int = 0) -> None:
        self.name, self.calls, self.problem, self.retrace_at = name, calls, problem, retrace_at
        self.tracing_count = 1

    def __call__(self) -> None:
        self.calls.append(self.name)
        if self.retrace_at and self.calls.count(self.name) == self.retrace_at:
            self.tracing_count += 1

    def problems(self, tracing_count_before: int) -> list[str]:
        retraced = self.tracing_count - tracing_count_before
        return [self.problem] * bool(self.problem) + [f"retraced {retraced} time(s)"] * bool(retraced)


def timer(calls: list[str], timed: list[str]):
    def time_call(step):
        step()
        timed.append(calls[-1])
        return float(len(calls))
    return time_call


def test_warm_up_is_untimed_and_each_step_is_timed_once_a_round():
    calls, timed = [], []
    steps = {"a": FakeStep("a", calls), "b": FakeStep("b", calls)}
    times = {"a": [], "b": []}
    for label, seconds in interleave(steps, rounds=3, warmup=2, time_call=timer(calls, timed)):
        times[label].append(seconds)
    assert calls[:4] == ["a", "a", "b", "b"] and timed == ["a", "b", "b", "a", "a", "b"]
    assert times == {"a": [5.0, 8.0, 9.0], "b": [6.0, 7.0, 10.0]}


def test_a_switch_not_in_effect_is_refused_before_the_rounds_and_a_retrace_after_them():
    calls, timed = [], []
    steps = {"a": FakeStep("a", calls), "b": FakeStep("b", calls, problem="oneDNN is off in this process")}
    with pytest.raises(UserError, match="not measured as labelled: b: oneDNN is off in this process"):
        list(interleave(steps, rounds=3, warmup=1, time_call=timer(calls, timed)))
    assert timed == []
    steps = {"a": FakeStep("a", calls := [], retrace_at=3), "b": FakeStep("b", calls)}
    with pytest.raises(UserError, match="a: retraced 1 time"):
        list(interleave(steps, rounds=3, warmup=1, time_call=timer(calls, timed)))


def test_an_interrupted_run_keeps_the_rounds_every_step_finished():
    assert complete_rounds({"a": [1.0, 2.0, 3.0], "b": [1.5, 2.5]}) == {"a": [1.0, 2.0], "b": [1.5, 2.5]}


def test_summary_is_median_throughput_and_ratio_to_the_first():
    rows = summary_rows({"fp32": [0.4, 0.5, 0.6], "bf16": [0.25, 0.2, 0.3]}, batch_size=10)
    assert rows[0][0] == "fp32" and rows[1][0] == "bf16"
    assert rows[0][1:] == pytest.approx([500.0, 20.0, 1.0])
    assert rows[1][1:] == pytest.approx([250.0, 40.0, 2.0])


@pytest.mark.parametrize("args, message", [
    (["--modes", "backward"], "unknown mode 'backward'"),
    (["--precisions", "fp8"], "unknown precision 'fp8'"),
    (["--rounds", "0"], "--rounds must be at least 1"),
])
def test_bad_input_is_one_line(capsys, args, message):
    assert main(["--depth", "18", "--image-size", "32", "--batch-size", "2", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_tiny_run_prints_every_step(capsys):
    assert main(["--depth", "18", "--image-size", "32", "--batch-size", "2", "--precisions", "fp32,mixed_bf16",
                 "--modes", "forward,train", "--rounds", "2", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("resnet18-fp32-noxla-nhwc-b2-32 forward", "resnet18-mixed_bf16-noxla-nhwc-b2-32 train"):
        assert label in out
    assert "2 alternating rounds" in out


@pytest.mark.slow
def test_a_process_wide_precision_is_interleaved_in_workers_taking_turns_a_step_at_a_time(capsys):
    """amp_bf16 is grappler's rewrite, a setting of the whole process: its steps run in a worker of
    their own, fp32's in another, one step per turn; oneDNN's log must show bf16 convolutions."""
    code = main(["--depth", "18", "--image-size", "32", "--batch-size", "2", "--precisions", "fp32,amp_bf16",
                 "--modes", "train", "--rounds", "3", "--warmup", "1"])
    out, err = capsys.readouterr()
    if not has_native_bf16(cpu_flags()):  # then the worker's log shows no bf16 convolution: refused, not mislabelled
        assert code == 2 and "not measured as labelled" in err
        return
    assert code == 0, err
    assert "worker w1: 1 case(s) with amp_bf16" in out and "rounds stopped: --rounds 3: 3 rounds" in out
    for name in ("resnet18-fp32-noxla-nhwc-b2-32 train", "resnet18-amp_bf16-noxla-nhwc-b2-32 train"):
        assert name in out
    assert "3 alternating rounds after 1 warm-up step(s) each" in out
