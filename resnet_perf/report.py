"""History of results: a static site with change detection, or its summary as text.

    python -m resnet_perf.report results/ --html site/                 # then open site/index.html
    python -m resnet_perf.report results/ --format markdown >> "$GITHUB_STEP_SUMMARY"

Reads every result file (bench, train, ab, profile; pytest-benchmark JSON too) given or found under
the given folders (``resnet_perf.history.points``), searches every series for changes of level
(``resnet_perf.history.changes``) and prints the summary: the detected changes, then every series with its
latest value, its change against the run before and its last detected change.  ``--html DIR`` also
writes the site (``resnet_perf.history.site``): that summary, sortable, with a history chart per case and
machine.  Files that are not result files are skipped, each with a line on stderr.

Exit status: 0, or 2 for bad input (a path that does not exist, no result file with history, an
unwritable folder).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from resnet_perf import cli
from resnet_perf.analysis.tables import tabulate_frame
from resnet_perf.errors import UserError
from resnet_perf.files import check_writable
from resnet_perf.history.points import SERIES_METRICS, load_history, short_commit, time_text
from resnet_perf.history.site import write_site
from resnet_perf.history.trends import change_table, series_table

FORMATS = {"plain": "plain", "markdown": "github"}
"""--format choices and the tabulate format each prints with."""


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m resnet_perf.report",
        description="Per configuration, step and machine: the history of images/s, MFU, memory, training time "
                    "and accuracy and A/B ratios over the given result files, with the changes of level detected "
                    "in it. Prints the summary; --html also writes a self-contained site.")
    parser.add_argument("results", nargs="+", help="result files, or folders searched for *.json (recursively)")
    parser.add_argument("--html", metavar="DIR", type=Path, help="write the site into DIR (index.html and a page per case)")
    parser.add_argument("--format", choices=FORMATS, default="plain",
                        help="the summary printed: plain text, or markdown for a CI job's summary (default %(default)s)")
    return parser


def summary_text(changes: pd.DataFrame, series: pd.DataFrame, files: int, machines: int, table_format: str) -> str:
    """The detected changes, then every series' latest state, as tables (``table_format``: tabulate's)."""
    def label(row: pd.Series) -> str:
        return SERIES_METRICS[row["metric"]].label

    def show(row: pd.Series, column: str) -> str:
        return SERIES_METRICS[row["metric"]].show(row[column])

    heading = "### " if table_format == "github" else ""
    lines = [f"{heading}resnet_perf history: {len(series)} series on {machines} machine(s) from {files} result file(s)",
             "", f"{heading}Detected changes ({len(changes)})", ""]
    if changes.empty:
        lines.append("none")
    else:
        lines.append(tabulate_frame(pd.DataFrame({
            "first run at the new level": [time_text(time) for time in changes["time"]],
            "series": [f"{row['config']} {row['step']} {label(row)}" for _, row in changes.iterrows()],
            "machine": changes["machine"],
            "change %": changes["change_pct"].round(1),
            "median before -> after": [f"{show(row, 'before')} -> {show(row, 'after')}" for _, row in changes.iterrows()],
            "commit": [short_commit(commit) for commit in changes["commit"]],
        }), table_format))
    lines += ["", f"{heading}Series", ""]
    last_changes = [f"{row['last_change_pct']:+.1f}% at {short_commit(row['last_change_commit']) or '?'}, "
                    f"{time_text(row['last_change_time'])}" if pd.notna(row["last_change_pct"]) else ""
                    for _, row in series.iterrows()]
    lines.append(tabulate_frame(pd.DataFrame({
        "configuration": series["config"], "step": series["step"],
        "metric": [label(row) for _, row in series.iterrows()], "machine": series["machine"], "runs": series["points"],
        "latest": [show(row, "latest") or row["latest_note"] or "no value" for _, row in series.iterrows()],
        "latest run": [time_text(time) for time in series["latest_time"]],
        "vs previous %": series["vs_previous_pct"].round(1),
        "last detected change": last_changes,
    }), table_format))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.html:
            check_writable(args.html, "the report")
        history = load_history(args.results)
        if history.points.empty:
            skipped = f" ({len(history.skipped)} file(s) skipped, first: {history.skipped[0]})" if history.skipped else ""
            raise UserError(f"no result with a value to track in {', '.join(args.results)}{skipped}")
        for reason in history.skipped:
            print(f"skipped: {reason}", file=sys.stderr)
        changes = change_table(history.points)
        series = series_table(history.points, changes, history.traces)
        print(summary_text(changes, series, len(history.files), history.points["machine"].nunique(),
                           FORMATS[args.format]))
        if args.html:
            index = write_site(history, changes, series, args.html, args.results)
            print(f"site written to {index}", file=sys.stderr)
    except UserError as error:
        return cli.fail(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
