"""The report's static site: ``index.html`` (changes, machines, every series) and a page per case.

Self-contained: the charts are inline SVG drawn in Python (``resnet_perf.history.svgchart``), the style and
the one script (sorting the index's tables) are inlined, and nothing is loaded from the network; links
to result files and traces are relative, so the folder can be opened from disk or copied whole.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_perf.errors import UserError
from resnet_perf.files import check_writable, write_text_atomic
from resnet_perf.history import changes as detection
from resnet_perf.history.points import SERIES_KEY, SERIES_METRICS, History, series_groups, short_commit, time_text
from resnet_perf.history.svgchart import PALETTE, ChartLine, ChartMark, ChartPoint, sparkline, time_chart
from resnet_perf.history.trends import UNSEARCHED_KINDS

CASE_FOLDER = "cases"
CASE_KEY = ["kind", "config", "step"]

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: middle; white-space: nowrap; }
input.filter { font: inherit; padding: 3px 6px; width: 24em; }
th { background: #f4f4f4; } table.sortable th { cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.worse { color: #b00000; font-weight: 600; } .better { color: #006400; font-weight: 600; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
.meta { color: #555; } .tick, .legend, .mark { font-size: 11px; fill: #444; } .axis { font-size: 12px; fill: #222; }
.mark { fill: #c00000; } code { background: #f4f4f4; padding: 0 3px; }
"""

SORT_SCRIPT = r"""
(function () {
  "use strict";
  function key(cell) {
    var text = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (text === "") { return null; }
    var number = Number(text);
    return isNaN(number) ? text.toLowerCase() : number;
  }
  function order(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : (a > b ? 1 : 0); }
    return typeof a === "number" ? -1 : 1;
  }
  function sortTable(table, column, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (first, second) {
      var a = key(first.cells[column]), b = key(second.cells[column]);
      if (a === null || b === null) { return (a === null) - (b === null); }  /* blanks last either way */
      return descending ? order(b, a) : order(a, b);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      if (index === column) { header.setAttribute("aria-sort", descending ? "descending" : "ascending"); }
      else { header.removeAttribute("aria-sort"); }
    });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.addEventListener("click", function () {
        sortTable(table, column, header.getAttribute("aria-sort") === "ascending");
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("input.filter"), function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var text = row.textContent.toLowerCase();
        row.hidden = !words.every(function (word) { return text.indexOf(word) >= 0; });
      });
    });
  });
  var query = new URLSearchParams(window.location.search);
  var wanted = query.get("sort"), series = document.getElementById("series-table");
  if (wanted && series) {
    Array.prototype.forEach.call(series.tHead.rows[0].cells, function (header, column) {
      if (header.getAttribute("data-column") === wanted) { sortTable(series, column, query.get("order") === "desc"); }
    });
  }
  document.documentElement.setAttribute("data-script", "ready");
})();
"""


def machine_colors(machines: Sequence[str]) -> dict[str, str]:
    """A colour per machine id, the same on every page."""
    return {machine: PALETTE[index % len(PALETTE)] for index, machine in enumerate(sorted(set(machines)))}


