"""Reading a profiler trace (``.xplane.pb``, TensorFlow's XSpace protobuf): step times and op self times.

The same file TensorBoard's profile plugin reads; parsed with the protobuf classes TensorFlow
ships, so no TensorBoard is needed for a first look.

- Step markers are the ``tf.profiler.experimental.Trace(name, step_num=i, _r=1)`` events: those
  that carry both the ``step_num`` and ``_r`` stats.
- Op events are TensorFlow kernels (event name ``op_name:OpType`` on the executor threads) and,
  under XLA, HLO instructions (events with an ``hlo_op`` stat, named like ``convolution.20``).
  An op's self time is its duration minus the ops nested in it on the same thread.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_perf.errors import UserError, require_choice

HOST_PLANE = "/host:CPU"
ENVIRONMENT_PLANE = "Task Environment"
GROUPINGS = ("type", "name")
"""Ops are totalled by TensorFlow op type / XLA instruction kind, or by full op name."""

_TF_OP = re.compile(r"^(?P<name>[^\s:]+):(?P<type>[A-Za-z_][\w]*)$")
_HLO_INSTANCE_SUFFIX = re.compile(r"\.\d+$")
PICOSECONDS = 1e-12


@dataclass(frozen=True)
class OpTime:
    """One op group's self time over the whole trace."""

    op: str
    kind: str  # "tf" (a TensorFlow kernel) or "xla" (an HLO instruction)
    count: int
    total_s: float
    share: float  # of all op self time in the trace


@dataclass(frozen=True)
class TraceSummary:
    """What a trace says about its steps and ops."""

    path: Path
    planes: list[str]
    step_numbers: list[int]
    step_times_s: list[float]
    ops: list[OpTime]
    options: dict[str, Any]

    @property
    def op_time_s(self) -> float:
        return sum(op.total_s for op in self.ops)


def trace_files(logdir: str | Path) -> list[Path]:
    """Every ``plugins/profile/<run>/<host>.xplane.pb`` under ``logdir``, oldest first."""
    found = Path(logdir).glob("plugins/profile/*/*.xplane.pb")
    return sorted(found, key=lambda path: (path.stat().st_mtime, str(path)))


def read_xspace(path: str | Path):
    """The XSpace protobuf in ``path``; a ``UserError`` naming the file if it is not one."""
    from google.protobuf.message import DecodeError
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = Path(path)
    space = xplane_pb2.XSpace()
    try:
        space.ParseFromString(path.read_bytes())
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    except DecodeError:
        raise UserError(f"{path} is not a profiler trace (XSpace protobuf): truncated or foreign") from None
    if not space.planes:
        raise UserError(f"{path} holds no trace planes")
    return space


def _plane(space, name: str):
    return next((plane for plane in space.planes if plane.name == name), None)


def _stat_ids(plane) -> dict[str, int]:
    """Stat name -> its metadata id in ``plane`` (each stat of an event names its metadata by id)."""
    return {meta.name: key for key, meta in plane.stat_metadata.items()}


def _stat_value(stats, stat_id: int | None) -> Any:
    """The value of the stat with ``stat_id`` among ``stats``, or None."""
    for stat in stats:
        if stat.metadata_id == stat_id:
            kind = stat.WhichOneof("value")
            return getattr(stat, kind) if kind else None
    return None


def step_markers(space) -> list[tuple[int, float]]:
    """``(step_num, seconds)`` of every step marker on the host plane, in step order."""
    plane = _plane(space, HOST_PLANE)
    if plane is None:
        return []
    ids = _stat_ids(plane)
    step_num, root = ids.get("step_num"), ids.get("_r")
    steps = []
    for line in plane.lines:
        for event in line.events:
            present = {stat.metadata_id for stat in event.stats}
            if step_num in present and root in present:
                steps.append((int(_stat_value(event.stats, step_num)), event.duration_ps * PICOSECONDS))
    return sorted(steps)


def _op_events(plane, line, hlo_op: int | None) -> Iterator[tuple[int, int, str, str, str]]:
    """``(start_ps, duration_ps, kind, type, name)`` of the op events on one thread (``hlo_op``: the
    plane's id of that stat)."""
    for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if hlo_op is not None and any(stat.metadata_id == hlo_op for stat in event.stats):
            yield event.offset_ps, event.duration_ps, "xla", _HLO_INSTANCE_SUFFIX.sub("", name), name
            continue
        match = _TF_OP.match(name)
        if match and not match["type"].startswith("__inference_"):  # a tf.function call, not a kernel
            yield event.offset_ps, event.duration_ps, "tf", match["type"], match["name"]


def _self_times(events: Sequence[tuple[int, int, str, str, str]]) -> Iterator[tuple[str, str, str, int]]:
    """``(kind, type, name, self_ps)``: each event's duration minus its directly nested events."""
    ordered = sorted(events, key=lambda event: (event[0], -event[1]))
    self_ps = [event[1] for event in ordered]
    open_events: list[int] = []  # indices of events enclosing the current one, innermost last
    for index, (start, duration, *_rest) in enumerate(ordered):
        while open_events and ordered[open_events[-1]][0] + ordered[open_events[-1]][1] <= start:
            open_events.pop()
        if open_events:
            self_ps[open_events[-1]] -= duration
        open_events.append(index)
    for (_start, _duration, kind, op_type, name), own in zip(ordered, self_ps):
        yield kind, op_type, name, max(own, 0)


def op_self_times(space) -> Iterator[tuple[str, str, str, int]]:
    """``(kind, type, name, self_ps)`` of every op event on the host plane."""
    plane = _plane(space, HOST_PLANE)
    if plane is None:
        return
    hlo_op = _stat_ids(plane).get("hlo_op")
    for line in plane.lines:
        yield from _self_times(list(_op_events(plane, line, hlo_op)))


def op_times(space, group_by: str = "type") -> list[OpTime]:
    """Op self times totalled per op type (or full name), largest first."""
    require_choice("grouping", group_by, GROUPINGS)
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for kind, op_type, name, own in op_self_times(space):
        total = totals[(name if group_by == "name" else op_type, kind)]
        total[0] += 1
        total[1] += own
    grand = sum(total for _count, total in totals.values()) or 1
    ops = [OpTime(op=op, kind=kind, count=count, total_s=total * PICOSECONDS, share=total / grand)
           for (op, kind), (count, total) in totals.items()]
    return sorted(ops, key=lambda op: (-op.total_s, op.op))


def profile_options(space) -> dict[str, Any]:
    """The options the profiler session actually ran with, as recorded in the trace."""
    from google.protobuf.json_format import MessageToDict
    from tensorflow.tsl.profiler.protobuf import profiler_options_pb2

    plane = _plane(space, ENVIRONMENT_PLANE)
    recorded = _stat_value(plane.stats, _stat_ids(plane).get("profile_options")) if plane is not None else None
    if not recorded:
        return {}
    options = profiler_options_pb2.ProfileOptions()
    options.ParseFromString(recorded)
    return MessageToDict(options, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def summarize(path: str | Path, group_by: str = "type", space=None) -> TraceSummary:
    """Steps, op self times and effective options of the trace in ``path`` (``space``: that trace,
    where the caller has already read it)."""
    if space is None:
        space = read_xspace(path)
    steps = step_markers(space)
    return TraceSummary(path=Path(path), planes=[plane.name for plane in space.planes],
                        step_numbers=[number for number, _seconds in steps],
                        step_times_s=[seconds for _number, seconds in steps],
                        ops=op_times(space, group_by), options=profile_options(space))
