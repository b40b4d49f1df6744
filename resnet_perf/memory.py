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

The child is ``python -m resnet_perf.memory --config JSON --mode MODE``; it prints one JSON line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from resnet_perf.config import MODES, RunConfig
from resnet_perf.subprocess_run import run_module

PROBE_WARMUP = 1
PROBE_STEPS = 2
"""Peak memory is reached in the first steps; more would only cost time."""


class MemoryProbeError(RuntimeError):
    """The probe process could not measure; ``unsupported`` when the device cannot run the case."""

    def __init__(self, message: str, unsupported: bool) -> None:
        super().__init__(message)
        self.unsupported = unsupported


def probe_here(config: RunConfig, mode: str) -> dict[str, Any]:
    """Measure peak memory of ``mode`` for ``config`` in this process (the child's job).

    The model is built first (the baseline); the step, whose making builds the optimizer's slots,
    is made inside the measurement, so optimizer state counts as the step's memory.
    """
    import tensorflow as tf

    from resnet_perf.measure import HostMemorySampler, time_steps
    from resnet_perf.runtime import gpus
    from resnet_perf.steps import Step
    from resnet_perf.workload import build_model

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


def measure_peak_memory(config: RunConfig, mode: str, timeout: float = 3600) -> dict[str, Any]:
    """Run the probe for ``config`` and ``mode`` in a fresh Python process and return its figures."""
    args = ["--config", json.dumps(dataclasses.asdict(config)), "--mode", mode]
    try:
        done = run_module("resnet_perf.memory", args, timeout)
    except subprocess.TimeoutExpired:
        raise MemoryProbeError(f"memory probe for {config.run_id} took over {timeout:.0f} s", False) from None
    if done.returncode < 0 or done.returncode == 137:  # SIGKILL: the kernel's OOM killer
        raise MemoryProbeError(f"memory probe for {config.run_id} was killed (out of memory?)", True)
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise MemoryProbeError(f"memory probe for {config.run_id} failed (exit {done.returncode}): {tail}",
                               False) from None
    if "error" in answer:
        raise MemoryProbeError(answer["error"], answer.get("unsupported", False))
    return answer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resnet_perf.memory",
                                     description="Internal: measure one step's peak memory, print JSON.")
    parser.add_argument("--config", required=True, help="RunConfig fields as a JSON object")
    parser.add_argument("--mode", required=True, choices=MODES)
    args = parser.parse_args(argv)
    config = RunConfig(**json.loads(args.config))
    try:
        answer = probe_here(config, args.mode)
    except Exception as error:  # reported to the parent as data; it decides skip or fail
        from resnet_perf.runtime import unsupported_reason

        reason = unsupported_reason(error)
        answer = {"error": reason or f"{type(error).__name__}: {error}", "unsupported": reason is not None}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
