"""Fashion-MNIST training: config checks in-process, real 2-replica runs in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError
from resnet_perf.train import main
from resnet_perf.training.recipes import TrainConfig
from resnet_perf.training.epoch import EpochTiming
from resnet_perf.training.loop import RunClock, epoch_line, start_line, train
from tests.fmnist_files import write_dataset

ROOT = Path(__file__).resolve().parent.parent


def test_indivisible_global_batch_is_rejected():
    with pytest.raises(UserError, match="global batch 10 does not divide over 4 replicas"):
        TrainConfig(run=RunConfig(depth=18, batch_size=10, image_size=32, channels=1, num_classes=10), replicas=4)


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "6", "--replicas", "4"], "global batch 6 does not divide over 4 replicas"),
    (["--replicas", "two"], "--replicas must be 'auto' or an integer"),
    (["--depth", "19"], "unknown ResNet depth 19"),
    (["--precision", "fp64"], "unknown precision 'fp64'"),
    (["--epochs", "0"], "epochs must be at least 1"),
    (["--target-accuracy", "91"], "target accuracy must be in (0, 1]"),
    (["--lr", "inf"], "lr must be a finite number, got inf"),
    (["--weight-decay", "nan"], "weight decay must be a finite number, got nan"),
    (["--momentum", "1"], "momentum must be in [0, 1)"),
    (["--label-smoothing", "-0.1"], "label smoothing must be in [0, 1)"),
    (["--seeds", "0,x"], "--seeds expects comma-separated integers"),
    (["--ema", "1"], "ema must be in [0, 1) (0: off), got 1.0"),
    (["--eval-every", "0"], "eval every must be at least 1 (epochs), got 0"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_data_is_one_line_and_exit_2(capsys, tmp_path):
    assert main(["--data-dir", str(tmp_path), "--output", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not hold Fashion-MNIST" in err[0] and "apt-get install" in err[0]
    assert not (tmp_path / "out.json").exists()


def test_unwritable_output_fails_before_training(capsys, tmp_path):
    folder = write_dataset(tmp_path / "data", train=64, test=32)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert main(["--data-dir", str(folder), "--output", str(blocker / "train.json"), "--batch-size", "32",
                 "--precision", "fp32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot write results to {blocker}")


@pytest.mark.slow
def test_two_replica_training_learns_and_records_every_field(tmp_path):
    folder = write_dataset(tmp_path / "data", train=512, test=256)
    output = tmp_path / "train.json"
    command = [sys.executable, "-m", "resnet_perf.train", "--replicas", "2", "--epochs", "3", "--batch-size", "64",
               "--image-size", "32", "--precision", "fp32", "--lr", "0.05", "--data-dir", str(folder),
               "--output", str(output), "--target-accuracy", "0.5"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "time to 50.00% test accuracy" in done.stdout

    result = json.loads(output.read_text())
    rows, summary = result["rows"], result["summary"]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    for row in rows:
        for key in ("epoch_time_s", "images_per_sec", "train_loss", "train_accuracy", "test_accuracy",
                    "eval_time_s", "lr_end", "cumulative_train_time_s"):
            assert row[key] is not None, key
        assert row["replicas"] == 2 and row["batch_size"] == 64 and row["run_id"].startswith("resnet18-fp32")
        assert row["cpu_time_s"] > 0 and row["cpu_threads"] >= 1  # what the CPU gave the epoch's steps
        assert all(row[key] is None or row[key] >= 0 for key in ("steal_s", "throttled_s"))
    assert summary["replicas"] == 2 and len(summary["devices"]) == 2
    assert summary["completed"] and summary["final_test_accuracy"] == rows[-1]["test_accuracy"]
    assert summary["train_images"] == 512 and summary["steps_per_epoch"] == 8 and not summary["data_verified"]
    assert summary["total_train_time_s"] == pytest.approx(sum(row["epoch_time_s"] for row in rows))
    reached = [row["epoch"] for row in rows if row["test_accuracy"] >= 0.5]
    assert summary["epochs_to_target"] == (reached[0] if reached else None)
    assert (summary["time_to_target_s"] is None) == (not reached)
    for row in rows:
        assert (row["test_accuracy"] * 256).is_integer()  # a count of the 256 test images
        assert len(row["step_times_s"]) == 8 - (row["epoch"] == 1)  # the first step is compile time
        assert len(row["step_losses"]) == 8 and row["train_loss"] == pytest.approx(sum(row["step_losses"]) / 8)
        assert row["epoch_time_s"] == pytest.approx(
            row["compile_s"] + row["step_time_sum_s"] + row["data_wait_s"] + row["other_s"])
    assert rows[0]["compile_s"] > 0 and rows[1]["compile_s"] == 0 and summary["compile_s"] == rows[0]["compile_s"]
    assert result["environment"]["machine"]["software"]["tensorflow"] and result["environment"]["machine"]["id"]


def test_epoch_timing_accounts_for_its_wall_time_and_leaves_the_compile_step_out():
    timing = EpochTiming(wall_s=10.0, compile_s=4.0, step_times_s=[1.0, 1.5, 2.0], data_wait_s=0.5)
    row = timing.as_row(batch_size=32)
    assert row["other_s"] == pytest.approx(10.0 - 4.0 - 4.5 - 0.5)
    assert row["step_time_sum_s"] == 4.5 and row["step_times_s"] == [1.0, 1.5, 2.0]
    assert row["images_per_sec"] == pytest.approx(3 * 32 / 6.0)  # 3 timed steps over the 6 s after compile


def test_the_clock_takes_the_first_evaluation_at_the_target_with_the_evaluations_so_far():
    clock = RunClock(target_accuracy=0.9, stop_at_target=False, epochs=4)
    clock.add_epoch(1, train_s=10.0, eval_s=None, test_accuracy=None, clock_s=10.5)  # not evaluated
    clock.add_epoch(2, train_s=10.0, eval_s=2.0, test_accuracy=0.85, clock_s=23.0)
    assert clock.time_to_target_s is None and not clock.completed
    clock.add_epoch(3, train_s=10.0, eval_s=2.0, test_accuracy=0.91, clock_s=35.5)
    clock.add_epoch(4, train_s=10.0, eval_s=2.0, test_accuracy=0.92, clock_s=48.0)  # later ones do not move it
    assert clock.summary_fields() == {"time_to_target_s": 35.5, "epochs_to_target": 3, "eval_to_target_s": 4.0,
                                      "stopped_at_target": False, "completed": True, "total_train_time_s": 40.0,
                                      "total_eval_time_s": 6.0}


def test_the_clock_stops_at_the_target_when_asked_and_the_run_then_counts_as_completed():
    clock = RunClock(target_accuracy=0.9, stop_at_target=True, epochs=6)
    clock.add_epoch(1, train_s=10.0, eval_s=1.0, test_accuracy=0.95, clock_s=11.0)
    assert clock.stopped_at_target and clock.completed and clock.epochs_to_target == 1


def test_the_epoch_line_says_what_the_epoch_was_made_of():
    timing = EpochTiming(wall_s=10.0, compile_s=4.0, step_times_s=[1.0, 1.5, 2.0], data_wait_s=0.5)
    assert epoch_line(2, 6, timing, 16.0, 0.91234) == ("epoch 2/6: 10.0 s (steps 4.5 s, first step 4.0 s, input wait "
                                                       "0.5 s, other 1.0 s), 16 img/s, test accuracy 0.9123")
    assert epoch_line(1, 6, timing, 16.0, None).endswith("16 img/s, not evaluated")


def test_the_start_line_says_what_trains_where_on_which_data():
    summary = {"replicas": 2, "devices": ["/cpu:0", "/cpu:1"], "task": "local", "workers": ["local"],
               "train_images": 60000, "test_images": 10000, "data_dir": "/data", "steps_per_epoch": 234}
    assert start_line("resnet18-fp32", summary, 6) == (
        "training resnet18-fp32 on 2 replica(s) ['/cpu:0', '/cpu:1'] as local of 1 worker(s): 60000 train / 10000 "
        "test images from /data, 6 epoch(s) of 234 steps")


def test_progress_into_a_pipe_is_a_line_per_interval_and_none_after_the_last_step(monkeypatch):
    from resnet_perf.training import epoch as epoch_module

    lines: list[str] = []
    quiet = epoch_module.EpochProgress(3, write=lines.append, live=False)  # the interval (60 s) never passes here
    for step in (1, 2, 3):
        quiet.update(step, elapsed_s=2.0 * step, mean_loss=0.5, accuracy=0.75, images=16 * step)
    assert lines == []
    monkeypatch.setattr(epoch_module, "PIPE_PROGRESS_S", 0.0)
    progress = epoch_module.EpochProgress(3, write=lines.append, live=False)
    for step in (1, 2, 3):
        progress.update(step, elapsed_s=2.0 * step, mean_loss=0.5, accuracy=0.75, images=16 * step)
    assert lines == ["  step 1/3: 2 s, loss 0.5000, acc 0.7500, 8 img/s",
                     "  step 2/3: 4 s, loss 0.5000, acc 0.7500, 8 img/s"]


def test_a_run_reads_its_training_data_through_one_iterator_and_shows_progress_into_a_pipe(
        tmp_path, monkeypatch, capsys):
    """An iterator per epoch ended each epoch waiting in its destructor (the end-of-epoch tail)."""
    import tensorflow as tf

    from resnet_perf.training import epoch as epoch_module

    iterators = []
    distribute = tf.distribute.MirroredStrategy.experimental_distribute_dataset

    class Counted:
        def __init__(self, dataset):
            self.dataset = dataset

        def __iter__(self):
            iterators.append(self)
            return iter(self.dataset)

    monkeypatch.setattr(tf.distribute.MirroredStrategy, "experimental_distribute_dataset",
                        lambda self, dataset, *args: Counted(distribute(self, dataset, *args)))
    folder = write_dataset(tmp_path / "data", train=64, test=32)
    config = TrainConfig(run=RunConfig(depth=18, batch_size=16, image_size=32, channels=1, num_classes=10,
                                       precision="fp32"), epochs=3, data_dir=str(folder))
    monkeypatch.setattr(epoch_module, "PIPE_PROGRESS_S", 0.0)  # a progress line after every step but the last
    lines: list[str] = []
    payload = train(config, tmp_path / "train.json", report=lines.append)
    assert [row["epoch"] for row in payload["rows"]] == [1, 2, 3]
    assert len(iterators) == 2  # one for training and one for evaluation, for all three epochs
    assert [len(row["step_times_s"]) for row in payload["rows"]] == [3, 4, 4]
    progress = [line.split(":")[0].strip() for line in lines if "img/s" in line and line.startswith("  step ")]
    assert progress == ["step 1/4", "step 2/4", "step 3/4"] * 3
    # the run's own lines go where the caller says, the start first and one line per epoch; none to stdout
    assert lines[0].startswith(f"training {config.run.run_id} on ") and "64 train / 32 test images" in lines[0]
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1/3", "epoch 2/3",
                                                                                    "epoch 3/3"]
    assert not [line for line in capsys.readouterr().out.splitlines()
                if line.startswith(("training ", "epoch ", "  step "))]


def test_a_onednn_setting_the_loaded_tensorflow_cannot_take_is_refused_not_recorded(tmp_path):
    import tensorflow  # noqa: F401  loaded, as in any process that has run a step: oneDNN is fixed now

    from resnet_perf.machine.cpu import cpu_flags, onednn_enabled

    folder = write_dataset(tmp_path / "data", train=64, test=32)
    other = not onednn_enabled(cpu_flags())
    config = TrainConfig(run=RunConfig(depth=18, batch_size=16, image_size=32, channels=1, num_classes=10,
                                       precision="fp32", onednn=other), epochs=1, data_dir=str(folder))
    with pytest.raises(UserError, match="TensorFlow is already loaded with .*cannot change to"):
        train(config, tmp_path / "train.json")
    assert not (tmp_path / "train.json").exists()


@pytest.mark.slow
def test_the_train_command_runs_and_records_the_onednn_setting_it_is_given(tmp_path):
    folder = write_dataset(tmp_path / "data", train=64, test=32)
    output = tmp_path / "train.json"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}  # the flag, not the environment, decides
    done = subprocess.run([sys.executable, "-m", "resnet_perf.train", "--epochs", "1", "--batch-size", "16",
                           "--precision", "fp32", "--onednn", "on", "--data-dir", str(folder), "--output", str(output)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(output.read_text())
    assert result["rows"][0]["onednn"] is True
    assert result["environment"]["machine"]["software"]["onednn"] is True
    assert f"measured on {result['environment']['machine']['id']} (" in done.stdout  # the summary names its machine


def test_a_loss_that_becomes_nan_ends_the_run_keeping_the_finished_epochs(tmp_path, capsys, monkeypatch):
    from resnet_perf.training import loop

    folder = write_dataset(tmp_path / "data", train=64, test=32)
    output = tmp_path / "train.json"
    real_run_epoch = loop.run_epoch

    def second_epoch_diverges(train_step, batches, steps, batch_size, first_epoch, *args, **kwargs):
        if not first_epoch:
            train_step = lambda batch: (float("nan"), 0)  # noqa: E731
        return real_run_epoch(train_step, batches, steps, batch_size, first_epoch, *args, **kwargs)

    monkeypatch.setattr(loop, "run_epoch", second_epoch_diverges)
    code = main(["--data-dir", str(folder), "--output", str(output), "--batch-size", "32", "--precision", "fp32",
                 "--epochs", "3", "--image-size", "32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the training loss became nan at step 1" in err[0]
    rows = json.loads(output.read_text())["rows"]
    assert [row["epoch"] for row in rows] == [1]  # the finished epoch is kept


def test_an_interrupted_run_leaves_an_existing_output_file_as_it_was(tmp_path, capsys, monkeypatch):
    from resnet_perf.training import loop

    folder = write_dataset(tmp_path / "data", train=64, test=32)
    output = tmp_path / "train.json"
    output.write_text('{"an earlier result": true}\n')
    before = output.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "run_epoch", interrupted)
    code = main(["--data-dir", str(folder), "--output", str(output), "--batch-size", "32", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted before anything finished: nothing written" in err
    assert output.read_bytes() == before


@pytest.mark.parametrize("target, epochs_run, reached_at", [(0.01, 1, 1), (1.0, 2, None)])
def test_time_to_target_runs_from_the_first_step_to_the_end_of_the_evaluation_that_reached_it(
        tmp_path, target, epochs_run, reached_at):
    folder = write_dataset(tmp_path / "data", train=64, test=32)
    config = TrainConfig(run=RunConfig(depth=18, batch_size=16, image_size=32, channels=1, num_classes=10,
                                       precision="fp32"), epochs=2, data_dir=str(folder), target_accuracy=target,
                         stop_at_target=True)
    payload = train(config, tmp_path / "train.json")
    rows, summary = payload["rows"], payload["summary"]
    assert len(rows) == epochs_run  # any accuracy reaches 1%: stopped at the first evaluation
    clocks = [row["clock_s"] for row in rows]
    elapsed = 0.0
    for row, clock in zip(rows, clocks):  # the clock holds the epochs and their evaluations
        elapsed += row["epoch_time_s"] + row["eval_time_s"]
        assert clock >= elapsed
    assert clocks == sorted(clocks)
    assert summary["epochs_to_target"] == reached_at and summary["completed"]
    assert summary["stopped_at_target"] == (reached_at is not None)
    if reached_at:
        assert summary["time_to_target_s"] == clocks[0] and summary["eval_to_target_s"] == rows[0]["eval_time_s"]
        assert summary["compile_s"] == rows[0]["compile_s"] > 0
    else:
        assert summary["time_to_target_s"] is None and summary["eval_to_target_s"] is None


def test_evaluating_every_k_epochs_reads_the_target_at_evaluations_only(tmp_path):
    folder = write_dataset(tmp_path / "data", train=64, test=32)
    config = TrainConfig(run=RunConfig(depth=18, batch_size=16, image_size=32, channels=1, num_classes=10,
                                       precision="fp32"), epochs=3, eval_every=2, data_dir=str(folder),
                         target_accuracy=0.01)
    payload = train(config, tmp_path / "train.json")
    rows, summary = payload["rows"], payload["summary"]
    assert [row["test_accuracy"] is not None for row in rows] == [False, True, True]  # every 2nd and the last
    assert rows[0]["eval_time_s"] is None and rows[1]["eval_time_s"] > 0
    assert summary["epochs_to_target"] == 2 and summary["time_to_target_s"] == rows[1]["clock_s"]
    assert summary["total_eval_time_s"] == rows[1]["eval_time_s"] + rows[2]["eval_time_s"]
    assert summary["final_test_accuracy"] == rows[2]["test_accuracy"]


def test_the_evaluation_uses_the_moving_average_of_the_weights_and_gives_them_back():
    import numpy as np
    import tensorflow as tf

    from resnet_perf.training.trainer import Trainer

    config = TrainConfig(run=RunConfig(depth=18, batch_size=2, image_size=32, channels=1, num_classes=10,
                                       precision="fp32"), epochs=1, ema=0.5)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    trainer = Trainer(config, strategy, steps_per_epoch=4)
    variables = trainer.model.trainable_variables
    expected = [v.numpy() for v in variables]
    batch = (tf.random.stateless_uniform((2, 32, 32, 1), (1, 2)), tf.constant([3, 7]))
    for step in range(1, 5):
        trainer.train_step(batch)
        decay = min(0.5, (1 + step) / (10 + step))  # the first steps average faster
        expected = [decay * e + (1 - decay) * v.numpy() for e, v in zip(expected, variables)]
    trained = [v.numpy() for v in variables]
    seen = []

    def eval_step(_batch):
        seen.append([v.numpy() for v in variables])
        return 1

    trainer.eval_step = eval_step
    assert trainer.evaluate(iter([batch]), 1) == 1
    for average, evaluated, weights, now in zip(expected, seen[0], trained, variables):
        np.testing.assert_allclose(evaluated, average, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(now.numpy(), weights)  # given back exactly
    assert any(not np.allclose(average, weights) for average, weights in zip(expected, trained))


@pytest.mark.parametrize("augment", ["translate", "flip-translate"])
def test_augment_batch_moves_each_image_on_its_own_by_at_most_two_pixels(augment):
    import numpy as np
    import tensorflow as tf

    from resnet_perf.training.fashion_mnist import TRANSLATE_PIXELS, augment_batch

    images = np.zeros((200, 12, 12, 1), np.float32)
    images[:, 5, 3, 0] = 1.0  # one lit pixel, off the vertical axis so that a flip moves it
    tf.random.set_seed(0)
    moved = augment_batch(tf.constant(images), augment).numpy()
    places = set()
    for image in moved:
        lit = np.argwhere(image[..., 0] == 1.0)
        assert len(lit) == 1 and image.sum() == 1.0  # moved, not blurred
        row, column = lit[0]
        assert abs(row - 5) <= TRANSLATE_PIXELS
        if augment == "translate":
            assert abs(column - 3) <= TRANSLATE_PIXELS
        else:
            assert min(abs(column - 3), abs(column - (11 - 3))) <= TRANSLATE_PIXELS  # shifted, flipped or not
        places.add((row, column))
    flipped = any(column > 3 + TRANSLATE_PIXELS for _row, column in places)
    assert len(places) > 20 and flipped == (augment == "flip-translate")  # each its own; flips only when asked
    assert augment_batch(tf.constant(images), "none").numpy().tolist() == images.tolist()


@pytest.mark.parametrize("layout, axes", [("nhwc", (1, 2)), ("nchw", (2, 3))])
def test_shift_images_moves_a_batch_and_fills_with_zeros(layout, axes):
    import numpy as np

    from resnet_perf.training.fashion_mnist import shift_images

    images = np.zeros((2, 1, 6, 6) if layout == "nchw" else (2, 6, 6, 1), np.float32)
    pixel = (0, 0, 2, 3) if layout == "nchw" else (0, 2, 3, 0)
    images[pixel] = 1.0
    images[1] = 1.0  # a full image: what moves out is lost, zeros come in
    moved = shift_images(images, -1, 2, *axes).numpy()
    lit = list(pixel)
    lit[axes[0]] -= 1
    lit[axes[1]] += 2
    assert np.argwhere(moved[0] == 1.0).tolist() == [lit[1:]] and moved[0].sum() == 1.0
    full = moved[1].squeeze()
    assert full.sum() == 5 * 4 and not full[-1].any() and not full[:, :2].any()


def test_test_shift_evaluates_the_mean_prediction_of_the_image_and_its_four_shifts():
    import numpy as np
    import tensorflow as tf

    from resnet_perf.training.fashion_mnist import shift_images
    from resnet_perf.training.trainer import Trainer

    config = TrainConfig(run=RunConfig(depth=18, batch_size=8, image_size=32, channels=1, num_classes=10,
                                       precision="fp32"), epochs=1, test_shift=2)
    trainer = Trainer(config, tf.distribute.MirroredStrategy(["/cpu:0"]), steps_per_epoch=4)
    images = tf.random.stateless_uniform((8, 32, 32, 1), (3, 4))
    views = [images] + [shift_images(images, rows, columns) for rows, columns in ((2, 0), (-2, 0), (0, 2), (0, -2))]
    summed = sum(trainer.model(view, training=False).numpy() for view in views)
    np.testing.assert_allclose(trainer.evaluated_logits(images).numpy(), summed, rtol=1e-5, atol=1e-5)
    assert not np.allclose(summed, 5 * trainer.model(images, training=False).numpy(), rtol=1e-3)  # the views differ
    labels = tf.constant(np.argmax(summed, axis=-1), tf.int32)
    assert int(trainer.eval_step((images, labels))) == 8


def test_label_smoothing_is_the_cross_entropy_against_smoothed_labels():
    import keras
    import numpy as np
    import tensorflow as tf

    from resnet_perf.models.objective import logits_and_loss

    logits = tf.constant([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    model = keras.Sequential([keras.layers.Lambda(lambda images: images)])
    labels = tf.constant([0, 2])
    _, plain = logits_and_loss(model, logits, labels)
    _, smoothed = logits_and_loss(model, logits, labels, label_smoothing=0.3)
    log_probabilities = tf.nn.log_softmax(logits).numpy()
    targets = np.full((2, 3), 0.1)
    targets[[0, 1], [0, 2]] += 0.7
    assert float(smoothed) == pytest.approx(float(-(targets * log_probabilities).sum(-1).mean()), rel=1e-5)
    assert float(plain) == pytest.approx(float(-log_probabilities[[0, 1], [0, 2]].mean()), rel=1e-5)


def test_the_linear_schedule_rises_then_falls_to_zero():
    from resnet_perf.models.objective import learning_rate_schedule

    schedule = learning_rate_schedule("linear", 0.4, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100, 120)]
    assert values == pytest.approx([0.0, 0.2, 0.4, 0.2, 0.0, 0.0])
    assert learning_rate_schedule("constant", 0.4, 100, 10) == 0.4
    cosine = learning_rate_schedule("cosine", 0.4, total_steps=100, warmup_steps=10)
    assert float(cosine(10)) == pytest.approx(0.4) and float(cosine(100)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_sigterm_mid_run_ends_the_process_keeping_the_finished_epochs(tmp_path):
    """A tf.data iterator stopped mid-epoch once held the process in its destructor for good."""
    import signal

    folder = write_dataset(tmp_path / "data", train=128, test=32)
    output = tmp_path / "train.json"
    process = subprocess.Popen([sys.executable, "-m", "resnet_perf.train", "--epochs", "500", "--batch-size", "16",
                                "--precision", "fp32", "--data-dir", str(folder), "--output", str(output)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("epoch 3/500"):  # printed before its epoch is saved: epochs 1 and 2 are
                break
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=120)  # hanging in teardown would never end
    finally:
        process.kill()
    assert status == 143 and f"interrupted: what finished before it is in {output}" in process.stderr.read()
    assert len(json.loads(output.read_text())["rows"]) >= 2


@pytest.mark.slow
def test_training_accepts_amp_bf16_and_onednns_log_shows_its_convolutions_in_bfloat16(tmp_path):
    """amp_bf16 (grappler's bf16 rewrite of the float32 model) is an option of the whole training process:
    oneDNN's own log of the primitives it creates must show bfloat16 convolutions, as in the suite."""
    from resnet_perf.machine.cpu import cpu_flags
    from resnet_perf.machine.switches import VERBOSE_CREATIONS, VERBOSE_VARIABLE, ProcessSettings, primitive_problems
    from resnet_perf.precision import has_native_bf16
    from resnet_perf.spawn import package_env

    folder = write_dataset(tmp_path / "data", train=64, test=32)
    command = [sys.executable, "-m", "resnet_perf.train", "--precision", "amp_bf16", "--epochs", "1", "--batch-size", "16",
               "--image-size", "32", "--data-dir", str(folder), "--output", str(tmp_path / "train.json")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**package_env(), VERBOSE_VARIABLE: VERBOSE_CREATIONS})
    if not has_native_bf16(cpu_flags()):  # grappler would leave it float32: refused, not mislabelled
        assert done.returncode == 2 and "this CPU has no bfloat16 instructions" in done.stderr
        return
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (row,) = json.loads((tmp_path / "train.json").read_text())["rows"]
    assert row["run_id"].startswith("resnet18-amp_bf16") and row["precision"] == "amp_bf16"
    assert primitive_problems(ProcessSettings(amp_bf16=True), done.stdout.splitlines()) == []
