"""Interleaved A/B of two revisions, interpreters or environments on the same benchmark matrix.

    python -m resnet_perf.ab --base HEAD~1 --fail-on images_per_sec:5% -- \\
        --depths 18 --precisions fp32 --xla off --image-size 64 -k "test_forward and not fashion"
    python -m resnet_perf.ab --a-python ~/tf220/bin/python --b-python ~/tf221/bin/python -- --depths 50

Everything after ``--`` goes to the benchmark suite (``pytest benchmarks/ --benchmark-only``).  By
default one suite process per variant runs, both at once, timing their blocks of steps in turn so
that A's and B's block of a case run back to back (A B, then B A, ...), round after round until
every verdict is decided or ``--budget`` is spent (the stopping rule of ``resnet_perf.analysis.sequential``,
shared with the suite's switch verdicts); ``--fresh-processes`` runs the whole suite once per
variant and round in fresh processes instead (``resnet_perf.processes.ab_runner``).  Per configuration and step:
B/A images/s with its interval, and a verdict: B faster, B slower, no difference (within the
``--fail-on`` band, default +-5%), or undecided.  One result file (kind ``ab``) goes to
``--results-dir``, with the suite's own files of every process in a folder beside it;
``python -m resnet_perf.compare FILE`` prints it.

Exit status: 0 (with ``--fail-on``: every verdict B faster or no difference); 1 ``--fail-on``
found B slower; 2 bad input or a process that failed; 3 ``--fail-on`` found no slowdown but some
verdict undecided (the budget ran out first); 130/143 interrupted (what finished is written).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from resnet_perf import cli
from resnet_perf.analysis import ab_verdicts
from resnet_perf.analysis.regression import parse_threshold
from resnet_perf.analysis.results import ab_process_folder, save_rows
from resnet_perf.analysis.sequential import ALPHA, Budget
from resnet_perf.analysis.tables import tabulate_frame
from resnet_perf.errors import UserError
from resnet_perf.files import check_writable
from resnet_perf.machine.fingerprint import fingerprint
from resnet_perf.processes import ab_runner, variants

BUDGET_S = 150.0
"""Seconds of rounds by default: with the suites' start and builds (about 15 s), an A/B of one small
case stays within 3 minutes on this project's 2-core VM, and reaches the look at 315 rounds of
ResNet-18 forward at 64x64 (0.2 s blocks), where a 6% slowdown is decided in its noise."""
BUDGET_FRESH_S = 3600.0
STEPS_PER_TURN = 1
"""The suites' ``--steps``: each block is then as short as the calibrated minimum (``rounds.MIN_BLOCK_S``),
so A's and B's blocks of a pair run as close together as they can."""


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m resnet_perf.ab",
        usage="%(prog)s [--base REV] [--a-python PATH] [--b-python PATH] [--a-env K=V ...] [--b-env K=V ...] "
              "[--rounds N] [--fail-on METRIC:PCT] [--results-dir DIR] -- [benchmark suite options]",
        description="Measure the same benchmark matrix under two variants A and B, two suite processes taking "
                    "turns step by step (A B, B A, ...), so the machine's drift falls on both alike; report B/A "
                    "images/s per configuration with its interval over the rounds.  Options after -- go to the suite.",
        epilog="Exit status: 0 (with --fail-on: B faster or no difference everywhere); 1 --fail-on found B slower; "
               "2 bad input or a suite process failed; 3 --fail-on found no slowdown but some verdict undecided; "
               "130/143 interrupted.")
    parser.add_argument("--base", metavar="REV",
                        help="A is git revision REV (checked out in a temporary worktree), B the working tree; "
                             "'auto': the merge-base with origin/main, or HEAD~1 when that is HEAD itself")
    parser.add_argument("--a-python", metavar="PATH", help="the interpreter (environment) of A")
    parser.add_argument("--b-python", metavar="PATH", help="the interpreter (environment) of B")
    parser.add_argument("--a-env", nargs="+", action="extend", default=[], metavar="K=V",
                        help="environment variables set for A")
    parser.add_argument("--b-env", nargs="+", action="extend", default=[], metavar="K=V",
                        help="environment variables set for B")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help=f"time for the rounds: they go on until every verdict is decided or the next look of "
                             f"the stopping rule would pass this (default {BUDGET_S:.0f}; with --fresh-processes "
                             f"{BUDGET_FRESH_S:.0f})")
    parser.add_argument("--rounds", type=int, default=None,
                        help="at most this many rounds (a round: one block of every case per variant, A's and "
                             "B's back to back; with --fresh-processes, one suite process per variant); fewer "
                             "than 3 cannot decide (default: no cap, the budget decides)")
    parser.add_argument("--fresh-processes", action="store_true",
                        help="run each round as a fresh suite process per variant instead of two processes taking "
                             "turns (for a base revision whose suite has no --turns; pairs are a minute apart)")
    parser.add_argument("--fail-on", action="append", default=[], metavar="METRIC:PCT", type=cli.argument_type(parse_threshold),
                        help="gate: PCT is the equivalence band (B/A within +-PCT%% is no difference); exit 1 when "
                             "B is slower (its interval below 1 and not inside the band), 3 when some verdict is "
                             "undecided, e.g. images_per_sec:5%%")
    parser.add_argument("--alpha", type=float, default=ALPHA,
                        help="the error rate of a verdict over all looks of the stopping rule (default %(default)s)")
    parser.add_argument("--results-dir", default="results/ab", type=Path,
                        help="where the ab result file and the processes' own files go (default %(default)s)")
    return parser


def split_suite_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """This command's own options, and the suite's (after the first ``--``)."""
    argv = list(argv)
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    own, suite_args = split_suite_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    cli.take_interrupts()  # so that the suite processes are stopped and the worktree removed on the way out
    try:
        _check_numbers(args)
        band = ab_verdicts.gate_band(args.fail_on)
        budget = Budget(args.budget, args.rounds)
        a_env, b_env = variants.parse_env(args.a_env, "--a-env"), variants.parse_env(args.b_env, "--b-env")
        pythons = {name: variants.check_python(path, f"--{name}-python") if path else sys.executable
                   for name, path in (("a", args.a_python), ("b", args.b_python))}
        if not (args.base or pythons["a"] != pythons["b"] or a_env != b_env):
            raise UserError("A and B are the same: give --base REV, --a-python/--b-python or --a-env/--b-env")
        base = variants.default_base(variants.PACKAGE_ROOT) if args.base == "auto" else args.base
        commit = variants.resolve_revision(variants.PACKAGE_ROOT, base) if base else None
        # Absolute: the suites run in their own trees (A's in a worktree), where a relative path means another place
        args.results_dir = args.results_dir.resolve()
        check_writable(args.results_dir, "A/B results")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        with ExitStack() as stack:
            a_tree, a_label = variants.PACKAGE_ROOT, "working tree"
            if commit:
                a_tree = stack.enter_context(variants.base_worktree(variants.PACKAGE_ROOT, commit))
                a_label = f"{base} ({commit[:10]})"
            a = variants.Variant("A", _label(a_label, args.a_python, a_env), a_tree, pythons["a"], a_env)
            b = variants.Variant("B", _label("working tree", args.b_python, b_env), variants.PACKAGE_ROOT,
                                 pythons["b"], b_env)
            print(f"A: {a.label}\nB: {b.label}\nsuite options: {' '.join(suite_args) or '(defaults)'}", flush=True)
            folder = ab_process_folder(args.results_dir, stamp)
            if args.fresh_processes:
                run = ab_runner.alternate([a, b], budget, suite_args, folder, cli.say, args.alpha, band)
            else:
                run = ab_runner.take_turns([a, b], budget, ["--steps", str(STEPS_PER_TURN), *suite_args],
                                        folder, cli.say, args.alpha, band)

        if run.interrupted and not run.rows:
            raise run.interrupted
        partial = {"partial": "interrupted: the rounds finished before it"} if run.interrupted else {}
        saved = save_rows(args.results_dir, "ab", run.rows, {"machine": fingerprint()}, a=a.describe(),
                          b=b.describe(), budget_s=args.budget, max_rounds=args.rounds, alpha=args.alpha, band=band,
                          mode="fresh processes" if args.fresh_processes else "in turn",
                          suite_args=suite_args, process_files=run.process_files, **partial)
        frame = ab_verdicts.verdict_frame(run.rows, args.alpha, band)
        status = ab_verdicts.gate_status(frame) if args.fail_on and not run.interrupted else 0
    except UserError as error:
        return cli.fail(error)
    except KeyboardInterrupt as stop:  # the suite processes are stopped and the worktree removed on the way out
        return cli.fail(UserError("interrupted before a round was finished: no A/B result written"),
                        cli.interrupted_status(stop))

    print(tabulate_frame(ab_verdicts.display(frame)))
    if run.interrupted:
        return cli.fail(UserError(f"interrupted: the rounds finished before it are above and in {saved} "
                                  f"(marked partial)"), cli.interrupted_status(run.interrupted))
    print(f"rows written to {saved}")
    if args.fail_on:
        print(ab_verdicts.gate_message(status, band, frame))
    return status


def _check_numbers(args: argparse.Namespace) -> None:
    """``--budget`` (its default depends on ``--fresh-processes``), ``--rounds`` and ``--alpha``, checked
    before anything starts."""
    if args.budget is None:
        args.budget = BUDGET_FRESH_S if args.fresh_processes else BUDGET_S
    if not args.budget > 0:
        raise UserError(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.rounds is not None and args.rounds < 1:
        raise UserError(f"--rounds must be at least 1, got {args.rounds}")
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")


def _label(tree: str, python: str | None, env: dict[str, str]) -> str:
    return " ".join([tree, *([f"python {python}"] if python else []), *(f"{k}={v}" for k, v in env.items())])


if __name__ == "__main__":
    sys.exit(main())
