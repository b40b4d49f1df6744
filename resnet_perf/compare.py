"""Turn result files into comparison tables, speed-ups, plots and a regression verdict.

    python -m resnet_perf.compare results/bench-A.json                  # one run: table + speed-ups
    python -m resnet_perf.compare results/baseline results/bench-B.json --fail-on mfu:25%
    python -m resnet_perf.compare results/ab/ab-20261128T130000Z.json         # an A/B run

One file: every configuration with its speed-up over its baseline configuration (fp32, XLA off,
NHWC, Keras batch norm, TensorFlow's threads, oneDNN on in its default math mode; same
depth/batch/size/step), explained by the op categories where the rows have a breakdown; the best
configuration per depth and step; latency, breakdown and largest-batch tables.  Several files: each configuration side by side across the
runs, the first being the baseline, with the changes in images/s, MFU and memory and their 95%
intervals over the runs' rounds (``resnet_perf.analysis.regression``).  A directory stands for the newest result
file in it; pytest-benchmark JSON (``--benchmark-json``, ``.benchmarks/``) is read too.

``--accuracy`` adds, beside each best configuration, whether its precision and batch norm are shown
to train: the median final test accuracy of the training runs given against float32's
(``resnet_perf.analysis.accuracy``: more than 0.3 points below it is marked).

Exit status: 0, or 1 when ``--fail-on`` finds a regression, or 2 for bad input; on an ``ab`` file
with ``--fail-on``, 3 when no verdict is slower but some undecided (as ``python -m resnet_perf.ab``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from resnet_perf import cli
from resnet_perf.analysis import ab_verdicts
from resnet_perf.analysis.accuracy import MARGIN, Judged, judge
from resnet_perf.analysis.plot import check_plot_path, plot_bars
from resnet_perf.analysis.regression import ALPHA, METRICS, compare_frames, parse_threshold, regressions
from resnet_perf.analysis.results import ResultSet, check_rows, load_result_set, load_results
from resnet_perf.analysis.sequential import BAND
from resnet_perf.analysis.speedup import REFERENCE, best_configurations, parse_baseline, speedups, switch_text
from resnet_perf.analysis.tables import (MIB, STEP_ORDER, display_frame, extra_tables, step_frame, tabulate_frame,
                                         training_frame)
from resnet_perf.errors import UserError
from resnet_perf.history.points import result_files
from resnet_perf.machine.fingerprint import describe, differences, fingerprint, measured_on, same_hardware

FORMATS = ("github", "plain", "csv", "json")

COMPARISON_COLUMNS = {
    "run_id": "config",
    "mode": "step",
    "run": "run",
    "images_per_sec": "img/s",
    "images_per_sec_change_pct": "Δ img/s %",
    "images_per_sec_interval": "Δ img/s 95% CI",
    "mfu_pct": "MFU %",
    "mfu_change_pct": "Δ MFU %",
    "mfu_interval": "Δ MFU 95% CI",
    "host_rss_added_mib": "host RSS added MiB",
    "host_memory_change_pct": "Δ host RSS %",
    "device_peak_mib": "device peak MiB",
    "device_memory_change_pct": "Δ device peak %",
    "regressed_on": "regressed on",
    "note": "note",
}
MEMORY_CHANGES = {"host_rss_added_mib": "host_memory_change_pct", "device_peak_mib": "device_memory_change_pct"}


def _measured_rows(result: ResultSet) -> list[dict]:
    return [row for row in result.rows if row.get("bench") in ("step", "memory", "max_batch")]


def only_configs(result: ResultSet, pattern: str | None) -> ResultSet:
    """``result`` with only the rows whose run_id matches the regular expression ``pattern``."""
    if not pattern:
        return result
    try:
        wanted = re.compile(pattern)
    except re.error as error:
        raise UserError(f"--configs: {pattern!r} is not a regular expression ({error})") from None
    return dataclasses.replace(result, rows=[row for row in result.rows if wanted.search(str(row.get("run_id")))])


def comparison_table(results: Sequence[ResultSet], alpha: float, thresholds) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every config per run with its changes, the rows that regressed), display-ready."""
    frames = []
    for result in results:
        rows = _measured_rows(result)
        if not rows:
            raise UserError(f"{result.path} has no step benchmark rows to compare (it holds {result.kind!r} results)")
        frames.append((result.label, step_frame(rows)))
    labels = [label for label, _frame in frames]
    if len(set(labels)) != len(labels):
        raise UserError(f"two files share a name ({', '.join(labels)}): copy one under another name to compare them")
    comparison = compare_frames(frames, alpha)
    failing = regressions(comparison, thresholds)
    comparison["regressed_on"] = failing["regressed_on"].reindex(comparison.index)
    return _display_comparison(comparison), _display_comparison(failing)


