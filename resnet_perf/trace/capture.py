"""Capturing a profiler trace of a warmed-up step: the options asked for, the trace written aside
and moved into the log directory only once it reads back whole."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from resnet_perf.errors import UserError
from resnet_perf.files import PARTIAL_SUFFIX
from resnet_perf.machine.runtime import error_summary
from resnet_perf.trace.xplane import read_xspace, trace_files

HOST_TRACER_LEVELS = (1, 2, 3)


@dataclass(frozen=True)
class TracerOptions:
    """What the profiler is asked to record (``tf.profiler.experimental.ProfilerOptions``)."""

    host_tracer_level: int = 2
    python_tracer_level: int = 0
    device_tracer_level: int = 1

    def __post_init__(self) -> None:
        if self.host_tracer_level not in HOST_TRACER_LEVELS:
            raise UserError(f"host tracer level must be one of {HOST_TRACER_LEVELS}, got {self.host_tracer_level}")

    def not_applied(self, applied: dict[str, Any]) -> list[str]:
        """The requested options the trace says were not in effect (empty when all were)."""
        return [f"{name}={wanted} (ran with {applied.get(name, 0)})" for name, wanted in asdict(self).items()
                if int(applied.get(name, 0)) != wanted]


class Captured(NamedTuple):
    """A trace written whole: its ``.xplane.pb`` and the XSpace read back from it (for its readers)."""

    path: Path
    space: Any


def capture(step, logdir: Path, steps: int, options: TracerOptions = TracerOptions()) -> Captured:
    """Trace ``steps`` calls of a warmed-up ``step`` into ``logdir``; the ``.xplane.pb`` written, read back.

    The profiler writes into a hidden folder beside ``logdir``; the run's folder is moved under
    ``logdir/plugins/profile/`` only once its trace reads back whole, so TensorBoard never lists a
    truncated trace (a full disk, a kill).  The profiler is stopped whatever happens; a session
    already running in this process is a ``UserError`` (TensorFlow allows one at a time).
    """
    import tensorflow as tf

    try:
        staging = Path(tempfile.mkdtemp(dir=logdir.parent, prefix=f".{logdir.name}.", suffix=PARTIAL_SUFFIX))
    except OSError as error:
        raise UserError(f"cannot write traces beside {logdir}: {error.strerror or error}") from None
    try:
        try:
            tf.profiler.experimental.start(str(staging),
                                           options=tf.profiler.experimental.ProfilerOptions(**asdict(options)))
        except tf.errors.AlreadyExistsError:
            raise UserError("another profiler session is already running in this process; stop it first") from None
        try:
            for number in range(steps):
                with tf.profiler.experimental.Trace(step.mode, step_num=number, _r=1):
                    step()
        finally:
            unwritten = _stop_profiler()
        if unwritten:  # stop() writes the trace: a full disk is a ResourceExhaustedError there, not memory
            raise UserError(f"cannot write traces to {logdir}: {unwritten}")
        written = trace_files(staging)
        if not written:
            raise UserError(f"the profiler wrote no .xplane.pb (into {staging}/plugins/profile)")
        space = read_xspace(written[-1])  # whole, or a UserError naming it
        run = logdir / "plugins" / "profile" / written[-1].parent.name
        run.parent.mkdir(parents=True, exist_ok=True)
        os.rename(written[-1].parent, run)
        return Captured(run / written[-1].name, space)
    except OSError as error:
        raise UserError(f"cannot write traces to {logdir}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stop_profiler() -> str:
    """Stop the profiler, which writes its trace; why it could not write it, or ``""``."""
    import tensorflow as tf

    try:
        tf.profiler.experimental.stop()
    except tf.errors.OpError as error:
        return error_summary(error)
    return ""
