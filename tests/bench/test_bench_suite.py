"""The pytest-benchmark suite end to end on a tiny matrix, as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_perf.machine.cpu import cpu_flags
from resnet_perf.training.recipes import training_filter_grad
from tests.fmnist_files import write_dataset

ROOT = Path(__file__).resolve().parents[2]
# One configuration; a test that needs a switch verdict adds a second (the batch norm: no XLA compile to wait for).
TINY_MATRIX = ["--depths", "18", "--precisions", "fp32", "--xla", "off", "--batch-norms", "keras",
               "--modes", "forward,train_forward,fwd_bwd,train", "--memory-modes", "forward,train", "--image-size", "32",
               "--batch-size", "2", "--rounds", "2", "--steps", "2", "--warmup", "1"]
FGEMM = "-fgemm" if training_filter_grad("auto", cpu_flags(), 18, 32, "nhwc") == "gemm" else ""
"""The fast recipe's filter gradients follow the CPU (``auto``): its run_ids name the GEMM where it takes it."""
TINY_TRAINING = ["--train-precisions", "fp32", "--train-replicas", "2", "--train-batch-size", "32",
                 "--train-limit", "128"]


def run_suite(*args: str, timeout: float = 900, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "-q", "-p", "no:cacheprovider",
               *args]
    env = {**os.environ, "RESNET_PERF_DATA": str(data_dir)} if data_dir else None
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_tiny_matrix_end_to_end(tmp_path):
    done = run_suite(*TINY_MATRIX, *TINY_TRAINING, "--batch-norms", "keras,fused", "--filter-grads", "conv",
                     "--modes", "forward,train", "--memory-modes", "train", "--train-to-target", "--train-epochs", "2",
                     "--results-dir", str(tmp_path / "results"), "--benchmark-json", str(tmp_path / "benchmark.json"),
                     data_dir=write_dataset(tmp_path / "data", train=128, test=128))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resnet_perf results" in done.stdout and "resnet18-fp32-noxla-nhwc-b2-32-fbn" in done.stdout

    (saved,) = (tmp_path / "results").glob("bench-*.json")
    result = json.loads(saved.read_text())
    rows = {(row["bench"], row["run_id"], row.get("mode", row.get("epoch"))): row for row in result["rows"]}
    assert len(rows) == 2 * 2 + 2 * 1 + 2  # 2 configs x (2 steps + 1 memory probe) + 2 training epochs
    train = rows[("step", "resnet18-fp32-noxla-nhwc-b2-32-fbn", "train")]
    for key in ("median_s", "p90_s", "p99_s", "cv", "flops_per_step", "compile_s"):
        assert train[key] > 0, key
    # 2 rounds of blocks of at least 3 steps and 0.2 s (resnet_perf.bench.rounds.block_steps)
    assert train["block_steps"] >= 3 and len(train["step_times_s"]) == 2 * train["block_steps"] and train["batch_norm"] == "fused"
    assert len(train["round_medians_s"]) == 2 and train["rounds"] == 2 and "stopped" not in train
    # round-major: every case was built before round 1, then timed once a round, as the progress says
    assert done.stdout.index("built 4/4") < done.stdout.index("round 1 done") < done.stdout.index("round 2 done")
    assert "the answer: 0 of 2 switch verdicts decided" in done.stdout  # 2 rounds: before the first look
    assert f"measured on {result['environment']['machine']['id']} (" in done.stdout  # what the answer's "here" is
    assert "mfu" not in train  # derived when read, from the file's peak readings
    # The fixed peak procedure: 3 readings at the session's start and 3 at its end, whatever the cases.
    assert len(result["matmul_peak_readings"]["float32"]) == 6
    memory = rows[("memory", "resnet18-fp32-noxla-nhwc-b2-32", "train")]
    assert memory["host_rss_added_bytes"] > 0 and "device_peak_bytes" not in memory
    assert result["environment"]["machine"]["software"]["tensorflow"] and result["environment"]["machine"]["id"]

    training = rows[("train", f"resnet18-fp32-noxla-nhwc-b32-32-c1-k10{FGEMM}-clip5-ema0.99-r2-e2", 1)]
    assert training["replicas"] == 2 and training["epoch_time_s"] > 0 and training["images_per_sec"] > 0
    assert (training["test_accuracy"] * 128).is_integer()  # a count of the 128 test images
    assert "training run" in done.stdout  # the training table
    # --train-to-target: the recipe's target (128 images do not reach it), the clock for the history
    second = rows[("train", f"resnet18-fp32-noxla-nhwc-b32-32-c1-k10{FGEMM}-clip5-ema0.99-r2-e2", 2)]
    assert training["stop_at_target"] and training["recipe"] == "fast" and training["clock_s"] < second["clock_s"]
    from resnet_perf.history.points import load_history

    history = load_history([saved]).points
    assert history[history["metric"] == "time_to_target_s"]["note"].tolist() == ["not reached"]

    # pytest-benchmark's JSON: the step cases only (the memory and training cases time processes, not
    # steps), each row in extra_info and the session's peak readings once.
    output = json.loads((tmp_path / "benchmark.json").read_text())
    names = [b["name"] for b in output["benchmarks"]]
    assert len(names) == 2 * 2 and not [name for name in names if "memory" in name or "fashion" in name]
    assert output["resnet_perf"]["matmul_peak_readings"] == result["matmul_peak_readings"]
    forward = next(b for b in output["benchmarks"] if b["name"] == "test_forward[resnet18-fp32-noxla-nhwc-b2-32]")
    assert forward["extra_info"]["step_times_s"] == forward["stats"]["data"]
    # pytest-benchmark's "rounds": its count of timed calls
    assert forward["stats"]["rounds"] == len(forward["extra_info"]["step_times_s"])
    from resnet_perf.analysis.results import load_result_set

    ours = {(r["run_id"], r["mode"]): r for r in load_result_set(saved).rows if r["bench"] == "step"}
    theirs = {(r["run_id"], r["mode"]): r for r in load_result_set(tmp_path / "benchmark.json").rows}
    key = ("resnet18-fp32-noxla-nhwc-b2-32", "forward")
    assert theirs[key]["mfu"] == ours[key]["mfu"] > 0  # the same MFU, derived from the same readings
    assert "Benchmark fixture was not used" not in done.stdout + done.stderr


