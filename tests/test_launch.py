"""Multi-worker training with real worker processes on 127.0.0.1, started by the launcher."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resnet_perf import launch, train

from resnet_perf.spawn import package_env
from resnet_perf.training import netns
from tests.fmnist_files import write_dataset

RUN_LIMIT_S = 600
TINY_TRAINING = ["--depth", "18", "--epochs", "1", "--batch-size", "16", "--image-size", "32", "--precision", "fp32",
                 "--limit-train", "64", "--limit-test", "32"]


def launcher(*args: str, temp_dir: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "resnet_perf.launch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=package_env(temp_dir))


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, killed and waiting for a container's init to reap it, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_two_workers_train_and_the_chief_records_both(tmp_path):
    data, output = write_dataset(tmp_path / "data", train=64, test=32), tmp_path / "result.json"
    process = launcher("--workers", "2", "--", *TINY_TRAINING, "--data-dir", str(data), "--output", str(output))
    lines = [process.stdout.readline(), process.stdout.readline()]
    assert "private network namespace" in lines[0], lines
    ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", lines[1])]
    reached = []

    def knock() -> None:  # the workers' TensorFlow servers listen on every interface of their namespace
        while process.poll() is None:
            for port in ports:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    reached.append(port)
                except OSError:
                    pass
            time.sleep(0.1)
    knocking = threading.Thread(target=knock)
    knocking.start()
    out, _ = process.communicate(timeout=RUN_LIMIT_S)  # bounded: a hung cluster fails the test
    knocking.join()
    out = "".join(lines) + out
    assert process.returncode == 0, out[-4000:]
    assert len(ports) == 2 and not reached  # they trained together, and nobody outside could reach them
    assert "[worker 0] " in out and "[worker 1] " in out
    assert "[worker 1] worker:1: the chief writes the result file" in out
    result = json.loads(output.read_text())
    summary, (row,) = result["summary"], result["rows"]
    assert summary["strategy"] == "multiworker" and summary["completed"] is True
    assert summary["workers"] == ["worker:0", "worker:1"] and summary["task"] == "worker:0"
    assert summary["replicas"] == 2 and len(summary["cluster"]["worker"]) == 2
    assert row["workers"] == ["worker:0", "worker:1"]
    assert len(row["worker_epoch_time_s"]) == 2 and all(t > 0 for t in row["worker_epoch_time_s"])
    assert all(rate > 0 for rate in row["worker_images_per_sec"]) and row["images_per_sec"] > 0
    assert row["epoch_time_s"] == row["worker_epoch_time_s"][0]  # the chief's own figure is worker 0's
    assert row["run_id"].endswith("-mw-e1") and (row["test_accuracy"] * 32).is_integer()  # of 32 test images


@pytest.mark.slow
def test_a_dying_worker_stops_the_other_and_fails_the_launch(tmp_path):
    data = write_dataset(tmp_path / "data", train=64, test=32)
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    process = launcher("--workers", "2", "--", *TINY_TRAINING, "--epochs", "50", "--data-dir", str(data),
                       "--output", str(tmp_path / "result.json"), temp_dir=temp_dir)
    pids, lines = {}, []
    deadline = time.monotonic() + RUN_LIMIT_S
    while len(pids) < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        match = re.match(r"worker (\d): pid (\d+)", line)
        if match:
            pids[int(match.group(1))] = int(match.group(2))
    assert len(pids) == 2, "".join(lines)
    while "[worker 1] training" not in lines[-1] and time.monotonic() < deadline:  # the cluster has formed
        lines.append(process.stdout.readline())
    os.kill(pids[1], signal.SIGKILL)
    out, _ = process.communicate(timeout=RUN_LIMIT_S)
    assert process.returncode != 0
    assert "worker 1 exited with status -9: stopping the others" in out
    assert "Traceback" not in out, out[-4000:]  # the line above says which worker failed
    assert not alive(pids[0]) and not alive(pids[1])  # no orphan left
    assert not list(temp_dir.iterdir())  # the workers' TMPDIR removed, with what the killed one wrote in it


def test_stop_all_ends_whole_process_groups():
    # A worker that started a child of its own: both must go.
    worker = subprocess.Popen(["bash", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    grandchild = int(worker.stdout.readline())
    launch.stop_all([worker], grace_s=5)
    time.sleep(0.2)
    assert worker.returncode is not None and not alive(grandchild)


@pytest.mark.parametrize("args, message", [
    (["--workers", "0", "--", "--epochs", "1"], "--workers must be at least 1"),
    (["--workers", "2", "--", "--strategy", "mirrored"], "runs workers with --strategy multiworker, not mirrored"),
    (["--threads-per-worker", "0", "--", "--epochs", "1"], "--threads-per-worker must be at least 1"),
])
def test_launcher_bad_input_is_one_error_line(capsys, args, message):
    assert launch.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("env, args, message", [
    ({}, ["--strategy", "multiworker"], "needs TF_CONFIG"),
    ({"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'},
     ["--strategy", "multiworker"], "task index 3 is out of range"),
    ({}, ["--strategy", "multiworker", "--replicas", "2"], "--replicas must be 'auto' with --strategy multiworker"),
])
def test_train_multiworker_bad_tf_config_is_one_error_line(monkeypatch, capsys, tmp_path, env, args, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert train.main([*args, "--output", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.fixture
def lone_worker(tmp_path):
    """Starts worker 0 of a two-worker cluster whose worker 1 never starts; whatever the test does
    (a timeout included), the worker is ended with it."""
    started = []

    def start(*args: str, ignore_sigint: bool = False) -> tuple[subprocess.Popen, list[int]]:
        ports = launch.free_loopback_ports(2)
        env = {**package_env(), "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                                         "task": {"type": "worker", "index": 0}})}
        # ignore_sigint: started as a background job of a non-interactive shell is (`pytest tests &`)
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        process = subprocess.Popen([sys.executable, "-m", "resnet_perf.train", "--strategy", "multiworker",
                                    "--output", str(tmp_path / "result.json"), *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                   preexec_fn=ignore)
        started.append(process)
        return process, ports
    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_a_lone_worker_ends_at_its_startup_deadline_naming_the_missing_one(tmp_path, lone_worker):
    process, ports = lone_worker("--startup-timeout", "2")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.strip().splitlines() == [
        f"error: worker:0: worker:1 (127.0.0.1:{ports[1]}) did not start within 2 s (--startup-timeout); "
        "is every worker of TF_CONFIG running?"]
    assert "waiting up to 2 s for worker:1" in out and not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("sig, status, ignore_sigint", [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, False),
                                                        (signal.SIGINT, 130, True)])
def test_a_waiting_worker_ends_on_sigterm_and_sigint_however_it_was_started(lone_worker, sig, status, ignore_sigint):
    process, _ports = lone_worker(ignore_sigint=ignore_sigint)  # the default deadline: minutes
    assert "waiting up to" in process.stdout.readline()
    process.send_signal(sig)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == status and "interrupted" in err


def test_the_private_network_has_loopback_only_and_hides_what_listens_on_every_interface():
    code = ("import socket, sys\nfrom resnet_perf.training import netns\nnetns.loopback_up()\n"
            "server = socket.socket()\nserver.bind(('0.0.0.0', 0))\nserver.listen()\n"
            "port = server.getsockname()[1]\n"
            "socket.create_connection(('127.0.0.1', port), timeout=5).close()\n"  # reachable inside
            "print(port, ','.join(sorted(name for _, name in socket.if_nameindex())), flush=True)\n"
            "sys.stdin.read()\n")
    inside = subprocess.Popen([*netns.UNSHARE, sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=package_env())
    try:
        port, interfaces = inside.stdout.readline().split()
        assert interfaces == "lo"
        with pytest.raises(ConnectionRefusedError):  # not from this machine's own network
            socket.create_connection(("127.0.0.1", int(port)), timeout=5)
    finally:
        inside.communicate(input="", timeout=30)
