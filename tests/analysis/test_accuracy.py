"""Whether a configuration is shown to train: final accuracies judged against float32's, without TensorFlow."""
from __future__ import annotations

import pytest

from resnet_perf.analysis.accuracy import MARGIN, final_accuracy, judge
from resnet_perf.errors import UserError
from resnet_perf.training.recipes import PLAIN_TRAINING

FAST = {"recipe": "fast", "depth": 18, "image_size": 32, "batch_size": 256, "epochs": 3, "lr": 0.2}


def run_rows(precision: str, batch_norm: str, accuracies: list[float], **settings) -> list[dict]:
    """The epoch rows of one training run, as ``python -m resnet_perf.train`` writes them."""
    base = {**FAST, "precision": precision, "batch_norm": batch_norm, "target_accuracy": 0.93, "stop_at_target": False,
            **settings}
    return [{**base, "epoch": epoch, "test_accuracy": accuracy} for epoch, accuracy in enumerate(accuracies, 1)]


def test_a_run_ends_with_its_last_epoch_or_at_its_target():
    assert final_accuracy(run_rows("fp32", "keras", [0.80, 0.90, 0.925])) == 0.925
    assert final_accuracy(run_rows("fp32", "keras", [0.80, 0.90])) is None  # stopped after 2 of 3 epochs
    assert final_accuracy(run_rows("fp32", "keras", [0.80, 0.935], stop_at_target=True)) == 0.935
    assert final_accuracy(run_rows("fp32", "keras", [0.80, 0.90], stop_at_target=True)) is None
    assert final_accuracy([]) is None


def test_a_median_more_than_the_margin_below_fp32_is_marked():
    fp32 = [run_rows("fp32", "keras", [0.9, 0.91, final]) for final in (0.9270, 0.9262, 0.9281)]
    close = [run_rows("mixed_bf16", "keras", [0.9, 0.91, final]) for final in (0.9257, 0.9265, 0.9281)]
    behind = [run_rows("mixed_bf16", "fused", [0.8, 0.9, final]) for final in (0.9100, 0.9290, 0.9150)]
    stopped = run_rows("amp_bf16", "fused", [0.8])
    judged = judge(fp32 + close + behind + [stopped])
    assert judged.incomplete == 1
    assert judged.settings == {name: FAST.get(name, PLAIN_TRAINING.get(name)) for name in judged.settings}
    reference = judged.configurations[("fp32", "keras")]
    assert reference.median == 0.9270 and not reference.below_reference
    assert not judged.configurations[("mixed_bf16", "keras")].below_reference  # 0.9265: 0.05 points below
    fused = judged.configurations[("mixed_bf16", "fused")]
    assert fused.median == 0.9150 and fused.below_reference and 0.9270 - 0.9150 > MARGIN
    assert judged.text_for("mixed_bf16", "fused") == (
        "0.9150 median of 3 (0.9100-0.9290): 1.2 points below fp32's 0.9270, not shown to train")
    assert judged.text_for("amp_bf16", "fused") == "not trained"  # its only run stopped early
    assert judged.text_for("mixed_bf16", "keras") == "0.9265 median of 3 (0.9257-0.9281), fp32 0.9270"


def test_without_fp32_runs_nothing_is_marked():
    judged = judge([run_rows("mixed_bf16", "fused", [0.8, 0.9, 0.91])])
    assert not judged.configurations[("mixed_bf16", "fused")].below_reference
    assert judged.text_for("mixed_bf16", "fused") == "0.9100 median of 1; no fp32 runs to judge it against"


def test_runs_of_different_trainings_are_refused():
    with pytest.raises(UserError, match="2 different trainings .*epochs=3.*epochs=6.*give the runs of one"):
        judge([run_rows("fp32", "keras", [0.9, 0.91, 0.92]), run_rows("fp32", "keras", [0.9] * 6, epochs=6)])
    with pytest.raises(UserError, match="2 different trainings .*clip_norm=0.0.*clip_norm=2.0"):
        judge([run_rows("fp32", "keras", [0.92]), run_rows("fp32", "keras", [0.92], clip_norm=2.0)])
    with pytest.raises(UserError, match="no training runs"):
        judge([])


def test_a_run_from_before_a_setting_existed_counts_as_its_plain_value():
    before = run_rows("fp32", "keras", [0.9, 0.91, 0.92])  # no clip_norm in its rows
    judged = judge([before, run_rows("fp32", "keras", [0.9, 0.91, 0.93], clip_norm=0.0)])
    assert judged.configurations[("fp32", "keras")].finals == (0.92, 0.93)