def test_the_gemm_filter_gradients_are_a_twin_of_each_fused_configuration_in_training_steps():
    """``--filter-grads auto`` (the default): each configuration with the fused batch norm also with the
    GEMM filter gradients, in the steps with a backward pass only (its forward pass is its twin's)."""
    done = run_suite("--collect-only", "--depths", "18", "--precisions", "fp32", "--xla", "off", "--batch-norms",
                     "keras,fused", "--modes", "forward,train", "--memory-modes", "forward,train", "--latency",
                     timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = {line.strip() for line in done.stdout.splitlines() if "::" in line}
    base = "resnet18-fp32-noxla-nhwc-b16-112"
    twin = f"{base}-fbn-fgemm"
    assert f"benchmarks/test_resnet.py::test_train[{twin}]" in collected
    assert f"benchmarks/test_resnet.py::test_memory[{twin}-train]" in collected
    assert not [name for name in collected if twin in name and ("test_forward" in name or "-forward]" in name)]
    steps = [name for name in collected if name.startswith("benchmarks/test_resnet.py::")]
    assert all("fbn-fgemm" in name for name in steps if "fgemm" in name)  # twins of the fused configuration only
    assert not [name for name in steps if "test_latency" in name and "fgemm" in name]
    # given explicitly, the list is crossed with the others like any switch
    done = run_suite("--collect-only", "--depths", "18", "--precisions", "fp32", "--xla", "off", "--batch-norms",
                     "fused", "--filter-grads", "conv", "--modes", "train", timeout=300)
    assert done.returncode == 0
    assert not [line for line in done.stdout.splitlines() if "test_resnet.py::" in line and "fgemm" in line]


@pytest.mark.slow
def test_keras_reference_rows_sit_beside_ours(tmp_path):
    done = run_suite("--depths", "50", "--precisions", "fp32", "--xla", "off", "--batch-norms", "keras", "--image-size", "32",
                     "--batch-size", "2", "--steps", "2", "--warmup", "1", "--reference", "keras",
                     "--no-explain", "--peak-readings", "0", "-k", "test_forward", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (saved,) = tmp_path.glob("bench-*.json")
    run_ids = {row["run_id"] for row in json.loads(saved.read_text())["rows"]}
    assert run_ids == {"resnet50-fp32-noxla-nhwc-b2-32", "keras-resnet50-fp32-noxla-nhwc-b2-32"}


@pytest.mark.slow
def test_profile_dir_traces_each_step_case(tmp_path):
    done = run_suite(*TINY_MATRIX, "-k", "test_forward", "--profile-dir", str(tmp_path / "traces"),
                     "--profile-steps", "2", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (trace,) = (tmp_path / "traces" / "resnet18-fp32-noxla-nhwc-b2-32-forward").glob("plugins/profile/*/*.xplane.pb")
    (saved,) = tmp_path.glob("bench-*.json")
    (row,) = json.loads(saved.read_text())["rows"]
    assert row["trace"] == str(trace)
    assert f"tensorboard --logdir {tmp_path / 'traces'}" in done.stdout


@pytest.mark.slow
def test_training_case_with_multiworker_strategy(tmp_path):
    done = run_suite("-k", "fashion", "--train-strategy", "multiworker", "--train-workers", "2",
                     "--train-precisions", "fp32", "--train-batch-size", "16", "--train-limit", "64",
                     "--results-dir", str(tmp_path), data_dir=write_dataset(tmp_path / "data", train=64, test=64))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (saved,) = tmp_path.glob("bench-*.json")
    (row,) = json.loads(saved.read_text())["rows"]
    # the fast recipe clips its gradients and evaluates an EMA
    assert row["run_id"] == f"resnet18-fp32-noxla-nhwc-b16-32-c1-k10{FGEMM}-clip5-ema0.99-mw-e1"
    assert row["workers"] == ["worker:0", "worker:1"] and len(row["worker_images_per_sec"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--depths", "19"], "unknown ResNet depth 19"),
    (["--precisions", "fp8"], "unknown precision 'fp8'"),
    (["--xla", "maybe"], "--xla: cannot read 'maybe'"),
    (["--depths", "18,,50"], "--depths: '18,,50' has an empty item"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--train-replicas", "3"], "global batch 256 does not divide over 3 replicas"),
    (["--profile-dir", "/dev/null/traces"], "cannot write traces to /dev/null/traces"),
    (["--results-dir", "/dev/null/results"], "cannot write results to /dev/null/results"),
    (["--threads", "2"], "threads must be INTRA:INTER"),
    (["--onednn", "maybe"], "--onednn: cannot read 'maybe'"),
    (["--fpmath", "tf32"], "unknown fpmath mode 'tf32'"),
    (["--batch-norms", "group"], "unknown batch norm 'group'"),
    (["--filter-grads", "im2col"], "unknown filter gradient 'im2col'"),
    (["--filter-grads", "gemm", "--layouts", "nchw"], "no configuration to measure"),
    (["--latency-steps", "0"], "--latency-steps must be at least 1"),
    (["--max-batch-memory", "0"], "--max-batch-memory must be a positive number of GiB"),
    (["--budget", "0"], "--budget must be a positive number of seconds"),
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--modes", "backward"], "unknown --modes step 'backward'"),
    (["--memory-modes", "fwd_bwd"], "unknown --memory-modes step 'fwd_bwd'"),
])
def test_bad_matrix_is_one_error_line_and_nonzero_exit(args, message):
    done = run_suite(*args, timeout=120)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0]


@pytest.mark.slow
def test_sigterm_saves_the_rows_measured_so_far(tmp_path):
    """Stopped in the middle of the rounds: every step case keeps the rounds it completed, and says so."""
    import signal

    command = [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "-v", "-p", "no:cacheprovider",
               *TINY_MATRIX, "--rounds", "500", "-k", "not fashion", "--results-dir", str(tmp_path)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:  # bounded: the tiny matrix ends by itself
        if "round 3 done" in line:  # progress is printed at the looks: rounds 1, 3, 5, 8, ...
            process.send_signal(signal.SIGTERM)
            break
    process.stdout.read()
    assert process.wait(timeout=300) == 128 + signal.SIGTERM
    (saved,) = tmp_path.glob("bench-*.json")
    rows = json.loads(saved.read_text())["rows"]
    assert len(rows) == 4 and all(row["bench"] == "step" for row in rows)  # 4 steps of one config; no memory case ran
    for row in rows:
        completed = len(row["round_medians_s"])
        assert 3 <= completed < 500 and len(row["step_times_s"]) == row["block_steps"] * completed
        assert row["stopped"] == f"interrupted after round {completed}"
