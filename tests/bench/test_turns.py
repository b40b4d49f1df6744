"""Processes timing their blocks in turn (resnet_perf.bench.turns, resnet_perf.bench.rounds.serve): the order,
nothing running beside a timed block (also after a process's last block), a process that dies or stalls."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resnet_perf.analysis import sequential

from resnet_perf.analysis.sequential import Budget
from resnet_perf.bench import turns
from resnet_perf.bench.rounds import run_rounds
from resnet_perf.bench.turns import Coordinator, RemoteCases, make_pipes
from resnet_perf.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def fake_suite(pipes: Path, name: str, cases: int, log: Path, pace: float = 0.01,
               die_after: int | None = None, stall_after: int | None = None) -> subprocess.Popen:
    """A process serving ``cases`` fake cases as the suite does (``rounds.serve``): it logs when it
    builds, when each block starts and ends, and when it writes its results and exits."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from resnet_perf.bench.rounds import serve
        from resnet_perf.bench.turns import Turns

        def say(text):
            with open({str(log)!r}, "a") as out:
                out.write(text + " ")

        class Cases:
            stopped = None
            blocks = 0
            def build(self):
                say("{name}-built")
                return [("case%d" % index, "forward") for index in range({cases})]
            def time_block(self, key):
                if self.blocks == {die_after!r}:
                    sys.exit(3)
                if self.blocks == {stall_after!r}:
                    os.kill(os.getpid(), signal.SIGSTOP)
                self.blocks += 1
                say("{name}:" + key[0] + "[")
                time.sleep({pace})
                say("]")
                return {pace}
            def trace(self, key):
                say("{name}:trace-" + key[0])

        serve(Cases(), Turns({str(pipes / name)!r}))
        say("{name}-exit")
    """)
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)


def _run(pipes: Path, processes: dict, budget: Budget, comparisons=lambda units: []):
    coordinator = Coordinator(pipes, processes, describe=lambda name: f"process {name}")
    try:
        remote = RemoteCases(coordinator, list(processes), report=lambda _: None)
        outcome = run_rounds(remote.units, remote.time_block, comparisons(remote.units), budget,
                             report=lambda _: None)
        coordinator.stop_all()
    finally:
        coordinator.close()
    return outcome


def test_blocks_run_one_at_a_time_round_major_and_nobody_exits_before_the_last_block(tmp_path):
    make_pipes(tmp_path, ["A", "B"])
    log = tmp_path / "order.txt"
    processes = {"A": fake_suite(tmp_path, "A", 2, log), "B": fake_suite(tmp_path, "B", 1, log)}
    outcome = _run(tmp_path, processes, Budget(max_rounds=3))
    assert [process.wait(timeout=60) for process in processes.values()] == [0, 0]
    assert outcome.rounds == 3
    events = log.read_text().split()
    blocks = [event.rstrip("[") for event in events if event.endswith("[")]
    assert events[:2] == ["A-built", "B-built"]  # building is a turn of its own, one process at a time
    assert blocks == ["A:case0", "A:case1", "B:case0",  # round 1
                      "B:case0", "A:case1", "A:case0",  # round 2, the other way round
                      "A:case0", "A:case1", "B:case0"]  # round 3
    # Every block's start is followed by its own end before anything else happens: nothing runs beside it.
    body = [event for event in events if event not in ("A-built", "B-built", "A-exit", "B-exit")]
    assert all(start.endswith("[") and end == "]" for start, end in zip(body[::2], body[1::2]))
    last_block_end = max(index for index, event in enumerate(events) if event == "]")
    assert min(events.index("A-exit"), events.index("B-exit")) > last_block_end


def test_a_pair_of_processes_stops_when_the_verdict_is_decided(tmp_path, monkeypatch):
    monkeypatch.setattr(sequential, "MIN_SPAN_S", 0.0)  # its blocks are 10-20 ms
    make_pipes(tmp_path, ["A", "B"])
    log = tmp_path / "order.txt"
    processes = {"A": fake_suite(tmp_path, "A", 1, log, pace=0.01), "B": fake_suite(tmp_path, "B", 1, log, pace=0.02)}
    outcome = _run(tmp_path, processes, Budget(seconds=60),
                   comparisons=lambda units: [(("B", ("case0", "forward")), ("A", ("case0", "forward")))])
    assert [process.wait(timeout=60) for process in processes.values()] == [0, 0]
    (verdict,) = outcome.verdicts.values()
    assert verdict.kind == "slower" and outcome.rounds == 3 and "every verdict decided" in outcome.stopped_because


@pytest.mark.parametrize("fault, message", [
    ({"die_after": 1}, "process B ended \\(exit 3\\)"),
    ({"stall_after": 2}, "process B did not answer within 2 s \\(stalled or stopped\\?\\)"),
])
def test_a_process_that_dies_or_stalls_is_named_instead_of_waited_for(tmp_path, monkeypatch, fault, message):
    """A stall is found after a deadline from the blocks measured (here its floor, lowered to 2 s)."""
    monkeypatch.setattr(turns, "BLOCK_DEADLINE_FLOOR_S", 2.0)
    make_pipes(tmp_path, ["A", "B"])
    log = tmp_path / "order.txt"
    processes = {"A": fake_suite(tmp_path, "A", 1, log), "B": fake_suite(tmp_path, "B", 1, log, **fault)}
    try:
        with pytest.raises(UserError, match=message):
            _run(tmp_path, processes, Budget(max_rounds=5))
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
