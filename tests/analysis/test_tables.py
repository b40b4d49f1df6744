"""Tables from result rows."""
from __future__ import annotations

import pytest

from resnet_perf.analysis.tables import derive_backward, display_frame, format_table, training_frame
from resnet_perf.models.flops import with_derived_metrics

PEAKS = {"float32": 1e12}


def _step(run_id, mode, median, flops, batch=8):
    row = {"bench": "step", "run_id": run_id, "mode": mode, "batch_size": batch, "median_s": median,
           "p90_s": median, "cv": 0.01, "flops_per_step": flops, "compute_dtype": "float32",
           "compile_s": 2.0, "unstable": False}
    return with_derived_metrics([row], PEAKS)[0]


def test_backward_is_fwd_bwd_minus_the_training_mode_forward():
    # Inference forward 0.1 s, training-mode forward (batch statistics) 0.15 s, fwd_bwd 0.4 s:
    # the backward pass is the 0.25 s after the same training-mode forward.
    rows = [_step("r", "forward", 0.1, 10**9), _step("r", "train_forward", 0.15, 10**9),
            _step("r", "fwd_bwd", 0.4, 3 * 10**9 - 10**8)]
    (backward,) = derive_backward(rows)
    assert backward["mode"] == "backward" and backward["derived"]
    assert backward["median_s"] == pytest.approx(0.25)
    assert backward["images_per_sec"] == pytest.approx(8 / 0.25)
    assert backward["flops_per_step"] == 2 * 10**9 - 10**8
    assert backward["mfu"] == pytest.approx((2e9 - 1e8) / 0.25 / 1e12)


def test_no_backward_without_both_steps():
    assert derive_backward([_step("r", "fwd_bwd", 0.35, 3)]) == []
    assert derive_backward([_step("r", "forward", 0.1, 1), _step("r", "fwd_bwd", 0.35, 3)]) == []


def test_table_joins_memory_and_notes_skips_and_errors():
    rows = [_step("r", "forward", 0.1, 10**9), _step("r", "train", 0.3, 3 * 10**9),
            {"bench": "memory", "run_id": "r", "mode": "train", "host_rss_added_bytes": 512 * 2**20},
            {"bench": "step", "run_id": "s", "mode": "forward", "skipped": "out of memory: OOM"},
            {"bench": "step", "run_id": "t", "mode": "train", "error": "the step was retraced 1 time(s)"}]
    frame = display_frame(rows)
    train = frame[(frame["config"] == "r") & (frame["step"] == "train")].iloc[0]
    assert train["host RSS added MiB"] == 512 and "device peak MiB" not in frame.columns
    assert train["img/s"] == pytest.approx(8 / 0.3)
    notes = dict(zip(frame["config"], frame["note"]))
    assert notes["s"] == "skipped: out of memory: OOM" and notes["t"].startswith("error: the step was retraced")
    table = format_table(rows)
    assert "| r " in table and "nan" not in table


def test_mfu_above_one_is_called_out():
    row = _step("r", "forward", 0.1, 2 * 10**11)  # 2e12 FLOP/s against a 1e12 peak
    (note,) = display_frame([row])["note"]
    assert "MFU > 100%" in note


def test_training_table_notes_a_skip_and_an_epoch_whose_steps_got_little_cpu():
    epoch = {"bench": "train", "run_id": "resnet18-fp32", "epoch": 1, "step_times_s": [4.0, 4.0], "cpu_threads": 2}
    rows = [{**epoch, "cpu_time_s": 8.0, "steal_s": 1.5}, {**epoch, "epoch": 2, "cpu_time_s": 15.0, "steal_s": 0.0},
            {"bench": "train", "run_id": "resnet50-fp32", "skipped": "no Fashion-MNIST here"}]
    assert list(training_frame(rows)["note"]) == ["cpu 50% of 2 threads (steal 1.5 s)", "", "no Fashion-MNIST here"]
    assert training_frame([]).empty
