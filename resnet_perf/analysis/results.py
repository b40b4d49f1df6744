"""Result files: one versioned JSON schema, written atomically, never over an earlier file.

A file is ``{"schema": "resnet_perf/results", "schema_version": 2, "kind": ..., "created": ...,
"environment": {...}, ...metadata, "rows": [...]}``; ``kind`` is ``bench`` (the benchmark suite),
``train`` (``python -m resnet_perf.train``), ``train_seeds`` (``train --seeds``), ``ab``
(``python -m resnet_perf.ab``) or ``profile`` (``python -m resnet_perf.profile``); the
environment holds the versions, devices and git commit.  Each row is flat (config fields,
``mode``, raw ``step_times_s`` and their stats, ``round_medians_s`` (the suite measures in rounds:
``resnet_perf.bench.rounds``), ``flops_per_step``) so pandas can pivot rows without special cases.  A row
without ``round_medians_s`` (older files) counts as one round.  A bench file keeps its matmul peak readings once (``matmul_peak_readings``:
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
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from resnet_perf.errors import UserError
from resnet_perf.files import remove_stale_partials, write_json_atomic, write_new_file
from resnet_perf.models.flops import session_peaks, with_derived_metrics

SCHEMA = "resnet_perf/results"
SCHEMA_VERSION = 2
PYTEST_BENCHMARK_KEY = "resnet_perf"
"""Where the suite puts its session data (peak readings, environment) in pytest-benchmark's JSON."""


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

    An unwritable ``directory`` is a ``UserError`` naming it (the write itself is the check: a command
    proves its folder writable with ``files.check_writable`` before it measures anything).
    """
    directory = Path(directory)
    remove_stale_partials(directory)
    stem = f"{kind}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    text = json.dumps(result_payload(kind, rows, environment, **metadata), indent=1, default=str) + "\n"
    try:
        return write_new_file(directory, stem, text)
    except OSError as error:
        raise UserError(f"cannot write results to {directory}: {error.strerror or error}") from None


_PROCESS_FOLDER = re.compile(r"ab-\d{8}T\d{6}Z")


def ab_process_folder(results_dir: Path, stamp: str) -> Path:
    """Where the A/B run of ``stamp`` (``%Y%m%dT%H%M%SZ``) keeps its suite processes' result files."""
    return results_dir / f"ab-{stamp}"


def is_ab_process_file(path: Path) -> bool:
    """Whether ``path`` is one of an A/B run's suite process files (anywhere under its ``ab-<stamp>``
    folder: ``A/bench-*.json``, ``round1-B/...``): half of a pair measured in turns, or a fresh
    process of one round, not a run of its own, so history leaves it out."""
    return any(_PROCESS_FOLDER.fullmatch(folder.name) for folder in path.parents)


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


MAX_FILE_BYTES = 256 * 2**20
"""Larger files are refused before they are read: a result file of this suite is well under 1 MiB
per hundred cases."""


def _read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(f"{path} is {size / 2**20:.0f} MiB: larger than any result file "
                            f"({MAX_FILE_BYTES // 2**20} MiB at most), not read")
        with path.open("rb") as stream:
            return json.loads(stream.read(MAX_FILE_BYTES + 1))
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON: truncated, or not a result file") from None
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be a result file") from None


