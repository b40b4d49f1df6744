"""Full Fashion-MNIST training under MirroredStrategy: epoch time, images/s, test accuracy.

Each case runs ``python -m resnet_perf.train`` in a fresh process (replicas need the CPU split
into logical devices before TensorFlow starts), or with ``--train-strategy multiworker`` the
launcher's worker processes.  Like the memory cases it is not a pytest-benchmark benchmark (a
process's wall time is no step time): its epoch rows go to the suite's JSON and training table.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from resnet_perf.spawn import run_module
from resnet_perf.training.fashion_mnist import DataError, locate
from resnet_perf.training.recipes import TrainConfig

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
    result = _train(config, tmp_path / "train.json", workers)
    for row in result["rows"]:
        recorder.add(row)
