"""python -m resnet_perf.report: history from result files, change detection, the site and its summary."""
from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from resnet_perf import compare, report

from resnet_perf.analysis.results import result_payload, write_results
from resnet_perf.history import changes
from resnet_perf.history.points import load_history
from resnet_perf.history.site import case_page_name, machine_colors
from resnet_perf.history.svgchart import nice_ticks
from resnet_perf.history.trends import change_table, series_table
from tests.test_bad_input import one_error_line
from tests.history_files import (CONFIG, FAST, PEAK, RUNS, SLOW, STEP_AT, commit, machine, step_row,
                                 write_history)


def noisy(points: int, noise: float, rng: random.Random, step_at: int | None = None) -> list[float]:
    return [100 * (1 + rng.gauss(0, noise)) * (0.85 if step_at is not None and index >= step_at else 1)
            for index in range(points)]


def test_a_15_percent_step_is_found_where_it_is_and_noise_alone_rarely_is_a_change():
    rng = random.Random(2)
    false_alarms = sum(bool(changes.detect_changes(noisy(20, 0.03, rng))) for _ in range(100))
    found = sum(any(change.index == 10 and -0.2 < change.relative < -0.1
                    for change in changes.detect_changes(noisy(20, 0.03, rng, step_at=10))) for _ in range(100))
    assert false_alarms <= 4
    assert found >= 95


def test_what_is_not_a_change():
    assert changes.detect_changes([100.0] * 12) == []
    assert changes.detect_changes([100.0] * 3 + [85.0] * 2) == []  # fewer than MIN_POINTS runs
    assert changes.detect_changes([100.0] * 6 + [70.0] + [100.0] * 6) == []  # one outlying run
    assert changes.detect_changes([100.0] * 6 + [97.0] * 6) == []  # a real shift, but under MIN_CHANGE
    assert changes.detect_changes([100.0] * 6 + [90.0] * 6) == [changes.Change(6, 100.0, 90.0)]


@pytest.fixture
def history_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    write_history(folder)
    return folder


def test_the_planted_step_is_in_the_change_table_and_only_on_its_machine(history_dir):
    history = load_history([history_dir])
    assert len(history.files) == 2 * RUNS and not history.skipped
    found = change_table(history.points)
    assert sorted(found["metric"]) == ["images_per_sec", "mfu_pct"]  # both drop with the step time
    for _, change in found.iterrows():
        assert (change["machine"], change["config"], change["step"]) == (FAST, CONFIG, "train")
        assert change["commit"] == commit(STEP_AT)
        assert change["change_pct"] == pytest.approx(-15, abs=3)
        assert change["worse"]
    series = series_table(history.points, found, history.traces).set_index(["metric", "machine"])
    assert series.loc[("images_per_sec", FAST), "last_change_commit"] == commit(STEP_AT)
    assert series.loc[("images_per_sec", SLOW), "points"] == RUNS
    assert series.loc[("images_per_sec", SLOW), "latest"] == pytest.approx(16 / 3.2, rel=0.03)


def _pages(site: Path) -> dict[str, str]:
    return {path.relative_to(site).as_posix(): path.read_text() for path in site.rglob("*.html")}


def test_the_site_shows_the_change_draws_machines_apart_and_loads_nothing(history_dir, tmp_path, capsys):
    site = tmp_path / "site"
    assert report.main([str(history_dir), "--html", str(site)]) == 0
    pages = _pages(site)
    case = f"cases/{case_page_name('bench', CONFIG, 'train')}"
    assert set(pages) == {"index.html", case}
    index = pages["index.html"]
    changes_table = index[index.index('id="changes"'):index.index('id="series"')]
    assert "-15." in changes_table or "-14." in changes_table or "-16." in changes_table
    assert commit(STEP_AT)[:10] in changes_table and FAST in changes_table and SLOW not in changes_table
    assert index.count('<svg class="spark"') == 4  # images/s and MFU on two machines
    page = pages[case]
    colors = machine_colors([FAST, SLOW])
    for metric in ("images_per_sec", "mfu_pct"):
        chart = page[page.index(f'<h2 id="{metric}">'):]
        chart = chart[:chart.index("</svg>")]
        groups = re.findall(r'<g class="series" data-series="([^"]+)">(.*?)</g>', chart)
        assert [name for name, _ in groups] == [FAST, SLOW]
        for name, drawn in groups:
            assert drawn.count("<circle") == RUNS
            assert f'stroke="{colors[name]}"' in drawn and len(re.findall(r"<polyline", drawn)) == 1
        assert chart.count('class="change-mark"') == 1
    for name, text in pages.items():  # self-contained: nothing fetched from anywhere
        assert "http://" not in text and "https://" not in text, name
        assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", text), name