def _display_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame.reindex(columns=frame.columns.union(
        [f"{name}_{field}" for name in METRICS for field in ("change", "low", "high")] + ["regressed_on"],
        sort=False))
    shown = shown.assign(
        mfu_pct=shown["mfu"] * 100, host_rss_added_mib=shown["host_rss_added_bytes"] / MIB,
        device_peak_mib=shown["device_peak_bytes"] / MIB,
        **{f"{name}_change_pct": shown[f"{name}_change"] * 100 for name in METRICS},
        **{f"{name}_interval": [_interval_text(low, high)
                                for low, high in zip(shown[f"{name}_low"], shown[f"{name}_high"])]
           for name in METRICS},
        _order=shown["mode"].map(STEP_ORDER))
    shown = shown.sort_values(["run_id", "_order"], kind="stable")  # runs keep their order within a step
    shown = shown.reindex(columns=list(COMPARISON_COLUMNS))
    # Host RSS (CPU) and device peak (GPU) are different quantities: show the one these runs measured.
    unmeasured = [column for column in MEMORY_CHANGES if shown[column].isna().all()]
    shown = shown.drop(columns=[*unmeasured, *(MEMORY_CHANGES[column] for column in unmeasured)])
    return shown.rename(columns=COMPARISON_COLUMNS).reset_index(drop=True)


def _interval_text(low: object, high: object) -> str | None:
    """``[-4.1, +2.3]`` (percent), or nothing where there is no interval."""
    if not (isinstance(low, float) and isinstance(high, float)) or pd.isna(low) or pd.isna(high):
        return None
    return f"[{low * 100:+.1f}, {high * 100:+.1f}]"


def peaks_text(result: ResultSet) -> str:
    """``float32 318, bfloat16 1240 GFLOP/s``: the matmul peaks the run's MFU divided by."""
    peaks = result.matmul_peaks
    return ", ".join(f"{dtype} {peak / 1e9:.0f}" for dtype, peak in sorted(peaks.items())) + " GFLOP/s" if peaks else "none"


def load_all(paths: Sequence[str], configs: str | None) -> list[ResultSet]:
    """The result sets of ``paths``.  A first path that keeps results per machine
    (``results/baseline/<id>/``) gives the folder of the machine the other runs were measured on."""
    later = [only_configs(load_result_set(path), configs) for path in paths[1:]]
    machine = next((result.machine["id"] for result in later if result.machine), None)
    if machine is None and later:
        machine = fingerprint()["id"]
    return [only_configs(load_result_set(paths[0], machine), configs), *later]


def machine_differences(results: Sequence[ResultSet]) -> list[str]:
    """One line per run: its machine (``describe``), and how its fingerprint differs from the first run's."""
    base = results[0]
    lines = [f"machine of {base.label}: {describe(base.machine) if base.machine else 'unknown (no fingerprint)'}"]
    for result in results[1:]:
        machine = result.machine or {}
        changed = differences(base.machine, result.machine) if base.machine and result.machine else []
        lines.append(f"machine of {result.label}: {describe(machine) if machine else 'unknown (no fingerprint)'}"
                     + (f"; differs from {base.label}: {'; '.join(changed)}" if changed else
                        ("; same machine and software" if base.machine and result.machine else "")))
    return lines


def refuse_other_hardware(results: Sequence[ResultSet]) -> None:
    """A ``UserError`` naming the difference when a run was measured on other hardware than the baseline."""
    base = results[0]
    for result in results[1:]:
        if not same_hardware(base.machine, result.machine):
            if not (base.machine and result.machine):
                missing = base if not base.machine else result
                raise UserError(f"{missing.label} has no machine fingerprint: cannot tell whether it ran on the "
                                f"same hardware (--allow-other-machine to judge anyway)")
            changed = [line for line in differences(base.machine, result.machine) if line.startswith("hardware.")]
            raise UserError(f"{result.label} ran on other hardware than {base.label} ({base.machine['id']} -> "
                            f"{result.machine['id']}: {'; '.join(changed)}): a CPU change is no regression of the "
                            f"code; compare with a baseline of this machine, or pass --allow-other-machine")


