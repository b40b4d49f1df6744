"""Result files: one versioned JSON schema, written atomically, never over an earlier file.

A file is ``{"schema": "resnet_perf/results", "schema_version": 1, "kind": ..., "created": ...,
"environment": {...}, "rows": [...]}``; each row is flat (config fields, ``mode``, metrics, raw
``step_times_s``) so pandas can pivot rows without special cases.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
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


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a result file written by ``save_rows``; a ``UserError`` naming the file if it is not one."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON (line {error.lineno}): truncated or not a result file") from None
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise UserError(f"{path} is not a resnet_perf result file")
    if payload.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path} has schema version {payload.get('schema_version')!r}; "
                        f"this resnet_perf reads version {SCHEMA_VERSION}")
    return payload
