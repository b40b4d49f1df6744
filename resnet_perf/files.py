"""Writing files so that nothing half-written is ever read: a file is written under a hidden
temporary name beside its place and renamed (or linked) into it once whole, and a folder is proved
writable before any work that would be lost to it is done."""
from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from resnet_perf.errors import UserError


PARTIAL_SUFFIX = ".partial"
"""A file being written is ``.<name>.<random>.partial`` until it is renamed into place: no loader
takes it for a result (they read ``*.json``), and one left by a killed writer is removed later."""
STALE_PARTIAL_S = 3600
"""A partial file older than this was left by a writer that died (a write takes milliseconds)."""


def remove_stale_partials(directory: Path) -> list[Path]:
    """Delete the partial files a killed writer left in ``directory``; return them."""
    now, removed = time.time(), []
    for leftover in directory.glob(f".*{PARTIAL_SUFFIX}"):
        try:
            if now - leftover.stat().st_mtime > STALE_PARTIAL_S:
                leftover.unlink()
                removed.append(leftover)
        except OSError:  # gone already, or not ours to delete: leave it
            pass
    return removed


def partial_path(path: Path) -> Path:
    """A fresh name beside ``path`` for what will become it: hidden, random, ``PARTIAL_SUFFIX``."""
    return path.parent / f".{path.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}"


def _write_partial(path: Path, text: str) -> Path:
    """``text`` in a fresh partial file beside ``path`` (removed again if the write fails); its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh random name opened exclusively, like mkstemp, but with the umask's mode as any other
    # file (mkstemp makes 0600, and reading the umask means setting it, for every thread at once).
    temporary = partial_path(path)
    try:
        with temporary.open("x", encoding="utf-8") as stream:
            stream.write(text)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename: whatever happens (a full disk,
    a kill), ``path`` holds either its earlier content or all of ``text``, never a part of it."""
    temporary = _write_partial(path, text)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """``payload`` as indented JSON, written with ``write_text_atomic``."""
    write_text_atomic(path, json.dumps(payload, indent=1, default=str) + "\n")


def write_new_file(directory: Path, stem: str, text: str) -> Path:
    """Write ``text`` to ``{stem}.json`` in ``directory``, or ``{stem}-2.json``, ... when taken; return the
    path.  Never over an existing file, even with other processes saving into the same folder: the
    complete file is linked under the name, which fails if the name exists (a check, then a rename,
    would overwrite what another process wrote in between)."""
    temporary = _write_partial(directory / f"{stem}.json", text)
    try:
        path, counter = directory / f"{stem}.json", 1
        while True:
            try:
                os.link(temporary, path)
                return path
            except FileExistsError:
                counter += 1
                path = directory / f"{stem}-{counter}.json"
    finally:
        temporary.unlink(missing_ok=True)


WRITE_PROBE_BYTES = 64 * 1024
"""What ``check_writable`` writes (and syncs) to prove a folder can take data: an empty file can be
made on a full disk, which would then fail the first result written after the work."""


def check_writable(directory: Path, what: str) -> None:
    """Create ``directory`` and prove data can be written there, before any work is done; a
    ``UserError`` (``cannot write {what} to ...``) otherwise."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory) as probe:
            probe.write(bytes(WRITE_PROBE_BYTES))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise UserError(f"cannot write {what} to {directory}: {error.strerror or error}") from None


def check_output_file(path: Path) -> None:
    """A ``UserError`` unless a result file can be written at ``path`` (not a folder, in a writable
    one): checked before anything is measured, so no measurement is lost to a bad ``--output``."""
    if path.is_dir():
        raise UserError(f"--output {path} is a folder: give a file name, such as {path / 'result.json'}")
    check_writable(path.parent, "results")
