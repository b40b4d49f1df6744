"""``TF_CONFIG``: the cluster a MultiWorkerMirroredStrategy worker belongs to, read and written.

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'

Every process of a multi-worker run gets the same ``cluster`` and its own ``task``.  The chief
(a ``chief`` task if the cluster has one, else worker 0) is the one that writes results.
TensorFlow-free: a malformed ``TF_CONFIG`` is reported before TensorFlow starts, and so is a worker
that never comes (``wait_for_peers``).
"""
from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resnet_perf.errors import UserError

STARTUP_TIMEOUT_S = 180.0
"""How long a worker waits for the others to start: ample for workers started together (TensorFlow
starts in seconds), short enough that a worker that never comes is named within minutes."""
PEER_POLL_S = 0.5

TASK_TYPES = ("chief", "worker")
"""The jobs MultiWorkerMirroredStrategy trains with (evaluator and ps tasks are not part of it)."""


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in the cluster."""

    cluster: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or ("chief" not in self.cluster and self.task_index == 0)

    @property
    def num_workers(self) -> int:
        return sum(len(self.cluster.get(job, [])) for job in TASK_TYPES)

    @property
    def name(self) -> str:
        return f"{self.task_type}:{self.task_index}"

    @property
    def worker_names(self) -> list[str]:
        """Every training task, in the order TensorFlow ranks them: the chief first, then the workers."""
        return [f"{job}:{index}" for job in TASK_TYPES for index in range(len(self.cluster.get(job, [])))]

    @property
    def rank(self) -> int:
        return self.worker_names.index(self.name)

    @property
    def addresses(self) -> dict[str, str]:
        """Every training task's ``host:port``, by name (``worker:1``)."""
        return {f"{job}:{index}": address for job in TASK_TYPES
                for index, address in enumerate(self.cluster.get(job, []))}


def parse_tf_config(text: str | None) -> ClusterTask:
    """Validate a ``TF_CONFIG`` value; a ``UserError`` says what is wrong in one line."""
    if not text:
        raise UserError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment; "
                        "python -m resnet_perf.launch sets it for workers on this machine")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(config, dict):
        raise UserError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise UserError("TF_CONFIG has no 'cluster' object (job name -> list of host:port)")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(_is_address(a) for a in addresses):
            raise UserError(f"TF_CONFIG cluster job {job!r} must be a non-empty list of 'host:port' strings")
    if not any(job in cluster for job in TASK_TYPES):
        raise UserError(f"TF_CONFIG cluster has no 'worker' or 'chief' job (it has {', '.join(cluster)})")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise UserError("TF_CONFIG has no 'task' with 'type' and 'index'")
    task_type, task_index = task["type"], task["index"]
    if task_type not in TASK_TYPES:
        raise UserError(f"TF_CONFIG task type {task_type!r} does not train: use one of {', '.join(TASK_TYPES)}")
    if task_type not in cluster:
        raise UserError(f"TF_CONFIG task type {task_type!r} is not a job of the cluster ({', '.join(cluster)})")
    if not isinstance(task_index, int) or isinstance(task_index, bool):
        raise UserError(f"TF_CONFIG task index {task_index!r} is not an integer (write 0, not \"0\")")
    if not 0 <= task_index < len(cluster[task_type]):
        raise UserError(f"TF_CONFIG task index {task_index!r} is out of range: job {task_type!r} has "
                        f"{len(cluster[task_type])} task(s)")
    return ClusterTask(cluster={job: list(addresses) for job, addresses in cluster.items()},
                       task_type=task_type, task_index=task_index)


def _is_address(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def current_task() -> ClusterTask:
    """This process's task, from the ``TF_CONFIG`` environment variable."""
    return parse_tf_config(os.environ.get("TF_CONFIG"))


def tf_config(worker_addresses: list[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``worker_addresses``."""
    return json.dumps({"cluster": {"worker": list(worker_addresses)}, "task": {"type": "worker", "index": index}})


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def wait_for_peers(task: ClusterTask, timeout_s: float = STARTUP_TIMEOUT_S,
                   report: Callable[[str], None] = lambda line: None) -> None:
    """Return once every other training task of the cluster is up, or raise a ``UserError`` naming
    the ones that did not start within ``timeout_s``.

    TensorFlow's own wait for the other workers (inside MultiWorkerMirroredStrategy) has no deadline,
    holds the GIL and takes SIGTERM for itself: a worker whose peer never starts would wait forever,
    deaf to Ctrl-C.  So each worker first meets the others, in Python, with a deadline: it listens
    on its own ``TF_CONFIG`` address (the port TensorFlow's server takes next) and knocks on every
    other's, saying its name, until every peer has both answered its knock and knocked on it.  Then
    all of them have seen all the others, and none will knock on this port again once it closes.
    """
    own = task.addresses[task.name]
    peers = {name: address for name, address in task.addresses.items() if name != task.name}
    listener = socket.socket(socket.AF_INET6 if ":" in _host_port(own)[0] else socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(_host_port(own))
        except OSError as error:
            raise UserError(f"{task.name} cannot listen on its address {own} from TF_CONFIG "
                            f"({error.strerror or error})") from None
        listener.listen(16)
        listener.setblocking(False)
        if peers:
            report(f"{task.name}: waiting up to {timeout_s:.0f} s for {', '.join(peers)}")
        answered: set[str] = set()
        knocked: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while True:
            answered |= {name for name, address in peers.items() if name not in answered
                         and _knock(address, task.name)}
            knocked |= _names_knocking(listener)
            missing = [name for name in peers if name not in answered or name not in knocked]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise UserError(f"{task.name}: {', '.join(f'{name} ({peers[name]})' for name in missing)} "
                                f"did not start within {timeout_s:.0f} s (--startup-timeout); "
                                f"is every worker of TF_CONFIG running?")
            time.sleep(PEER_POLL_S)
    finally:
        listener.close()


def _knock(address: str, name: str) -> bool:
    """Whether the task at ``address`` is listening; it is told who knocked."""
    try:
        with socket.create_connection(_host_port(address), timeout=PEER_POLL_S) as connection:
            connection.sendall(f"{name}\n".encode())
            return True
    except OSError:
        return False


def _names_knocking(listener: socket.socket) -> set[str]:
    """The names of the tasks that knocked since the last call.  Each connection is reset on
    closing, which leaves no TIME_WAIT on this port for TensorFlow's server to trip on."""
    names = set()
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return names
        with connection:
            connection.settimeout(PEER_POLL_S)
            try:
                names.add(connection.recv(256).decode(errors="replace").strip())
            except OSError:
                pass
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
