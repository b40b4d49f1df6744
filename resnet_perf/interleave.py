"""Steps of several configurations timed alternately, one step at a time: a reference for ratios.

    python -m resnet_perf.interleave --depth 50 --image-size 112 --batch-size 16 \\
        --precisions fp32,mixed_bf16 --xla off,on --modes train --rounds 10

The suite times calibrated blocks of steps per case, round by round, until its verdicts are decided;
here single steps alternate for a fixed number of rounds, the finest interleaving there is, as a
reference for the suite's ratios.  Every step (configuration x mode) is built and warmed up first,
then timed once per round, in A B ... B A order (reversed every other round), so drift falls on all
of them alike.  Each step has a model of its own, so one's updates never touch another's weights.

All in this process, unless a precision is a setting of a whole process (``amp_bf16``, grappler's
rewrite): then each set of process settings gets a worker process of its own
(``resnet_perf.processes.isolated``), the workers take turns one step at a time, and oneDNN's log
confirms in each that its switch took effect.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from resnet_perf import cli
from resnet_perf.analysis.sequential import Budget
from resnet_perf.bench.rounds import round_major
from resnet_perf.bench.timing import time_call
from resnet_perf.config import BATCH_NORMS, FILTER_GRADS, MODES, RunConfig
from resnet_perf.errors import UserError, require_choice
from resnet_perf.precision import PRECISIONS
from resnet_perf.processes.isolated import IsolatedCases, needs_workers


def interleave(steps: dict[str, Any], rounds: int, warmup: int,
               time_call: Callable[[Callable[[], Any]], float]) -> Iterator[tuple[str, float]]:
    """Warm every step up, then time each once per round in alternating order, yielding
    ``(label, seconds)`` as each is timed (an interrupted run keeps what it yielded).  A step whose
    switches are not in effect (``Step.problems``: XLA, oneDNN, threads, a retrace) is a
    ``UserError`` before its rounds, or after them for a retrace."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    traced = {label: step.tracing_count for label, step in steps.items()}
    _refuse_step_problems(steps, traced)
    for _round, label in round_major(list(steps), rounds):
        yield label, time_call(steps[label])
    _refuse_step_problems(steps, traced)


def step_label(config: RunConfig, mode: str) -> str:
    return f"{config.run_id} {mode}"


def interleave_in_workers(cases: Sequence[tuple[RunConfig, str]], rounds: int, times: dict[str, list[float]]) -> None:
    """Time ``cases`` in worker processes, one per set of process settings, taking turns one step at a
    time for ``rounds`` rounds, into ``times`` (also when interrupted: the rounds each case finished).
    A case whose switch did not take effect (oneDNN's log, the runtime's report) is a ``UserError``."""
    workers = IsolatedCases(cases, report=cli.say, exact_blocks=True)
    try:
        workers.measure([], Budget(max_rounds=rounds, early_stop=False))
    finally:
        rows = workers.rows()
        times.update({step_label(config, mode): list(rows.get((config.run_id, mode), {}).get("round_medians_s") or [])
                      for config, mode in cases})
    _refuse([f"{run_id} {mode}: {row['error']}" for (run_id, mode), row in rows.items() if row.get("error")])


def _refuse_step_problems(steps: dict[str, Any], traced: dict[str, int]) -> None:
    _refuse([f"{label}: {problem}" for label, step in steps.items() for problem in step.problems(traced[label])])


def _refuse(problems: Sequence[str]) -> None:
    if problems:  # a switch not in effect, a retrace: the table would be mislabelled
        raise UserError(f"not measured as labelled: {'; '.join(problems)}")


def complete_rounds(times: dict[str, list[float]]) -> dict[str, list[float]]:
    """The rounds every label finished (an interrupted round is left out of all of them)."""
    finished = min(len(values) for values in times.values())
    return {label: values[:finished] for label, values in times.items()}


