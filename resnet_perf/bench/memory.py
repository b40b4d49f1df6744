"""Peak memory of one configuration's step, measured in a process of its own.

One process per case means no allocator cache, compiled program or earlier, larger peak of another
case is counted in (or hides) this one.  Two different quantities, each in a field of its own:

- ``device_peak_bytes`` (GPU): ``tf.config.experimental.get_memory_info("GPU:0")["peak"]`` after
  ``reset_memory_stats``, around making the step (optimizer slots), its first call, warm-up and
  timed steps: the bytes weights, activations, gradients and optimizer state occupy on the device
  at their peak.
- ``host_rss_added_bytes`` (CPU): the process's peak resident memory from making the step
  (optimizer slots) through its first call, warm-up and timed steps, minus its resident memory
  after the model was built: what running the step adds (activations, gradients, optimizer
  slots, compiled code, allocator caches), weights excluded.

The child is ``python -m resnet_perf.bench.memory --config JSON --mode MODE``, started with the config's
process settings (``resnet_perf.machine.switches``); it prints one JSON line.  Given a memory limit, the
parent stops a probe whose resident memory passes it (``resnet_perf.bench.maxbatch`` probes that way).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import psutil

from resnet_perf.bench.timing import HostMemorySampler, time_steps
from resnet_perf.config import MODES, RunConfig
from resnet_perf.machine.runtime import gpus, unsupported_reason
from resnet_perf.machine.switches import ProcessSettings, prepare_process
from resnet_perf.spawn import last_words, module_command, package_env

PROBE_WARMUP = 1
PROBE_STEPS = 2
"""Peak memory is reached in the first steps; more would only cost time."""
PROBE_TIMEOUT_S = 3600
POLL_S = 0.2
HOST_PROBES_AT_ONCE = 2
"""Host memory probes run two at a time: each measures its own process's resident memory, which
another process does not change, and much of a probe's time is start-up (import, build, trace) that
leaves a core idle.  The default suite run took 11 min 51 s with one probe at a time, 10 min 31 s
with two (README, "Quick start")."""


class MemoryProbeError(RuntimeError):
    """The probe process could not measure; ``unsupported`` when the device cannot run the case."""

    def __init__(self, message: str, unsupported: bool, killed: bool = False) -> None:
        super().__init__(message)
        self.unsupported, self.killed = unsupported, killed


def probe_here(config: RunConfig, mode: str) -> dict[str, Any]:
    """Measure peak memory of ``mode`` for ``config`` in this process (the child's job).

    The model is built first (the baseline); the step, whose making builds the optimizer's slots,
    is made inside the measurement, so optimizer state counts as the step's memory.
    """
    import tensorflow as tf

    from resnet_perf.bench.steps import Step  # loads TensorFlow, which must wait for the process settings
    from resnet_perf.bench.workload import build_model

    model = build_model(config)

    def run_step() -> None:
        step = Step(config, mode, model)
        step()
        time_steps(step, PROBE_WARMUP, PROBE_STEPS)

    if gpus():
        tf.config.experimental.reset_memory_stats("GPU:0")
        run_step()
        return {"device_peak_bytes": tf.config.experimental.get_memory_info("GPU:0")["peak"]}
    with HostMemorySampler() as sampler:
        run_step()
    return {"host_rss_added_bytes": sampler.added_bytes, "baseline_rss_bytes": sampler.baseline_bytes,
            "peak_rss_bytes": sampler.peak_bytes}


def measure_peak_memory(config: RunConfig, mode: str, timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Run the probe for ``config`` and ``mode`` in a fresh Python process and return its figures."""
    outcome = measure_peak_memories([(config, mode)], processes=1, timeout=timeout)[(config.run_id, mode)]
    if isinstance(outcome, MemoryProbeError):
        raise outcome
    return outcome


def probe_processes() -> int:
    """How many probes run at once here: one per machine with a GPU (the processes would share the
    device's memory), ``HOST_PROBES_AT_ONCE`` on a CPU."""
    return 1 if gpus() else HOST_PROBES_AT_ONCE


def measure_peak_memories(cases: Sequence[tuple[RunConfig, str]], processes: int, timeout: float = PROBE_TIMEOUT_S,
                          report: Callable[[str], None] = lambda line: None, limit_bytes: int | None = None
                          ) -> dict[tuple[str, str], dict[str, Any] | MemoryProbeError]:
    """Probe every ``(config, mode)`` in a fresh process, ``processes`` at a time; each case's figures,
    or the ``MemoryProbeError`` that says why it has none.  A probe killed (out of memory?) while
    others ran beside it is run again alone, so a case is never called too big for this machine only
    because it shared it; a probe whose resident memory passes ``limit_bytes`` is stopped and
    unsupported.  Interrupted, every probe still running is killed."""
    outcomes = _run_probes(cases, processes, timeout, report, limit_bytes)
    again = [(config, mode) for config, mode in cases
             if processes > 1 and getattr(outcomes[(config.run_id, mode)], "killed", False)]
    if again:
        report(f"{len(again)} probe(s) killed beside another: measuring them alone")
        outcomes.update(_run_probes(again, 1, timeout, report, limit_bytes))
    return outcomes


@dataclass
class _Running:
    config: RunConfig
    mode: str
    process: subprocess.Popen
    output: IO[str]
    errors: IO[str]
    started: float
    over_limit: int | None = None  # the resident bytes seen when it passed the memory limit

    def resident_bytes(self) -> int:
        try:
            return psutil.Process(self.process.pid).memory_info().rss
        except psutil.Error:  # it has just ended
            return 0


def _run_probes(cases: Sequence[tuple[RunConfig, str]], processes: int, timeout: float,
                report: Callable[[str], None], limit_bytes: int | None = None
                ) -> dict[tuple[str, str], dict[str, Any] | MemoryProbeError]:
    waiting, running = list(cases), []
    outcomes: dict[tuple[str, str], dict[str, Any] | MemoryProbeError] = {}
    temp_dir = tempfile.mkdtemp(prefix="resnet_perf-probes-")  # their TMPDIR: a probe killed at a limit cleans nothing
    try:
        while waiting or running:
            while waiting and len(running) < processes:
                config, mode = waiting.pop(0)
                # files, not pipes: no child waits on a full pipe while its parent waits on another
                output, errors = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
                args = ["--config", json.dumps(dataclasses.asdict(config)), "--mode", mode]
                environment = ProcessSettings.of(config).environment(package_env(temp_dir))
                process = subprocess.Popen(module_command("resnet_perf.bench.memory", args), stdout=output, stderr=errors,
                                           text=True, env=environment)
                running.append(_Running(config, mode, process, output, errors, time.monotonic()))
            time.sleep(POLL_S)
            for probe in running if limit_bytes else ():
                resident = probe.resident_bytes()
                if resident > limit_bytes:
                    probe.over_limit = resident
                    probe.process.kill()
                    probe.process.wait()
            for probe in [probe for probe in running if probe.process.poll() is not None
                          or time.monotonic() - probe.started > timeout]:
                running.remove(probe)
                outcomes[(probe.config.run_id, probe.mode)] = _outcome(probe, timeout)
                report(f"memory {len(outcomes)}/{len(cases)}: {probe.config.run_id} {probe.mode} "
                       f"({time.monotonic() - probe.started:.0f} s)")
    finally:
        for probe in running:  # interrupted: nothing keeps measuring behind the caller's back
            probe.process.kill()
            probe.process.wait()
            probe.output.close()
            probe.errors.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
    return outcomes


def _outcome(probe: _Running, timeout: float) -> dict[str, Any] | MemoryProbeError:
    """The probe's figures, or the error that says why there are none."""
    name = f"memory probe for {probe.config.run_id} {probe.mode}"
    with probe.output, probe.errors:
        if probe.process.poll() is None:
            probe.process.kill()
            probe.process.wait()
            return MemoryProbeError(f"{name} took over {timeout:.0f} s", False)
        code = probe.process.returncode
        if probe.over_limit is not None:
            return MemoryProbeError(f"{name} passed the memory limit ({probe.over_limit / 2**30:.1f} GiB resident)", True)
        if code < 0 or code == 137:  # SIGKILL: the kernel's OOM killer
            return MemoryProbeError(f"{name} was killed (out of memory?)", True, killed=True)
        probe.output.seek(0)
        probe.errors.seek(0)
        lines, said = probe.output.read().strip().splitlines(), probe.errors.read()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return MemoryProbeError(f"{name} failed (exit {code}): {last_words(said)}", False)
    if "error" in answer:
        return MemoryProbeError(answer["error"], answer.get("unsupported", False))
    return answer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_perf.bench.memory",
                                     description="Internal: measure one step's peak memory, print JSON.")
    parser.add_argument("--config", required=True, help="RunConfig fields as a JSON object")
    parser.add_argument("--mode", required=True, choices=MODES)
    args = parser.parse_args(argv)
    config = RunConfig(**json.loads(args.config))
    try:
        prepare_process(ProcessSettings.of(config))
        answer = probe_here(config, args.mode)
    except Exception as error:  # reported to the parent as data; it decides skip or fail
        reason = unsupported_reason(error)
        answer = {"error": reason or f"{type(error).__name__}: {error}", "unsupported": reason is not None}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