def test_markdown_summary_for_a_ci_job(history_dir, capsys):
    assert report.main([str(history_dir), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### resnet_perf history: 4 series on 2 machine(s) from 24 result file(s)")
    found, series = out.split("### Series")
    change_lines = [line for line in found.splitlines() if line.startswith("| 2026")]
    assert len(change_lines) == 2
    for metric in ("images/s", "MFU %"):
        line = next(line for line in change_lines if f"train {metric} " in line)
        assert re.search(rf"\| {CONFIG} train {metric} +\| {FAST} \|", line) and commit(STEP_AT)[:10] in line
        assert re.search(r"\| +-1[4-6]\.[0-9] \|", line)
    assert re.search(rf"\| {CONFIG} +\| train +\| images/s +\| {SLOW} +\| +{RUNS} \|", series)


def _write(path: Path, kind: str, rows: list, when: str, **metadata) -> Path:
    payload = result_payload(kind, rows, {"machine": machine(FAST), "git_commit": commit(1)}, **metadata)
    payload["created"] = when
    return write_results(path, payload)


def test_every_kind_of_result_file_feeds_its_series(tmp_path, capsys):
    folder = tmp_path / "results"
    train = {"bench": "train", "run_id": "resnet18-train", "target_accuracy": 0.9}
    _write(folder / "train-reached.json", "train",
           [{**train, "epoch": 1, "test_accuracy": 0.85, "cumulative_train_time_s": 50.0, "clock_s": 55.0},
            {**train, "epoch": 2, "test_accuracy": 0.92, "cumulative_train_time_s": 100.0, "clock_s": 110.0}],
           "2026-11-02T00:00:00+00:00", summary={"time_to_target_s": 110.0})
    # a file written before rows kept the clock: its summary says
    _write(folder / "train-missed.json", "train",
           [{**train, "epoch": 1, "test_accuracy": 0.80, "cumulative_train_time_s": 60.0}],
           "2026-11-03T00:00:00+00:00", summary={"time_to_target_s": None})
    ab_row = {"bench": "ab", "run_id": CONFIG, "mode": "train", "batch_size": 16,
              "a_medians_s": [1.0, 1.02, 0.98, 1.01], "b_medians_s": [1.1, 1.12, 1.08, 1.1]}
    _write(folder / "ab-20261104T000000Z.json", "ab", [ab_row], "2026-11-04T00:00:00+00:00")
    process_file = _write(folder / "ab-20261104T000000Z" / "A.json", "bench", [step_row(9.0)],
                          "2026-11-04T00:00:00+00:00")
    # the suite processes of a run in turn write into a folder each: also halves of the pair, not runs
    nested_process_file = _write(folder / "ab-20261104T000000Z" / "B" / "bench-20261104T000000Z.json", "bench",
                                 [step_row(7.0)], "2026-11-04T00:00:00+00:00")
    trace = tmp_path / "traces" / "run" / "host.xplane.pb"
    trace.parent.mkdir(parents=True)
    trace.write_bytes(b"trace")
    _write(folder / "profile-1.json", "profile", [{"bench": "profile", "run_id": CONFIG, "mode": "train"}],
           "2026-11-05T00:00:00+00:00", trace=str(trace))
    pytest_benchmark = {"machine_info": {}, "commit_info": {"id": commit(2)}, "datetime": "2026-11-06T00:00:00",
                        "benchmarks": [{"extra_info": step_row(1.6)}],
                        "resnet_perf": {"environment": {"machine": machine(FAST)},
                                        "matmul_peak_readings": {"float32": [PEAK]}}}
    (folder / "0001_pytest_benchmark.json").write_text(json.dumps(pytest_benchmark))
    (folder / "notes.json").write_text(json.dumps({"something": "else"}))

    history = load_history([folder])
    assert process_file.resolve() not in history.files and nested_process_file.resolve() not in history.files
    assert len(history.skipped) == 1 and "notes.json is not a resnet_perf result file" in history.skipped[0]
    by_metric = {metric: group for metric, group in history.points.groupby("metric")}
    target = by_metric["time_to_target_s"]
    assert target["value"].tolist()[0] == 110.0 and target["value"].isna().tolist() == [False, True]
    assert target["note"].tolist()[1] == "not reached" and set(target["step"]) == {"fashion-mnist to 0.9"}
    assert by_metric["final_test_accuracy"]["value"].tolist() == [0.92, 0.80]
    assert by_metric["train_time_s"]["value"].tolist() == [100.0, 60.0]
    ratio = by_metric["ab_ratio"].iloc[0]
    assert ratio["value"] == pytest.approx(1 / 1.1, rel=0.01) and ratio["low"] < ratio["value"] < ratio["high"] < 1
    images = by_metric["images_per_sec"]
    assert images["value"].tolist() == [16 / 1.6] and images["commit"].tolist() == [commit(2)]
    assert history.traces["trace"].tolist() == [str(trace)]

    site = tmp_path / "site"
    assert report.main([str(folder), "--html", str(site)]) == 0
    err = capsys.readouterr().err
    assert "skipped: " in err and "notes.json" in err
    case_page = (site / "cases" / case_page_name("bench", CONFIG, "train")).read_text()
    assert f'href="{os.path.relpath(trace, site / "cases")}"' in case_page
    ab_page = (site / "cases" / case_page_name("ab", CONFIG, "train")).read_text()
    assert "B slower" in ab_page and 'stroke-dasharray="2 3"' in ab_page  # the no-change line at 1
    index = (site / "index.html").read_text()
    assert "not reached" in index


def test_a_second_report_into_the_same_folder_removes_pages_of_cases_gone(history_dir, tmp_path):
    site = tmp_path / "site"
    (site / "cases").mkdir(parents=True)
    (site / "cases" / "bench--old--train.html").write_text("old")
    (site / "cases" / "keep.txt").write_text("not ours")
    assert report.main([str(history_dir), "--html", str(site)]) == 0
    assert not (site / "cases" / "bench--old--train.html").exists() and (site / "cases" / "keep.txt").exists()


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("CI has no chromium: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium here (apt-get install chromium)")
    return found


def _browser(url: str, *options: str) -> subprocess.CompletedProcess:
    command = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--enable-logging=stderr", "--v=0", *options, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _script_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and re.search(r"Uncaught|Error", line)]


@pytest.mark.slow
def test_the_site_renders_in_a_real_browser_without_script_errors(history_dir, tmp_path):
    from PIL import Image

    site = tmp_path / "site"
    assert report.main([str(history_dir), "--html", str(site)]) == 0
    index_url = (site / "index.html").as_uri()
    dumped = _browser(index_url + "?sort=latest&order=desc", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert _script_errors(dumped.stderr) == []
    dom = dumped.stdout
    assert 'data-script="ready"' in dom  # the script ran to its end
    assert dom.count('<svg class="spark"') == 4 and dom.count("<polyline") == 4
    series = dom[dom.index('id="series-table"'):]
    latest = [float(value) for value in re.findall(r'<td data-sort="([0-9.]+)" class="num">[0-9.]+</td>\s*<td data-sort="2026',
                                                    series)]
    assert len(latest) == 4 and latest == sorted(latest, reverse=True)  # ?sort=latest&order=desc was applied
    assert 'aria-sort="descending"' in series

    case_page = site / "cases" / case_page_name("bench", CONFIG, "train")
    dumped = _browser(case_page.as_uri(), "--dump-dom")
    assert _script_errors(dumped.stderr) == [] and dumped.stdout.count('<svg class="chart"') == 2
    assert dumped.stdout.count("<circle") == 4 * RUNS

    colors = machine_colors([FAST, SLOW])
    for page, size in ((index_url, "1400,900"), (case_page.as_uri(), "900,700")):
        shot = tmp_path / "shot.png"
        taken = _browser(page, f"--screenshot={shot}", f"--window-size={size}", "--hide-scrollbars")
        assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
        with Image.open(shot) as image:
            counts = {color: count for count, color in image.convert("RGB").getcolors(1 << 24)}
        assert sum(counts.values()) - counts.get((255, 255, 255), 0) > 0.02 * sum(counts.values())
        for color in colors.values():  # both machines' colours are on screen (lines, legend, swatches)
            assert tuple(int(color[index:index + 2], 16) for index in (1, 3, 5)) in counts, (page, color)


def test_a_metric_without_any_value_says_why_instead_of_drawing_an_empty_chart(tmp_path):
    train = {"bench": "train", "run_id": "resnet18-train", "target_accuracy": 0.99}
    for day in (1, 2):
        _write(tmp_path / "results" / f"train-{day}.json", "train",
               [{**train, "epoch": 1, "test_accuracy": 0.8, "clock_s": 50.0}], f"2026-11-0{day}T00:00:00+00:00")
    assert report.main([str(tmp_path / "results"), "--html", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "cases" / case_page_name("train", "resnet18-train", "fashion-mnist to 0.99")).read_text()
    section = page[page.index('<h2 id="time_to_target_s">'):page.index('<h2 id="final_test_accuracy">')]
    assert "No run has a value (not reached)." in section and "<svg" not in section


@pytest.mark.parametrize("low, high", [(1.0, 1.0000000000000002), (0.0, 0.0), (1e-15, 2e-15), (-1e308, 1e308),
                                       (5e-324, 1e308), (1e300, 1.0000001e300), (0.85, 0.92), (-5.0, -1.0)])
def test_ticks_cover_any_finite_values_however_close_or_far_apart_in_a_few_steps(low, high):
    ticks = nice_ticks(low, high)
    assert 2 <= len(ticks) <= 15 and all(math.isfinite(tick) for tick in ticks)
    assert ticks == sorted(set(ticks)) and ticks[0] <= low
    assert ticks[-1] >= high or math.isclose(ticks[-1], high, rel_tol=1e-12)  # rounded to its decimals


def test_a_series_with_values_one_ulp_apart_draws_a_site(tmp_path):
    """Once, the ticks of 1.0 and 1.0000000000000002 never ended (100% CPU, gigabytes)."""
    folder = tmp_path / "results"
    train = {"bench": "train", "run_id": "resnet18-train", "target_accuracy": 0.9, "epoch": 1,
             "cumulative_train_time_s": 50.0, "clock_s": 55.0}
    for day, accuracy in ((2, 1.0), (3, 1.0000000000000002)):
        _write(folder / f"train-{day}.json", "train", [{**train, "test_accuracy": accuracy}],
               f"2026-11-0{day}T00:00:00+00:00", summary={"time_to_target_s": 55.0})
    assert report.main([str(folder), "--html", str(tmp_path / "site")]) == 0
    assert "<svg" in (tmp_path / "site" / "index.html").read_text()


@pytest.mark.parametrize("change, message", [
    ({"a_medians_s": ["0.1", "0.1"]}, "a_medians_s that are not all positive numbers or null"),
    ({"b_medians_s": [0.1, -1.0]}, "b_medians_s that are not all positive numbers or null"),
    ({"batch_size": None}, "has no 'batch_size'"),
])
def test_a_hostile_ab_file_is_skipped_with_a_line_by_report_and_refused_by_compare(tmp_path, capsys, change, message):
    folder = tmp_path / "results"
    good = {"bench": "ab", "run_id": CONFIG, "mode": "train", "batch_size": 16,
            "a_medians_s": [1.0, 1.02, 0.98], "b_medians_s": [1.1, None, 1.08]}
    hostile = {key: value for key, value in {**good, **change}.items() if value is not None}
    _write(folder / "ab-20261104T000000Z.json", "ab", [good], "2026-11-04T00:00:00+00:00")
    bad = _write(folder / "ab-20261105T000000Z.json", "ab", [hostile], "2026-11-05T00:00:00+00:00")
    assert report.main([str(folder)]) == 0
    err = capsys.readouterr().err
    assert f"skipped: {bad}" in err and message in err
    assert compare.main([str(bad)]) == 2
    assert message in one_error_line(capsys.readouterr().err)
