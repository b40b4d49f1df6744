"""The largest batch that runs: the search on a fake probe, and a real probe under a memory limit."""
from __future__ import annotations

import tempfile

import pytest

from resnet_perf.bench.maxbatch import find_max_batch, search_max_batch
from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError


def fits_up_to(largest: int, asked: list[int]):
    def fits(batch: int) -> tuple[bool, str]:
        asked.append(batch)
        return (True, "") if batch <= largest else (False, "out of memory")
    return fits


def test_doubling_then_bisection():
    asked: list[int] = []
    answer = search_max_batch(fits_up_to(37, asked), start=16)
    assert answer.largest == 37 and not answer.reached_ceiling
    assert asked == [16, 32, 64, 48, 40, 36, 38, 37]
    assert answer.probes[2] == (64, False, "out of memory")


def test_a_start_that_does_not_fit_is_halved_and_known_failures_are_not_probed_again():
    asked: list[int] = []
    assert search_max_batch(fits_up_to(37, asked), start=100).largest == 37
    assert asked == [100, 50, 25, 37, 43, 40, 38]
    assert search_max_batch(fits_up_to(0, []), start=8).largest is None


def test_the_ceiling_stops_the_search():
    answer = search_max_batch(fits_up_to(10**6, []), start=3, ceiling=20)
    assert answer.largest == 20 and answer.reached_ceiling
    with pytest.raises(UserError, match="starts at the batch given, which must be in"):
        search_max_batch(fits_up_to(1, []), start=0)


def test_a_real_probe_stopped_at_the_memory_limit_does_not_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the probes' temporary directory goes
    row = find_max_batch(RunConfig(depth=18, batch_size=2, image_size=32), limit_bytes=2**20)
    assert row["bench"] == "max_batch" and row["max_batch"] is None
    assert [batch for batch, _fits, _why in row["max_batch_probes"]] == [2, 1]
    assert all("passed the memory limit" in why for _batch, _fits, why in row["max_batch_probes"])
    assert not list(tmp_path.iterdir())  # the killed probes' TMPDIR removed with whatever they wrote
