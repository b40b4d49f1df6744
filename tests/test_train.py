"""Fashion-MNIST training: config checks in-process, real 2-replica runs in a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError
from resnet_perf.recipes import TrainConfig
from resnet_perf.train import main
from resnet_perf.trainer import EpochTiming, train
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


def test_a_run_reads_its_training_data_through_one_iterator(tmp_path, monkeypatch):
    """An iterator per epoch ended each epoch waiting in its destructor (the end-of-epoch tail)."""
    import tensorflow as tf

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
    payload = train(config, tmp_path / "train.json")
    assert [row["epoch"] for row in payload["rows"]] == [1, 2, 3]
    assert len(iterators) == 2  # one for training and one for evaluation, for all three epochs
    assert [len(row["step_times_s"]) for row in payload["rows"]] == [3, 4, 4]


def test_a_loss_that_becomes_nan_ends_the_run_keeping_the_finished_epochs(tmp_path, capsys, monkeypatch):
    from resnet_perf import train as train_module

    folder = write_dataset(tmp_path / "data", train=64, test=32)
    output = tmp_path / "train.json"
    real_run_epoch = train_module._run_epoch

    def second_epoch_diverges(trainer, batches, steps, batch_size, first_epoch):
        if not first_epoch:
            trainer.train_step = lambda batch: (float("nan"), 0)
        return real_run_epoch(trainer, batches, steps, batch_size, first_epoch)

    monkeypatch.setattr(train_module, "_run_epoch", second_epoch_diverges)
    code = main(["--data-dir", str(folder), "--output", str(output), "--batch-size", "32", "--precision", "fp32",
                 "--epochs", "3", "--image-size", "32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the training loss became nan at step 1" in err[0]
    rows = json.loads(output.read_text())["rows"]
    assert [row["epoch"] for row in rows] == [1]  # the finished epoch is kept


def test_an_interrupted_run_leaves_an_existing_output_file_as_it_was(tmp_path, capsys, monkeypatch):
    from resnet_perf import train as train_module

    folder = write_dataset(tmp_path / "data", train=64, test=32)
    output = tmp_path / "train.json"
    output.write_text('{"an earlier result": true}\n')
    before = output.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_run_epoch", interrupted)
    code = main(["--data-dir", str(folder), "--output", str(output), "--batch-size", "32", "--precision", "fp32"])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert output.read_bytes() == before
