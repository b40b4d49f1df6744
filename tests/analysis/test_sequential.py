"""The stopping rule (resnet_perf.analysis.sequential) on synthetic rounds: its looks and alpha spending, the
verdict kinds, and its error rate under optional stopping against the naive rule it replaces."""
from __future__ import annotations

import itertools
import math
import random

import pytest

from resnet_perf.analysis.intervals import paired_ratio
from resnet_perf.analysis.sequential import (ALPHA, FASTER, SAME, SLOWER, UNDECIDED, Budget, decide, keep_going, last_look,
                                    look_alpha, looks, next_look)


def test_looks_grow_by_half_and_spend_alpha_in_shares_that_sum_to_it():
    assert list(itertools.islice(looks(), 9)) == [3, 5, 8, 12, 18, 27, 41, 62, 93]
    assert last_look(2) == (0, 0) and last_look(3) == (1, 3) and last_look(11) == (3, 8) and last_look(12) == (4, 12)
    assert next_look(0) == 3 and next_look(3) == 5 and next_look(13) == 18
    assert look_alpha(1) == pytest.approx(ALPHA / 3) and look_alpha(2) == pytest.approx(ALPHA / 6)
    assert sum(look_alpha(k) for k in range(1, 20000)) == pytest.approx(ALPHA, rel=1e-3)
    with pytest.raises(ValueError):
        look_alpha(0)


def test_the_four_verdict_kinds():
    base = [1.0] * 5
    assert decide([1.5, 1.52, 1.49, 1.51, 1.5], base).kind == FASTER
    assert decide([0.7, 0.71, 0.69, 0.7, 0.7], base).kind == SLOWER
    assert decide([1.0, 1.004, 0.997, 1.001, 0.999], base).kind == SAME
    undecided = decide([1.0, 1.2, 0.85, 1.1, 0.9], base)
    assert undecided.kind == UNDECIDED and "spans 1" in undecided.reason and not undecided.decided
    too_few = decide([2.0, 2.0], [1.0, 1.0])
    assert too_few.kind == UNDECIDED and too_few.ratio.low is None and "first look is at 3" in too_few.reason


def test_a_verdict_reads_the_last_look_only():
    """Rounds past the last look do not count: 11 rounds are read as the 8 of look 3."""
    nums = [1.2, 1.21, 1.19, 1.2, 1.2, 1.22, 1.18, 1.2, 5.0, 5.0, 5.0]
    verdict = decide(nums, [1.0] * 11)
    assert verdict.rounds == 8 and verdict.ratio.value == pytest.approx(1.2, abs=0.01)
    assert "(8 rounds)" in verdict.text()


def test_keep_going_stops_at_a_decided_look_at_the_cap_and_before_the_budget():
    decided, undecided = decide([2.0] * 3, [1.0] * 3), decide([1.0, 1.3, 0.8], [1.0] * 3)
    assert keep_going([decided], 3, Budget(), 10, 1) == (False, "every verdict decided after 3 rounds")
    assert keep_going([decided], 3, Budget(), 4, 1)[0]  # decided, but the rounds span less than MIN_SPAN_S
    assert keep_going([decided], 4, Budget(), 10, 1)[0]  # between looks: on to the next one
    assert keep_going([undecided], 3, Budget(), 10, 1) == (True, "")
    going, why = keep_going([undecided], 3, Budget(max_rounds=4), 10, 1)
    assert not going and "--rounds 4" in why  # the 4th round would not count
    going, why = keep_going([undecided], 3, Budget(seconds=60), 50, 6)
    assert not going and "budget of 60 s" in why  # look 5 would end at about 62 s
    assert keep_going([undecided], 1, Budget(max_rounds=2), 10, 1)[0]  # a cap below the first look runs in full


def _sequence_verdict(rng: random.Random, effect: float, sigma: float, cap: int, rule: str) -> str:
    """Rounds of log-normal ratios with true ratio exp(effect), stopped by ``rule``: ``sequential``
    (this module's looks) or ``naive`` (a 95% t interval after every round, stop when it excludes 1)."""
    ratios = []
    for rounds in range(1, cap + 1):
        ratios.append(math.exp(effect + rng.gauss(0, sigma)))
        if rule == "naive":
            if rounds >= 3 and paired_ratio(ratios, [1.0] * rounds).significant:
                return FASTER if paired_ratio(ratios, [1.0] * rounds).value > 1 else SLOWER
            continue
        if rounds == last_look(rounds)[1]:
            verdict = decide(ratios, [1.0] * rounds)
            if verdict.decided:
                return verdict.kind
    return UNDECIDED if rule == "sequential" else SAME


def test_optional_stopping_keeps_false_claims_within_alpha_where_looking_every_round_does_not():
    """A/A, 300 sequences of up to 60 rounds with 10% noise per round: the rule's false
    faster/slower claims stay within its 5%; the naive rule's climb past 15%."""
    rng = random.Random(20261206)
    sequential = [_sequence_verdict(rng, 0.0, 0.10, 60, "sequential") for _ in range(300)]
    rng = random.Random(20261206)
    naive = [_sequence_verdict(rng, 0.0, 0.10, 60, "naive") for _ in range(300)]
    false_sequential = sum(kind in (FASTER, SLOWER) for kind in sequential)
    false_naive = sum(kind in (FASTER, SLOWER) for kind in naive)
    assert false_sequential <= 0.05 * 300 < 0.15 * 300 < false_naive
    quiet = [_sequence_verdict(rng, 0.0, 0.03, 60, "sequential") for _ in range(100)]
    assert quiet.count(SAME) >= 90  # and with 3% noise it decides: no difference


def test_real_differences_are_found_and_not_called_no_difference():
    rng = random.Random(7)
    slower = [_sequence_verdict(rng, math.log(0.88), 0.10, 60, "sequential") for _ in range(100)]
    assert slower.count(SLOWER) >= 90 and slower.count(SAME) == 0
    doubled = [_sequence_verdict(rng, math.log(2.0), 0.05, 60, "sequential") for _ in range(50)]
    assert doubled.count(FASTER) == 50


def test_a_fixed_length_budget_runs_every_round_even_when_every_verdict_is_decided():
    decided = [decide([1.0, 1.01, 0.99, 1.0, 1.02], [0.5, 0.51, 0.49, 0.5, 0.5])]
    assert decided[0].decided
    assert keep_going(decided, 5, Budget(max_rounds=30), 60.0, 1.0)[0] is False  # the rule stops at the look
    fixed = Budget(max_rounds=30, early_stop=False)
    assert all(keep_going(decided, rounds, fixed, 60.0, 1.0)[0] for rounds in (5, 8, 12, 29))
    assert keep_going(decided, 30, fixed, 60.0, 1.0) == (False, "--rounds 30: 30 rounds")