_NUMBER = (int, float)
ROW_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "bench": (str,), "run_id": (str,), "mode": (str,), "model": (str,), "precision": (str,), "layout": (str,),
    "compute_dtype": (str,), "error": (str,), "skipped": (str,), "trace": (str,), "stopped": (str,),
    "depth": (int,), "batch_size": (int,), "image_size": (int,), "channels": (int,), "num_classes": (int,),
    "epoch": (int,), "replicas": (int, str), "xla": (bool,), "unstable": (bool,), "rounds": (int,),
    "cpu_threads": (int,), "cpu_time_s": _NUMBER, "steal_s": _NUMBER, "throttled_s": _NUMBER,
    "median_s": _NUMBER, "mean_s": _NUMBER, "p90_s": _NUMBER, "p99_s": _NUMBER, "min_s": _NUMBER,
    "stddev_s": _NUMBER, "cv": _NUMBER, "compile_s": _NUMBER, "flops_per_step": _NUMBER, "round_spread": _NUMBER,
    "host_rss_added_bytes": _NUMBER, "device_peak_bytes": _NUMBER, "epoch_time_s": _NUMBER, "clock_s": _NUMBER,
    "target_accuracy": _NUMBER, "stop_at_target": (bool,),
    "images_per_sec": _NUMBER, "train_loss": _NUMBER, "train_accuracy": _NUMBER, "test_accuracy": _NUMBER,
    "step_times_s": (list,), "round_medians_s": (list,), "count": (int,),
    "a_medians_s": (list,), "b_medians_s": (list,),
    "batch_norm": (str,), "filter_grad": (str,), "threads": (str,), "onednn": (bool,), "fpmath": (str,),
    "process_settings": (str,),
    "breakdown_op_s": (dict,), "breakdown_step_s": _NUMBER, "breakdown_steps": (int,),
    "max_batch": (int,), "max_batch_probes": (list,), "memory_limit_bytes": _NUMBER, "reached_ceiling": (bool,),
}
"""The types of the row fields this package reads; a row with another type is refused, naming it."""
REQUIRED_FIELDS = {"step": ("run_id", "mode", "batch_size"),
                   "ab": ("run_id", "mode", "batch_size", "a_medians_s", "b_medians_s"), "memory": ("run_id", "mode"), "train": ("run_id",),
                   "max_batch": ("run_id", "mode", "max_batch_probes", "memory_limit_bytes")}


def check_rows(path: Path, rows: Any) -> list[dict[str, Any]]:
    """``rows`` if every row is an object whose known fields have the types this package reads."""
    if not isinstance(rows, list):
        raise UserError(f"{path} has no list of rows: not a complete result file")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise UserError(f"{path}: row {number} is not an object")
        for field in REQUIRED_FIELDS.get(row.get("bench"), ()):
            if field not in row:
                raise UserError(f"{path}: row {number} ({row.get('bench')}) has no {field!r}")
        for field, types in ROW_FIELD_TYPES.items():
            value = row.get(field)
            if value is None:
                continue
            wrong_bool = isinstance(value, bool) and bool not in types
            if wrong_bool or not isinstance(value, types):
                raise UserError(f"{path}: row {number} has {field} = {str(value)[:40]!r}, "
                                f"not a {' or '.join(t.__name__ for t in types)}")
        for field in ("step_times_s", "round_medians_s"):
            if not all(_is_number(t) for t in row.get(field) or []):
                raise UserError(f"{path}: row {number} has {field} that are not all numbers")
        for field in ("a_medians_s", "b_medians_s"):  # None: a round that side did not measure
            if not all(t is None or _is_number(t) and math.isfinite(t) and t > 0 for t in row.get(field) or []):
                raise UserError(f"{path}: row {number} has {field} that are not all positive numbers or null")
        if not all(_is_number(seconds) for seconds in (row.get("breakdown_op_s") or {}).values()):
            raise UserError(f"{path}: row {number} has breakdown_op_s that are not all numbers")
        if not all(isinstance(probe, list) and len(probe) == 3 and isinstance(probe[0], int)
                   for probe in row.get("max_batch_probes") or []):
            raise UserError(f"{path}: row {number} has max_batch_probes that are not [batch, fits, why] each")
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


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
    metadata: dict[str, Any] = dataclass_field(default_factory=dict)
    """The file's other top-level fields (an ``ab`` file's variants, rounds and suite options)."""

    @property
    def label(self) -> str:
        return self.path.stem

    @property
    def time(self) -> datetime | None:
        """When the run ended: the ``created`` time inside the file, else the UTC time in its name."""
        stamp = _name_stamp(self.path)
        return parse_time(self.created) or (stamp[0] if stamp else None)

    @property
    def machine(self) -> dict[str, Any] | None:
        """The fingerprint of the machine the results were measured on (``resnet_perf.machine.fingerprint``)."""
        machine = self.environment.get("machine")
        return machine if isinstance(machine, dict) and isinstance(machine.get("id"), str) else None


def _peak_readings(path: Path, readings: Any) -> dict[str, float]:
    if readings is None:
        return {}
    if not isinstance(readings, dict) or not all(isinstance(values, list) for values in readings.values()):
        raise UserError(f"{path}: matmul_peak_readings is not a {{dtype: [FLOP/s, ...]}} object")
    return session_peaks(readings)