def summary_rows(times: dict[str, list[float]], batch_size: int) -> list[list]:
    """``[label, median ms, img/s, ratio of img/s to the first label's]`` per label."""
    medians = {label: statistics.median(values) for label, values in times.items()}
    first = next(iter(medians.values()))
    return [[label, median * 1e3, batch_size / median, first / median] for label, median in medians.items()]


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m resnet_perf.interleave",
        description="Time the steps of several precisions, batch norms, XLA settings and modes of one "
                    "configuration alternately, one step at a time (A B B A ...), so a shared machine's drift falls "
                    "on all of them alike: in one process, or where a precision is a setting of a whole process "
                    "(amp_bf16), in a worker process per set of settings, taking turns.")
    cli.add_config_options(parser, RunConfig(), fields=("depth", "batch_size", "image_size", "layout"))
    parser.add_argument("--precisions", default="fp32", help=f"comma-separated, of {', '.join(PRECISIONS)} "
                                                              "(default %(default)s)")
    parser.add_argument("--xla", default="off", help="comma-separated, of off, on (default %(default)s)")
    parser.add_argument("--batch-norms", default="keras",
                        help=f"comma-separated, of {', '.join(BATCH_NORMS)} (default %(default)s)")
    parser.add_argument("--filter-grads", default="conv",
                        help=f"comma-separated, of {', '.join(FILTER_GRADS)}: {cli.FILTER_GRAD_HELP} "
                             f"(default %(default)s)")
    parser.add_argument("--modes", default="train", help=f"comma-separated, of {', '.join(MODES)} (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=10, help="timed steps of each (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each first (default %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.take_interrupts()
    times: dict[str, list[float]] = {}  # label: its step times, as timed
    try:
        precisions = [part.strip() for part in args.precisions.split(",")]
        batch_norms = [part.strip() for part in args.batch_norms.split(",")]
        filter_grads = [part.strip() for part in args.filter_grads.split(",")]
        modes = [part.strip() for part in args.modes.split(",")]
        for mode in modes:
            require_choice("mode", mode, MODES)
        if args.rounds < 1 or args.warmup < 0:
            raise UserError("--rounds must be at least 1 and --warmup at least 0")
        xla = [part.strip() for part in args.xla.split(",")]
        if not set(xla) <= set(cli.ON_OFF):
            raise UserError(f"--xla takes off, on or off,on, got {args.xla!r}")
        common = cli.config_kwargs(args, ("depth", "batch_size", "image_size", "layout"))
        configs = [RunConfig(**common, precision=precision, xla=cli.ON_OFF[value], batch_norm=batch_norm,
                             filter_grad=filter_grad, warmup=args.warmup, steps=1)
                   for value in xla for precision in precisions for batch_norm in batch_norms
                   for filter_grad in filter_grads]
        if needs_workers(configs):
            interleave_in_workers([(config, mode) for config in configs for mode in modes], args.rounds, times)
        else:
            from resnet_perf.bench.steps import Step  # loads TensorFlow, which must wait for the process settings

            steps = {step_label(config, mode): Step(config, mode) for config in configs for mode in modes}
            times.update({name: [] for name in steps})
            for name, seconds in interleave(steps, args.rounds, args.warmup, time_call):
                times[name].append(seconds)
    except UserError as error:
        return cli.fail(error)
    except Exception as error:
        return cli.fail_if_unsupported(error)
    except KeyboardInterrupt as stop:
        finished = complete_rounds(times) if times else {}
        done = len(next(iter(finished.values()), []))
        if done:
            _print_table(finished, args.batch_size, args.warmup)
        message = f"the table above is partial: {done} of {args.rounds} rounds" if done else "no round finished, no table"
        return cli.fail(UserError(f"interrupted: {message}"), cli.interrupted_status(stop))
    _print_table(times, args.batch_size, args.warmup)
    return 0


def _print_table(times: dict[str, list[float]], batch_size: int, warmup: int) -> None:
    from tabulate import tabulate

    print(tabulate(summary_rows(times, batch_size), headers=["step", "median ms", "img/s", "x first"],
                   floatfmt=("", ".1f", ".1f", ".3f"), tablefmt="github"))
    print(f"{len(next(iter(times.values())))} alternating rounds after {warmup} warm-up step(s) each", flush=True)


if __name__ == "__main__":
    sys.exit(main())
