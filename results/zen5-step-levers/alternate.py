"""Two training steps of this folder's scripts timed in alternating order in one process, and the line that
compares them (the helper of ``relu_gradient_bound.py`` and ``one_by_one_in_step.py``)."""
import statistics

from resnet_perf.bench.timing import time_call
from resnet_perf.interleave import interleave


def alternate(steps: dict, rounds: int) -> dict[str, list[float]]:
    """Each step's times, ms, one step of each per round after 2 warm-up rounds (``resnet_perf.interleave``)."""
    times = {label: [] for label in steps}
    for label, seconds in interleave(steps, rounds, warmup=2, time_call=time_call):
        times[label].append(seconds * 1e3)
    return times


def comparison(times: dict[str, list[float]], first: str, second: str) -> str:
    """``first`` against ``second``: their medians, and the median, least and largest of the per-round ratios
    first / second (above 1: ``second`` faster)."""
    ratios = [a / b for a, b in zip(times[first], times[second])]
    return (f"{first} {statistics.median(times[first]):.0f} ms, {second} {statistics.median(times[second]):.0f} ms; "
            f"median per-round ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
            f"{second} faster in {sum(ratio > 1 for ratio in ratios)} of {len(ratios)} rounds")
