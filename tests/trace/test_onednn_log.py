"""oneDNN's execution log: parsed and totalled without TensorFlow; ``profile --onednn-primitives`` end to end."""
from __future__ import annotations

import os

import pytest

from resnet_perf.analysis.results import load_results
from resnet_perf.spawn import run_module
from resnet_perf.trace.onednn_log import Execution, StepCoverage, native_output_to, parse_executions, totals

BWD_WEIGHTS = ("onednn_verbose,v1,primitive,exec,cpu,convolution,jit_bf16:avx512_core_bf16,backward_weights,"
               "src:bf16::blocked:acdb::f0 wei:bf16:a:blocked:ABcd16b16a::f0 bia:undef::undef::: "
               "dst:bf16::blocked:acdb::f0,,alg:convolution_direct,mb32_ic64oc64_ih56oh56kh3sh1dh0ph1_iw56ow56kw3sw1dw0pw1,{ms}")
FORWARD_OLD_FORMAT = ("onednn_verbose,exec,cpu,convolution,brg:avx512_core,forward_training,"
                      "src_f32::blocked:acdb:f0 wei_f32::blocked:Acdb16a:f0 dst_f32::blocked:acdb:f0,,"
                      "alg:convolution_direct,mb2_ic3oc64_ih32oh16kh7sh2dh0ph3_iw32ow16kw7sw2dw0pw3,0.5")
LOG = [
    "onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)",
    "onednn_verbose,v1,primitive,info,template:timestamp,operation,engine,primitive,implementation,prop_kind,...",
    BWD_WEIGHTS.format(ms="4.5"),
    "I0000 00:00:1796583280.045362 auto_mixed_precision.cc:2259] Converted 510/3048 nodes",
    BWD_WEIGHTS.format(ms="5.5"),
    "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:bf16::blocked:cdba::f0 dst:bf16::blocked:ABcd16b16a::f0,,,64x64x3x3,1",
    BWD_WEIGHTS.format(ms="")[:-3],  # cut short: the process ended while writing it
]


def test_execution_lines_are_parsed_and_everything_else_skipped():
    executions = parse_executions(LOG)
    assert [execution.ms for execution in executions] == [4.5, 5.5, 1.0]
    assert executions[0] == Execution("convolution", "jit_bf16:avx512_core_bf16", "backward_weights",
                                      "src bf16, wei bf16, dst bf16", "mb32_ic64oc64_ih56oh56kh3sh1dh0ph1_iw56ow56kw3sw1dw0pw1", 4.5)
    assert executions[2].kind == "reorder" and executions[2].data_types == "src bf16, dst bf16"


def test_totals_are_per_step_largest_first_with_shares_of_all_primitive_time():
    rows = totals(parse_executions(LOG), steps=2)
    assert [(row["kind"], row["calls_per_step"], row["ms_per_step"]) for row in rows] == [
        ("convolution", 1.0, 5.0), ("reorder", 0.5, 0.5)]
    assert [row["share"] for row in rows] == [10 / 11, 1 / 11]
    by_shape = totals(parse_executions(LOG + [BWD_WEIGHTS.format(ms="1").replace("mb32", "mb16")]), 1,
                      ("implementation", "problem"))
    assert len(by_shape) == 3 and set(by_shape[0]) == {"implementation", "problem", "calls_per_step", "ms_per_step", "share"}
    with pytest.raises(ValueError, match="steps must be at least 1"):
        totals([], 0)


def test_the_old_log_format_is_read_too():
    (execution,) = parse_executions([FORWARD_OLD_FORMAT])
    assert (execution.implementation, execution.propagation, execution.ms) == ("brg:avx512_core", "forward_training", 0.5)
    assert execution.data_types == "src f32, wei f32, dst f32"


def test_primitive_time_beyond_the_step_is_overlap():
    rows = totals(parse_executions(LOG), steps=1)  # 10 ms of convolutions, 1 ms of reorder
    serial = StepCoverage.of(rows, step_s=0.0112)
    assert (serial.primitive_ms, serial.step_ms) == (11.0, 11.2) and not serial.overlapped
    assert not StepCoverage(10.5, 10.0).overlapped  # within timing noise of the step
    assert StepCoverage(11.0, 5.5).ratio == 2.0 and StepCoverage(11.0, 5.5).overlapped


def test_the_overlap_is_said_with_the_way_to_avoid_it():
    from resnet_perf.profile import format_primitives

    rows = totals(parse_executions(LOG), steps=1)
    serial = format_primitives(rows, top=1, coverage=StepCoverage(11.0, 11.2))
    assert "top 1 of 2 groups" in serial and "oneDNN primitives: 11 ms per step; the median logged step: 11 ms" in serial
    assert "--threads N:1" not in serial
    overlapped = format_primitives(rows, top=5, coverage=StepCoverage(11.0, 5.5))
    assert "2.00x the step: TensorFlow ran ops at once" in overlapped and "--threads N:1" in overlapped


def test_native_output_goes_to_the_file_and_python_output_does_not(tmp_path, capfd):
    log = tmp_path / "native.log"
    with native_output_to(log):
        os.write(1, b"onednn_verbose,native line\n")
        print("from python")
    print("after")
    assert log.read_text() == "onednn_verbose,native line\n"
    out = capfd.readouterr().out
    assert "from python" in out and "after" in out and "native line" not in out


@pytest.mark.slow
def test_profile_lists_the_primitives_of_a_tiny_step(tmp_path):
    args = ["--depth", "18", "--batch-size", "2", "--image-size", "32", "--warmup", "1", "--steps", "2",
            "--onednn-primitives", "--logdir", tmp_path]
    finished = run_module("resnet_perf.profile", args, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "onednn_verbose" not in finished.stdout  # the log went to its file
    assert "backward_weights" in finished.stdout and "ms/step" in finished.stdout
    (saved,) = tmp_path.glob("onednn-*.json")
    result = load_results(saved)
    kinds = {(row["kind"], row["propagation"]) for row in result["rows"]}
    assert {("convolution", "forward_training"), ("convolution", "backward_data"),
            ("convolution", "backward_weights")} <= kinds
    assert all(row["bench"] == "onednn" and row["run_id"] == "resnet18-fp32-noxla-nhwc-b2-32" for row in result["rows"])
    assert abs(sum(row["share"] for row in result["rows"]) - 1) < 1e-9 and result["logged_steps"] == 2
    assert len(result["step_times_s"]) == 2 and "the median logged step" in finished.stdout
    assert "onednn_verbose" in (tmp_path / "onednn-exec.log").read_text()


def test_a_log_that_cannot_be_switched_on_is_one_error_line(tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    from resnet_perf import profile

    monkeypatch.setenv("ONEDNN_VERBOSE", "0")  # restored after the test: the command sets it for its process
    # oneDNN reads its log level at its first use in a process: here, before the command runs.
    tf.nn.conv2d(tf.ones((1, 4, 4, 1)), tf.ones((3, 3, 1, 1)), 1, "SAME")
    code = profile.main(["--depth", "18", "--batch-size", "2", "--image-size", "32", "--warmup", "0", "--steps", "1",
                         "--onednn-primitives", "--logdir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "its log was not on in this process" in err[0]
    assert (tmp_path / "onednn-exec.log").exists() and not list(tmp_path.glob("onednn-*.json"))
