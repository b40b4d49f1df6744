"""What the CPU gave a measured block of steps: this process's CPU time, the machine's steal time and
this cgroup's throttling, read before and after the block.

A step row keeps the sums (``cpu_time_s``, ``steal_s``, ``throttled_s``) and ``cpu_threads`` (the
cores this process may run on, the size of TensorFlow's default thread pools); its CPU utilisation
is derived when read: CPU time / (wall time x threads).  A row whose steps got much less CPU than
usual ran starved (another program on a core, a hypervisor taking time) and is noted so.
"""
from __future__ import annotations

import math
import numbers
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STEAL_FIELD = 7
"""``steal`` is the 8th number of /proc/stat's ``cpu`` line (man 5 proc), in clock ticks."""

CGROUP_STAT_FILES = ("/sys/fs/cgroup/cpu.stat", "/sys/fs/cgroup/cpu/cpu.stat", "/sys/fs/cgroup/cpu,cpuacct/cpu.stat",
                     "/sys/fs/cgroup/unified/cpu.stat")
"""Where cgroup v2 (``throttled_usec``) or v1 (``throttled_time``, ns) keeps throttling of the root or a
container's own cgroup, as mounted inside it."""

LOW_UTILISATION = 0.80
"""Below this share of its threads' time a row is noted.  On this project's 2-core VM (AMD EPYC, no
AMX) the default step cases got 88-97% of 2 threads on a quiet machine, and the ResNet-50 cases
65-79% in a run where another program took one core for a minute of the rounds (README, "CPU time")."""


@dataclass(frozen=True)
class CpuCounters:
    """Cumulative counters; the difference of two readings is what a block got."""

    process_s: float
    steal_s: float | None
    throttled_s: float | None

    def since(self, earlier: CpuCounters) -> CpuCounters:
        def delta(now: float | None, then: float | None) -> float | None:
            return None if now is None or then is None else now - then
        return CpuCounters(self.process_s - earlier.process_s, delta(self.steal_s, earlier.steal_s),
                           delta(self.throttled_s, earlier.throttled_s))


def row_fields(blocks: list[CpuCounters], intra_op_threads: int | None = None) -> dict[str, Any]:
    """What the blocks of a case got, summed, as a row's fields (a sum is ``None`` where any part is).
    ``cpu_threads`` is the cores the case could use: this process's, or fewer where its intra-op
    thread pool is smaller (a case told to use one thread is not starved at 50% of two cores)."""
    def total(values: list[float | None]) -> float | None:
        return None if any(value is None for value in values) else sum(values)
    threads = min(cpu_threads(), intra_op_threads) if intra_op_threads else cpu_threads()
    return {"cpu_time_s": sum(block.process_s for block in blocks), "cpu_threads": threads,
            "steal_s": total([block.steal_s for block in blocks]),
            "throttled_s": total([block.throttled_s for block in blocks])}


def _steal_s() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[1 + STEAL_FIELD]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _throttled_s() -> float | None:
    for name in CGROUP_STAT_FILES:
        try:
            stats = dict(line.split() for line in Path(name).read_text().splitlines() if line.count(" ") == 1)
        except (OSError, ValueError):
            continue
        if "throttled_usec" in stats:
            return int(stats["throttled_usec"]) / 1e6
        if "throttled_time" in stats:
            return int(stats["throttled_time"]) / 1e9
    return None


def read_counters() -> CpuCounters:
    """The counters now (steal and throttling ``None`` where the OS does not expose them)."""
    return CpuCounters(time.process_time(), _steal_s(), _throttled_s())


def cpu_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def utilisation(row: dict[str, Any]) -> float | None:
    """CPU time over wall time x threads of a row's timed steps; ``None`` without the counters."""
    cpu, threads, times = row.get("cpu_time_s"), row.get("cpu_threads"), row.get("step_times_s")
    if not (_finite(cpu) and _finite(threads) and isinstance(times, list) and times):
        return None
    wall = sum(times)
    return cpu / (wall * threads) if wall > 0 and threads > 0 else None


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)


def starvation_note(row: dict[str, Any]) -> str | None:
    """``cpu 52% of 2 threads`` (with steal and throttled time when there was any) for a row whose
    steps got less than ``LOW_UTILISATION`` of their threads' time, else ``None``."""
    share = utilisation(row)
    if share is None or share >= LOW_UTILISATION:
        return None
    extra = [f"{name} {row[field]:.1f} s" for name, field in (("steal", "steal_s"), ("throttled", "throttled_s"))
             if _finite(row.get(field)) and row[field] > 0.05]
    return f"cpu {share:.0%} of {int(row['cpu_threads'])} threads" + (f" ({', '.join(extra)})" if extra else "")
