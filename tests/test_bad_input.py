"""Bad input at every entry point: one ``error:`` line, a non-zero exit, and every file that existed
before is byte-identical after (no result already measured is lost or touched)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_perf import ab, compare, interleave, launch, model, profile, report, train
from resnet_perf.analysis.results import result_payload, write_results
from tests.fmnist_files import write_dataset

ROOT = Path(__file__).resolve().parent.parent
TF_CONFIG = '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": %s}}'

# (entry point, arguments with {ws} for the workspace, environment, what the line must say)
CASES = [
    (model, ["--depth", "19"], {}, "unknown ResNet depth 19"),
    (model, ["--depth", "fifty"], {}, "invalid int value: 'fifty'"),
    (model, ["--input-shape", "8,8,3"], {}, "too small"),
    (model, ["--input-shape", "224,224"], {}, "expected three integers H,W,C"),
    (model, ["--classes", "0"], {}, "num_classes must be a positive integer"),
    (model, ["--precision", "fp8"], {}, "unknown precision 'fp8'"),
    (model, ["--layout", "nwhc"], {}, "invalid choice: 'nwhc'"),
    (train, ["--depth", "19", "--output", "{ws}/existing.json"], {}, "unknown ResNet depth 19"),
    (train, ["--precision", "fp64", "--output", "{ws}/existing.json"], {}, "unknown precision 'fp64'"),
    (train, ["--batch-size", "6", "--replicas", "4"], {}, "global batch 6 does not divide over 4 replicas"),
    (train, ["--replicas", "two"], {}, "--replicas must be 'auto' or an integer"),
    (train, ["--epochs", "0"], {}, "epochs must be at least 1"),
    (train, ["--lr", "inf", "--output", "{ws}/existing.json"], {}, "lr must be a finite number"),
    (train, ["--lr", "-0.1"], {}, "lr must be positive"),
    (train, ["--weight-decay", "nan"], {}, "weight decay must be a finite number"),
    (train, ["--target-accuracy", "91"], {}, "target accuracy must be in (0, 1]"),
    (train, ["--image-size", "16"], {}, "image_size must be an integer >= 32"),
    (train, ["--xla", "maybe"], {}, "invalid choice: 'maybe'"),
    (train, ["--schedule", "step"], {}, "invalid choice: 'step'"),
    (train, ["--data-dir", "{ws}/nowhere", "--output", "{ws}/new.json"], {}, "does not hold Fashion-MNIST"),
    (train, ["--data-dir", "{ws}/broken", "--output", "{ws}/new.json", "--batch-size", "32"], {},
     "not a valid gzip file"),
    (train, ["--data-dir", "{ws}/data", "--output", "{ws}/existing.json/train.json"], {},
     "cannot write results to"),
    (train, ["--strategy", "multiworker"], {"TF_CONFIG": ""}, "needs TF_CONFIG"),
    (train, ["--strategy", "multiworker"], {"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
    (train, ["--strategy", "multiworker"], {"TF_CONFIG": TF_CONFIG % '"0"'}, "is not an integer"),
    (train, ["--strategy", "multiworker"], {"TF_CONFIG": TF_CONFIG % 3}, "index 3 is out of range"),
    (train, ["--strategy", "multiworker", "--replicas", "2"], {}, "--replicas must be 'auto'"),
    (train, ["--recipe", "fastest"], {}, "invalid choice: 'fastest'"),
    (train, ["--seeds", "1,1"], {}, "--seeds has a seed twice"),
    (train, ["--seeds", "0", "--output", "{ws}/existing.json/seeds.json"], {}, "cannot write results to"),
    (train, ["--seeds", "0,-1", "--output", "{ws}/seeds.json"], {}, "seed must be in [0, 2**32), got -1"),
    (train, ["--data-dir", "{ws}/data", "--output", "{ws}/data"], {}, "is a folder: give a file name"),
    (train, ["--seeds", "0", "--output", "{ws}/data"], {}, "is a folder: give a file name"),
    (train, ["--data-dir", "{ws}/no-test-images", "--output", "{ws}/new.json", "--batch-size", "16"], {},
     "holds no images: nothing to measure accuracy on"),
    (train, ["--startup-timeout", "0"], {}, "--startup-timeout must be a positive number of seconds"),
    (train, ["--startup-timeout", "nan"], {}, "--startup-timeout must be a positive number of seconds"),
    (launch, ["--workers", "0"], {}, "--workers must be at least 1"),
    (launch, ["--network", "public"], {}, "invalid choice: 'public'"),
    (launch, ["--threads-per-worker", "0"], {}, "--threads-per-worker must be at least 1"),
    (launch, ["--", "--strategy", "mirrored"], {}, "runs workers with --strategy multiworker"),
    (profile, ["--depth", "19"], {}, "unknown ResNet depth 19"),
    (profile, ["--precision", "fp8"], {}, "unknown precision 'fp8'"),
    (profile, ["--batch-size", "0"], {}, "batch_size must be an integer >= 1"),
    (profile, ["--steps", "0"], {}, "steps must be an integer >= 1"),
    (profile, ["--top", "-1"], {}, "--top must be at least 1"),
    (profile, ["--mode", "backward"], {}, "invalid choice: 'backward'"),
    (profile, ["--logdir", "{ws}/existing.json/traces"], {}, "cannot write traces to"),
    (compare, ["{ws}/nothing.json"], {}, "cannot read"),
    (compare, ["{ws}/truncated.json"], {}, "is not valid JSON"),
    (compare, ["{ws}/foreign.json"], {}, "is not a resnet_perf result file"),
    (compare, ["{ws}/existing.json", "--fail-on", "mfu:5%"], {}, "needs two or more files"),
    (compare, ["{ws}/existing.json", "{ws}/existing.json", "--fail-on", "speed:5%"], {}, "unknown metric 'speed'"),
    (compare, ["{ws}/existing.json", "{ws}/other.json", "--fail-on", "mfu:5%", "--allow-other-machine"], {},
     "nothing to compare"),
    (compare, ["{ws}/existing.json", "{ws}/other.json", "--fail-on", "mfu:5%"], {}, "has no machine fingerprint"),
    (compare, ["{ws}/existing.json", "--alpha", "2"], {}, "--alpha must be between 0 and 1"),
    (compare, ["{ws}/existing.json", "--baseline", "speed=fast"], {}, "--baseline expects FIELD=VALUE"),
    (compare, ["{ws}/existing.json", "--configs", "("], {}, "is not a regular expression"),
    (compare, ["{ws}/existing.json", "--plot", "{ws}"], {}, "is a directory"),
    (compare, ["{ws}/existing.json", "--format", "xml"], {}, "invalid choice: 'xml'"),
    (interleave, ["--modes", "backward"], {}, "unknown mode 'backward'"),
    (interleave, ["--precisions", "fp8"], {}, "unknown precision 'fp8'"),
    (interleave, ["--batch-norms", "group"], {}, "unknown batch norm 'group'"),
    (interleave, ["--rounds", "0"], {}, "--rounds must be at least 1"),
    (interleave, ["--xla", "off,maybe"], {}, "--xla takes off, on or off,on"),
    (report, ["{ws}/nowhere"], {}, "nowhere does not exist"),
    (report, ["{ws}/foreign.json"], {}, "no result with a value to track in"),
    (report, ["{ws}/existing.json", "--html", "{ws}/existing.json/site"], {}, "cannot write the report to"),
    (report, ["{ws}/existing.json", "--format", "html"], {}, "invalid choice: 'html'"),
    (ab, [], {}, "A and B are the same"),
    (ab, ["--base", "HEAD", "--rounds", "0"], {}, "--rounds must be at least 1"),
    (ab, ["--base", "HEAD", "--budget", "0"], {}, "--budget must be a positive number of seconds"),
    (ab, ["--base", "no-such-revision"], {}, "'no-such-revision' names no commit"),
    (ab, ["--a-env", "NOVALUE"], {}, "--a-env expects NAME=VALUE"),
    (ab, ["--a-env", "TF_ENABLE_ONEDNN_OPTS=0", "--b-env", "TF_ENABLE_ONEDNN_OPTS=1"], {},
     "--a-env TF_ENABLE_ONEDNN_OPTS: the suite sets this per case"),
    (ab, ["--a-python", "{ws}/no-python"], {}, "cannot run it"),
    (ab, ["--base", "HEAD", "--fail-on", "mfu:5%"], {}, "ab judges images_per_sec"),
    (ab, ["--base", "HEAD", "--results-dir", "{ws}/existing.json/ab"], {}, "cannot write A/B results to"),
]
SUITE_CASES = [
    (["--depths", "18,,50"], "has an empty item"),
    (["--precisions", "fp8"], "unknown precision 'fp8'"),
    (["--rounds", "0"], "--rounds must be at least 1"),
    (["--results-dir", "{ws}/existing.json/results"], "cannot write results to"),
    (["--train-epochs", "0"], "epochs must be at least 1"),  # 0 is a value, not "the recipe's"
    (["--train-batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--precisions", "amp_bf16", "--onednn", "off"], "no configuration to measure"),
    (["--find-max-batch", "--batch-size", "5000"], "must be in [1, 4096], got 5000"),
    (["--breakdown", "--profile-steps", "0"], "--profile-steps must be at least 1"),
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder of files that must survive every bad command untouched."""
    write_dataset(tmp_path / "data", train=64, test=32)
    write_dataset(tmp_path / "no-test-images", train=64, test=0)
    (tmp_path / "broken").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "broken" / name).write_bytes(b"not gzip")
    row = {"bench": "step", "run_id": "resnet18-fp32-noxla-nhwc-b2-32", "mode": "train", "batch_size": 2,
           "compute_dtype": "float32", "step_times_s": [0.1, 0.1], "median_s": 0.1, "flops_per_step": 1e9}
    write_results(tmp_path / "existing.json", result_payload("bench", [row], {}))
    other = {**row, "run_id": "resnet50-fp32-noxla-nhwc-b2-32"}
    write_results(tmp_path / "other.json", result_payload("bench", [other], {}))
    (tmp_path / "truncated.json").write_text('{"schema": "resnet_perf/results", "rows": [')
    (tmp_path / "foreign.json").write_text(json.dumps({"name": "something else"}))
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def one_error_line(text: str, prefix: str = "error: ") -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), text
    return lines[0]


