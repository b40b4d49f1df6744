"""Result files: one versioned JSON schema, written atomically, never over an earlier file.

A file is ``{"schema": "resnet_perf/results", "schema_version": 2, "kind": ..., "created": ...,
"environment": {...}, ...metadata, "rows": [...]}``; ``kind`` is ``bench`` (the benchmark suite),
``train`` (``python -m resnet_perf.train``) or ``profile`` (``python -m resnet_perf.profile``); the
environment holds the versions, devices and git commit.  Each row is flat (config fields,
``mode``, raw ``step_times_s`` and their stats, ``flops_per_step``) so pandas can pivot rows without
special cases.  A bench file keeps its matmul peak readings once (``matmul_peak_readings``:
``{dtype: [FLOP/s, ...]}``); images/s, FLOP/s and MFU are derived when a file is read.

Version 2 (this one) changed what rows mean: raw inputs instead of stored MFU, backward derived
from a training-mode forward, training FLOPs counted per layer, memory including optimizer state
under a field named for its kind.  Version 1 files are refused with a line saying so.

``load_result_set`` also reads pytest-benchmark's JSON (``--benchmark-json`` or the ``.benchmarks/``
autosave): each benchmark's ``extra_info`` carries one of the same rows, and the session's data
(peak readings, environment) sits under the file's ``resnet_perf`` key.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from resnet_perf.errors import UserError
from resnet_perf.flops import session_peaks, with_derived_metrics

SCHEMA = "resnet_perf/results"
SCHEMA_VERSION = 2
PYTEST_BENCHMARK_KEY = "resnet_perf"
"""Where the suite puts its session data (peak readings, environment) in pytest-benchmark's JSON."""


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then rename: no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(payload, stream, indent=1, default=str)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _unused_path(directory: Path, stem: str) -> Path:
    path, counter = directory / f"{stem}.json", 1
    while path.exists():
        counter += 1
        path = directory / f"{stem}-{counter}.json"
    return path


def result_payload(kind: str, rows: Sequence[dict[str, Any]], environment: dict[str, Any],
                   **metadata: Any) -> dict[str, Any]:
    """A result file's content: schema, kind, creation time, environment, metadata, then the rows."""
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "kind": kind,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "environment": environment,
            **metadata, "rows": list(rows)}


