"""The pytest-benchmark suite end to end on a tiny matrix, as a user runs it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_MATRIX = ["--depths", "18", "--precisions", "fp32", "--xla", "off,on", "--image-size", "32",
               "--batch-size", "2", "--steps", "2", "--warmup", "1"]


def run_suite(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "-q", "-p", "no:cacheprovider",
               *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_tiny_matrix_end_to_end(tmp_path):
    done = run_suite(*TINY_MATRIX, "--results-dir", str(tmp_path / "results"),
                     "--benchmark-json", str(tmp_path / "benchmark.json"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resnet_perf results" in done.stdout and "resnet18-fp32-xla-nhwc-b2-32" in done.stdout

    (saved,) = (tmp_path / "results").glob("bench-*.json")
    result = json.loads(saved.read_text())
    rows = {(row["bench"], row["run_id"], row["mode"]): row for row in result["rows"]}
    assert len(rows) == 2 * 3 + 2 * 2  # 2 configs x (3 steps + 2 memory probes)
    train = rows[("step", "resnet18-fp32-xla-nhwc-b2-32", "train")]
    for key in ("images_per_sec", "median_s", "p90_s", "p99_s", "cv", "flops_per_step", "achieved_flops",
                "mfu", "compile_s"):
        assert train[key] > 0, key
    assert len(train["step_times_s"]) == 2 and train["xla"] is True
    memory = rows[("memory", "resnet18-fp32-noxla-nhwc-b2-32", "train")]
    assert memory["peak_memory_bytes"] > 0 and memory["memory_kind"] == "host_rss_added"
    assert result["environment"]["tensorflow"] and result["matmul_peak_flops"]["float32"] > 0

    benchmarks = json.loads((tmp_path / "benchmark.json").read_text())["benchmarks"]
    forward = next(b for b in benchmarks if b["name"] == "test_forward[resnet18-fp32-noxla-nhwc-b2-32]")
    assert forward["extra_info"]["images_per_sec"] > 0 and forward["extra_info"]["mfu"] > 0
    assert forward["extra_info"]["environment"]["cpu_count"] >= 1
    assert forward["stats"]["rounds"] == 2


@pytest.mark.slow
def test_keras_reference_rows_sit_beside_ours(tmp_path):
    done = run_suite("--depths", "50", "--precisions", "fp32", "--xla", "off", "--image-size", "32",
                     "--batch-size", "2", "--steps", "2", "--warmup", "1", "--reference", "keras",
                     "-k", "test_forward", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (saved,) = tmp_path.glob("bench-*.json")
    run_ids = {row["run_id"] for row in json.loads(saved.read_text())["rows"]}
    assert run_ids == {"resnet50-fp32-noxla-nhwc-b2-32", "keras-resnet50-fp32-noxla-nhwc-b2-32"}


@pytest.mark.parametrize("args, message", [
    (["--depths", "19"], "unknown ResNet depth 19"),
    (["--precisions", "fp8"], "unknown precision 'fp8'"),
    (["--xla", "maybe"], "--xla: cannot read 'maybe'"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
])
def test_bad_matrix_is_one_error_line_and_nonzero_exit(args, message):
    done = run_suite(*args, timeout=120)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0]
