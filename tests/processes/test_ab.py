"""python -m resnet_perf.ab: the alternation, the B/A intervals and verdicts, the gate, a real --base run."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_perf.analysis import ab_verdicts, sequential

from resnet_perf.ab import split_suite_args
from resnet_perf.analysis.ab_verdicts import (GATE_PASSED, GATE_SLOWER, GATE_UNDECIDED, gate_message, gate_status,
                                              verdict_frame)
from resnet_perf.analysis.regression import parse_threshold
from resnet_perf.analysis.results import save_rows
from resnet_perf.analysis.sequential import Budget
from resnet_perf.config import RunConfig
from resnet_perf.processes import ab_runner
from resnet_perf.processes.ab_runner import Measured, ab_rows
from resnet_perf.processes.variants import Variant, parse_env

ROOT = Path(__file__).resolve().parents[2]
CONFIG = RunConfig(depth=18, batch_size=16, image_size=64)


def test_suite_options_are_everything_after_the_double_dash():
    assert split_suite_args(["--rounds", "4", "--", "--depths", "18", "-k", "test_forward"]) == (
        ["--rounds", "4"], ["--depths", "18", "-k", "test_forward"])
    assert split_suite_args(["--base", "HEAD"]) == (["--base", "HEAD"], [])
    assert parse_env(["A=1", "B=x=y"], "--a-env") == {"A": "1", "B": "x=y"}


def test_fresh_processes_alternate_a_b_b_a_until_the_rule_stops(monkeypatch, tmp_path):
    order = []
    monkeypatch.setattr(ab_runner, "run_process", lambda variant, number, args, directory: order.append(
        (number, variant.name)) or Measured(variant.name, number, tmp_path, 1.0))
    monkeypatch.setattr(ab_runner, "ab_rows", lambda measured: [])  # nothing to judge: stop at the first look,
    monkeypatch.setattr(sequential, "MIN_SPAN_S", 0.0)  # which these instant processes reach at once
    ab_runner.alternate([Variant("A", "a"), Variant("B", "b")], Budget(max_rounds=10), [], tmp_path,
                     report=lambda _: None)
    assert order == [(0, "A"), (0, "B"), (1, "B"), (1, "A"), (2, "A"), (2, "B")]


def measured(tmp_path: Path, a_medians: list[float], b_medians: list[float]) -> list[Measured]:
    """Result files as the suite writes them, one per process, with the given median step times."""
    done = []
    for variant, medians in (("A", a_medians), ("B", b_medians)):
        for number, median in enumerate(medians):
            row = {"bench": "step", **CONFIG.as_dict(), "mode": "forward", "step_times_s": [median],
                   "median_s": median, "flops_per_step": 1e9}
            folder = tmp_path / f"round{number + 1}-{variant}"
            done.append(Measured(variant, number, save_rows(folder, "bench", [row], {}), 1.0))
    return done


def test_a_6_percent_slowdown_in_every_round_is_slower_in_a_5_percent_band_and_no_difference_in_a_10_percent_one(tmp_path):
    rows = ab_rows(measured(tmp_path, [0.100, 0.102, 0.099, 0.101], [0.107, 0.109, 0.106, 0.108]))
    assert rows[0]["a_medians_s"] == [0.100, 0.102, 0.099, 0.101]
    frame = verdict_frame(rows, band=ab_verdicts.gate_band([parse_threshold("images_per_sec:5%")]))
    (row,) = frame.to_dict("records")
    assert row["kind"] == "slower" and row["verdict"].startswith("B slower: 0.935x [")
    assert row["B/A"] == pytest.approx(1 / 1.0685, abs=0.002) and row["high"] < 1 and row["rounds"] == 4
    assert "(3 rounds)" in row["verdict"]  # read at the last look: the 4th round does not count
    assert gate_status(frame) == GATE_SLOWER
    assert gate_message(GATE_SLOWER, 0.05, frame) == f"gate FAILED: B slower than A in {row['config']} {row['step']}"
    wide = verdict_frame(rows, band=ab_verdicts.gate_band([parse_threshold("images_per_sec:10%")]))
    assert wide["kind"].tolist() == ["no difference"] and gate_status(wide) == GATE_PASSED


def test_drift_that_hits_both_sides_of_a_round_is_no_difference(tmp_path):
    pace = [1.0, 1.4, 0.9]  # the machine's speed changed between rounds, alike for A and B
    frame = verdict_frame(ab_rows(measured(tmp_path, [0.1 * p for p in pace], [0.1 * p * e for p, e in zip(pace, (1.003, 0.998, 1.001))])))
    assert frame["kind"].tolist() == ["no difference"] and abs(frame["B/A"][0] - 1) < 0.002
    assert gate_status(frame) == GATE_PASSED
    assert gate_message(GATE_PASSED, 0.05, frame) == "gate passed: B faster or within +-5% of A everywhere"


def test_rounds_that_disagree_are_undecided_even_past_the_threshold(tmp_path):
    frame = verdict_frame(ab_rows(measured(tmp_path, [0.10, 0.10, 0.10], [0.13, 0.09, 0.105])))
    (row,) = frame.to_dict("records")
    assert row["B/A"] < 0.95 and row["kind"] == "undecided" and "spans 1" in row["verdict"]
    assert gate_status(frame) == GATE_UNDECIDED
    assert gate_message(GATE_UNDECIDED, 0.05, frame).startswith("gate undecided: no slowdown found")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def _repository(tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    """A git repository of this package with one commit and an edited working tree; its commit and
    the environment that imports the package from it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("resnet_perf", "benchmarks"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", repo)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    with (repo / "resnet_perf" / "specs.py").open("a") as specs:
        specs.write("# an edit of the working tree\n")
    return repo, _git(repo, "rev-parse", "HEAD"), {**os.environ, "PYTHONPATH": str(repo)}


@pytest.mark.slow
def test_base_revision_runs_from_a_worktree_against_the_working_tree(tmp_path):
    """A is the committed revision (imported from a temporary worktree), B the edited working tree.  The
    results folder is relative, as its default is: A's suite runs in the worktree, B's in the tree."""
    repo, commit, env = _repository(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "resnet_perf.ab", "--base", "HEAD", "--rounds", "3", "--results-dir", "ab-results", "--",
         "--depths", "18", "--precisions", "fp32", "--xla", "off", "--batch-norms", "keras", "--image-size", "32",
         "--batch-size", "2", "--steps", "3", "--warmup", "1", "-k", "test_forward"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"A: HEAD ({commit[:10]})" in done.stdout and "B: working tree" in done.stdout
    (saved,) = (repo / "ab-results").glob("ab-*.json")
    result = json.loads(saved.read_text())
    assert result["kind"] == "ab" and result["max_rounds"] == 3 and result["mode"] == "in turn"
    commits = {Path(path).parent.name: json.loads(Path(path).read_text())["environment"]["git_commit"]
               for path in result["process_files"]}
    assert commits == {"A": commit, "B": f"{commit}-dirty"}  # A imported from the worktree, B from the tree
    (row,) = result["rows"]
    assert row["run_id"] == "resnet18-fp32-noxla-nhwc-b2-32" and len(row["b_medians_s"]) == 3
    assert "round 3 done" in done.stdout and "rounds stopped:" in done.stdout
    assert not list((tmp_path / "repo").glob("*worktree*")) and _git(repo, "worktree", "list").count("\n") == 0
    shown = subprocess.run([sys.executable, "-m", "resnet_perf.compare", str(saved)], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and "resnet18-fp32-noxla-nhwc-b2-32" in shown.stdout and "B/A" in shown.stdout


def test_a_gate_with_nothing_measured_on_both_sides_is_no_pass():
    from resnet_perf.errors import UserError

    frame = verdict_frame([{"bench": "ab", "run_id": CONFIG.run_id, "mode": "forward", "batch_size": 16,
                            "a_medians_s": [], "b_medians_s": [0.1, 0.1]}])
    assert frame["verdict"].tolist() == ["not measured on both sides"]
    with pytest.raises(UserError, match="nothing to compare"):
        gate_status(frame)


def test_a_suite_that_fails_to_start_is_one_line_with_its_own_error(tmp_path, capsys):
    from resnet_perf.ab import main

    code = main(["--a-env", "X=1", "--b-env", "X=2", "--results-dir", str(tmp_path), "--", "--depths", "19"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "ended (exit 4)" in err[0] and "unknown ResNet depth 19" in err[0]
    assert not list(tmp_path.glob("ab-*.json"))  # no A/B result from runs that never measured


@pytest.mark.slow
def test_sigterm_keeps_the_finished_rounds_stops_both_suites_and_removes_the_worktree(tmp_path):
    repo, _commit, env = _repository(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "resnet_perf.ab", "--base", "HEAD", "--rounds", "500", "--results-dir",
         str(tmp_path / "ab"), "--", "--depths", "18", "--precisions", "fp32", "--xla", "off", "--batch-norms", "keras",
         "--image-size", "32", "--batch-size", "2", "--warmup", "1", "-k", "test_forward"],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("round "):  # both suites are timing their turns
            break
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=120)
    (saved,) = (tmp_path / "ab").glob("ab-*.json")
    assert process.returncode == 143 and err.strip().splitlines() == [
        f"error: interrupted: the rounds finished before it are above and in {saved} (marked partial)"]
    payload = json.loads(saved.read_text())
    assert payload["partial"].startswith("interrupted") and len(payload["rows"]) == 1
    assert len(payload["rows"][0]["a_medians_s"]) >= 1 and len(payload["rows"][0]["b_medians_s"]) >= 1  # round 1 at least
    assert _git(repo, "worktree", "list").count("\n") == 0
    suites = [pid for pid in os.listdir("/proc") if pid.isdigit() and _reads(f"/proc/{pid}/cmdline", str(tmp_path))]
    assert suites == []


def _reads(path: str, text: str) -> bool:
    try:
        with open(path, "rb") as source:
            return text.encode() in source.read()
    except OSError:  # the process ended meanwhile
        return False