def write_results(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a payload to ``path`` atomically; an unwritable place is a ``UserError`` naming it."""
    path = Path(path)
    try:
        write_json_atomic(path, payload)
    except OSError as error:
        raise UserError(f"cannot write results to {path}: {error.strerror or error}") from None
    return path


def save_rows(directory: str | Path, kind: str, rows: Sequence[dict[str, Any]],
              environment: dict[str, Any], **metadata: Any) -> Path:
    """Save ``rows`` as ``{directory}/{kind}-{UTC time}.json`` (a new name if taken); return the path.

    An unwritable ``directory`` is a ``UserError`` naming it.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write results to {directory}: {error.strerror or error}") from None
    stem = f"{kind}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    return write_results(_unused_path(directory, stem), result_payload(kind, rows, environment, **metadata))


def check_payload(path: Path, payload: Any) -> dict[str, Any]:
    """``payload`` if it is a result file of the schema version this code reads, else a ``UserError``."""
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise UserError(f"{path} is not a resnet_perf result file (nor pytest-benchmark JSON)")
    if payload.get("schema_version") == 1:
        raise UserError(f"{path} has schema version 1, whose MFU, memory and backward figures were measured "
                        f"differently; this resnet_perf reads version {SCHEMA_VERSION}: measure again")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path} has schema version {payload.get('schema_version')!r}; "
                        f"this resnet_perf reads version {SCHEMA_VERSION}")
    return payload


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON: truncated, or not a result file") from None


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a result file written by ``save_rows``; a ``UserError`` naming the file if it is not one."""
    path = Path(path)
    return check_payload(path, _read_json(path))


@dataclass(frozen=True)
class ResultSet:
    """The rows of one result file, with where they came from, their derived metrics added."""

    path: Path
    kind: str
    created: str | None
    environment: dict[str, Any]
    rows: list[dict[str, Any]]
    matmul_peaks: dict[str, float]

    @property
    def label(self) -> str:
        return self.path.stem


def _peak_readings(path: Path, readings: Any) -> dict[str, float]:
    if readings is None:
        return {}
    if not isinstance(readings, dict) or not all(isinstance(values, list) for values in readings.values()):
        raise UserError(f"{path}: matmul_peak_readings is not a {{dtype: [FLOP/s, ...]}} object")
    return session_peaks(readings)


def _result_set(path: Path, kind: str, created: Any, environment: Any, rows: list, readings: Any) -> ResultSet:
    peaks = _peak_readings(path, readings)
    return ResultSet(path=path, kind=kind, created=created if isinstance(created, str) else None,
                     environment=environment if isinstance(environment, dict) else {},
                     rows=with_derived_metrics(rows, peaks), matmul_peaks=peaks)


def _from_pytest_benchmark(path: Path, payload: dict[str, Any]) -> ResultSet:
    """Rows from pytest-benchmark's JSON: each benchmark's ``extra_info`` is one of our rows."""
    rows = []
    for benchmark in payload["benchmarks"]:
        if not isinstance(benchmark, dict) or not isinstance(benchmark.get("extra_info"), dict):
            raise UserError(f"{path} has a benchmark entry without extra_info: not a pytest-benchmark JSON file")
        info = benchmark["extra_info"]
        if "bench" in info:  # one of this suite's rows
            rows.append(info)
    session = payload.get(PYTEST_BENCHMARK_KEY)
    session = session if isinstance(session, dict) else {}
    environment = {**payload.get("machine_info", {}), **(session.get("environment") or {})}
    environment.setdefault("git_commit", payload.get("commit_info", {}).get("id"))
    return _result_set(path, "bench", payload.get("datetime"), environment, rows,
                       session.get("matmul_peak_readings"))


_STAMPED_NAME = re.compile(r"(\d{8}T\d{6}Z)(?:-(\d+))?$")


def _written_at(path: Path) -> tuple[str, int, str]:
    """When a result file was written, for ordering: the UTC time in its name (``bench-20261126T145438Z``,
    ``-2`` for a second file of that second), else the ``created`` time inside it."""
    stamped = _STAMPED_NAME.search(path.stem)
    if stamped:
        moment = datetime.strptime(stamped.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        return moment.isoformat(), int(stamped.group(2) or 1), path.name
    payload = _read_json(path)
    created = payload.get("created") if isinstance(payload, dict) else None
    try:
        moment = datetime.fromisoformat(created).astimezone(timezone.utc) if isinstance(created, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise UserError(f"{path} has no time in its name nor a 'created' time inside: cannot tell how new it is")
    return moment.isoformat(timespec="seconds"), 1, path.name


def newest_result_file(directory: Path) -> Path:
    """The newest ``*.json`` in ``directory`` by the time it was written (see ``_written_at``), never by
    modification time: a fresh clone's modification times follow checkout order."""
    files = sorted(directory.glob("*.json"), key=_written_at)
    if not files:
        raise UserError(f"{directory} holds no result file (*.json)")
    return files[-1]


def load_result_set(path: str | Path) -> ResultSet:
    """Our result file, a pytest-benchmark JSON file, or the newest result file in a directory."""
    path = Path(path)
    if path.is_dir():
        path = newest_result_file(path)
    payload = _read_json(path)
    if isinstance(payload, dict) and isinstance(payload.get("benchmarks"), list) and "machine_info" in payload:
        return _from_pytest_benchmark(path, payload)
    payload = check_payload(path, payload)
    rows = payload.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise UserError(f"{path} has no list of rows: not a complete result file")
    return _result_set(path, str(payload.get("kind")), payload.get("created"), payload.get("environment"), rows,
                       payload.get("matmul_peak_readings"))
