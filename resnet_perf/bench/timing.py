"""Measuring a step honestly: compile time apart, finished steps only, raw times kept.

Also this machine's matmul peak per dtype (the denominator of MFU) and memory probes.
"""
from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

UNSTABLE_CV = 0.10
"""A run whose step times vary more than this (stddev / mean) is flagged unstable (as pyperf does)."""

PEAK_PROBE_SIZE = 2048
PEAK_PROBE_REPEATS = 25


@dataclass(frozen=True)
class StepStats:
    """Summary of raw step times, in seconds."""

    count: int
    mean_s: float
    median_s: float
    p90_s: float
    p99_s: float
    min_s: float
    stddev_s: float
    cv: float
    unstable: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def step_stats(times: Sequence[float]) -> StepStats:
    """Stats of ``times`` (at least one); stddev and CV are 0 for a single time."""
    if not times:
        raise ValueError("no step times to summarise")
    ordered = sorted(times)
    mean = statistics.fmean(ordered)
    stddev = statistics.stdev(ordered) if len(ordered) > 1 else 0.0
    cv = stddev / mean if mean > 0 else 0.0
    return StepStats(count=len(ordered), mean_s=mean, median_s=statistics.median(ordered),
                     p90_s=_percentile(ordered, 0.90), p99_s=_percentile(ordered, 0.99),
                     min_s=ordered[0], stddev_s=stddev, cv=cv, unstable=cv > UNSTABLE_CV)


def finish(outputs: Any, sync: bool = True) -> list:
    """Wait for every device, then fetch every output to the host as numpy arrays: a step is
    finished by construction, also where devices run asynchronously (GPUs).

    ``sync=False`` only fetches: under MultiWorkerMirroredStrategy ``sync_devices`` fails
    ("Haven't set up remote eager worker in this eager context"), and there the fetched values are
    all-reduced over every replica, so fetching them waits for every replica's step.
    """
    import numpy as np
    import tensorflow as tf

    if sync:
        tf.test.experimental.sync_devices()
    return [np.asarray(tensor) for tensor in tf.nest.flatten(outputs)]


def time_call(function: Callable[[], Any]) -> float:
    """Seconds one call takes; ``function`` must return only once its work is finished."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def time_steps(step: Callable[[], Any], warmup: int, steps: int) -> list[float]:
    """Run ``warmup`` untimed steps, then time ``steps`` finished steps one by one."""
    for _ in range(warmup):
        step()
    return [time_call(step) for _ in range(steps)]


PEAK_READINGS = 3
"""Readings of the matmul peak per dtype each time a session probes it (at its start and its end)."""


def measure_matmul_peak(dtype: str, size: int = PEAK_PROBE_SIZE, repeats: int = PEAK_PROBE_REPEATS) -> float:
    """One reading of this machine's TensorFlow matmul FLOP/s in ``dtype`` (``float32``, ``bfloat16``, ``float16``).

    A square ``size`` matmul, timed ``repeats`` times after one warm-up, best time kept.
    """
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_uniform((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_uniform((size, size), seed=(3, 4)), dtype)
    # Reducing to a scalar keeps the fetch from copying the product; it adds O(size^2) to O(size^3).
    product_sum = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
    product_sum(a, b).numpy()
    best = min(time_call(lambda: product_sum(a, b).numpy()) for _ in range(repeats))
    return 2 * size**3 / best


def probe_matmul_peaks(dtypes: Sequence[str], readings: int = PEAK_READINGS) -> dict[str, list[float]]:
    """The fixed peak procedure: ``readings`` readings per dtype.

    A session runs it at its start and at its end, whatever its number of cases, and keeps every
    reading; MFU divides by the best of them when the results are read (``resnet_perf.models.flops``).
    Why several: on a shared VM the probe falls into slow spells lasting seconds to minutes (this
    project's Intel VM read bf16 at ~600 or ~1250 GFLOP/s, fp32 at 160-313), and one reading passed
    them straight into MFU.
    """
    return {dtype: [measure_matmul_peak(dtype) for _ in range(readings)] for dtype in dtypes}


class HostMemorySampler:
    """Peak resident memory of this process while a block runs, above what it held on entry.

    A thread reads the RSS every ``interval`` seconds; a new sampler per case starts from that
    case's own baseline, so an earlier, larger case does not hide this one.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.baseline_bytes = 0
        self.peak_bytes = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> HostMemorySampler:
        self.baseline_bytes = self.peak_bytes = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    @property
    def added_bytes(self) -> int:
        return self.peak_bytes - self.baseline_bytes
