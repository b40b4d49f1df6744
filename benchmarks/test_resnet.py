"""Forward, training-mode forward, forward+backward and training-step throughput, and peak memory,
per configuration.

The step cases are measured together, in rounds (``resnet_perf.bench.rounds``): when the first of them
runs, every selected step case is built (its first call, trace + compile, timed apart) and warmed
up, then each round times a block of finished steps of every case, round-major, so a slow spell of
a shared machine falls on all cases alike, until every switch verdict (each configuration against
its fp32 baseline) is decided or ``--budget`` is spent (``resnet_perf.analysis.sequential``).  Each case stays one pytest
test: it reports its own row (raw step times of every round) and fails or skips on its own.  The
first step case also takes the matmul peak readings MFU divides by (the last ones follow the last
case: see conftest).  When some case needs process settings of its own (``--threads``, ``--onednn
off``, ``--fpmath bf16``, ``amp_bf16``), the cases are measured the same way in worker processes
that take turns (``resnet_perf.processes.isolated``).  ``--latency`` adds batch-1 forward cases
(``test_latency``), ``--breakdown`` a trace of each case after its timing and where its time went.

The memory cases measure in a process of their own each, all probed when the first of them runs
(two processes at a time on a CPU: ``resnet_perf.bench.memory``), and are not pytest-benchmark benchmarks: they
request the ``benchmark`` fixture only so that ``--benchmark-only`` runs them, never time anything
with it, and so never enter pytest-benchmark's step-time tables or ``--benchmark-compare-fail``.
Their figures are in the suite's own JSON and table.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from resnet_perf.analysis.sequential import Budget
from resnet_perf.analysis.speedup import switch_comparisons
from resnet_perf.bench.maxbatch import find_max_batch
from resnet_perf.bench.memory import MemoryProbeError, measure_peak_memories, probe_processes
from resnet_perf.bench.rounds import StepCases, Tracing, serve
from resnet_perf.bench.rows import memory_row, skipped_row
from resnet_perf.bench.turns import Turns
from resnet_perf.config import MODES
from resnet_perf.errors import UserError
from resnet_perf.processes.isolated import IsolatedCases, needs_workers

STEP_TESTS = {**{f"test_{mode}": mode for mode in MODES}, "test_latency": "forward"}


def _progress_writer(config: pytest.Config) -> Callable[[str], None]:
    """Lines shown as they happen (pytest captures a test's output until it ends; the rounds of every
    case run inside the first step test)."""
    plugins = config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"resnet_perf: {line}")
    return write


class SuiteSteps:
    """The session's step cases: measured once, all together, when the first of them runs."""

    def __init__(self, session: pytest.Session, recorder, tracing: Tracing | None) -> None:
        cases = [(item.callspec.params.get("run_config") or item.callspec.params["latency_config"],
                  STEP_TESTS[item.originalname])
                 for item in session.items if getattr(item, "originalname", None) in STEP_TESTS
                 and item.module.__name__ == __name__]
        option, report = session.config.option, _progress_writer(session.config)
        self.turns = Turns(option.turns) if option.turns else None
        self.comparisons = switch_comparisons(cases)
        self.budget = Budget(option.budget, option.rounds)
        if needs_workers([config for config, _mode in cases]):
            self.cases = IsolatedCases(cases, report=report, tracing=tracing)
        else:
            self.cases = StepCases(cases, report=report, tracing=tracing)
        self.recorder = recorder
        self.rows: dict[tuple[str, str], dict[str, Any]] | None = None
        self.failure = ""
        """Why the rounds ended early, when a process they ran in failed (``UserError``)."""

    def measure_once(self) -> None:
        """Measure every case (once per session); the rows go to the recorder, also when stopped.
        Under ``python -m resnet_perf.ab`` (``--turns``) its coordinator runs the rounds."""
        if self.rows is not None:
            return
        if not self.recorder.peak_readings:
            self.recorder.probe_peaks()
        try:
            if self.turns:
                serve(self.cases, self.turns)
            else:
                outcome = self.cases.measure(self.comparisons, self.budget)
                self.recorder.rounds = {"rounds": outcome.rounds, "stopped_because": outcome.stopped_because,
                                        "budget_s": self.budget.seconds, "max_rounds": self.budget.max_rounds}
        except UserError as error:  # a worker that stalled or died: every case fails with this one line
            self.failure = str(error)
        finally:  # Ctrl-C or SIGTERM during the rounds: keep every round completed so far
            self.rows = self.cases.rows()
            for row in self.rows.values():
                self.recorder.add(row)


