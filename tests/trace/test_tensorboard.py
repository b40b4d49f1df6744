"""A real TensorBoard server with the profile plugin lists our trace and serves its trace viewer."""
from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from resnet_perf import profile
from resnet_perf.trace.xplane import trace_files

STARTUP_TIMEOUT_S = 120


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_json(url: str, timeout: float = 60):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":  # the profile plugin compresses its answers
            body = gzip.decompress(body)
        return json.loads(body)


@pytest.fixture
def tensorboard(tmp_path):
    """``(base_url, logdir)`` of a TensorBoard serving ``logdir``; stopped afterwards."""
    logdir, port = tmp_path / "logs", _free_loopback_port()
    logdir.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                               "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "tensorboard.log", "w"))
    try:
        yield f"http://127.0.0.1:{port}", logdir
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode is not None


def _wait_for_runs(base: str, server_log) -> list[str]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            runs = _get_json(f"{base}/data/plugin/profile/runs", timeout=10)
            if runs:
                return runs
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            pass
        time.sleep(1)
    pytest.fail(f"TensorBoard listed no profile run within {STARTUP_TIMEOUT_S} s:\n{server_log.read_text()[-3000:]}")


@pytest.mark.slow
def test_tensorboard_lists_the_run_and_offers_the_trace_viewer(tensorboard, tmp_path, capsys):
    base, logdir = tensorboard
    assert profile.main(["--depth", "18", "--batch-size", "2", "--image-size", "32", "--warmup", "1",
                         "--steps", "2", "--logdir", str(logdir)]) == 0
    (trace,) = trace_files(logdir)
    run, host = trace.parent.name, trace.name.removesuffix(".xplane.pb")

    assert _wait_for_runs(base, tmp_path / "tensorboard.log") == [run]
    query = urllib.parse.urlencode({"run": run})
    tools = _get_json(f"{base}/data/plugin/profile/run_tools?{query}")
    viewer = next((tool for tool in tools if tool.startswith("trace_viewer")), None)
    assert viewer is not None, tools
    hosts = _get_json(f"{base}/data/plugin/profile/hosts?{urllib.parse.urlencode({'run': run, 'tag': viewer})}")
    assert {"hostname": host} in hosts

    query = urllib.parse.urlencode({"run": run, "tag": "trace_viewer", "host": host})
    events = _get_json(f"{base}/data/plugin/profile/data?{query}")["traceEvents"]
    assert any(event.get("args", {}).get("name") == "/host:CPU" for event in events)
    # The step markers became the viewer's step groups: one group per traced step.
    assert {event["args"]["group_id"] for event in events if "group_id" in event.get("args", {})} == {"0", "1"}
