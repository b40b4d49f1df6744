"""Profiler traces: written where promised, readable, summarised from the file; bad input is one line."""
from __future__ import annotations

import pytest

from resnet_perf import profile
from resnet_perf.analysis.results import load_results
from resnet_perf.errors import UserError
from resnet_perf.trace.capture import TracerOptions, capture
from resnet_perf.trace.xplane import HOST_PLANE, _self_times, read_xspace, summarize, trace_files

TINY_ARGS = ["--depth", "18", "--batch-size", "2", "--image-size", "32", "--warmup", "1", "--steps", "3"]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = profile.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_tiny_trace_is_written_parsed_and_summarised(tmp_path, capsys):
    code, out, err = _run(capsys, *TINY_ARGS, "--logdir", str(tmp_path))
    assert code == 0, err
    (trace,) = trace_files(tmp_path)
    assert trace.parent.parent == tmp_path / "plugins" / "profile" and trace.name.endswith(".xplane.pb")
    summary = summarize(trace)
    assert HOST_PLANE in summary.planes
    assert summary.step_numbers == [0, 1, 2] and all(seconds > 0 for seconds in summary.step_times_s)
    op_types = {op.op for op in summary.ops}
    assert any("Conv2D" in op for op in op_types) and abs(sum(op.share for op in summary.ops) - 1) < 1e-9
    assert summary.options["host_tracer_level"] == 2  # what the session ran with, read from the trace

    assert f"trace: {trace}" in out and "steps in the trace: 3" in out and "Conv2D" in out
    assert f"tensorboard --logdir {tmp_path}" in out and f"xprof --logdir {tmp_path}" in out
    (saved,) = tmp_path.glob("profile-*.json")
    result = load_results(saved)
    assert result["kind"] == "profile" and result["trace"] == str(trace) and len(result["step_times_s"]) == 3
    assert {row["op"] for row in result["rows"]} == op_types
    assert all(row["run_id"] == "resnet18-fp32-noxla-nhwc-b2-32" and row["mode"] == "train" for row in result["rows"])


@pytest.mark.slow
def test_xla_trace_lists_hlo_instructions_by_name(tmp_path, capsys):
    code, out, err = _run(capsys, *TINY_ARGS, "--xla", "on", "--mode", "forward", "--group-by", "name",
                          "--logdir", str(tmp_path))
    assert code == 0, err
    summary = summarize(trace_files(tmp_path)[0], group_by="name")
    assert summary.step_numbers == [0, 1, 2]
    assert {op.kind for op in summary.ops} == {"xla"} and any(op.op.startswith("convolution") for op in summary.ops)


def test_self_time_excludes_nested_ops():
    # (start, duration, kind, type, name): an op of 100 holding ops of 30 and 20 (the 20 holding one of 5)
    events = [(0, 100, "tf", "Outer", "a"), (10, 30, "tf", "Inner", "b"), (50, 20, "tf", "Inner", "c"),
              (55, 5, "tf", "Leaf", "d"), (200, 7, "tf", "Leaf", "e")]
    own = {name: ps for _kind, _type, name, ps in _self_times(events)}
    assert own == {"a": 50, "b": 30, "c": 15, "d": 5, "e": 7}


def test_a_second_profiler_session_is_refused(tmp_path):
    import tensorflow as tf

    tf.profiler.experimental.start(str(tmp_path / "first"))
    try:
        with pytest.raises(UserError, match="another profiler session is already running"):
            capture(lambda: None, tmp_path / "second", steps=1)
    finally:
        tf.profiler.experimental.stop()


def test_the_profiler_is_stopped_when_a_step_fails(tmp_path):
    import tensorflow as tf

    class Failing:
        mode = "train"

        def __call__(self):
            raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        capture(Failing(), tmp_path, steps=2)
    tf.profiler.experimental.start(str(tmp_path / "again"))  # would raise if the first were still running
    tf.profiler.experimental.stop()


class MatmulStep:
    """A step the profiler can trace: one small matmul."""
    mode = "forward"

    def __call__(self):
        import tensorflow as tf

        return tf.linalg.matmul(tf.ones((8, 8)), tf.ones((8, 8))).numpy()


def test_a_trace_is_moved_under_the_logdir_only_once_it_reads_back_whole(tmp_path, monkeypatch):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    trace, space = capture(MatmulStep(), logdir, steps=1)
    assert trace_files(logdir) == [trace] and space.planes  # read back whole, for its readers and [path.name for path in tmp_path.iterdir()] == ["logs"]

    def truncated(path):  # as a full disk leaves it
        raise UserError(f"{path} is not a profiler trace (XSpace protobuf): truncated or foreign")
    monkeypatch.setattr("resnet_perf.trace.capture.read_xspace", truncated)
    with pytest.raises(UserError, match="truncated"):
        capture(MatmulStep(), logdir, steps=1)
    assert trace_files(logdir) == [trace] and [path.name for path in tmp_path.iterdir()] == ["logs"]


@pytest.mark.parametrize("args, message", [
    (["--depth", "19"], "unknown ResNet depth 19"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--logdir", "/dev/null/traces"], "cannot write traces to /dev/null/traces"),
    (["--top", "-1"], "--top must be at least 1, got -1"),
])
def test_bad_input_is_one_error_line(capsys, args, message):
    code, out, err = _run(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_a_corrupt_trace_names_the_file(tmp_path):
    bad = tmp_path / "vm.xplane.pb"
    bad.write_bytes(b"\xff\xff\xff not a protobuf")
    with pytest.raises(UserError, match=f"{bad} is not a profiler trace"):
        read_xspace(bad)


def test_options_not_in_the_trace_are_named():
    options = TracerOptions(host_tracer_level=3, python_tracer_level=1)
    assert options.not_applied({"host_tracer_level": 3, "python_tracer_level": 1, "device_tracer_level": 1}) == []
    assert options.not_applied({"host_tracer_level": 2, "python_tracer_level": 0, "device_tracer_level": 1}) == [
        "host_tracer_level=3 (ran with 2)", "python_tracer_level=1 (ran with 0)"]


@pytest.mark.slow
def test_tracer_options_not_applied_are_an_error_after_the_trace(tmp_path, capsys):
    code, out, err = _run(capsys, *TINY_ARGS, "--steps", "1", "--host-tracer-level", "3", "--python-tracer",
                          "--logdir", str(tmp_path))
    applied = summarize(trace_files(tmp_path)[0]).options
    assert "steps in the trace: 1" in out  # the trace and its summary are kept
    # TensorFlow 2.21 ignores ProfilerOptions (its log says "host_tracer_level expects an i value").
    # Should a TensorFlow apply them, this fails: then drop the exit-3 path and this test with it.
    assert (applied["host_tracer_level"], applied["python_tracer_level"]) == (2, 0)
    assert code == 3 and "error: the profiler did not apply" in err and "host_tracer_level=3 (ran with 2)" in err