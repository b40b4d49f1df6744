"""python -m resnet_perf.compare on result files the tests write: tables, speed-ups, intervals, verdicts."""
from __future__ import annotations

import io
import json
import random
import statistics

import pandas as pd
import pytest

from resnet_perf import compare
from resnet_perf.analysis.intervals import round_medians, spread
from resnet_perf.analysis.regression import parse_threshold
from resnet_perf.analysis.results import load_result_set, save_rows
from resnet_perf.config import RunConfig
from resnet_perf.precision import compute_dtype

PEAK = 1e11
FLOPS = 2e9


def step_row(config: RunConfig, mode: str, times: list[float], rounds: int = 3) -> dict:
    """A step row as the suite writes it (``times`` in ``rounds`` equal blocks): raw inputs only,
    ratios derived on reading."""
    median, medians = statistics.median(times), round_medians(times, rounds)
    return {"bench": "step", **config.replace(rounds=rounds, steps=len(times) // rounds).as_dict(), "mode": mode,
            "compute_dtype": compute_dtype(config.precision), "step_times_s": times, "round_medians_s": medians,
            "round_spread": spread(medians), "median_s": median, "p90_s": max(times),
            "cv": statistics.pstdev(times) / statistics.fmean(times), "flops_per_step": FLOPS,
            "compile_s": 1.0, "unstable": False}


def memory_row(config: RunConfig, mode: str, peak_bytes: int) -> dict:
    return {"bench": "memory", **config.as_dict(), "mode": mode, "host_rss_added_bytes": peak_bytes}


def steady(median: float, n: int = 9, jitter: float = 0.01, seed: int = 0) -> list[float]:
    """Step times within ±jitter of ``median``: a quiet machine."""
    rng = random.Random(seed)
    return [median * (1 + rng.uniform(-jitter, jitter)) for _ in range(n)]


FP32 = RunConfig(depth=18, batch_size=8, image_size=32)
BF16 = FP32.replace(precision="mixed_bf16")
XLA = FP32.replace(xla=True)


MACHINE = {"id": "amd-2c-0123abcd", "hardware": {"cpu_vendor": "AuthenticAMD", "cpu_model": "AMD EPYC", "cores": 2,
                                                "isa_flags": ["avx512f", "avx512_bf16"]},
           "software": {"tensorflow": "2.21.0"}}
INTEL = {"id": "intel-2c-4567cdef", "hardware": {**MACHINE["hardware"], "cpu_vendor": "GenuineIntel",
                                                 "cpu_model": "Intel Xeon", "isa_flags": ["avx512f", "amx_bf16"]},
         "software": {"tensorflow": "2.21.0"}}


def write_run(directory, name: str, rows: list[dict], machine: dict | None = MACHINE):
    directory.mkdir(parents=True, exist_ok=True)
    path = save_rows(directory, "bench", rows, {"machine": machine} if machine else {},
                     matmul_peak_readings={"float32": [PEAK / 2, PEAK], "bfloat16": [PEAK]})
    return path.rename(directory / f"{name}.json")


def baseline_rows(seed: int = 0) -> list[dict]:
    return [step_row(FP32, "train", steady(0.10, seed=seed)), step_row(BF16, "train", steady(0.08, seed=seed + 1)),
            memory_row(FP32, "train", 100 * 2**20)]


def run(capsys, *args) -> tuple[int, str, str]:
    code = compare.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_identical_runs_pass(tmp_path, capsys):
    base = write_run(tmp_path, "base", baseline_rows())
    same = write_run(tmp_path, "same", baseline_rows())
    code, out, err = run(capsys, base, same, "--fail-on", "images_per_sec:5%", "--fail-on", "mfu:5%")
    assert code == 0, out + err
    assert "no regression against base" in out


def test_consistent_20_percent_slowdown_fails_and_is_printed_first(tmp_path, capsys):
    base = write_run(tmp_path, "base", baseline_rows())
    slow = baseline_rows(seed=5)
    slow[1] = step_row(BF16, "train", steady(0.08 * 1.25, seed=9))  # 1/1.25 = 20% fewer images/s
    slowed = write_run(tmp_path, "slow", slow)
    code, out, err = run(capsys, base, slowed, "--fail-on", "images_per_sec:5%")
    assert code == 1, out + err
    head, _, full = out.partition("\n\n")
    assert head.startswith("REGRESSIONS against base")
    offending = [line for line in head.splitlines() if "resnet18-mixed_bf16" in line]
    assert len(offending) == 1 and "images_per_sec 19.8% worse > 5%" in offending[0]
    assert "resnet18-fp32-noxla" not in head and "resnet18-fp32-noxla" in full


def test_rounds_that_disagree_are_no_regression_and_are_marked(tmp_path, capsys):
    """A run whose first round fell into a slow spell: 20% slower in images/s, but its rounds do
    not agree, so the interval over them includes no change (steps alone would have said p < 0.001)."""
    base = write_run(tmp_path, "base", [step_row(FP32, "train", steady(0.10))])
    spell = steady(0.10, seed=2)
    spell[:3] = [t * 1.9 for t in spell[:3]]
    other = write_run(tmp_path, "other", [step_row(FP32, "train", spell)])
    code, out, err = run(capsys, base, other, "--fail-on", "images_per_sec:5%", "--format", "json")
    assert code == 0, out + err
    (changed,) = [row for row in json.loads(out)["comparison"] if row["run"] == "other"]
    low, high = (float(bound) for bound in changed["Δ img/s 95% CI"].strip("[]").split(","))
    assert changed["Δ img/s %"] < -15 and low < 0 < high
    assert changed["note"].startswith("rounds disagree (spread 9")


def test_a_run_of_one_round_has_no_interval_and_gates_nothing(tmp_path, capsys):
    base = write_run(tmp_path, "base", [step_row(FP32, "train", steady(0.10), rounds=1)])
    slow = write_run(tmp_path, "slow", [step_row(FP32, "train", steady(0.15), rounds=1)])
    code, out, err = run(capsys, base, slow, "--fail-on", "images_per_sec:5%", "--format", "json")
    assert code == 0, out + err
    (changed,) = [row for row in json.loads(out)["comparison"] if row["run"] == "slow"]
    assert changed["Δ img/s %"] < -30 and changed["Δ img/s 95% CI"] is None


def test_memory_growth_and_a_config_now_failing_are_regressions(tmp_path, capsys):
    base = write_run(tmp_path, "base", baseline_rows())
    rows = baseline_rows(seed=7)
    rows[2] = memory_row(FP32, "train", 130 * 2**20)
    rows[1] = {"bench": "step", **BF16.as_dict(), "mode": "train", "error": "the step was retraced 1 time(s)"}
    code, out, err = run(capsys, base, write_run(tmp_path, "new", rows), "--fail-on", "host_memory:10%")
    assert code == 1
    head = out.partition("\n\n")[0]
    assert "host_memory 30.0% worse > 10%" in head and "failed in this run" in head
    assert "host RSS added MiB" in head and "device peak" not in out  # a CPU run measured host memory only


def test_a_config_missing_from_one_run_is_reported(tmp_path, capsys):
    base = write_run(tmp_path, "base", baseline_rows())
    fewer = write_run(tmp_path, "fewer", baseline_rows()[:1] + baseline_rows()[2:])
    code, out, err = run(capsys, base, fewer, "--format", "csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    (missing,) = table[table["config"] == BF16.run_id].to_dict("records")
    assert missing["run"] == "base" and missing["note"] == "missing from fewer"


def test_one_file_shows_speedups_of_each_switch(tmp_path, capsys):
    rows = baseline_rows() + [step_row(XLA, "train", steady(0.125, seed=4))]
    code, out, err = run(capsys, write_run(tmp_path, "one", rows))
    assert code == 0, err
    lines = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| resnet")}
    assert "mixed_bf16 vs fp32: faster: 1.25x [1.2" in lines[BF16.run_id]
    assert "xla vs noxla: slower: 0.802x [" in lines[XLA.run_id] and "baseline" in lines[FP32.run_id]
    assert "\nmeasured on amd-2c-0123abcd (AMD EPYC, 2 cores; bfloat16 instructions: avx512_bf16, no AMX)\n" in out
    code, out, err = run(capsys, write_run(tmp_path, "bare", rows, machine=None))
    assert code == 0 and "\nmeasured on an unknown machine (no fingerprint)\n" in out


@pytest.mark.parametrize("table_format", ["github", "plain", "csv", "json"])
def test_every_format_parses(tmp_path, capsys, table_format):
    base = write_run(tmp_path, "base", baseline_rows())
    for files in ([base], [base, write_run(tmp_path, "again", baseline_rows(seed=3))]):
        code, out, err = run(capsys, *files, "--format", table_format)
        assert code == 0, err
        if table_format == "csv":
            assert set(pd.read_csv(io.StringIO(out))["config"]) == {FP32.run_id, BF16.run_id}
        elif table_format == "json":
            payload = json.loads(out)
            records = payload if isinstance(payload, list) else payload["comparison"]
            assert {record["config"] for record in records} == {FP32.run_id, BF16.run_id}
        elif table_format == "github":
            first_table = next(block for block in out.split("\n\n") if block.startswith("|"))
            table = first_table.splitlines()
            assert len({line.count("|") for line in table}) == 1 and set(table[1]) <= set("|-: ")
        else:
            assert FP32.run_id in out and "|" not in out


def test_plot_is_a_png(tmp_path, capsys):
    base = write_run(tmp_path, "base", baseline_rows())
    for files, name in (([base], "one.png"), ([base, write_run(tmp_path, "b", baseline_rows(seed=1))], "two.png")):
        code, out, err = run(capsys, *files, "--plot", tmp_path / name)
        assert code == 0, err
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pytest_benchmark_json_is_read(tmp_path, capsys):
    rows = baseline_rows()
    payload = {"machine_info": {"node": "vm"}, "commit_info": {"id": "abc"}, "datetime": "2026-11-26T00:00:00",
               "version": "5.2.3", "resnet_perf": {"matmul_peak_readings": {"float32": [PEAK]}, "environment": {"machine": MACHINE}},
               "benchmarks": [
                   {"name": f"test_train[{row['run_id']}]", "stats": {"data": row["step_times_s"]},
                    "extra_info": row} for row in rows[:2]]}
    path = tmp_path / "0001_run.json"
    path.write_text(json.dumps(payload))
    code, out, err = run(capsys, path, write_run(tmp_path, "ours", rows), "--fail-on", "images_per_sec:5%")
    assert code == 0, err
    assert f"| {BF16.run_id}" in out and "0001_run" in out
    fp32 = next(row for row in load_result_set(path).rows if row["run_id"] == FP32.run_id)
    assert fp32["mfu"] == pytest.approx(FLOPS / fp32["median_s"] / PEAK)  # the session's peak, from the file


@pytest.mark.parametrize("content, message", [
    ('{"schema": "resnet_perf/results", "schema_version": 1, "rows": [{"bench"', "is not valid JSON"),
    ('{"something": "else"}', "is not a resnet_perf result file"),
    ('[1, 2, 3]', "is not a resnet_perf result file"),
    ('{"schema": "resnet_perf/results", "schema_version": 7, "rows": []}', "schema version 7"),
    ('{"schema": "resnet_perf/results", "schema_version": 1, "rows": []}', "measured differently"),
])
def test_truncated_or_foreign_file_is_one_error_line_and_exit_2(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, out, err = run(capsys, bad)
    assert code == 2 and out == "" and err.count("\n") == 1 and str(bad) in err and message in err


def test_fail_on_needs_a_known_metric_and_two_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        compare.main([str(tmp_path), "--fail-on", "speed:5%"])
    assert exited.value.code == 2 and "unknown metric 'speed'" in capsys.readouterr().err
    code, _out, err = run(capsys, write_run(tmp_path, "one", baseline_rows()), "--fail-on", "mfu:5%")
    assert code == 2 and "needs two or more files" in err
    assert str(parse_threshold("mfu:2.5%")) == "mfu:2.5%"


def test_a_directory_means_its_newest_result(tmp_path):
    write_run(tmp_path / "runs", "a-old", baseline_rows())
    newest = write_run(tmp_path / "runs", "b-new", baseline_rows()[:1])
    assert load_result_set(tmp_path / "runs").path == newest


def test_configs_filter_keeps_matching_run_ids(tmp_path, capsys):
    code, out, err = run(capsys, write_run(tmp_path, "one", baseline_rows()), "--configs", "mixed_bf16",
                         "--format", "csv")
    assert code == 0, err
    assert set(pd.read_csv(io.StringIO(out))["config"]) == {BF16.run_id}
    code, _out, err = run(capsys, tmp_path / "one.json", "--configs", "(")
    assert code == 2 and "is not a regular expression" in err


def test_a_training_result_prints_its_epochs(tmp_path, capsys):
    row = {"bench": "train", "run_id": "resnet18-x", "replicas": 1, "epoch": 1, "epoch_time_s": 10.0,
           "images_per_sec": 6000.0, "train_loss": 0.5, "train_accuracy": 0.8, "test_accuracy": 0.85}
    path = save_rows(tmp_path, "train", [row], {})
    code, out, err = run(capsys, path, "--format", "csv")
    assert code == 0, err
    assert pd.read_csv(io.StringIO(out))["test acc"].tolist() == [0.85]
    machine = {"id": "amd-2c-0123abcd", "hardware": {"cpu_model": "AMD EPYC", "isa_flags": ["avx2"]}}
    code, out, err = run(capsys, save_rows(tmp_path, "train", [row], {"machine": machine}))  # as text: where it ran
    assert code == 0 and out.endswith("\nmeasured on amd-2c-0123abcd (AMD EPYC; bfloat16 instructions: none (AVX2))\n")


def test_mfu_is_derived_on_reading_from_the_files_peak_readings(tmp_path):
    """MFU = FLOPs / median / the best peak reading of the file, for any number of cases."""
    few = load_result_set(write_run(tmp_path, "few", baseline_rows()[:1]))
    many = load_result_set(write_run(tmp_path, "many", baseline_rows() * 8))
    assert few.matmul_peaks == {"float32": PEAK, "bfloat16": PEAK}
    for result in (few, many):
        row = result.rows[0]
        assert row["mfu"] == pytest.approx(FLOPS / row["median_s"] / PEAK)
        assert row["images_per_sec"] == pytest.approx(FP32.batch_size / row["median_s"])
    assert few.rows[0]["mfu"] == many.rows[0]["mfu"]


def test_fingerprints_are_printed_and_other_hardware_is_not_judged(tmp_path, capsys):
    base = write_run(tmp_path, "base", baseline_rows())
    other = write_run(tmp_path, "other", baseline_rows(), machine=INTEL)
    code, out, err = run(capsys, base, other)  # shown, with how the machines differ
    assert code == 0, err
    assert "machine of base: amd-2c-0123abcd (AMD EPYC, 2 cores; bfloat16 instructions: avx512_bf16, no AMX)" in out
    assert "machine of other: intel-2c-4567cdef (" in out
    assert "bfloat16 instructions: AMX (amx_bf16)); differs from base:" in out
    assert "+amx_bf16 -avx512_bf16" in out
    code, out, err = run(capsys, base, other, "--fail-on", "images_per_sec:5%")  # refused
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "other ran on other hardware than base (amd-2c-0123abcd -> intel-2c-4567cdef" in err
    assert "hardware.cpu_vendor: 'AuthenticAMD' -> 'GenuineIntel'" in err
    code, out, err = run(capsys, base, other, "--fail-on", "images_per_sec:5%", "--allow-other-machine")
    assert code == 0, err
    unknown = write_run(tmp_path, "unknown", baseline_rows(), machine=None)
    code, out, err = run(capsys, unknown, other, "--fail-on", "images_per_sec:5%")
    assert code == 2 and "unknown has no machine fingerprint" in err


def test_a_baseline_kept_per_machine_is_the_one_of_the_judged_run(tmp_path, capsys):
    baselines = tmp_path / "baseline"
    write_run(baselines / INTEL["id"], "bench-20261126T145438Z", baseline_rows(), machine=INTEL)
    amd = write_run(baselines / MACHINE["id"], "bench-20261127T100000Z", baseline_rows())
    run_path = write_run(tmp_path, "run", baseline_rows(seed=2))
    code, out, err = run(capsys, baselines, run_path, "--fail-on", "images_per_sec:30%")
    assert code == 0, err
    assert f"no regression against {amd.stem}" in out
    lonely = write_run(tmp_path / "elsewhere", "run", baseline_rows(), machine={**MACHINE, "id": "amd-4c-ffffffff"})
    code, out, err = run(capsys, baselines, lonely, "--fail-on", "images_per_sec:30%")
    assert code == 2 and "has no results for this machine (amd-4c-ffffffff" in err and "tox -e baseline" in err


def test_nothing_compared_is_no_pass(tmp_path, capsys):
    base = write_run(tmp_path, "base", [step_row(FP32, "train", steady(0.1))])
    other = write_run(tmp_path, "other", [step_row(BF16, "train", steady(0.1))])
    code, out, err = run(capsys, base, other, "--fail-on", "images_per_sec:5%")
    assert code == 2 and out == "" and "nothing to compare" in err and err.count("\n") == 1


def test_a_value_that_is_missing_or_not_finite_is_a_regression(tmp_path, capsys):
    base = write_run(tmp_path, "base", baseline_rows())
    broken = baseline_rows(seed=1)
    broken[0] = {**broken[0], "median_s": float("nan"), "step_times_s": [float("inf")] * 3}
    code, out, err = run(capsys, base, write_run(tmp_path, "broken", broken), "--fail-on", "images_per_sec:5%")
    assert code == 1, out + err
    head = out.partition("\n\n")[0]
    assert "no images_per_sec to compare (missing or not finite)" in head and FP32.run_id in head


@pytest.mark.parametrize("rows, message", [
    ([["not", "an", "object"]], "row 1 is not an object"),
    ([{"bench": "step", "run_id": "r", "mode": "train"}], "row 1 (step) has no 'batch_size'"),
    ([{"bench": "step", "run_id": "r", "mode": "train", "batch_size": "8"}], "has batch_size = '8', not a int"),
    ([{"bench": "step", "run_id": ["r"], "mode": "train", "batch_size": 8}], "has run_id = \"['r']\", not a str"),
    ([{"bench": "step", "run_id": "r", "mode": "train", "batch_size": 8, "median_s": True}], "median_s = 'True'"),
    ([{"bench": "step", "run_id": "r", "mode": "train", "batch_size": 8, "step_times_s": [0.1, "x"]}],
     "step_times_s that are not all numbers"),
    ([{"bench": "step", "run_id": "r", "mode": "train", "batch_size": 8, "breakdown_op_s": {"batch_norm": "x"}}],
     "breakdown_op_s that are not all numbers"),
    ([{"bench": "max_batch", "run_id": "r", "mode": "train", "memory_limit_bytes": 1, "max_batch_probes": [[8]]}],
     "max_batch_probes that are not [batch, fits, why] each"),
    ([{"bench": "step", "run_id": "r", "mode": "train", "batch_size": 8, "onednn": "yes"}], "onednn = 'yes'"),
    ({"rows": "are not a list"}, "has no list of rows"),
])
def test_hostile_rows_are_one_error_line_naming_the_file(tmp_path, capsys, rows, message):
    path = tmp_path / "hostile.json"
    payload = {"schema": "resnet_perf/results", "schema_version": 2, "kind": "bench", "rows": rows}
    path.write_text(json.dumps(payload))
    before = path.read_bytes()
    code, out, err = run(capsys, path, write_run(tmp_path, "ok", baseline_rows()), "--fail-on", "mfu:5%")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert str(path) in err and message in err
    assert path.read_bytes() == before


def test_deep_nesting_and_huge_files_are_refused_without_reading_them(tmp_path, capsys, monkeypatch):
    from resnet_perf.analysis import results

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    code, _out, err = run(capsys, deep)
    assert code == 2 and "nested too deeply" in err and err.count("\n") == 1
    monkeypatch.setattr(results, "MAX_FILE_BYTES", 1000)
    big = write_run(tmp_path, "big", baseline_rows())
    code, _out, err = run(capsys, big)
    assert code == 2 and "larger than any result file" in err and str(big) in err


def test_plot_into_a_directory_or_without_png_is_refused_before_any_work(tmp_path, capsys):
    base = write_run(tmp_path, "base", baseline_rows())
    folder = tmp_path / "plots"
    folder.mkdir()
    code, out, err = run(capsys, base, "--plot", folder)
    assert code == 2 and out == "" and f"--plot {folder} is a directory" in err
    assert not (tmp_path / "plots.png").exists()
    code, out, err = run(capsys, base, "--plot", tmp_path / "chart.svg")
    assert code == 2 and "ending in .png" in err


def test_one_file_names_the_best_configuration_and_explains_it_by_the_breakdown(tmp_path, capsys):
    fused = FP32.replace(batch_norm="fused")
    op_ms = {"conv_forward": 30, "conv_backward_data": 30, "conv_backward_filter": 30, "batch_norm": 10}
    rows = baseline_rows() + [step_row(XLA, "train", steady(0.125, seed=4)),
                              step_row(fused, "train", steady(0.07, seed=5))]
    rows[0].update(breakdown_step_s=0.1, breakdown_op_s={key: value / 1e3 for key, value in op_ms.items()})
    rows[-1].update(breakdown_step_s=0.07, breakdown_op_s={**rows[0]["breakdown_op_s"], "batch_norm": 0.0,
                                                           "conv_forward": 0.02, "conv_backward_data": 0.02})
    code, out, err = run(capsys, write_run(tmp_path, "one", rows))
    assert code == 0, err
    main_table = out.split("\n\n")[0]
    lines = {line.split("|")[1].strip(): line for line in main_table.splitlines() if line.startswith("| resnet")}
    assert "fused_bn vs keras_bn: faster: 1.42x [1." in lines[fused.run_id]
    assert "convolutions 1.3x faster (-20 ms), batch norm gone (-10 ms)" in lines[fused.run_id]
    best = out.split("best configuration per depth, batch, image size and step:")[1].split("\n\n")[0].splitlines()
    (winner,) = [line for line in best if line.startswith("| resnet")]
    assert fused.run_id in winner and "fused_bn" in winner and "1.42x" in winner


def test_accuracy_files_say_whether_the_best_configuration_trains(tmp_path, capsys):
    from tests.analysis.test_accuracy import run_rows

    fused_bf16 = BF16.replace(batch_norm="fused")
    bench = write_run(tmp_path, "one", baseline_rows() + [step_row(fused_bf16, "train", steady(0.05, seed=7))])
    trained = tmp_path / "trained"
    trained.mkdir()
    for seed, (fp32, fused) in enumerate([(0.927, 0.905), (0.926, 0.910), (0.928, 0.931)]):
        save_rows(trained, "train", run_rows("fp32", "keras", [0.9, 0.91, fp32], seed=seed), {})
        save_rows(trained, "train", run_rows("mixed_bf16", "fused", [0.9, 0.91, fused], seed=seed), {})
    save_rows(trained, "train_seeds", [{"bench": "train_seed", "seed": 0}], {})  # a summary: not a run, skipped
    code, out, err = run(capsys, bench, "--accuracy", trained)
    assert code == 0, err
    best = out.split("best configuration per depth, batch, image size and step:")[1].split("\n\n")[0]
    (winner,) = [line for line in best.splitlines() if line.startswith("| resnet")]
    assert fused_bf16.run_id in winner
    assert "0.9100 median of 3 (0.9050-0.9310): 1.7 points below fp32's 0.9270, not shown to train" in winner
    assert "marked when more than 0.3 points below fp32's" in best and "recipe fast" in best

    code, out, err = run(capsys, bench, "--accuracy", bench)
    assert code == 2 and "a 'bench' result, not a training run" in err and err.count("\n") == 1
    code, out, err = run(capsys, bench, "--accuracy", tmp_path / "missing")
    assert code == 2 and "no such file or folder" in err
