"""Try multi-worker training on one machine: N worker processes on loopback ports, one TF_CONFIG each.

    python -m resnet_perf.launch --workers 2 -- --epochs 1 --output results/train-2workers.json

Everything after ``--`` goes to ``python -m resnet_perf.train`` (with ``--strategy multiworker``,
added where not given).  Each worker's output is streamed with a ``[worker i]`` prefix.  When a worker fails, or on
Ctrl-C or SIGTERM, every other worker is stopped (its whole process group: SIGTERM, then SIGKILL after a
grace period), so no process is left behind; the exit status is the failed worker's (130 on Ctrl-C,
143 on SIGTERM).  The workers run in a private network namespace by default (``resnet_perf.training.netns``),
so the servers TensorFlow starts on every interface can be reached by them alone.

On several real machines there is no launcher: each host runs ``python -m resnet_perf.train
--strategy multiworker`` with its own ``TF_CONFIG`` (see README).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import IO

from resnet_perf import cli

from resnet_perf.errors import UserError
from resnet_perf.spawn import module_command, package_env
from resnet_perf.training import netns
from resnet_perf.training.cluster import tf_config

GRACE_S = 10.0
POLL_S = 0.2


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (held together while picked, so distinct)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]


def worker_environment(addresses: list[str], index: int, threads: int | None, temp_dir: str) -> dict[str, str]:
    """The environment of worker ``index``: its TF_CONFIG, its share of the cores unless set already, and
    ``temp_dir`` as its temporary directory (the launcher removes it after the workers)."""
    env = {**package_env(temp_dir), "TF_CONFIG": tf_config(addresses, index), "PYTHONUNBUFFERED": "1"}
    if threads:
        env.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        env.setdefault("OMP_NUM_THREADS", str(threads))
    return env


def _stream(prefix: str, source: IO[str], sink: IO[str], lock: threading.Lock) -> None:
    for line in source:
        with lock:
            sink.write(f"{prefix} {line}" if line.endswith("\n") else f"{prefix} {line}\n")
            sink.flush()


def stop_all(workers: Sequence[subprocess.Popen], grace_s: float = GRACE_S) -> None:
    """SIGTERM every worker's process group, then SIGKILL what is left after ``grace_s``.

    Whole groups, also of a worker that has already ended: anything it started goes too.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for worker in workers:
            try:
                os.killpg(worker.pid, sig)
            except ProcessLookupError:  # the group is empty: nothing left to stop
                pass
        deadline = time.monotonic() + grace_s
        while any(worker.poll() is None for worker in workers) and time.monotonic() < deadline:
            time.sleep(POLL_S)
    for worker in workers:
        worker.wait()


def launch(count: int, train_args: Sequence[str], threads: int | None, sink: IO[str] | None = None) -> int:
    """Run ``count`` workers to the end; the first non-zero exit stops the rest and is returned."""
    sink = sink or sys.stdout
    addresses = [f"127.0.0.1:{port}" for port in free_loopback_ports(count)]
    strategy = [] if "--strategy" in train_args else ["--strategy", "multiworker"]
    command = module_command("resnet_perf.train", [*strategy, *train_args])
    lock = threading.Lock()
    workers: list[subprocess.Popen] = []
    streams: list[threading.Thread] = []
    print(f"launching {count} workers on {', '.join(addresses)}: {' '.join(command[1:])}", file=sink, flush=True)
    temp_dir = tempfile.mkdtemp(prefix="resnet_perf-launch-")
    try:
        for index in range(count):
            worker = subprocess.Popen(command, env=worker_environment(addresses, index, threads, temp_dir),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True)  # its own process group, to stop it whole
            workers.append(worker)
            print(f"worker {index}: pid {worker.pid}, TF_CONFIG task index {index}", file=sink, flush=True)
            stream = threading.Thread(target=_stream, args=(f"[worker {index}]", worker.stdout, sink, lock), daemon=True)
            stream.start()
            streams.append(stream)
        while True:
            failed = [(index, worker.returncode) for index, worker in enumerate(workers)
                      if worker.poll() is not None and worker.returncode != 0]
            if failed:
                index, code = failed[0]
                print(f"worker {index} exited with status {code}: stopping the others", file=sink, flush=True)
                return code if code > 0 else 1  # killed by a signal: still a failure
            if all(worker.poll() == 0 for worker in workers):
                return 0
            time.sleep(POLL_S)
    except KeyboardInterrupt as stop:
        print("interrupted: stopping every worker", file=sink, flush=True)
        return cli.interrupted_status(stop)
    finally:
        stop_all(workers)  # a no-op when all have ended
        for stream in streams:
            stream.join(timeout=5)
        shutil.rmtree(temp_dir, ignore_errors=True)  # with what a killed worker left in it


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m resnet_perf.launch",
        description="Start N MultiWorkerMirroredStrategy workers of python -m resnet_perf.train on this machine "
                    "(loopback ports, one TF_CONFIG each), stream their output, stop them all if one fails.",
        epilog="Example: python -m resnet_perf.launch --workers 2 -- --epochs 1 --batch-size 256")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default %(default)s)")
    parser.add_argument("--threads-per-worker", type=int, default=None,
                        help="TF_NUM_INTRAOP_THREADS of each worker (default: the cores divided among the "
                             "workers; an explicit TF_NUM_INTRAOP_THREADS in the environment wins)")
    parser.add_argument("--network", choices=("private", "shared"), default="private",
                        help="private: the workers run in a network namespace of their own with only loopback, so "
                             "the servers TensorFlow opens on every interface are reachable by them alone (needs "
                             "'unshare' and user namespaces); shared: this machine's network (default %(default)s)")
    parser.add_argument("train_args", nargs=argparse.REMAINDER,
                        help="-- then the arguments of python -m resnet_perf.train")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    cli.take_interrupts()  # so that the workers are stopped on the way out, not left running
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    try:
        if args.workers < 1:
            raise UserError(f"--workers must be at least 1, got {args.workers}")
        given = train_args[train_args.index("--strategy") + 1:][:1] if "--strategy" in train_args else None
        if given is not None and given != ["multiworker"]:
            raise UserError(f"the launcher runs workers with --strategy multiworker, not {' '.join(given) or 'nothing'}")
        if args.threads_per_worker is not None and args.threads_per_worker < 1:
            raise UserError(f"--threads-per-worker must be at least 1, got {args.threads_per_worker}")
        threads = args.threads_per_worker or max(1, (os.cpu_count() or 1) // args.workers)
        if args.network == "private" and not netns.inside():
            netns.check_available()
            netns.reexec_inside("resnet_perf.launch", argv)
    except UserError as error:
        return cli.fail(error)
    if netns.inside():
        netns.loopback_up()
        print("workers in a private network namespace: their ports are reachable by them alone", flush=True)
    return launch(args.workers, train_args, threads)


if __name__ == "__main__":
    sys.exit(main())
