"""Result files: one versioned JSON schema, written atomically, never over an earlier file.

A file is ``{"schema": "resnet_perf/results", "schema_version": 1, "kind": ..., "created": ...,
"environment": {...}, ...metadata, "rows": [...]}``; ``kind`` is ``bench`` (the benchmark suite),
``train`` (``python -m resnet_perf.train``) or ``profile`` (``python -m resnet_perf.profile``); the
environment holds the versions, devices and git commit.  Each row is flat (config fields,
``mode``, metrics, raw ``step_times_s``) so pandas can pivot rows without special cases.

``load_result_set`` also reads pytest-benchmark's JSON (``--benchmark-json`` or the ``.benchmarks/``
autosave), whose ``extra_info`` carries the same rows.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from resnet_perf.errors import UserError

SCHEMA = "resnet_perf/results"
SCHEMA_VERSION = 1


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
    """The rows of one result file, with where they came from."""

    path: Path
    kind: str
    created: str | None
    environment: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return self.path.stem


def _from_pytest_benchmark(path: Path, payload: dict[str, Any]) -> ResultSet:
    """Rows from pytest-benchmark's JSON: each benchmark's ``extra_info`` is one of our rows."""
    rows, environment = [], {}
    for benchmark in payload["benchmarks"]:
        if not isinstance(benchmark, dict) or not isinstance(benchmark.get("extra_info"), dict):
            raise UserError(f"{path} has a benchmark entry without extra_info: not a pytest-benchmark JSON file")
        info = dict(benchmark["extra_info"])
        environment = info.pop("environment", None) or environment
        if "bench" not in info:  # not one of this suite's rows (e.g. the training run's summary)
            continue
        if "step_times_s" not in info and info["bench"] == "step" and "data" in benchmark.get("stats", {}):
            info["step_times_s"] = benchmark["stats"]["data"]
        rows.append(info)
    commit = payload.get("commit_info", {}).get("id")
    environment = {**payload.get("machine_info", {}), **environment}
    environment.setdefault("git_commit", commit)
    return ResultSet(path=path, kind="bench", created=payload.get("datetime"), environment=environment, rows=rows)


def newest_result_file(directory: Path) -> Path:
    """The newest ``*.json`` in ``directory`` (names carry the UTC time, so the last by name)."""
    files = sorted(directory.glob("*.json"), key=lambda path: (path.stat().st_mtime, path.name))
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
    return ResultSet(path=path, kind=str(payload.get("kind")), created=payload.get("created"),
                     environment=payload.get("environment") or {}, rows=rows)