def case_page_name(kind: str, config: str, step: str) -> str:
    """The file name of a case's page: its key with anything but letters, digits, '.', '-' made '_'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", f"{kind}--{config}--{step}") + ".html"


def _page(title: str, body: str, script: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n"
            + (f"<script>{script}</script>\n" if script else "") + "</body></html>\n")


def _link(target: str | Path | None, page_folder: Path, text: str | None = None) -> str:
    """A relative link to a file or folder from a page in ``page_folder``; plain text when it is not here."""
    if not target:
        return ""
    path = Path(target)
    shown = escape(text or path.name)
    if not path.exists():
        return f'<span title="{escape(str(target))} (not found here)">{shown}</span>'
    relative = Path(os.path.relpath(path.resolve(), page_folder.resolve())).as_posix()
    return f'<a href="{escape(relative)}" title="{escape(str(target))}">{shown}</a>'


def _cell(value: Any, sort: Any = None, css: str = "") -> str:
    attributes = f' data-sort="{escape(str(sort))}"' if sort is not None else ""
    attributes += f' class="{css}"' if css else ""
    return f"<td{attributes}>{value}</td>"


def _percent(value: float, higher_is_better: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _cell("", "")
    css = "num " + ("better" if (value > 0) == higher_is_better else "worse") if abs(value) >= 1 else "num"
    return _cell(f"{value:+.1f}%", f"{value:.3f}", css)


def _swatch(machine: str, colors: dict[str, str]) -> str:
    return f'<span class="swatch" style="background:{colors[machine]}"></span>{escape(machine)}'


def _table(headers: Sequence[tuple[str, str]], rows: Sequence[str], css: str = "", table_id: str = "") -> str:
    head = "".join(f'<th data-column="{column}">{escape(label)}</th>' for column, label in headers)
    identity = f' id="{table_id}"' if table_id else ""
    return (f'<table{identity} class="{css}"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(rows)
            + "\n</tbody></table>")


def _machines_section(history: History, colors: dict[str, str]) -> str:
    runs = history.points.groupby("machine")["file"].nunique()
    rows = []
    for machine in sorted(colors):
        hardware = (history.machines.get(machine) or {}).get("hardware") or {}
        cpu = str(hardware.get("cpu_model") or "")
        family = (f"family {hardware.get('cpu_family')} model {hardware.get('cpu_model_number')}"
                  if hardware.get("cpu_family") else "")
        rows.append("<tr>" + _cell(_swatch(machine, colors)) + _cell(escape(cpu or "(no fingerprint)"))
                    + _cell(escape(family)) + _cell(escape(", ".join(hardware.get("isa_flags") or [])))
                    + _cell(hardware.get("cores", ""), css="num") + _cell(hardware.get("memory_gib", ""), css="num")
                    + _cell(escape(", ".join(hardware.get("gpu_names") or []) or "none"))
                    + _cell(int(runs.get(machine, 0)), css="num") + "</tr>")
    headers = [("machine", "machine"), ("cpu", "CPU"), ("family", "family / model"), ("isa", "ISA flags"),
               ("cores", "cores"), ("memory", "memory GiB"), ("gpus", "GPUs"), ("runs", "result files")]
    return "<h2>Machines</h2>\n" + _table(headers, rows)


def _series_label(row: pd.Series | dict) -> str:
    return f"{row['config']} {row['step']} {SERIES_METRICS[row['metric']].label}"


def _changes_section(changes: pd.DataFrame, colors: dict[str, str]) -> str:
    if changes.empty:
        return ("<h2 id=\"changes\">Detected changes</h2>\n<p>No change detected. Series with at least "
                f"{detection.MIN_POINTS} runs are searched (see the end of this page).</p>")
    rows = []
    for _, change in changes.iterrows():
        metric = SERIES_METRICS[change["metric"]]
        link = f'<a href="{CASE_FOLDER}/{case_page_name(change["kind"], change["config"], change["step"])}">' \
               f'{escape(_series_label(change))}</a>'
        rows.append("<tr>" + _cell(escape(time_text(change["time"])), change["time"].isoformat()) + _cell(link)
                    + _cell(_swatch(change["machine"], colors)) + _percent(change["change_pct"], metric.higher_is_better)
                    + _cell(f"{metric.show(change['before'])} &rarr; {metric.show(change['after'])}", css="num")
                    + _cell(escape(short_commit(change["commit"]))) + "</tr>")
    headers = [("time", "first run at the new level"), ("series", "series"), ("machine", "machine"),
               ("change", "change"), ("levels", "median before → after"), ("commit", "commit")]
    return (f'<h2 id="changes">Detected changes ({len(changes)})</h2>\n'
            + _table(headers, rows, "sortable changes"))


def _series_section(series: pd.DataFrame, points: pd.DataFrame, colors: dict[str, str], folder: Path) -> str:
    values = {key: group["value"].tolist() for key, group in series_groups(points)}
    rows = []
    for _, row in series.iterrows():
        metric = SERIES_METRICS[row["metric"]]
        page = case_page_name(row["kind"], row["config"], row["step"])
        latest = metric.show(row["latest"]) or escape(row["latest_note"] or "no value")
        last_change = ""
        if pd.notna(row["last_change_pct"]):
            last_change = (f"{row['last_change_pct']:+.1f}% at {escape(short_commit(row['last_change_commit']) or '?')}, "
                           f"{escape(time_text(row['last_change_time']))}")
        key = tuple(row[SERIES_KEY])
        rows.append(
            "<tr>" + _cell(f'<a href="{CASE_FOLDER}/{page}">{escape(row["config"])}</a>') + _cell(escape(row["step"]))
            + _cell(escape(metric.label)) + _cell(_swatch(row["machine"], colors))
            + _cell(row["points"], row["points"], "num")
            + _cell(latest, row["latest"] if pd.notna(row["latest"]) else "", "num")
            + _cell(escape(time_text(row["latest_time"])), row["latest_time"].isoformat())
            + _percent(row["vs_previous_pct"], metric.higher_is_better)
            + _cell(last_change, f"{row['last_change_pct']:.3f}" if pd.notna(row["last_change_pct"]) else "",
                    "worse" if last_change and (row["last_change_pct"] < 0) == metric.higher_is_better else "")
            + _cell(sparkline(values[key], colors[row["machine"]]), "")
            + _cell(_link(row["trace"], folder, "trace") if isinstance(row["trace"], str) else "") + "</tr>")
    headers = [("config", "configuration"), ("step", "step"), ("metric", "metric"), ("machine", "machine"),
               ("runs", "runs"), ("latest", "latest"), ("latest_time", "latest run"),
               ("vs_previous", "vs previous run"), ("last_change", "last detected change"), ("trend", "history"),
               ("trace", "trace")]
    return (f'<h2 id="series">Series ({len(series)})</h2>\n<p class="meta"><input class="filter" '
            f'data-table="series-table" placeholder="filter: words of the rows to keep" aria-label="filter series"> '
            f"Click a column to sort; <code>index.html?sort=vs_previous&amp;order=desc</code> opens sorted.</p>\n"
            + _table(headers, rows, "sortable series", "series-table"))


def _method_section() -> str:
    return ("<h2>How changes are detected</h2>\n<p>Per series (one configuration, step, metric and machine), "
            "oldest run first: PELT change-point search (<code>ruptures.Pelt</code>, least-squares cost) over the "
            "logarithms of the values scaled by the series' noise (the median absolute difference of consecutive "
            f"runs, at least {detection.NOISE_FLOOR:.0%}); a split costs {detection.PENALTY_PER_LOG_N:g}·ln(runs); "
            f"each level holds at least {detection.MIN_SEGMENT} runs; a series is searched from "
            f"{detection.MIN_POINTS} runs on; a change is listed when the median level moved by at least "
            f"{detection.MIN_CHANGE:.0%}. The change is dated at the first run at the new level. "
            f"{', '.join(UNSEARCHED_KINDS).upper()} ratios are drawn with their intervals but not searched: each A/B "
            "run compares its own pair of revisions.</p>")


def _index(history: History, changes: pd.DataFrame, series: pd.DataFrame, colors: dict[str, str],
           folder: Path, sources: Sequence[str]) -> str:
    skipped = ""
    if history.skipped:
        items = "".join(f"<li>{escape(reason)}</li>" for reason in history.skipped)
        skipped = f"<details><summary>{len(history.skipped)} file(s) skipped</summary><ul>{items}</ul></details>"
    made = datetime.now(timezone.utc)
    body = (f"<h1>resnet_perf history</h1>\n<p class=\"meta\">Made {escape(time_text(made))} from "
            f"{len(history.files)} result file(s) under {escape(', '.join(sources))}: "
            f"{len(series)} series on {len(colors)} machine(s). Machines are never drawn as one line.</p>\n{skipped}\n"
            + _changes_section(changes, colors) + "\n" + _series_section(series, history.points, colors, folder) + "\n"
            + _machines_section(history, colors) + "\n" + _method_section())
    return _page("resnet_perf history", body, SORT_SCRIPT)


def _tooltip(point: pd.Series, metric_label: str, shown: str) -> str:
    return (f"{time_text(point['time'])} · {point['machine']} · {short_commit(point['commit']) or 'no commit'} · "
            f"{metric_label} {shown}")


def _case_page(case: tuple[str, str, str], points: pd.DataFrame, changes: pd.DataFrame, traces: pd.DataFrame,
               colors: dict[str, str], folder: Path) -> str:
    kind, config, step = case
    sections = []
    for metric_name in [name for name in SERIES_METRICS if name in set(points["metric"])]:
        metric = SERIES_METRICS[metric_name]
        measured = points[points["metric"] == metric_name]
        lines, rows = [], []
        for machine, group in measured.groupby("machine", sort=True):
            chart_points = []
            for _, point in group.iterrows():
                shown = metric.show(point["value"]) or (point["note"] if isinstance(point["note"], str) else "") or "no value"
                interval = (f" [{metric.show(point['low'])}, {metric.show(point['high'])}]"
                            if pd.notna(point["low"]) and pd.notna(point["high"]) else "")
                if pd.notna(point["value"]):
                    chart_points.append(ChartPoint(point["time"].timestamp(), float(point["value"]),
                                                   _tooltip(point, metric.label, shown + interval),
                                                   point["low"] if pd.notna(point["low"]) else None,
                                                   point["high"] if pd.notna(point["high"]) else None))
                rows.append((point["time"], "<tr>" + _cell(escape(time_text(point["time"])), point["time"].isoformat())
                             + _cell(_swatch(machine, colors)) + _cell(escape(short_commit(point["commit"])))
                             + _cell(escape(shown + interval), point["value"] if pd.notna(point["value"]) else "", "num")
                             + _cell(escape(point["note"] if isinstance(point["note"], str) else ""))
                             + _cell(_link(point["file"], folder)) + _cell(_link(point["trace"], folder, "trace")
                                                                          if isinstance(point["trace"], str) else "")
                             + "</tr>"))
            lines.append(ChartLine(machine, colors[machine], chart_points))
        found = changes[changes["metric"] == metric_name]
        marks = [ChartMark(change["time"].timestamp(), f"{change['change_pct']:+.1f}% ({change['machine']})")
                 for _, change in found.iterrows()]
        if any(line.points for line in lines):
            chart = time_chart(lines, marks, metric.label, reference_y=1.0 if metric_name == "ab_ratio" else None)
        else:  # e.g. a target no run reached: nothing to draw, the runs below say why
            notes = sorted({note for note in measured["note"] if isinstance(note, str) and note})
            chart = f'<p class="meta">No run has a value ({escape(", ".join(notes) or "none measured")}).</p>'

        headers = [("time", "run"), ("machine", "machine"), ("commit", "commit"), ("value", metric.label),
                   ("note", "note"), ("file", "result file"), ("trace", "trace")]
        table = _table(headers, [html for _time, html in sorted(rows, key=lambda item: item[0], reverse=True)])
        sections.append(f'<h2 id="{metric_name}">{escape(metric.label)}</h2>\n{chart}\n'
                        f"<details><summary>{len(rows)} run(s)</summary>{table}</details>")
    case_traces = traces[(traces["config"] == config) & (traces["step"] == step)]
    if not case_traces.empty:
        items = "".join(f"<li>{escape(time_text(row['time']))} {_swatch(row['machine'], colors)}: "
                        f"{_link(row['trace'], folder, str(row['trace']))}</li>" for _, row in case_traces.iterrows())
        sections.append(f"<h2>Profiler traces</h2><p class=\"meta\">Open with <code>tensorboard --logdir "
                        f"DIR</code> (Profile tab).</p><ul>{items}</ul>")
    body = (f'<p><a href="../index.html">&larr; every series</a></p>\n<h1>{escape(config)} {escape(step)}</h1>\n'
            f"<p class=\"meta\">{escape(kind)} results; one line per machine; dashed red lines mark detected "
            f"changes (hover a dot for its run).</p>\n" + "\n".join(sections))
    return _page(f"{config} {step}", body)


def _write(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)  # a full disk leaves the earlier page, never a part of the new one
    except OSError as error:
        raise UserError(f"cannot write the report to {path}: {error.strerror or error}") from None


def write_site(history: History, changes: pd.DataFrame, series: pd.DataFrame, directory: str | Path,
               sources: Sequence[str]) -> Path:
    """Write ``index.html`` and a page per case under ``directory``; return the index's path.  Pages
    of cases no longer in the history, left by an earlier report into the same folder, are removed."""
    directory = Path(directory)
    check_writable(directory / CASE_FOLDER, "the report")
    colors = machine_colors(history.points["machine"].tolist() or list(history.machines))
    case_folder = directory / CASE_FOLDER
    written = set()
    for case, points in history.points.groupby(CASE_KEY, sort=True):
        name = case_page_name(*case)
        case_changes = changes[(changes["kind"] == case[0]) & (changes["config"] == case[1])
                               & (changes["step"] == case[2])]
        _write(case_folder / name, _case_page(case, points, case_changes, history.traces, colors, case_folder))
        written.add(name)
    for stale in case_folder.glob("*.html"):
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    index = directory / "index.html"
    _write(index, _index(history, changes, series, colors, directory, sources))
    return index
