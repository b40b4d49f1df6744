"""Profiler traces of one configuration's step, readable in TensorBoard, with a first look in the terminal.

    python -m resnet_perf.profile --depth 50 --batch-size 8 --image-size 112 --steps 5

The step is built, called once (tracing, XLA compile, first allocations) and warmed up before the
profiler starts; each timed step is wrapped in ``tf.profiler.experimental.Trace(mode, step_num=i,
_r=1)``, the marker TensorBoard's step-time views look for.  The trace goes to
``LOGDIR/plugins/profile/<run>/<host>.xplane.pb``; the summary printed afterwards (step times, top
ops by self time) is read back from that file, and saved as ``LOGDIR/profile-<UTC time>.json``.

``--onednn-primitives`` takes oneDNN's execution log instead of a trace (``resnet_perf.trace.onednn_log``):
which kernel ran each primitive of the step, in which data types, and its time, written to
``LOGDIR/onednn-exec.log`` and totalled in ``LOGDIR/onednn-<UTC time>.json`` with the logged steps'
times: primitive time summed beyond the step means TensorFlow ran ops at once, and is said.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from resnet_perf import cli
from resnet_perf.analysis.results import save_rows
from resnet_perf.bench.timing import time_call, time_steps
from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError
from resnet_perf.files import check_writable
from resnet_perf.machine.runtime import environment
from resnet_perf.machine.switches import VERBOSE_EXECUTIONS, VERBOSE_VARIABLE, ProcessSettings, apply_here
from resnet_perf.trace.breakdown import CATEGORIES, step_shares, trace_fields
from resnet_perf.trace.capture import HOST_TRACER_LEVELS, TracerOptions, capture
from resnet_perf.trace.onednn_log import GROUP_FIELDS, StepCoverage, native_output_to, parse_executions, totals
from resnet_perf.trace.xplane import summarize

PROFILE_MODES = ("train", "forward")
DEFAULT_TRACE_ROOT = Path("results") / "traces"
TOP_OPS = 15
ONEDNN_LOG_FILE = "onednn-exec.log"


def summary_rows(config: RunConfig, mode: str, summary) -> list[dict[str, Any]]:
    """Result rows: one per op group (the config's fields, op, kind, count, total and share)."""
    base = {"bench": "profile", **config.as_dict(), "mode": mode}
    return [{**base, **asdict(op)} for op in summary.ops]


def format_summary(summary, top: int = TOP_OPS) -> str:
    """Step times and the top ops by self time, as read from the trace."""
    from tabulate import tabulate

    lines = [f"trace: {summary.path} ({summary.path.stat().st_size / 2**20:.1f} MiB; planes: {', '.join(summary.planes)})"]
    times = summary.step_times_s
    if times:
        listed = ", ".join(f"{seconds * 1e3:.1f}" for seconds in times)
        lines.append(f"steps in the trace: {len(times)}, median {statistics.median(times) * 1e3:.1f} ms, "
                     f"min {min(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms  [{listed}]")
    else:
        lines.append("steps in the trace: none (no step markers found)")
    steps = max(len(times), 1)
    table = [[op.op, op.kind, op.count, op.total_s * 1e3, op.total_s * 1e3 / steps, op.share * 100]
             for op in summary.ops[:top]]
    lines.append(f"top {min(top, len(summary.ops))} of {len(summary.ops)} ops by self time "
                 f"(summed over all threads: {summary.op_time_s * 1e3:.1f} ms; share = of that sum):")
    lines.append(tabulate(table, headers=["op", "kind", "count", "total ms", "ms/step", "share %"],
                          floatfmt=".2f", tablefmt="github"))
    return "\n".join(lines)


def format_breakdown(fields: dict[str, Any]) -> str:
    """Where the traced steps' time went, by op category (``resnet_perf.trace.breakdown``)."""
    from tabulate import tabulate

    shares = step_shares(fields)
    if shares is None:
        return "where the time went: no op time in the trace"
    table = [[CATEGORIES[key], shares[key]["ms"], shares[key]["share"] * 100, fields["breakdown_op_s"][key] * 1e3]
             for key in sorted(CATEGORIES, key=lambda key: -shares[key]["ms"]) if fields["breakdown_op_s"][key] > 0]
    return (f"where the time went (median traced step {fields['breakdown_step_s'] * 1e3:.1f} ms, apportioned by op "
            f"self time):\n" + tabulate(table, headers=["category", "ms of step", "share %", "op self ms/step"],
                                         floatfmt=".1f", tablefmt="github"))


def format_primitives(rows: Sequence[dict[str, Any]], top: int, coverage: StepCoverage) -> str:
    """oneDNN's primitives by time per logged step (``resnet_perf.trace.onednn_log.totals``), and how
    their summed time compares with the median logged step."""
    from tabulate import tabulate

    columns = [name for name in rows[0] if name not in ("calls_per_step", "ms_per_step", "share")]
    table = [[row[name] for name in columns] + [row["calls_per_step"], row["ms_per_step"], row["share"] * 100]
             for row in rows[:top]]
    lines = [f"top {min(top, len(rows))} of {len(rows)} groups of oneDNN primitives by time (each primitive's own, "
             f"summed):",
             tabulate(table, headers=[*columns, "calls/step", "ms/step", "share %"], floatfmt=".1f", tablefmt="github"),
             f"oneDNN primitives: {coverage.primitive_ms:.0f} ms per step; the median logged step: "
             f"{coverage.step_ms:.0f} ms"]
    if coverage.overlapped:
        lines.append(f"  {coverage.ratio:.2f}x the step: TensorFlow ran ops at once (its inter-op threads), so "
                     f"a primitive's time includes cores another op held, by different amounts in different "
                     f"configurations; to compare kernels, run one op at a time: --threads N:1")
    return "\n".join(lines)


def view_commands(logdir: Path) -> str:
    return (f"view it: tensorboard --logdir {logdir}   (then the PROFILE tab; "
            f"pip install -e \".[trace]\" installs it)\n"
            f"     or: xprof --logdir {logdir} --port 8791")


def default_logdir(config: RunConfig, mode: str) -> Path:
    return DEFAULT_TRACE_ROOT / f"{config.run_id}-{mode}"


def build_parser() -> argparse.ArgumentParser:
    defaults = RunConfig()
    parser = cli.Parser(
        prog="python -m resnet_perf.profile",
        description="Capture a profiler trace of one configuration's step (after warm-up), print its step "
                    "times and top ops by self time, and say how to open it in TensorBoard.")
    cli.add_config_options(parser, defaults, fields=cli.CONFIG_OPTIONS + cli.SWITCH_OPTIONS)
    parser.add_argument("--mode", choices=PROFILE_MODES, default="train",
                        help="train: forward, backward and SGD update; forward: inference (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first call, before tracing (default %(default)s)")
    parser.add_argument("--steps", type=int, default=5, help="traced steps, each with a step marker (default %(default)s)")
    parser.add_argument("--logdir", type=Path,
                        help=f"TensorBoard log directory (default {DEFAULT_TRACE_ROOT}/<run_id>-<mode>)")
    parser.add_argument("--host-tracer-level", type=int, choices=HOST_TRACER_LEVELS, default=2,
                        help="1: your own trace markers only; 2: also TensorFlow ops; 3: verbose (default %(default)s)")
    parser.add_argument("--python-tracer", action="store_true", help="also trace Python function calls (slow)")
    parser.add_argument("--top", type=int, default=TOP_OPS, help="ops to list in the summary (default %(default)s)")
    parser.add_argument("--group-by", choices=("type", "name"), default="type",
                        help="total op self time per op type (Conv2D, fusion kind) or per op name; with "
                             "--onednn-primitives: per implementation, or also per problem shape (default %(default)s)")
    parser.add_argument("--onednn-primitives", action="store_true",
                        help="instead of a trace, log oneDNN's primitive executions over --steps steps "
                             "(ONEDNN_VERBOSE=profile_exec) and total them by kind, propagation, implementation "
                             "(brgemm, jit, gemm, reference; avx512_core, avx512_core_bf16, amx) and data types")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.take_interrupts()
    try:
        config = RunConfig(**cli.config_kwargs(args, cli.CONFIG_OPTIONS + cli.SWITCH_OPTIONS), warmup=args.warmup,
                           steps=args.steps)
        if args.top < 1:
            raise UserError(f"--top must be at least 1, got {args.top}")
        options = TracerOptions(host_tracer_level=args.host_tracer_level, python_tracer_level=int(args.python_tracer))
        logdir = args.logdir or default_logdir(config, args.mode)
        check_writable(logdir, "traces")

        apply_here(ProcessSettings.of(config), VERBOSE_EXECUTIONS if args.onednn_primitives else None)
        if args.onednn_primitives:
            return _log_primitives(config, args.mode, logdir, args.group_by, args.top)
        return _profile(config, args.mode, logdir, options, args.group_by, args.top)
    except UserError as error:
        return cli.fail(error)
    except Exception as error:
        return cli.fail_if_unsupported(error)
    except KeyboardInterrupt as stop:
        return cli.fail(UserError("interrupted: the profiler was stopped, the steps traced so far are in the log directory"),
                        cli.interrupted_status(stop))


def _warmed_up(config: RunConfig, mode: str) -> tuple[Any, int]:
    """The step, built and called once (its time printed) and warmed up; its tracing count then."""
    from resnet_perf.bench.steps import Step  # loads TensorFlow, which must wait for the process settings

    step = Step(config, mode)
    print(f"first call (trace{' + XLA compile' if config.xla else ''}): {time_call(step):.2f} s", flush=True)
    traced = step.tracing_count
    for _ in range(config.warmup):
        step()
    return step, traced


def _check_taken_as_labelled(step: Any, traced: int, what: str) -> None:
    """A ``UserError`` if the step retraced since ``traced`` or ran under other switches than its config's."""
    problems = step.problems(traced)
    if problems:
        raise UserError(f"the {what} is not of {step.config.run_id}: {'; '.join(problems)}")


def _profile(config: RunConfig, mode: str, logdir: Path, options: TracerOptions, group_by: str, top: int) -> int:
    print(f"profiling {config.run_id} {mode}: first call, {config.warmup} warm-up step(s), "
          f"then {config.steps} traced step(s) into {logdir}", flush=True)
    step, traced = _warmed_up(config, mode)
    trace, space = capture(step, logdir, config.steps, options)
    _check_taken_as_labelled(step, traced, "trace")
    summary = summarize(trace, group_by, space)
    print(format_summary(summary, top))
    breakdown = trace_fields(trace, space)
    print(format_breakdown(breakdown))
    saved = save_rows(logdir, "profile", summary_rows(config, mode, summary), environment(), trace=str(trace),
                      **breakdown,
                      step_numbers=summary.step_numbers, step_times_s=summary.step_times_s,
                      requested_options=asdict(options), applied_options=summary.options, group_by=group_by)
    print(f"summary written to {saved}")
    print(view_commands(logdir))
    ignored = options.not_applied(summary.options)
    if ignored:
        return cli.fail(f"the profiler did not apply {', '.join(ignored)}: the trace above was taken with the "
                        f"options it ran with (TensorFlow 2.21 ignores ProfilerOptions, see README)", exit_code=3)
    return 0


def _log_primitives(config: RunConfig, mode: str, logdir: Path, group_by: str, top: int) -> int:
    log_path = logdir / ONEDNN_LOG_FILE
    print(f"logging oneDNN's primitives of {config.run_id} {mode}: first call, {config.warmup} warm-up step(s), "
          f"then {config.steps} logged step(s) into {log_path}", flush=True)
    with native_output_to(log_path):
        step, traced = _warmed_up(config, mode)
        start = log_path.stat().st_size
        step_times_s = time_steps(step, warmup=0, steps=config.steps)
    _check_taken_as_labelled(step, traced, "log")
    with open(log_path, "rb") as log:
        log.seek(start)
        executions = parse_executions(log.read().decode(errors="replace").splitlines())
    if not executions:
        raise UserError(f"oneDNN logged no primitive execution in {log_path}: its log was not on in this process "
                        f"({VERBOSE_VARIABLE} is read once, at oneDNN's first use in a process: run the command in a process of its own)")
    rows = totals(executions, config.steps, GROUP_FIELDS + (("problem",) if group_by == "name" else ()))
    print(format_primitives(rows, top, StepCoverage.of(rows, statistics.median(step_times_s))))
    base = {"bench": "onednn", **config.as_dict(), "mode": mode}
    saved = save_rows(logdir, "onednn", [{**base, **row} for row in rows], environment(), log=str(log_path),
                      logged_steps=config.steps, step_times_s=step_times_s, group_by=group_by)
    print(f"totals written to {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