def render(frame: pd.DataFrame, table_format: str) -> str:
    """A table as github/plain text, CSV, or JSON records."""
    if table_format == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if table_format == "json":
        return frame.astype(object).where(frame.notna(), None).to_json(orient="records", indent=1)
    return tabulate_frame(frame, table_format)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m resnet_perf.compare",
        description="Tables, speed-ups, plots and regression verdicts from result files. One file: its configs "
                    "with the speed-up of each switch over the baseline config. Several: each config across the "
                    "runs (the first is the baseline) with the change and its 95%% interval over the runs' "
                    "rounds (Welch t on the logarithms of the round medians).",
        epilog="Exit status: 0 fine; 1 --fail-on found a regression; 2 bad input (unreadable or foreign file, "
               "bad option).")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="a resnet_perf result file, a pytest-benchmark JSON file, or a directory "
                             "(its newest *.json)")
    parser.add_argument("--format", choices=FORMATS, default="github", help="table format (default %(default)s)")
    parser.add_argument("--fail-on", action="append", default=[], metavar="METRIC:PCT", type=parse_threshold_arg,
                        help=f"exit 1 when a config got worse in METRIC ({', '.join(METRICS)}) by more than PCT "
                             "percent against the first file and the interval excludes no change (memory: "
                             "measured once, threshold only); repeatable")
    parser.add_argument("--alpha", type=float, default=ALPHA,
                        help="the intervals are 1 - ALPHA: a change or speed-up is significant when its interval "
                             "excludes no change (default %(default)s: 95%% intervals)")
    parser.add_argument("--baseline", type=parse_baseline_arg, default=REFERENCE, metavar="FIELD=VALUE,...",
                        help="the reference switches for speed-ups in one file (default precision=fp32,xla=off,"
                             "layout=nhwc,batch_norm=keras,filter_grad=conv,threads=auto,onednn=on,fpmath=default; "
                             "give any of them)")
    parser.add_argument("--configs", metavar="REGEX",
                        help="only the configurations whose run_id matches, e.g. '^resnet50-' or 'b32-224$'")
    parser.add_argument("--plot", metavar="FILE.png", help="also write a bar chart of images/s and MFU per config")
    parser.add_argument("--accuracy", action="append", default=[], metavar="PATH",
                        help="training result files (python -m resnet_perf.train), or folders searched for them, of "
                             "one training in several precisions and batch norms: the best-configuration table says "
                             "whether each best configuration's precision and batch norm trains to fp32's accuracy "
                             "(median final test accuracy within 0.3 points); repeatable")
    parser.add_argument("--allow-other-machine", action="store_true",
                        help="let --fail-on judge runs measured on different hardware (refused otherwise: a CPU "
                             "change is no regression or speed-up of the code)")
    return parser


parse_threshold_arg = cli.argument_type(parse_threshold)
parse_baseline_arg = cli.argument_type(parse_baseline)


def load_training_runs(paths: Sequence[str]) -> list[list[dict]]:
    """The rows of every training run in ``paths`` (files, or folders searched for ``kind: train`` files)."""
    runs = []
    for given in map(Path, paths):
        try:
            found = result_files([given])
        except UserError:
            raise UserError(f"--accuracy {given}: no such file or folder") from None
        for path in found:
            payload = load_results(path)
            if payload.get("kind") == "train":
                runs.append(check_rows(path, payload.get("rows")))
            elif not given.is_dir():
                raise UserError(f"--accuracy {given}: a {payload.get('kind')!r} result, not a training run")
    return runs


def best_table(frame: pd.DataFrame, judged: Judged | None) -> pd.DataFrame:
    """``best_configurations``, with a ``trains`` column where training runs were given."""
    best = best_configurations(frame)
    shown = best.drop(columns=["precision", "batch_norm"])
    if judged is None or best.empty:
        return shown
    return shown.assign(trains=[judged.text_for(*switches) for switches in zip(best["precision"], best["batch_norm"])])


def accuracy_footnote(judged: Judged) -> str:
    trained = ", ".join(f"{name} {value}" for name, value in judged.settings.items() if value is not None)
    left_out = f"; {judged.incomplete} run(s) stopped before their end left out" if judged.incomplete else ""
    return (f"trains: median final test accuracy of the training runs of the same precision and batch norm "
            f"({trained}){left_out}; marked when more than {MARGIN * 100:.1f} points below fp32's (Keras batch norm)")