@pytest.fixture(scope="module")
def suite_steps(request: pytest.FixtureRequest, recorder, tmp_path_factory) -> SuiteSteps:
    option = request.config.option
    tracing = None
    if option.profile_dir:
        tracing = Tracing(Path(option.profile_dir), option.profile_steps, breakdown=option.breakdown)
    elif option.breakdown:  # traces only for their breakdown: in pytest's temporary folder
        tracing = Tracing(tmp_path_factory.mktemp("breakdown-traces"), option.profile_steps, breakdown=True, keep=False)
    elif option.explain and not option.turns:  # the answer's cases only, so that it can say why
        tracing = Tracing(tmp_path_factory.mktemp("answer-traces"), option.profile_steps, breakdown=True, keep=False,
                          answer_only=True)
    return SuiteSteps(request.session, recorder, tracing)


def _record_in_pytest_benchmark(benchmark, times: Sequence[float]) -> None:
    """Hand the case's step times (measured in rounds, outside this test) to pytest-benchmark, for its
    table, JSON and --benchmark-compare.  It has no public call for times measured elsewhere
    (ionelmc/pytest-benchmark#52): this does what its ``pedantic()`` does with each timed round."""
    benchmark._mode = "resnet_perf rounds"
    stats = benchmark._make_stats(1)
    for seconds in times:
        stats.update(seconds)


def _report_step(benchmark, suite_steps: SuiteSteps, config, mode: str) -> None:
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled: nothing is measured")
    suite_steps.measure_once()
    key = (config.run_id, mode)
    row = suite_steps.rows.get(key)
    if row is None:
        pytest.fail(f"{config.run_id} {mode}: not measured: {suite_steps.failure or 'the rounds ended early'}",
                    pytrace=False)
    suite_steps.cases.release(key)
    if row.get("skipped"):
        pytest.skip(row["skipped"])
    _record_in_pytest_benchmark(benchmark, row["step_times_s"])
    benchmark.extra_info.update(row)  # the whole row, raw step times too: compare reads --benchmark-json
    if row.get("error"):
        pytest.fail(f"{config.run_id} {mode}: {row['error']}", pytrace=False)
    if suite_steps.failure:  # measured, but its rounds were cut short
        pytest.fail(f"{config.run_id} {mode}: {suite_steps.failure} (its {row.get('rounds', 0)} finished rounds are "
                    "in the results)", pytrace=False)


def test_forward(benchmark, suite_steps, run_config):
    _report_step(benchmark, suite_steps, run_config, "forward")


def test_train_forward(benchmark, suite_steps, run_config):
    _report_step(benchmark, suite_steps, run_config, "train_forward")


def test_fwd_bwd(benchmark, suite_steps, run_config):
    _report_step(benchmark, suite_steps, run_config, "fwd_bwd")


def test_train(benchmark, suite_steps, run_config):
    _report_step(benchmark, suite_steps, run_config, "train")


def test_latency(benchmark, suite_steps, latency_config):
    """Batch-1 forward latency (``--latency``): its row's median and p99 step times."""
    _report_step(benchmark, suite_steps, latency_config, "forward")


class SuiteMemory:
    """The session's memory cases: probed once, all together (``probe_processes()`` at a time, each
    in a fresh process), when the first of them runs."""

    def __init__(self, session: pytest.Session) -> None:
        self.cases = [(item.callspec.params["run_config"], item.callspec.params["mode"]) for item in session.items
                      if getattr(item, "originalname", None) == "test_memory" and item.module.__name__ == __name__]
        self.report = _progress_writer(session.config)
        self.outcomes: dict[tuple[str, str], dict[str, Any] | MemoryProbeError] | None = None

    def outcome(self, config, mode: str) -> dict[str, Any] | MemoryProbeError:
        if self.outcomes is None:
            processes = probe_processes()
            self.report(f"probing the memory of {len(self.cases)} case(s), {processes} process(es) at a time")
            self.outcomes = measure_peak_memories(self.cases, processes, report=self.report)
        return self.outcomes[(config.run_id, mode)]


@pytest.fixture(scope="module")
def suite_memory(request: pytest.FixtureRequest) -> SuiteMemory:
    return SuiteMemory(request.session)


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_memory(benchmark, recorder, suite_memory, run_config, mode):
    """Peak memory in a fresh process per case (not timed: see the module docstring)."""
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled: nothing is measured")
    outcome = suite_memory.outcome(run_config, mode)
    if isinstance(outcome, MemoryProbeError):
        if not outcome.unsupported:
            raise outcome
        recorder.add(skipped_row(run_config, "memory", mode, str(outcome)))
        pytest.skip(str(outcome))
    recorder.add(memory_row(run_config, mode, outcome))


def test_max_batch(benchmark, request, recorder, max_batch_config):
    """The largest training batch that runs (``--find-max-batch``), each probe a fresh process (not
    timed, like the memory cases)."""
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled: nothing is measured")
    option = request.config.option
    limit = int(option.max_batch_memory * 2**30) if option.max_batch_memory else None
    report = _progress_writer(request.config)
    report(f"largest batch of {max_batch_config.run_id} train, from batch {max_batch_config.batch_size}")
    recorder.add(find_max_batch(max_batch_config, "train", limit, report=report))
