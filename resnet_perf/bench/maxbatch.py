"""The largest batch of a configuration that runs: doubling from a batch that fits, then bisection
between the last batch that fit and the first that did not.

A probe is the memory probe of ``resnet_perf.bench.memory``: the step made, called once and run for a
few steps in a fresh process, stopped when its resident memory passes a limit (on a GPU, the
device's own out-of-memory error decides).  "Fits" means the probe finished; out of memory, the
limit passed or the kernel's OOM killer mean it does not; any other failure is an error, not a
size.  The search assumes that a batch that fits means every smaller one fits.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resnet_perf.bench.memory import MemoryProbeError, measure_peak_memories
from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError

DEFAULT_CEILING = 4096
MEMORY_SHARE = 0.9
"""Without a limit given, a probe may use this share of the machine's memory."""


@dataclass
class MaxBatch:
    """The search's answer: the largest batch that fit (``None``: not even the first), each probe as
    ``(batch, fits, why not)`` in the order run, and whether the ceiling stopped the search."""

    largest: int | None = None
    probes: list[tuple[int, bool, str]] = field(default_factory=list)
    reached_ceiling: bool = False


def check_search_start(start: int, ceiling: int = DEFAULT_CEILING) -> None:
    """A ``UserError`` unless the search can start at ``start`` (checked before anything is measured)."""
    if not 1 <= start <= ceiling:
        raise UserError(f"the largest-batch search starts at the batch given, which must be in [1, {ceiling}], "
                        f"got {start}")


def search_max_batch(fits: Callable[[int], tuple[bool, str]], start: int = 1, ceiling: int = DEFAULT_CEILING,
                     report: Callable[[str], None] = lambda line: None) -> MaxBatch:
    """The largest batch in ``[1, ceiling]`` for which ``fits(batch)`` says ``(True, "")``: double from
    ``start`` while it fits (halving first while it does not), then bisect the gap."""
    check_search_start(start, ceiling)
    answer = MaxBatch()

    def probe(batch: int) -> bool:
        ok, why = fits(batch)
        answer.probes.append((batch, ok, why))
        report(f"batch {batch}: {'fits' if ok else 'does not fit (' + why + ')'}")
        return ok

    batch, high = start, None  # high: the smallest batch known not to fit
    while not probe(batch):  # the start does not fit: halve until one does
        high = batch
        if batch == 1:
            return answer
        batch //= 2
    low = batch  # the largest batch known to fit
    while high is None:
        if low == ceiling:
            answer.largest, answer.reached_ceiling = low, True
            return answer
        batch = min(low * 2, ceiling)
        if probe(batch):
            low = batch
        else:
            high = batch
    while high - low > 1:
        middle = (low + high) // 2
        if probe(middle):
            low = middle
        else:
            high = middle
    answer.largest = low
    return answer


def default_limit_bytes() -> int:
    """``MEMORY_SHARE`` of this machine's memory."""
    import psutil

    return int(psutil.virtual_memory().total * MEMORY_SHARE)


def find_max_batch(config: RunConfig, mode: str = "train", limit_bytes: int | None = None,
                   ceiling: int = DEFAULT_CEILING, report: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """The result row of a search for ``config`` (starting at its batch), each probe in a fresh
    process under ``limit_bytes``."""
    limit = limit_bytes or default_limit_bytes()

    def fits(batch: int) -> tuple[bool, str]:
        probed = config.replace(batch_size=batch)
        outcome = measure_peak_memories([(probed, mode)], processes=1, limit_bytes=limit)[(probed.run_id, mode)]
        if isinstance(outcome, MemoryProbeError):
            if not outcome.unsupported:
                raise outcome
            return False, str(outcome)
        return True, ""

    answer = search_max_batch(fits, config.batch_size, ceiling, report)
    return {"bench": "max_batch", **config.as_dict(), "mode": mode, "max_batch": answer.largest,
            "max_batch_probes": [list(probe) for probe in answer.probes], "reached_ceiling": answer.reached_ceiling,
            "memory_limit_bytes": limit}
