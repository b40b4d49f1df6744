"""Where a series' level shifted: change-point detection over its history (``ruptures``).

The search is PELT (``ruptures.Pelt``) with the least-squares cost, over the logarithms of the
values (so a step is relative: -12% reads the same at 50 and at 500 images/s) divided by the
series' noise.  The noise is estimated from the differences of consecutive points, robustly (their
median absolute value, scaled to a standard deviation), so that the step itself barely moves it;
it is floored at ``NOISE_FLOOR`` so that a series of identical values does not make every wiggle a
change.  A split costs ``PENALTY_PER_LOG_N * ln(n)`` (a BIC-like penalty: more points, more
evidence asked for).  A change found that way is reported only when the median level after it
differs from the median level before it by at least ``MIN_CHANGE``, the same 5% this suite's A/B
gate uses.  Each level must hold ``MIN_SEGMENT`` points, so an outlying run or two is not a change
(and a new level is reported once it has held that long); a series needs ``MIN_POINTS`` points
before it is searched.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_SEGMENT = 3
"""Runs a level must hold: one or two outlying runs are not a new level."""
MIN_POINTS = 2 * MIN_SEGMENT
PENALTY_PER_LOG_N = 5.0
MIN_CHANGE = 0.05
NOISE_FLOOR = 0.01
"""1%: the smallest noise assumed, as a fraction of the level."""
_MAD_TO_SIGMA = 1.4826  # the median absolute deviation of a normal variable times this is its sigma


@dataclass(frozen=True)
class Change:
    """A shift of a series' level: ``index`` is the first point at the new level."""

    index: int
    before: float
    after: float

    @property
    def relative(self) -> float:
        """after / before - 1: -0.12 for a 12% drop."""
        return self.after / self.before - 1


def noise(logs: Sequence[float]) -> float:
    """The standard deviation of a point around its level, from consecutive differences (a
    difference of two points has sqrt(2) times their deviation), floored at ``NOISE_FLOOR``."""
    differences = np.abs(np.diff(np.asarray(logs, dtype=float)))
    sigma = _MAD_TO_SIGMA * float(np.median(differences)) / math.sqrt(2) if len(differences) else 0.0
    return max(sigma, math.log1p(NOISE_FLOOR))


def detect_changes(values: Sequence[float]) -> list[Change]:
    """The shifts of level in ``values`` (positive numbers, oldest first), in order."""
    if len(values) < MIN_POINTS or any(not value > 0 for value in values):
        return []
    import ruptures

    logs = np.log(np.asarray(values, dtype=float))
    scaled = (logs / noise(logs)).reshape(-1, 1)
    ends = ruptures.Pelt(model="l2", min_size=MIN_SEGMENT, jump=1).fit(scaled).predict(
        pen=PENALTY_PER_LOG_N * math.log(len(values)))
    starts = [0, *ends[:-1]]
    changes = []
    for start, boundary, end in zip(starts, ends, [*ends[1:], len(values)]):
        if boundary >= len(values):
            break
        change = Change(boundary, statistics.median(values[start:boundary]), statistics.median(values[boundary:end]))
        if abs(change.relative) >= MIN_CHANGE:
            changes.append(change)
    return changes
