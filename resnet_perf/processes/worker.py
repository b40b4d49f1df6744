"""A worker process of ``resnet_perf.processes.isolated``: the step cases of one set of process settings,
timed a block at a time when the suite's coordinator says so (``resnet_perf.bench.rounds.serve``); its
rows go to a JSON file once the coordinator says stop.

    python -m resnet_perf.processes.worker --cases CASES.json --turns PIPES/NAME --out ROWS.json
        [--exact-blocks] [--trace-dir DIR --trace-steps N [--breakdown] [--keep-traces]]

Started by the suite with the settings' environment (``resnet_perf.machine.switches``); it writes nothing
to stdout, where oneDNN's log of the primitives it creates goes.  Stopped by SIGTERM, it writes the
rounds it completed.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from resnet_perf import cli
from resnet_perf.bench.rounds import StepCases, Tracing, serve
from resnet_perf.bench.turns import Turns
from resnet_perf.config import RunConfig
from resnet_perf.files import write_json_atomic
from resnet_perf.machine.switches import ProcessSettings, prepare_process


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resnet_perf.processes.worker",
                                     description="Internal: measure step cases in turns, for resnet_perf.processes.isolated.")
    parser.add_argument("--cases", type=Path, required=True, help='JSON: {"cases": [[RunConfig fields, mode], ...]}')
    parser.add_argument("--turns", required=True, help="the pipes' prefix (resnet_perf.bench.turns)")
    parser.add_argument("--out", type=Path, required=True, help="where the rows go (JSON)")
    parser.add_argument("--exact-blocks", action="store_true",
                        help="a block is each case's steps, not calibrated (resnet_perf.bench.rounds.StepCases)")
    parser.add_argument("--trace-dir", type=Path, help="trace every case after its rounds, into this folder")
    parser.add_argument("--trace-steps", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="put each trace's breakdown into the rows")
    parser.add_argument("--keep-traces", action="store_true", help="name the traces in the rows")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.take_interrupts()
    cases = [(RunConfig(**fields), mode) for fields, mode in json.loads(args.cases.read_text())["cases"]]

    prepare_process(ProcessSettings.of(cases[0][0]))
    tracing = (Tracing(args.trace_dir, args.trace_steps, args.breakdown, args.keep_traces)
               if args.trace_dir else None)
    step_cases = StepCases(cases, report=lambda line: print(line, file=sys.stderr, flush=True), tracing=tracing,
                           exact_blocks=args.exact_blocks)
    status = 0
    try:
        serve(step_cases, Turns(args.turns))
    except KeyboardInterrupt as stop:
        status = cli.interrupted_status(stop)
    finally:
        write_json_atomic(args.out, {"rows": list(step_cases.rows().values())})
    return status


if __name__ == "__main__":
    cli.exit_process(main())
