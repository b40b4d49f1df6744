"""Step cases measured in worker processes, one per set of process settings, taking turns.

Threads, oneDNN on/off, oneDNN's math mode and grappler's amp_bf16 are settings of a whole process
(``resnet_perf.machine.switches``).  When some case of a run needs settings other than TensorFlow's
defaults, every step case of the run (the defaults too, so no case has its process to itself while
another shares one) is measured in a worker process (``python -m resnet_perf.processes.worker``) per distinct
setting.  The workers build their cases one after another, then the suite's schedule and stopping
rule (``resnet_perf.bench.rounds.run_rounds``) runs over all their cases, one block at a time in turn
(``resnet_perf.bench.turns``): round ``r`` of every case back to back, so the rounds of two settings pair
up as the rounds of one process's cases do and ``compare``'s speed-ups hold across them.  No worker
exits before every block of every worker is timed.

Each worker runs with oneDNN's primitive-creation log on (stdout, a file); a switch the log says
did not take effect makes its cases' rows errors (``switches.primitive_problems``).  Interrupted,
the workers are stopped with SIGTERM and each keeps the rounds it completed.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from resnet_perf.analysis.sequential import Budget
from resnet_perf.bench.rounds import CaseKey, Comparison, RoundsOutcome, Tracing, run_rounds
from resnet_perf.bench.turns import Coordinator, RemoteCases, make_pipes
from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError
from resnet_perf.machine.switches import VERBOSE_CREATIONS, ProcessSettings, primitive_problems
from resnet_perf.spawn import last_words, module_command, package_env, stop_process

STOP_WAIT_S = 120


def needs_workers(configs: Sequence[RunConfig]) -> bool:
    """Whether some config needs process settings other than the suite's defaults (``ProcessSettings.is_default``)."""
    return any(not ProcessSettings.of(config).is_default for config in configs)


def group_cases(cases: Sequence[tuple[RunConfig, str]]) -> dict[ProcessSettings, list[tuple[RunConfig, str]]]:
    """The cases per set of process settings, in the order they first appear."""
    groups: dict[ProcessSettings, list[tuple[RunConfig, str]]] = {}
    for config, mode in cases:
        groups.setdefault(ProcessSettings.of(config), []).append((config, mode))
    return groups


@dataclasses.dataclass
class _Worker:
    name: str
    settings: ProcessSettings
    cases: list[tuple[RunConfig, str]]
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def out(self) -> Path:
        return self.folder / f"{self.name}-rows.json"

    @property
    def primitive_log(self) -> Path:
        return self.folder / f"{self.name}-onednn.log"

    @property
    def messages(self) -> Path:
        return self.folder / f"{self.name}-stderr.log"

    def start(self, tracing: Tracing | None, exact_blocks: bool = False) -> None:
        cases_file = self.folder / f"{self.name}-cases.json"
        cases_file.write_text(json.dumps({"cases": [[dataclasses.asdict(config), mode] for config, mode in self.cases]}))
        args = ["--cases", cases_file, "--turns", self.folder / self.name, "--out", self.out]
        args += ["--exact-blocks"] if exact_blocks else []
        if tracing:
            args += ["--trace-dir", tracing.directory, "--trace-steps", tracing.steps]
            args += [flag for flag, wanted in (("--breakdown", tracing.breakdown), ("--keep-traces", tracing.keep))
                     if wanted]
        with self.primitive_log.open("w") as log, self.messages.open("w") as messages:
            # the folder as its TMPDIR: removed after the run, with anything of a worker that had to be killed
            environment = self.settings.environment(package_env(self.folder), onednn_log=VERBOSE_CREATIONS)
            self.process = subprocess.Popen(module_command("resnet_perf.processes.worker", args), stdout=log, stderr=messages,
                                            env=environment)

    def stop(self) -> None:
        """Ask a running worker to stop (it writes its completed rounds), kill it if it does not."""
        if self.process is not None:
            stop_process(self.process, STOP_WAIT_S)

    def last_words(self) -> str:
        return last_words(self.messages.read_text(errors="replace") if self.messages.exists() else "")

    def rows(self) -> list[dict[str, Any]]:
        """Its rows, each an error where the primitive log says a switch did not take effect."""
        if not self.out.exists():
            code = self.process.poll() if self.process else None
            raise UserError(f"the worker for {self.settings.describe()} wrote no rows (exit {code}): {self.last_words()}")
        rows = json.loads(self.out.read_text())["rows"]
        with self.primitive_log.open(errors="replace") as log:
            problems = primitive_problems(self.settings, log)
        for row in rows:
            row["process_settings"] = self.settings.describe()
            if problems and not row.get("skipped"):
                row["error"] = "; ".join(filter(None, [row.get("error"), *problems]))
        return rows