def _result_set(path: Path, kind: str, created: Any, environment: Any, rows: list, readings: Any,
                metadata: dict[str, Any] | None = None) -> ResultSet:
    peaks = _peak_readings(path, readings)
    return ResultSet(path=path, kind=kind, created=created if isinstance(created, str) else None,
                     environment=environment if isinstance(environment, dict) else {},
                     rows=with_derived_metrics(rows, peaks), matmul_peaks=peaks, metadata=metadata or {})


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _from_pytest_benchmark(path: Path, payload: dict[str, Any]) -> ResultSet:
    """Rows from pytest-benchmark's JSON: each benchmark's ``extra_info`` is one of our rows."""
    rows = []
    for benchmark in payload["benchmarks"]:
        if not isinstance(benchmark, dict) or not isinstance(benchmark.get("extra_info"), dict):
            raise UserError(f"{path} has a benchmark entry without extra_info: not a pytest-benchmark JSON file")
        info = benchmark["extra_info"]
        if "bench" in info:  # one of this suite's rows
            rows.append(info)
    check_rows(path, rows)
    session = _object(payload.get(PYTEST_BENCHMARK_KEY))
    machine_info, commit_info = _object(payload.get("machine_info")), _object(payload.get("commit_info"))
    environment = {**machine_info, **_object(session.get("environment"))}
    environment.setdefault("git_commit", commit_info.get("id"))
    return _result_set(path, "bench", payload.get("datetime"), environment, rows,
                       session.get("matmul_peak_readings"))


_STAMPED_NAME = re.compile(r"(\d{8}T\d{6}Z)(?:-(\d+))?$")


def _name_stamp(path: Path) -> tuple[datetime, int] | None:
    """The UTC time in a result file's name (``bench-20261126T145438Z``) and its counter (``-2`` for
    a second file of that second), or ``None``."""
    stamped = _STAMPED_NAME.search(path.stem)
    if not stamped:
        return None
    moment = datetime.strptime(stamped.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return moment, int(stamped.group(2) or 1)


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (a time without zone is taken as UTC); else ``None``."""
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _written_at(path: Path) -> tuple[str, int, str]:
    """When a result file was written, for ordering: the UTC time in its name, else the ``created``
    time inside it."""
    stamp = _name_stamp(path)
    if stamp:
        return stamp[0].isoformat(), stamp[1], path.name
    payload = _read_json(path)
    moment = parse_time(payload.get("created") if isinstance(payload, dict) else None)
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


def machine_folder(directory: Path, machine: str | None) -> Path:
    """The folder of ``directory`` that holds the results of ``machine`` (a fingerprint id), for
    directories kept per machine (``results/baseline/<id>/``); ``directory`` itself otherwise."""
    folders = sorted(path for path in directory.iterdir() if path.is_dir())
    if any(directory.glob("*.json")) or not folders:
        return directory
    if machine is None:
        raise UserError(f"{directory} keeps results per machine ({', '.join(f.name for f in folders)}): "
                        f"cannot tell which machine's to use")
    if not (directory / machine).is_dir():
        raise UserError(f"{directory} has no results for this machine ({machine}; it has "
                        f"{', '.join(f.name for f in folders)}): measure them on this machine, e.g. tox -e baseline")
    return directory / machine


def load_result_set(path: str | Path, machine: str | None = None) -> ResultSet:
    """Our result file, a pytest-benchmark JSON file, or the newest result file in a directory
    (in a directory kept per machine, in the folder of ``machine``, a fingerprint id)."""
    path = Path(path)
    if path.is_dir():
        path = newest_result_file(machine_folder(path, machine))
    payload = _read_json(path)
    if isinstance(payload, dict) and isinstance(payload.get("benchmarks"), list) and "machine_info" in payload:
        return _from_pytest_benchmark(path, payload)
    payload = check_payload(path, payload)
    rows = check_rows(path, payload.get("rows"))
    known = {"schema", "schema_version", "kind", "created", "environment", "rows", "matmul_peak_readings"}
    return _result_set(path, str(payload.get("kind")), payload.get("created"), payload.get("environment"), rows,
                       payload.get("matmul_peak_readings"), {k: v for k, v in payload.items() if k not in known})