def _print_single(result: ResultSet, args: argparse.Namespace) -> None:
    text_tables = args.format in ("github", "plain")  # csv and json stay the table alone, for tools
    if not _measured_rows(result):
        if any(row.get("bench") == "train" for row in result.rows):
            print(render(training_frame(result.rows), args.format))
            if text_tables:
                print(f"\n{measured_on(result.machine)}")
            return
        raise UserError(f"{result.path} has no benchmark or training rows to show (it holds {result.kind!r} results)")
    rows = _measured_rows(result)
    frame = speedups(step_frame(rows), args.baseline, args.alpha)
    print(render(display_frame(rows, frame, extra={"vs_baseline": "vs baseline"}), args.format))
    if text_tables:
        print(f"\n{measured_on(result.machine)}")
        reference = "+".join(switch_text(field, value) for field, value in args.baseline.items())
        print(f"\nvs baseline: images/s over the same config with {reference}: the geometric mean of the "
              f"per-round ratios and its interval at the stopping rule's last look (error rate {args.alpha:g} over "
              f"all looks: resnet_perf.analysis.sequential); faster or slower where the interval excludes 1, no difference "
              f"where it lies within +-{BAND:.0%}, else undecided; after the semicolon, with --breakdown, the op "
              f"categories whose time changed most")
        judged = judge(load_training_runs(args.accuracy)) if args.accuracy else None
        print(f"\nbest configuration per depth, batch, image size and step:\n"
              f"{render(best_table(frame, judged), args.format)}")
        if judged is not None:
            print(accuracy_footnote(judged))
        for title, table in extra_tables(rows):
            print(f"\n{title}:\n{render(table, args.format)}")
    if args.plot:
        frame = step_frame(_measured_rows(result)).assign(run=result.label)
        _plot(frame, args.plot, result.label)


def _print_ab(result: ResultSet, args: argparse.Namespace) -> int:
    """An ``ab`` result (``python -m resnet_perf.ab``): B/A per configuration and its verdict; with
    ``--fail-on``, the gate's exit status (``ab_verdicts.gate_status``) in that band, else the run's own band."""
    band = result.metadata.get("band")
    if args.fail_on or not (isinstance(band, float) and 0 < band < 1):
        band = ab_verdicts.gate_band(args.fail_on)
    frame = ab_verdicts.verdict_frame(result.rows, args.alpha, band)
    for name in ("a", "b"):
        variant = result.metadata.get(name)
        print(f"{name.upper()}: {variant.get('label') if isinstance(variant, dict) else 'unknown'}")
    if result.metadata.get("partial"):  # stopped by Ctrl-C or SIGTERM: the rounds finished before it
        print(f"partial: {result.metadata['partial']}")
    print(render(ab_verdicts.display(frame), args.format))
    return ab_verdicts.gate_status(frame) if args.fail_on else 0


def _plot(frame: pd.DataFrame, path: str, title: str) -> None:
    print(f"plot written to {plot_bars(frame, path, title)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.plot:
            check_plot_path(args.plot)  # before any work, not after it
        results = load_all(args.files, args.configs)
        if not 0 < args.alpha < 1:
            raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")
        if any(result.kind == "ab" for result in results):
            if len(results) > 1:
                raise UserError("an ab result (python -m resnet_perf.ab) holds both sides already: give it alone")
            return _print_ab(results[0], args)
        if len(results) == 1:
            if args.fail_on:
                raise UserError("--fail-on needs two or more files: a baseline, then the runs to judge")
            _print_single(results[0], args)
            return 0
        machines = machine_differences(results)
        if args.fail_on and not args.allow_other_machine:
            refuse_other_hardware(results)
        table, failing = comparison_table(results, args.alpha, args.fail_on)
        if args.format in ("github", "plain"):
            if args.fail_on:
                rules = ", ".join(map(str, args.fail_on))
                if failing.empty:
                    print(f"no regression against {results[0].label} beyond {rules} "
                          f"({1 - args.alpha:.0%} intervals over rounds)\n")
                else:
                    print(f"REGRESSIONS against {results[0].label} ({rules}, {1 - args.alpha:.0%} intervals over rounds):")
                    print(render(failing, args.format) + "\n")
            print("\n".join(machines) + "\n")
            print(render(table, args.format) + "\n")
            for result in results:  # MFU's denominators: a run whose probe read low shows a higher MFU
                print(f"matmul peaks of {result.label}: {peaks_text(result)}")
        elif args.format == "json":
            print(json.dumps({"baseline": str(results[0].path), "files": [str(r.path) for r in results],
                              "machines": machines,
                              "regressions": json.loads(render(failing, "json")),
                              "comparison": json.loads(render(table, "json"))}, indent=1))
        else:
            print(render(table, args.format))
        if args.plot:
            frames = [step_frame(_measured_rows(result)).assign(run=result.label) for result in results]
            _plot(pd.concat(frames, ignore_index=True), args.plot, "runs compared")
    except UserError as error:
        return cli.fail(error)
    return 1 if args.fail_on and not failing.empty else 0


if __name__ == "__main__":
    sys.exit(main())
