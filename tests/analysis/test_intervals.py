"""Ratios with intervals over independent units (rounds), and speed-up verdicts that know their noise."""
from __future__ import annotations

import math
import random

import pandas as pd
import pytest

from resnet_perf.analysis.intervals import paired_ratio, round_medians, spread, unpaired_ratio
from resnet_perf.analysis.speedup import speedups
from resnet_perf.analysis.tables import step_frame
from resnet_perf.config import RunConfig


def test_paired_ratio_on_rounds_that_agree_is_tight_and_significant():
    ratio = paired_ratio([1.20, 1.25, 1.15], [1.0, 1.0, 1.0])
    assert ratio.value == pytest.approx(math.exp(sum(map(math.log, (1.20, 1.25, 1.15))) / 3))
    assert 1 < ratio.low < ratio.value < ratio.high < 1.4 and ratio.significant and ratio.units == 3


def test_paired_ratio_cancels_drift_that_hits_both_sides_of_a_round():
    slow_spell = [1.0, 2.0, 1.0]  # round 2 ran at half speed for both cases
    ratio = paired_ratio([1.2 * pace for pace in slow_spell], slow_spell)
    assert ratio.value == pytest.approx(1.2) and ratio.low == pytest.approx(1.2) and ratio.significant


def test_one_round_has_no_interval_and_nothing_significant():
    ratio = paired_ratio([2.0], [1.0])
    assert ratio.value == 2.0 and ratio.low is None and not ratio.significant
    assert ratio.interval_text() == "no interval (1 unit)"


def test_the_95_percent_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = random.Random(1)
    covered = 0
    for _ in range(2000):
        noise = [math.exp(rng.gauss(0, 0.05)) for _ in range(3)]
        ratio = paired_ratio([1.1 * n for n in noise], [1.0] * 3)
        covered += ratio.low <= 1.1 <= ratio.high
    assert 0.93 < covered / 2000 < 0.97


def test_unpaired_ratio_separates_shifted_groups_and_not_overlapping_ones():
    assert unpaired_ratio([1.30, 1.31, 1.29], [1.0, 1.01, 0.99]).significant
    overlapping = unpaired_ratio([1.0, 1.5, 0.8], [1.1, 0.9, 1.4])
    assert overlapping.low < 1 < overlapping.high and not overlapping.significant
    assert unpaired_ratio([1.0], [1.0, 1.1]).low is None


def test_round_medians_and_spread():
    assert round_medians([1, 2, 3, 10, 20, 30], 2) == [2, 20]
    assert spread([2.0, 2.5]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        round_medians([1, 2, 3], 2)


FP32 = RunConfig(depth=18, batch_size=8, image_size=32, rounds=3, steps=1)
BF16 = FP32.replace(precision="mixed_bf16")


def row(config: RunConfig, medians: list[float]) -> dict:
    return {"bench": "step", **config.as_dict(), "mode": "train", "step_times_s": medians, "round_medians_s": medians,
            "round_spread": spread(medians), "median_s": sorted(medians)[1], "flops_per_step": 1e9}


def verdict(fp32: list[float], bf16: list[float]) -> pd.Series:
    frame = speedups(step_frame([row(FP32, fp32), row(BF16, bf16)]))
    return frame.set_index("run_id").loc[BF16.run_id]


def test_a_speed_up_whose_rounds_agree_is_claimed_with_its_interval():
    found = verdict([0.10, 0.101, 0.099], [0.085, 0.086, 0.0845])
    assert found["speedup_verdict"] == "faster"
    assert found["vs_baseline"].startswith("mixed_bf16 vs fp32: faster: 1.17x [1.1")


def test_a_row_whose_rounds_disagree_is_marked_and_claims_no_speed_up():
    """fp32's first round ran while another program used a core: steps alone said 2x."""
    found = verdict([0.20, 0.101, 0.099], [0.085, 0.086, 0.0845])
    assert found["speedup_verdict"] == "undecided" and "undecided: " in found["vs_baseline"]
    from resnet_perf.analysis.tables import format_table

    table = format_table([row(FP32, [0.20, 0.101, 0.099]), row(BF16, [0.085, 0.086, 0.0845])])
    assert "rounds disagree (spread 102%)" in table


def test_a_small_noisy_difference_is_undecided():
    found = verdict([0.10, 0.095, 0.104], [0.098, 0.1, 0.094])
    assert found["speedup_verdict"] == "undecided" and "spans 1 and reaches past +-5%" in found["vs_baseline"]
