"""When have enough rounds been timed?  One stopping rule for the suite's switch verdicts and for
``python -m resnet_perf.ab``, whose error rate holds however early it stops.

Looking at an interval after every round and stopping once it excludes 1 makes false claims far
more often than its nominal 5%: every look is another chance for noise to cross the line.  This
rule looks only at a fixed schedule of round counts (``LOOKS``: 3, 5, 8, 12, 18, 27, 41, ... each
about 1.5x the one before) and spends the error rate over them: look ``k`` uses a paired Student-t
interval (``intervals.paired_ratio`` on the first ``n_k`` rounds) at level
``1 - alpha_k`` with ``alpha_k = 2 alpha / ((k + 1)(k + 2))``, which sums to ``alpha`` over all
looks.  By the union bound, the chance that *any* look's interval misses the true ratio is at most
``alpha``, so stopping at whichever look first decides (or when a budget runs out) keeps every claim's
error rate within ``alpha``: a group-sequential design with a Bonferroni alpha-spending over an
unbounded geometric schedule of looks.  The early looks get the larger shares because a switch
worth 1.5-2x is decided by its third round, while small differences need tens of rounds anyway.

A verdict (``decide``) reads the interval against an equivalence band of +-``band`` (5% by
default, symmetric in the logarithm):

- *no difference*: the whole interval lies inside the band (any difference is smaller than 5%);
- *faster* / *slower*: the interval excludes 1 (and is not inside the band);
- *undecided*: neither yet, with its reason (too few rounds for an interval, or an interval that
  spans both 1 and the band's edge).

Stopping when every verdict is decided, or when the next look would not fit in the time budget, is
``keep_going``; nothing here measures, prints or sleeps.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from resnet_perf.analysis.intervals import Ratio, paired_ratio

ALPHA = 0.05
"""The error rate of every claim over the whole sequence of looks."""

BAND = 0.05
"""The equivalence band: ratios within [1/1.05, 1.05] count as no difference."""

FIRST_LOOK = 3
LOOK_GROWTH = 1.5
MIN_SPAN_S = 10.0
"""Rounds stop on a decision only once they have spanned this long.  Why: a process can run a
third slower for a second or more (an A/A run of ``python -m resnet_perf.ab`` on this project's
Zen 4 VM: A's first 3 rounds, 1.3 s of 0.2 s blocks, all 1.36x slower than B's, then decided
"B faster"); rounds that span seconds cannot tell that from a real difference, rounds that span
ten seconds dilute it.  The suite's rounds last tens of seconds, so only fast A/B cases wait for it;
the looks they pass meanwhile are not read (their share of the error rate is left unspent)."""

FASTER, SLOWER, SAME, UNDECIDED = "faster", "slower", "no difference", "undecided"
VERDICTS = (FASTER, SLOWER, SAME, UNDECIDED)


def looks() -> Iterator[int]:
    """The round counts at which verdicts are read: 3, 5, 8, 12, 18, 27, 41, 62, 93, ... (unbounded)."""
    rounds = FIRST_LOOK
    while True:
        yield rounds
        rounds = max(rounds + 1, math.ceil(rounds * LOOK_GROWTH))


def last_look(rounds: int) -> tuple[int, int]:
    """``(k, n_k)``: the index (from 1) and round count of the last look at or below ``rounds``;
    ``(0, 0)`` before the first look."""
    found = (0, 0)
    for index, count in enumerate(looks(), 1):
        if count > rounds:
            return found
        found = (index, count)
    raise AssertionError("looks() is unbounded")


def next_look(rounds: int) -> int:
    """The round count of the first look after ``rounds``."""
    return next(count for count in looks() if count > rounds)


def look_alpha(index: int, alpha: float = ALPHA) -> float:
    """The error rate spent at look ``index`` (from 1): ``2 alpha / ((k + 1)(k + 2))``, summing to ``alpha``."""
    if index < 1:
        raise ValueError(f"looks are numbered from 1, got {index}")
    return 2 * alpha / ((index + 1) * (index + 2))


@dataclass(frozen=True)
class Verdict:
    """A comparison's verdict: its kind (``VERDICTS``), the ratio at the last look (``None`` before
    the first), the rounds that look used, and for *undecided* why."""

    kind: str
    ratio: Ratio | None
    rounds: int
    reason: str = ""

    @property
    def decided(self) -> bool:
        return self.kind != UNDECIDED

    def text(self, band: float = BAND) -> str:
        """``faster: 1.52x [1.41, 1.63] (5 rounds)``, ``no difference (within +-5%): ...``, ``undecided: why``."""
        if self.ratio is None:
            return f"{self.kind}: {self.reason}"
        label = f"{SAME} (within +-{band:.0%})" if self.kind == SAME else self.kind
        measured = f"{self.ratio.value:.3g}x {self.ratio.interval_text()} ({self.rounds} rounds)"
        return f"{label}: {measured}" + (f"; {self.reason}" if self.reason else "")


def decide(numerators: Sequence[float], denominators: Sequence[float], alpha: float = ALPHA,
           band: float = BAND) -> Verdict:
    """The verdict on numerator/denominator (e.g. images/s of a config over its baseline's) from
    units paired by position, read at the last look their common rounds reach."""
    rounds = min(len(numerators), len(denominators))
    index, used = last_look(rounds)
    if index == 0:  # the estimate, with no interval to read
        estimate = Ratio(paired_ratio(numerators, denominators).value, None, None, rounds) if rounds else None
        return Verdict(UNDECIDED, estimate, rounds, f"{rounds} round(s): the first look is at {FIRST_LOOK}")
    ratio = paired_ratio(numerators[:used], denominators[:used], 1 - look_alpha(index, alpha))
    inside = 1 / (1 + band) <= ratio.low and ratio.high <= 1 + band
    if inside:
        return Verdict(SAME, ratio, used)
    if ratio.low > 1:
        return Verdict(FASTER, ratio, used)
    if ratio.high < 1:
        return Verdict(SLOWER, ratio, used)
    return Verdict(UNDECIDED, ratio, used, f"the interval spans 1 and reaches past +-{band:.0%}")


@dataclass(frozen=True)
class Budget:
    """How long the rounds may go on: ``seconds`` of wall time (``None``: no limit) and at most
    ``max_rounds`` rounds (``None``: no limit).  ``early_stop=False``: every one of ``max_rounds``
    rounds is run, decided or not (a reference of fixed length, ``python -m resnet_perf.interleave``)."""

    seconds: float | None = None
    max_rounds: int | None = None
    early_stop: bool = True


def keep_going(verdicts: Sequence[Verdict], rounds: int, budget: Budget, elapsed_s: float,
               round_s: float) -> tuple[bool, str]:
    """Whether to time another round after ``rounds`` rounds (``elapsed_s`` so far, ``round_s`` per
    round: pass the slowest so far), and why not when not.

    At a look, stop when every verdict is decided (once the rounds span ``MIN_SPAN_S``).  Rounds past
    the last look do not count, so stop
    at a look when the next one is past ``max_rounds`` or would not fit in the time; a cap below the
    first look is run in full (its verdicts are undecided, and say so)."""
    if (budget.early_stop and rounds == last_look(rounds)[1] and rounds and elapsed_s >= MIN_SPAN_S
            and all(verdict.decided for verdict in verdicts)):
        return False, f"every verdict decided after {rounds} rounds"
    target = next_look(rounds)
    cap = budget.max_rounds
    if cap is not None and (rounds >= cap or (budget.early_stop and target > cap and cap >= FIRST_LOOK)):
        past = budget.early_stop and target > rounds + 1  # rounds stopped short of the cap, at a look
        return False, f"--rounds {cap}: {rounds} rounds" + (f", the next look is at {target}" if past else "")
    if budget.seconds is not None and rounds and elapsed_s + (target - rounds) * round_s > budget.seconds:
        return False, (f"the budget of {budget.seconds:.0f} s: the next look ({target} rounds) would end at "
                       f"about {elapsed_s + (target - rounds) * round_s:.0f} s")
    return True, ""
