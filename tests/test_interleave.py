"""python -m resnet_perf.interleave: alternation order, warm-up untimed, the summary, bad input."""
from __future__ import annotations

import pytest

from resnet_perf.interleave import interleave, main, summary_rows


def test_warm_up_is_untimed_and_each_step_is_timed_once_a_round():
    calls = []
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    timed = []

    def time_call(step):
        step()
        timed.append(calls[-1])
        return float(len(calls))

    times = interleave(steps, rounds=3, warmup=2, time_call=time_call)
    assert calls[:4] == ["a", "a", "b", "b"] and timed == ["a", "b", "b", "a", "a", "b"]
    assert times == {"a": [5.0, 8.0, 9.0], "b": [6.0, 7.0, 10.0]}


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