@pytest.mark.parametrize("entry, args, env, message", CASES,
                         ids=[f"{entry.__name__.rsplit('.', 1)[1]}-{i}" for i, (entry, *_rest) in enumerate(CASES)])
def test_bad_input_is_one_line_a_nonzero_exit_and_no_file_touched(entry, args, env, message, workspace, capsys,
                                                                   monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = snapshot(workspace)
    try:
        code = entry.main([arg.replace("{ws}", str(workspace)) for arg in args])
    except SystemExit as exited:  # argparse's own checks
        code = exited.code
    out, err = capsys.readouterr()
    assert code not in (0, None)
    assert message in one_error_line(err), err
    assert snapshot(workspace) == before


@pytest.mark.slow
@pytest.mark.parametrize("args, message", SUITE_CASES)
def test_bad_suite_options_are_one_line_before_anything_runs(args, message, workspace):
    before = snapshot(workspace)
    done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "-q",
                           "-p", "no:cacheprovider", *[arg.replace("{ws}", str(workspace)) for arg in args]],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0]
    assert snapshot(workspace) == before


@pytest.mark.parametrize("module, args, message", [
    ("resnet_perf.train", ["--data-dir", "{ws}/broken", "--output", "{ws}/new.json"], "not a valid gzip file"),
    ("resnet_perf.model", ["--input-shape", "8,8,3"], "too small"),
])
def test_the_error_line_comes_last_after_tensorflow_started(module, args, message, workspace):
    """Errors found after TensorFlow started: its C++ INFO/WARNING lines are off by default (the few
    it logs while loading, before its logging starts, remain), and the error line is the last one."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", module, *(arg.replace("{ws}", str(workspace)) for arg in args)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[-1].startswith("error: ") and message in lines[-1], done.stderr
    assert "cpu_feature_guard" not in done.stderr  # an INFO line logged once TensorFlow's level applies
