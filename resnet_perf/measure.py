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


def throughput(batch_size: int, stats: StepStats) -> float:
    """Images per second at the median step time."""
    return batch_size / stats.median_s


def measure_matmul_peak(dtype: str, size: int = PEAK_PROBE_SIZE, repeats: int = PEAK_PROBE_REPEATS) -> float:
    """One measurement of this machine's TensorFlow matmul FLOP/s in ``dtype`` (``float32``, ``bfloat16``, ``float16``).

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


_BEST_PEAKS: dict[str, float] = {}


def matmul_peak_flops(dtype: str, remeasure: bool = True) -> float:
    """The best matmul peak for ``dtype`` seen in this process, measured again first (unless
    ``remeasure`` is off and one is known): the practical peak MFU divides by.

    Why the best of many: on a shared VM the probe falls into slow spells lasting seconds (this
    project's VM read bf16 at ~600 or ~1250 GFLOP/s, fp32 at 160-313, minutes apart), which one
    measurement per session passed on into MFU.  Measuring at every benchmark case and keeping the
    maximum gives a denominator that is stable from session to session.
    """
    if remeasure or dtype not in _BEST_PEAKS:
        _BEST_PEAKS[dtype] = max(_BEST_PEAKS.get(dtype, 0.0), measure_matmul_peak(dtype))
    return _BEST_PEAKS[dtype]


@dataclass(frozen=True)
class Throughput:
    """What a step achieved against the analytic FLOP count and this machine's peak."""

    images_per_sec: float
    flops_per_step: int
    achieved_flops: float
    peak_flops: float
    mfu: float


def achieved(batch_size: int, stats: StepStats, flops_per_step: int, peak_flops: float) -> Throughput:
    """Throughput, FLOP/s and MFU (achieved FLOP/s / measured matmul peak) at the median step."""
    flops_per_sec = flops_per_step / stats.median_s
    return Throughput(images_per_sec=throughput(batch_size, stats), flops_per_step=flops_per_step,
                      achieved_flops=flops_per_sec, peak_flops=peak_flops, mfu=flops_per_sec / peak_flops)


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
