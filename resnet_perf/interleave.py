"""Steps of several configurations timed alternately in one process: a reference for ratios.

    python -m resnet_perf.interleave --depth 50 --image-size 112 --batch-size 16 \\
        --precisions fp32,mixed_bf16 --xla off,on --modes train --rounds 10

The suite times blocks of steps per case, round by round; here single steps alternate, the finest
interleaving there is, as a reference for the suite's ratios.  Every step (configuration x mode) is
built and warmed up first, then timed once per round, in A B ... B A order (reversed every other
round), so drift falls on all of them alike.  Each step has a model of its own, so one's updates
never touch another's weights.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

from resnet_perf import cli
from resnet_perf.config import BATCH_NORMS, MODES, RunConfig
from resnet_perf.errors import UserError, require_choice
from resnet_perf.precision import GRAPH_REWRITE_PRECISIONS, PRECISIONS
from resnet_perf.rounds import round_major


def interleave(steps: dict[str, Callable[[], Any]], rounds: int, warmup: int,
               time_call: Callable[[Callable[[], Any]], float]) -> dict[str, list[float]]:
    """Warm every step up, then time each once per round in alternating order; ``{label: times}``."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _round, label in round_major(list(steps), rounds):
        times[label].append(time_call(steps[label]))
    return times


def summary_rows(times: dict[str, list[float]], batch_size: int) -> list[list]:
    """``[label, median ms, img/s, ratio of img/s to the first label's]`` per label."""
    medians = {label: statistics.median(values) for label, values in times.items()}
    first = next(iter(medians.values()))
    return [[label, median * 1e3, batch_size / median, first / median] for label, median in medians.items()]


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m resnet_perf.interleave",
        description="Time the steps of several precisions, XLA settings and modes of one configuration "
                    "alternately in one process (A B B A ...), so a shared machine's drift falls on all of them "
                    "alike.")
    cli.add_config_options(parser, RunConfig(), fields=("depth", "batch_size", "image_size", "layout"))
    parser.add_argument("--precisions", default="fp32", help=f"comma-separated, of {', '.join(PRECISIONS)} "
                                                              "(default %(default)s)")
    parser.add_argument("--xla", default="off", help="comma-separated, of off, on (default %(default)s)")
    parser.add_argument("--batch-norms", default="keras",
                        help=f"comma-separated, of {', '.join(BATCH_NORMS)} (default %(default)s)")
    parser.add_argument("--modes", default="train", help=f"comma-separated, of {', '.join(MODES)} (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=10, help="timed steps of each (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each first (default %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.stop_on_sigterm()
    try:
        precisions = [part.strip() for part in args.precisions.split(",")]
        for precision in precisions:
            if precision in GRAPH_REWRITE_PRECISIONS:  # one process: the rewrite would reach every step or none
                raise UserError(f"{precision} is a setting of a whole process, so it cannot be interleaved with other "
                                f"precisions in one: compare it in the suite (--precisions fp32,{precision})")
        batch_norms = [part.strip() for part in args.batch_norms.split(",")]
        modes = [part.strip() for part in args.modes.split(",")]
        for mode in modes:
            require_choice("mode", mode, MODES)
        if args.rounds < 1 or args.warmup < 0:
            raise UserError("--rounds must be at least 1 and --warmup at least 0")
        xla = [part.strip() for part in args.xla.split(",")]
        if not set(xla) <= set(cli.ON_OFF):
            raise UserError(f"--xla takes off, on or off,on, got {args.xla!r}")
        common = cli.config_kwargs(args, ("depth", "batch_size", "image_size", "layout"))
        configs = [RunConfig(**common, precision=precision, xla=cli.ON_OFF[value], batch_norm=batch_norm)
                   for value in xla for precision in precisions for batch_norm in batch_norms]
        from resnet_perf.measure import time_call
        from resnet_perf.steps import Step

        steps = {f"{config.run_id} {mode}": Step(config, mode) for config in configs for mode in modes}
        times = interleave(steps, args.rounds, args.warmup, time_call)
    except UserError as error:
        return cli.fail(error)
    except Exception as error:
        return cli.fail_if_unsupported(error)
    except KeyboardInterrupt as stop:
        return cli.fail(UserError("interrupted: no table (the rounds were not finished)"),
                        cli.interrupted_status(stop))
    from tabulate import tabulate

    print(tabulate(summary_rows(times, args.batch_size), headers=["step", "median ms", "img/s", "x first"],
                   floatfmt=("", ".1f", ".1f", ".3f"), tablefmt="github"))
    print(f"{args.rounds} alternating rounds after {args.warmup} warm-up step(s) each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
