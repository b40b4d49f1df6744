"""Two processes timing their blocks in turn (resnet_perf.turns): the order, a process that dies."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resnet_perf.errors import UserError
from resnet_perf.turns import Coordinator, alternate_blocks, make_pipes, rounds_in_turn

ROOT = Path(__file__).resolve().parent.parent


def fake_suite(pipes: Path, name: str, blocks: int, log: Path, die_after: int | None = None) -> subprocess.Popen:
    """A process that builds in its first turn, announces ``blocks`` blocks and logs each one it is
    given, as the suite does."""
    script = textwrap.dedent(f"""
        import sys
        from resnet_perf.turns import Turns
        turns = Turns({str(pipes / name)!r})
        turns.wait()
        with open({str(log)!r}, "a") as out:
            out.write("{name}-built ")
        turns.announce({blocks})
        for index in range({blocks}):
            if index == {die_after!r}:
                sys.exit(3)
            turns.wait()
            with open({str(log)!r}, "a") as out:
                out.write("{name}%d " % index)
            turns.done()
    """)
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)


def test_block_i_of_a_and_b_run_back_to_back_in_alternating_order(tmp_path):
    make_pipes(tmp_path, ["A", "B"])
    log = tmp_path / "order.txt"
    processes = {"A": fake_suite(tmp_path, "A", 4, log), "B": fake_suite(tmp_path, "B", 3, log)}
    coordinator = Coordinator(tmp_path, processes, turn_timeout_s=60)
    counts = alternate_blocks(coordinator, ("A", "B"), report=lambda _: None)
    coordinator.close()
    assert [process.wait(timeout=60) for process in processes.values()] == [0, 0]
    assert counts == {"A": 4, "B": 3}
    assert log.read_text().split() == ["A-built", "B-built", "A0", "B0", "B1", "A1", "A2", "B2", "A3"]


def test_workers_build_one_at_a_time_then_take_whole_rounds_in_alternating_order(tmp_path):
    make_pipes(tmp_path, ["A", "B", "C"])
    log = tmp_path / "order.txt"
    # cases per worker 2, 1, 2; two rounds, then one traced block per case
    processes = {name: fake_suite(tmp_path, name, cases * 3, log) for name, cases in (("A", 2), ("B", 1), ("C", 2))}
    coordinator = Coordinator(tmp_path, processes, turn_timeout_s=60)
    counts = rounds_in_turn(coordinator, ["A", "B", "C"], rounds=2, extra_blocks=1, report=lambda _: None)
    coordinator.close()
    assert [process.wait(timeout=60) for process in processes.values()] == [0, 0, 0]
    assert counts == {"A": 6, "B": 3, "C": 6}
    assert log.read_text().split() == ["A-built", "B-built", "C-built",
                                       "A0", "A1", "B0", "C0", "C1",  # round 1
                                       "C2", "C3", "B1", "A2", "A3",  # round 2, the other way round
                                       "A4", "A5", "B2", "C4", "C5"]  # the traces, worker by worker


def test_a_process_that_dies_is_named_instead_of_waited_for(tmp_path):
    make_pipes(tmp_path, ["A", "B"])
    log = tmp_path / "order.txt"
    processes = {"A": fake_suite(tmp_path, "A", 3, log), "B": fake_suite(tmp_path, "B", 3, log, die_after=1)}
    coordinator = Coordinator(tmp_path, processes, turn_timeout_s=60, describe=lambda name: f"variant {name}")
    try:
        with pytest.raises(UserError, match="variant B ended \\(exit 3\\)"):
            alternate_blocks(coordinator, ("A", "B"), report=lambda _: None)
    finally:
        coordinator.close()
        for process in processes.values():
            process.kill()
            process.wait()