class IsolatedCases:
    """``StepCases``'s interface (``measure``, ``rows``, ``release``) over worker processes."""

    def __init__(self, cases: Sequence[tuple[RunConfig, str]], report: Callable[[str], None] = print,
                 tracing: Tracing | None = None, exact_blocks: bool = False) -> None:
        self.groups = group_cases(cases)
        self.report, self.tracing, self.exact_blocks = report, tracing, exact_blocks
        self._rows: dict[CaseKey, dict[str, Any]] = {}

    def measure(self, comparisons: Sequence[Comparison], budget: Budget, **rule: float) -> RoundsOutcome:
        """Start the workers, let them build in turn, time rounds over all their cases until the
        comparisons (of case keys) are decided or the budget is spent, trace when asked, then stop them."""
        with tempfile.TemporaryDirectory(prefix="resnet_perf-workers-") as folder:
            workers = [_Worker(f"w{number}", settings, cases, Path(folder))
                       for number, (settings, cases) in enumerate(self.groups.items())]
            make_pipes(Path(folder), [worker.name for worker in workers])
            for worker in workers:
                self.report(f"worker {worker.name}: {len(worker.cases)} case(s) with {worker.settings.describe()}")
                worker.start(self.tracing, self.exact_blocks)
            processes = {worker.name: worker.process for worker in workers}
            describe = {worker.name: f"the worker for {worker.settings.describe()}" for worker in workers}
            coordinator = Coordinator(Path(folder), processes, describe=describe.__getitem__)
            try:
                remote = RemoteCases(coordinator, [worker.name for worker in workers], self.report)
                unit_of = {unit[1]: unit for unit in remote.units}  # case key -> (worker, case key)
                wanted = [(unit_of[new], unit_of[old]) for new, old in comparisons if new in unit_of and old in unit_of]
                outcome = run_rounds(remote.units, remote.time_block, wanted, budget, self.report, **rule)
                if self.tracing:
                    traced = self.tracing.units(remote.units, outcome.medians, wanted)
                    for unit in traced:
                        remote.trace(unit)
                    self.report(f"{len(traced)} case(s) traced")
                coordinator.stop_all()  # only now: no worker exits beside another's timed block
                for worker in workers:
                    worker.process.wait(STOP_WAIT_S)
                return RoundsOutcome({unit[1]: medians for unit, medians in outcome.medians.items()},
                                     {(new[1], old[1]): verdict for (new, old), verdict in outcome.verdicts.items()},
                                     outcome.rounds, outcome.stopped_because)
            finally:
                coordinator.close()
                for worker in workers:
                    worker.stop()
                self._collect(workers)

    def _collect(self, workers: Sequence[_Worker]) -> None:
        for worker in workers:
            try:
                rows = worker.rows()
            except UserError as error:
                self.report(str(error))
                continue
            for row in rows:
                self._rows[(row["run_id"], row["mode"])] = row

    def rows(self) -> dict[CaseKey, dict[str, Any]]:
        return self._rows

    def release(self, key: CaseKey) -> None:
        """Nothing to drop: the cases lived in the workers."""
