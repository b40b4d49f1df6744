"""Interleaved A/B of two revisions, interpreters or environments on the same benchmark matrix.

    python -m resnet_perf.ab --base HEAD~1 --rounds 3 --fail-on images_per_sec:5% -- \\
        --depths 18,50 --image-size 64 -k "test_forward or test_train"
    python -m resnet_perf.ab --a-python ~/tf220/bin/python --b-python ~/tf221/bin/python -- --depths 50
    python -m resnet_perf.ab --a-env TF_ENABLE_ONEDNN_OPTS=0 --b-env TF_ENABLE_ONEDNN_OPTS=1 -- --depths 50

Everything after ``--`` goes to the benchmark suite (``pytest benchmarks/ --benchmark-only``).  By
default one suite process per variant runs, both at once, timing their blocks of steps in turn so
that A's and B's block of a case and round run back to back (A B, B A, ...), for ``--rounds``
rounds; ``--fresh-processes`` runs the whole suite ``--rounds`` times per variant in fresh
processes instead (``resnet_perf.abtest``).  Per configuration and step: B/A images/s with its interval over the
rounds, and a verdict.  One result file (kind ``ab``) goes to ``--results-dir``, with the suite's
own files of every process in a folder beside it; ``python -m resnet_perf.compare FILE`` prints it.

Exit status: 0; 1 when ``--fail-on`` finds B slower; 2 for bad input or a process that failed.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from resnet_perf import cli
from resnet_perf.errors import UserError
from resnet_perf.regression import ALPHA, parse_threshold

ROUNDS_IN_TURN = 60
"""One step per turn, 60 turns per case and variant: on this project's 2-core VM, A/A on the regress
matrix, 60 one-step pairs gave 95% intervals of +-1.8 to +-2.8% on B/A, where 10 pairs of 3-step
blocks (half the steps) gave +-5 to +-16%: the machine changes pace within a second, so the closer
the two halves of a pair, the more of it cancels (README "Interleaved A/B")."""
ROUNDS_FRESH = 10
STEPS_PER_TURN = 1


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m resnet_perf.ab",
        usage="%(prog)s [--base REV] [--a-python PATH] [--b-python PATH] [--a-env K=V ...] [--b-env K=V ...] "
              "[--rounds N] [--fail-on METRIC:PCT] [--results-dir DIR] -- [benchmark suite options]",
        description="Measure the same benchmark matrix under two variants A and B, two suite processes taking "
                    "turns step by step (A B, B A, ...), so the machine's drift falls on both alike; report B/A "
                    "images/s per configuration with its interval over the rounds.  Options after -- go to the suite.",
        epilog="Exit status: 0; 1 --fail-on found B slower than A; 2 bad input or a suite process failed.")
    parser.add_argument("--base", metavar="REV",
                        help="A is git revision REV (checked out in a temporary worktree), B the working tree; "
                             "'auto': the merge-base with origin/main, or HEAD~1 when that is HEAD itself")
    parser.add_argument("--a-python", metavar="PATH", help="the interpreter (environment) of A")
    parser.add_argument("--b-python", metavar="PATH", help="the interpreter (environment) of B")
    parser.add_argument("--a-env", nargs="+", action="extend", default=[], metavar="K=V",
                        help="environment variables set for A")
    parser.add_argument("--b-env", nargs="+", action="extend", default=[], metavar="K=V",
                        help="environment variables set for B")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds, the units of the interval: turns per case and variant, A's and B's back "
                             f"to back, each of {STEPS_PER_TURN} step unless the suite options say --steps "
                             f"(default {ROUNDS_IN_TURN}); with --fresh-processes, suite processes per variant "
                             f"(default {ROUNDS_FRESH})")
    parser.add_argument("--fresh-processes", action="store_true",
                        help="run each round as a fresh suite process per variant instead of two processes taking "
                             "turns (for a base revision whose suite has no --turns; pairs are a minute apart)")
    parser.add_argument("--fail-on", action="append", default=[], metavar="METRIC:PCT", type=cli.argument_type(parse_threshold),
                        help="exit 1 when B's images/s is lower than A's by more than PCT percent and the interval "
                             "excludes no change, e.g. images_per_sec:5%%; repeatable")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="the intervals are 1 - ALPHA (default %(default)s)")
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
    cli.stop_on_sigterm()  # so that the suite processes are stopped and the worktree removed on the way out
    try:
        from resnet_perf import abtest, variants
        from resnet_perf.results import check_writable, save_rows

        if args.rounds is None:
            args.rounds = ROUNDS_FRESH if args.fresh_processes else ROUNDS_IN_TURN
        if args.rounds < 2:
            raise UserError(f"--rounds must be at least 2 (an interval needs two rounds), got {args.rounds}")
        if not 0 < args.alpha < 1:
            raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")
        abtest.check_thresholds(args.fail_on)
        a_env, b_env = variants.parse_env(args.a_env, "--a-env"), variants.parse_env(args.b_env, "--b-env")
        pythons = {name: variants.check_python(path, f"--{name}-python") if path else sys.executable
                   for name, path in (("a", args.a_python), ("b", args.b_python))}
        if not (args.base or pythons["a"] != pythons["b"] or a_env != b_env):
            raise UserError("A and B are the same: give --base REV, --a-python/--b-python or --a-env/--b-env")
        base = variants.default_base(variants.PACKAGE_ROOT) if args.base == "auto" else args.base
        commit = variants.resolve_revision(variants.PACKAGE_ROOT, base) if base else None
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
            folder = abtest.process_folder(args.results_dir, stamp)
            if args.fresh_processes:
                measured = abtest.alternate([a, b], args.rounds, suite_args, folder, report=_say)
                rows, files = abtest.ab_rows(measured), [str(done.result_file) for done in measured]
            else:
                by_variant = abtest.take_turns([a, b], args.rounds, ["--steps", str(STEPS_PER_TURN), *suite_args],
                                               folder, report=_say)
                rows, files = abtest.turn_rows(by_variant), [str(path) for path in by_variant.values()]
        from resnet_perf.fingerprint import fingerprint

        saved = save_rows(args.results_dir, "ab", rows, {"machine": fingerprint()}, a=a.describe(), b=b.describe(),
                          rounds=args.rounds, mode="fresh processes" if args.fresh_processes else "in turn",
                          suite_args=suite_args, process_files=files)
        frame = abtest.verdict_frame(rows, args.alpha)
        failing = abtest.failures(frame, args.fail_on)
    except UserError as error:
        return cli.fail(error)
    except KeyboardInterrupt as stop:  # the suite processes are stopped and the worktree removed on the way out
        return cli.fail(UserError("interrupted: no A/B result written"), cli.interrupted_status(stop))
    from resnet_perf.tables import tabulate_frame

    print(tabulate_frame(abtest.display(frame, args.alpha)))
    print(f"rows written to {saved}")
    if args.fail_on:
        rules = ", ".join(map(str, args.fail_on))
        if failing.empty:
            print(f"no slowdown of B beyond {rules} ({1 - args.alpha:.0%} intervals over {args.rounds} rounds)")
        else:
            print(f"B SLOWER than A beyond {rules} in: "
                  + ", ".join(f"{row['config']} {row['step']} ({row['B/A']:.3f}x)" for _i, row in failing.iterrows()))
    return 1 if not failing.empty else 0


def _say(line: str) -> None:
    print(line, flush=True)


def _label(tree: str, python: str | None, env: dict[str, str]) -> str:
    return " ".join([tree, *([f"python {python}"] if python else []), *(f"{k}={v}" for k, v in env.items())])


if __name__ == "__main__":
    sys.exit(main())
