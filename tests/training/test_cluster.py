"""TF_CONFIG: validated in one line per mistake, written by the launcher for each worker; the workers' meeting
with a deadline before TensorFlow starts."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from resnet_perf.errors import UserError
from resnet_perf.launch import free_loopback_ports
from resnet_perf.training.cluster import ClusterTask, parse_tf_config, tf_config, wait_for_peers

TWO_WORKERS = {"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}, "task": {"type": "worker", "index": 1}}


def test_the_launchers_tf_config_parses_back():
    task = parse_tf_config(tf_config(["127.0.0.1:2001", "127.0.0.1:2002"], 1))
    assert (task.task_type, task.task_index, task.num_workers, task.rank) == ("worker", 1, 2, 1)
    assert not task.is_chief and parse_tf_config(tf_config(["h:1", "h:2"], 0)).is_chief
    assert task.worker_names == ["worker:0", "worker:1"]


def test_a_chief_task_is_the_chief_and_ranks_first():
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}
    task = parse_tf_config(json.dumps(config))
    assert not task.is_chief and task.rank == 1 and task.num_workers == 3
    assert parse_tf_config(json.dumps({**config, "task": {"type": "chief", "index": 0}})).is_chief


@pytest.mark.parametrize("text, message", [
    (None, "needs TF_CONFIG"),
    ("", "needs TF_CONFIG"),
    ('{"cluster": ', "not valid JSON"),
    ("[1]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list of 'host:port'"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "'host:port'"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "no 'worker' or 'chief' job"),
    ('{"cluster": {"worker": ["a:1"]}}', "no 'task'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", "index": 0}}', "does not train"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not a job of the cluster"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "index 1 is out of range"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}', "index '0' is not an integer"),
])
def test_malformed_or_incomplete_tf_config_is_one_clear_error(text, message):
    with pytest.raises(UserError, match=message) as caught:
        parse_tf_config(text)
    assert "\n" not in str(caught.value)


def test_valid_two_worker_config():
    assert parse_tf_config(json.dumps(TWO_WORKERS)).name == "worker:1"


def test_tf_config_is_checked_before_tensorflow_is_imported():
    import os
    import subprocess
    import sys

    code = ("import sys\nfrom resnet_perf.train import main\n"
            "status = main(['--strategy', 'multiworker'])\n"
            "print(status, 'tensorflow' in sys.modules)\n")
    env = {**os.environ, "TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert "TF_CONFIG task index 3 is out of range" in done.stderr


def _cluster_of(ports: list[int], index: int) -> ClusterTask:
    return parse_tf_config(tf_config([f"127.0.0.1:{port}" for port in ports], index))


def test_a_worker_whose_peer_never_starts_gives_up_at_the_deadline_naming_it():
    ports = free_loopback_ports(2)
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        wait_for_peers(_cluster_of(ports, 0), timeout_s=1.0)
    assert 1.0 <= time.monotonic() - started < 10
    assert str(caught.value).startswith(f"worker:0: worker:1 (127.0.0.1:{ports[1]}) did not start within 1 s")


def test_workers_that_all_start_meet_and_free_their_ports_for_tensorflow():
    ports = free_loopback_ports(3)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        time.sleep(0.3 * index)  # they start at different times
        try:
            wait_for_peers(_cluster_of(ports, index), timeout_s=20)
        except BaseException as error:
            errors.append(error)
    threads = [threading.Thread(target=worker, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and not any(thread.is_alive() for thread in threads)
    for port in ports:  # what TensorFlow's server does next: listen on the same port
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_worker_whose_own_port_is_taken_says_so():
    ports = free_loopback_ports(2)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports[0]))
        squatter.listen()
        with pytest.raises(UserError, match=f"worker:0 cannot listen on its address 127.0.0.1:{ports[0]}"):
            wait_for_peers(_cluster_of(ports, 0), timeout_s=1.0)
