"""Full Fashion-MNIST training under MirroredStrategy: epoch time, images/s, test accuracy.

Each case runs ``python -m resnet_perf.train`` in a fresh process (replicas need the CPU split
into logical devices before TensorFlow starts), or with ``--train-strategy multiworker`` the
launcher's worker processes; the benchmark's time is that run's wall time.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from resnet_perf.data import DataError, locate
from resnet_perf.runtime import environment
from resnet_perf.subprocess_run import run_module
from resnet_perf.train import TrainConfig

TIMEOUT_S = 4 * 3600


def _train(config: TrainConfig, output, workers: int) -> dict:
    args = [*config.argv(), "--output", str(output)]
    if config.strategy == "multiworker":  # worker processes on this machine, one TF_CONFIG each
        module, args = "resnet_perf.launch", ["--workers", str(workers), "--", *args]
    else:
        module = "resnet_perf.train"
    try:
        done = run_module(module, args, TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{config.run_id}: training took over {TIMEOUT_S} s")
    if done.returncode != 0:
        lines = (done.stderr + done.stdout).splitlines()  # the launcher prefixes worker errors on stdout
        last = ([line for line in lines if "error" in line.lower()] or lines or ["no output"])[-1]
        pytest.fail(f"{config.run_id}: training exited {done.returncode}: {last}")
    return json.loads(output.read_text())


def test_fashion_mnist(benchmark, recorder, request, train_config, tmp_path):
    if benchmark.disabled:
        pytest.skip("pytest-benchmark is disabled: nothing is measured")
    try:
        folder = locate()
    except DataError as error:
        pytest.skip(str(error))
    config = dataclasses.replace(train_config, data_dir=str(folder))
    workers = request.config.option.train_workers
    result = benchmark.pedantic(_train, args=(config, tmp_path / "train.json", workers), rounds=1, iterations=1)
    for row in result["rows"]:
        recorder.add(row)
    last, summary = result["rows"][-1], result["summary"]
    benchmark.extra_info.update(
        run_id=train_config.run_id, replicas=summary["replicas"], workers=summary["workers"],
        worker_epoch_time_s=[row["worker_epoch_time_s"] for row in result["rows"]], epochs=len(result["rows"]),
        epoch_time_s=[row["epoch_time_s"] for row in result["rows"]],
        images_per_sec=last["images_per_sec"], test_accuracy=last["test_accuracy"],
        time_to_target_s=summary["time_to_target_s"], target_accuracy=config.target_accuracy,
        data_verified=summary["data_verified"], config=config.as_dict(), environment=environment())
