"""The answer on one screen (resnet_perf.analysis.answer) and the cases traced to explain it (rounds.answer_units),
on synthetic rows: the fastest configuration, its verdict against fp32, the lead, what does not pay."""
from __future__ import annotations

from resnet_perf.analysis.answer import decided_share, findings, render
from resnet_perf.analysis.speedup import speedups
from resnet_perf.analysis.tables import step_frame
from resnet_perf.bench.rounds import answer_units
from resnet_perf.config import RunConfig
from resnet_perf.models.flops import with_derived_metrics

FP32 = RunConfig(depth=50, batch_size=16, image_size=112)
CONFIGS = {"fp32": FP32, "bf16": FP32.replace(precision="mixed_bf16"),
           "bf16_fused": FP32.replace(precision="mixed_bf16", batch_norm="fused"),
           "fused": FP32.replace(batch_norm="fused"), "xla": FP32.replace(xla=True)}
NOISE = (1.0, 1.004, 0.997, 1.002, 0.999)


def row(name: str, seconds: float, breakdown: dict[str, float] | None = None) -> dict:
    medians = [seconds * pace * noise for pace, noise in zip((1.0, 1.3, 0.95, 1.1, 1.0), NOISE)]
    extra = {"breakdown_step_s": seconds, "breakdown_op_s": breakdown} if breakdown else {}
    return {"bench": "step", **CONFIGS[name].as_dict(), "mode": "train", "step_times_s": medians,
            "round_medians_s": medians, "median_s": sorted(medians)[2], "flops_per_step": 1e9, **extra}


def rows() -> list[dict]:
    """The rows as a result file is read: with their derived metrics (images/s)."""
    return with_derived_metrics([row("fp32", 1.0, {"conv_forward": 0.4, "conv_backward_filter": 0.3, "batch_norm": 0.3}),
            row("bf16", 0.7), row("bf16_fused", 0.5, {"conv_forward": 0.2, "conv_backward_filter": 0.25,
                                                     "batch_norm": 0.05}),
            row("fused", 0.995), row("xla", 1.5)], peaks={})


def test_the_answer_names_the_fastest_its_speed_up_why_its_lead_and_what_does_not_pay():
    frame = speedups(step_frame(rows()))
    (answer,) = findings(frame)
    assert answer.group == "ResNet-50 train, batch 16, 112x112"
    assert answer.fastest == "mixed_bf16+fused_bn" and answer.images_per_sec == 16 / 0.5
    assert answer.vs_baseline.kind == "faster" and 1.9 < answer.vs_baseline.ratio.value < 2.1
    assert answer.why == "convolutions 1.6x faster (-250 ms), batch norm 6.0x faster (-250 ms)"
    assert answer.runner_up == "mixed_bf16" and answer.lead.kind == "faster"
    assert answer.do_not_pay == ["fused_bn (no difference, 1.01x)", "xla (slower, 0.67x)"]
    assert decided_share(frame) == (4, 4)
    text = render([answer], {"rounds": 5, "stopped_because": "every verdict decided after 5 rounds"})
    lines = text.splitlines()
    assert lines[0] == "ResNet-50 train, batch 16, 112x112: fastest is mixed_bf16+fused_bn, 32.0 img/s"
    assert lines[1].startswith("  vs fp32 default: faster: 2x [") and lines[2].startswith("  why: convolutions")
    assert lines[3].startswith("  ahead of the runner-up mixed_bf16: faster: 1.4x [")
    assert lines[-1] == "rounds: 5, stopped because every verdict decided after 5 rounds"


def test_too_few_rounds_leave_the_verdicts_undecided_and_say_so():
    few = [{**one, "round_medians_s": one["round_medians_s"][:2]} for one in rows()]  # images/s kept: the point
    frame = speedups(step_frame(few))
    (answer,) = findings(frame)
    assert answer.vs_baseline.kind == "undecided" and "first look is at 3" in answer.vs_baseline.reason
    assert decided_share(frame) == (0, 4) and len(answer.undecided) == 4
    assert "xla (0.667x no interval (2 units))" in answer.undecided


def test_an_undecided_switch_is_shown_with_its_interval():
    scattered = [{**one, "round_medians_s": [seconds * drift for seconds, drift in
                                             zip(one["round_medians_s"], (0.9, 1.12, 0.95, 1.1, 1.0))]}
                 if one["batch_norm"] == "fused" and one["precision"] == "fp32" else one for one in rows()]
    (answer,) = findings(speedups(step_frame(scattered)))
    (fused,) = answer.undecided
    assert fused.startswith("fused_bn (") and fused.count("[") == 1 and fused.endswith("])"), fused


def test_the_answer_traces_each_baseline_and_the_two_fastest_of_its_group():
    medians = {"fp32": [1.0, 1.1], "bf16": [0.6, 0.7], "xla": [1.4, 1.5], "fp32-fwd": [0.3], "bf16-fwd": [0.35]}
    comparisons = [("bf16", "fp32"), ("xla", "fp32"), ("bf16-fwd", "fp32-fwd")]
    # train: bf16 and the baseline are the two fastest, xla is left out; forward: the baseline is fastest
    assert answer_units(medians, comparisons) == ["fp32", "bf16", "fp32-fwd", "bf16-fwd"]
    close = {**medians, "amp": [0.62, 0.71]}  # two close contenders: whichever the answer names has a trace
    assert answer_units(close, [*comparisons, ("amp", "fp32")])[:3] == ["fp32", "bf16", "amp"]
