"""Ratios with confidence intervals over independent units: rounds of a suite run, or A/B processes.

Consecutive steps of one process are not independent samples: a slow spell of a shared machine
lasts seconds to minutes and slows every step in it, so a test over raw steps calls a 2x "speed-up"
significant when one side merely ran in the slow spell.  The units here are per-round (or
per-process) medians: the suite measures every case once per round, round-major, so round ``i``
of two cases ran in the same stretch of time, and a verdict needs the rounds to agree.

- ``paired_ratio``: units that ran side by side (round ``i`` of case A with round ``i`` of case B,
  or the A and B processes of one A/B round): the geometric mean of the per-unit ratios with a
  Student-t interval on their logarithms (time drift cancels within a pair).
- ``unpaired_ratio``: units of two separate runs (a baseline file and today's run): the ratio of
  geometric means with a Welch t interval on the logarithms.

With one unit on a side there is no interval, and so no significant result: one round is one
observation, however many steps it holds.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95

ROUNDS_DISAGREE = 0.25
"""Rounds disagree when the largest of their values exceeds the smallest by more than this: a case's
round medians (its row is noted: the machine changed pace while it was measured), or the per-round
speed-ups of a switch (no speed-up is claimed).  25%: on this project's quiet 2-core VM the round
medians of 25 of the 32 default cases stayed within it (blocks of 3 steps; README "Rounds"), the
per-round speed-ups of every significant switch within 20%; a core lost to another program slows
a block by 1.5-2x."""


@dataclass(frozen=True)
class Ratio:
    """An estimated ratio with its confidence interval (``None`` bounds: too few units for one)."""

    value: float
    low: float | None
    high: float | None
    units: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 1 (no change)."""
        return self.low is not None and self.high is not None and (self.low > 1 or self.high < 1)

    def interval_text(self) -> str:
        """``[1.12, 1.22]``, or ``no interval (1 unit)``."""
        if self.low is None or self.high is None:
            return f"no interval ({self.units} unit{'s' if self.units != 1 else ''})"
        return f"[{self.low:.3g}, {self.high:.3g}]"


def _t_quantile(confidence: float, degrees_of_freedom: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, degrees_of_freedom))


def _positive_logs(values: Sequence[float]) -> list[float]:
    if any(not (value > 0 and math.isfinite(value)) for value in values):
        raise ValueError(f"ratios need positive finite values, got {list(values)}")
    return [math.log(value) for value in values]


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float],
                 confidence: float = CONFIDENCE) -> Ratio:
    """The ratio numerator/denominator from units paired by position (the common prefix)."""
    pairs = min(len(numerators), len(denominators))
    if pairs == 0:
        raise ValueError("no paired units to compare")
    logs = [a - b for a, b in zip(_positive_logs(numerators[:pairs]), _positive_logs(denominators[:pairs]))]
    centre = statistics.fmean(logs)
    if pairs < 2:
        return Ratio(math.exp(centre), None, None, pairs)
    half = _t_quantile(confidence, pairs - 1) * statistics.stdev(logs) / math.sqrt(pairs)
    return Ratio(math.exp(centre), math.exp(centre - half), math.exp(centre + half), pairs)


def unpaired_ratio(numerators: Sequence[float], denominators: Sequence[float],
                   confidence: float = CONFIDENCE) -> Ratio:
    """The ratio of the geometric means of two independent groups of units (Welch on the logs)."""
    if not numerators or not denominators:
        raise ValueError("no units to compare")
    top, bottom = _positive_logs(numerators), _positive_logs(denominators)
    centre = statistics.fmean(top) - statistics.fmean(bottom)
    units = min(len(top), len(bottom))
    if units < 2:
        return Ratio(math.exp(centre), None, None, units)
    top_var, bottom_var = statistics.variance(top) / len(top), statistics.variance(bottom) / len(bottom)
    spread = math.sqrt(top_var + bottom_var)
    if spread == 0:
        return Ratio(math.exp(centre), math.exp(centre), math.exp(centre), units)
    freedom = (top_var + bottom_var) ** 2 / (top_var**2 / (len(top) - 1) + bottom_var**2 / (len(bottom) - 1))
    half = _t_quantile(confidence, freedom) * spread
    return Ratio(math.exp(centre), math.exp(centre - half), math.exp(centre + half), units)


def round_medians(times: Sequence[float], rounds: int) -> list[float]:
    """The median of each round's block of ``times`` (``rounds`` equal blocks, in order)."""
    if rounds < 1 or not times or len(times) % rounds:
        raise ValueError(f"{len(times)} times do not split into {rounds} equal rounds")
    size = len(times) // rounds
    return [statistics.median(times[start:start + size]) for start in range(0, len(times), size)]


def spread(values: Sequence[float]) -> float:
    """How much the largest of ``values`` exceeds the smallest, as a fraction of the smallest."""
    return max(values) / min(values) - 1
