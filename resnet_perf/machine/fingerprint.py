"""The machine a result was measured on: a fingerprint stored with every result, and its short id.

Throughput is a property of a machine as much as of the code, and this project's VM changes CPU
from day to day (an Intel Xeon with AMX one day, an AMD EPYC without it the next).  A comparison
that does not know that reports the CPU change as a speed-up or a regression.  So every result
carries:

- ``hardware``: CPU vendor, model name, family/model/stepping numbers, the ISA flags that change
  results, core count, memory (GiB, rounded), GPU names and driver version;
- ``software``: Python, TensorFlow, Keras (filled in by ``resnet_perf.machine.runtime.environment``), oneDNN
  (whether TensorFlow runs it, as TensorFlow decides: ``cpu.onednn_enabled``) and thread
  settings, and the memory allocator (``allocator``): on a CPU, TensorFlow's buffers come from
  ``malloc``, and tcmalloc instead of glibc's changed a training step by 1.0-1.6x on one of these VMs
  (README, "oneDNN on every CPU, and the allocator");
- ``id``: a short, stable name derived from the hardware part only, e.g. ``amd-2c-1f9e0c3a``:
  results with the same id were measured on the same kind of machine.

``describe`` puts a fingerprint in one line for a reader (the suite's answer, ``train``, ``compare``): the id,
the CPU's generation and its bfloat16 instructions; ``measured_on`` makes it the line under their figures.

This module reads ``/proc`` and ``nvidia-smi`` only, never TensorFlow, so ``compare`` can fingerprint
the machine it runs on without starting TensorFlow.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from resnet_perf.machine.cpu import cpu_flags, first_cpu, onednn_enabled, read_proc

CPUINFO_FIELDS = {"vendor_id": "cpu_vendor", "model name": "cpu_model", "cpu family": "cpu_family",
                  "model": "cpu_model_number", "stepping": "cpu_stepping"}
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")
"""malloc replacements recognised by their library's file name among the process's mappings."""
GIB = 2**30


def _memory_gib() -> int | None:
    for line in read_proc("meminfo").splitlines():
        if line.startswith("MemTotal:"):
            try:
                return round(int(line.split()[1]) * 1024 / GIB)
            except (ValueError, IndexError):
                return None
    return None


def _gpus() -> tuple[list[str], str | None]:
    """GPU names and the NVIDIA driver version, from ``nvidia-smi`` where there is one."""
    if shutil.which("nvidia-smi") is None:
        return [], None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return [], None
    rows = [[part.strip() for part in line.split(",")] for line in out.splitlines() if line.strip()]
    return [row[0] for row in rows], (rows[0][1] if rows and len(rows[0]) > 1 else None)


def hardware(cpuinfo: str | None = None) -> dict[str, Any]:
    """The hardware part of this machine's fingerprint (``cpuinfo``: the text of /proc/cpuinfo, for tests)."""
    if cpuinfo is None:
        cpuinfo = read_proc("cpuinfo")
    first = first_cpu(cpuinfo)
    found = {ours: first.get(theirs) for theirs, ours in CPUINFO_FIELDS.items()}
    if not found["cpu_model"]:
        found["cpu_model"] = platform.processor() or platform.machine()
    gpu_names, driver = _gpus()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {**found, "isa_flags": cpu_flags(cpuinfo), "cores": cores,
            "memory_gib": _memory_gib(), "gpu_names": gpu_names, "gpu_driver": driver,
            "machine": platform.machine()}


def allocator(maps: str | None = None) -> str:
    """The ``malloc`` this process runs on: an ``ALLOCATORS`` name whose library is mapped (preloaded
    with ``LD_PRELOAD``, or linked), else ``"system"`` (glibc's, with ``GLIBC_TUNABLES`` if set).
    ``maps``: the text of /proc/self/maps, for tests."""
    if maps is None:
        maps = read_proc("self/maps")
    libraries = {Path(line.split()[-1]).name for line in maps.splitlines() if "/" in line}
    for name in ALLOCATORS:
        if any(library.startswith(f"lib{name}") for library in libraries):
            return name
    tunables = os.environ.get("GLIBC_TUNABLES")
    return f"system ({tunables})" if tunables else "system"


def software(cpu_flags: Collection[str]) -> dict[str, Any]:
    """The software settings that change results and need no TensorFlow to read, on a CPU with
    ``cpu_flags`` (the runtime adds the TensorFlow, Keras and CUDA versions)."""
    return {"python": platform.python_version(),
            "onednn": onednn_enabled(cpu_flags),
            **{name.lower(): os.environ.get(name) for name in THREAD_VARIABLES},
            "allocator": allocator()}


def machine_id(hardware_part: Mapping[str, Any]) -> str:
    """``<vendor>-<cores>c-<hash>``: a short name for the hardware, stable across runs and software."""
    vendor = str(hardware_part.get("cpu_vendor") or "cpu").lower()
    vendor = {"genuineintel": "intel", "authenticamd": "amd"}.get(vendor, vendor)
    canonical = json.dumps(dict(hardware_part), sort_keys=True, default=str)
    return f"{vendor}-{hardware_part.get('cores')}c-{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"


def _bfloat16_support(flags: Collection[str]) -> str:
    """What computes bfloat16 on a CPU with ``flags``: the flags that decide which precisions pay."""
    if "amx_bf16" in flags:
        return "AMX (amx_bf16)"
    if "avx512_bf16" in flags:
        return "avx512_bf16, no AMX"
    return "none (" + ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2") + ")"


def describe(machine: Mapping[str, Any]) -> str:
    """A fingerprint in one line, the CPU named as a figure needs it: ``amd-2c-60ed5a73 (AMD EPYC, family 26
    model 2, 2 cores, 24 GiB; bfloat16 instructions: avx512_bf16, no AMX)``.  A VM often shows only the
    vendor's brand as the model name: the family and model numbers tell its generation."""
    part = machine.get("hardware") or {}
    cpu = [str(part.get("cpu_model") or "unknown CPU")]
    if part.get("cpu_family") is not None and part.get("cpu_model_number") is not None:
        cpu.append(f"family {part['cpu_family']} model {part['cpu_model_number']}")
    cpu += [f"{part['cores']} cores"] if part.get("cores") else []
    cpu += [f"{part['memory_gib']} GiB"] if part.get("memory_gib") else []
    details = f"{', '.join(cpu)}; bfloat16 instructions: {_bfloat16_support(part.get('isa_flags') or ())}"
    if part.get("gpu_names"):
        details += f"; GPUs: {', '.join(part['gpu_names'])}"
    return f"{machine.get('id', 'unknown machine')} ({details})"


def measured_on(machine: Mapping[str, Any] | None) -> str:
    """The line that says where figures were measured (the suite's answer, ``train``, ``compare``):
    ``measured on `` and ``describe``'s line, or an unknown machine for a result without a fingerprint."""
    return f"measured on {describe(machine) if machine else 'an unknown machine (no fingerprint)'}"


def fingerprint(extra_software: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """This machine's fingerprint: ``{"id", "hardware", "software"}``."""
    hardware_part = hardware()
    return {"id": machine_id(hardware_part), "hardware": hardware_part,
            "software": {**software(hardware_part["isa_flags"]), **(extra_software or {})}}


def differences(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None) -> list[str]:
    """How two fingerprints differ, one ``part.field: a -> b`` per field (empty when the same)."""
    first, second = first or {}, second or {}
    found = []
    for part in ("hardware", "software"):
        a, b = first.get(part) or {}, second.get(part) or {}
        for field in sorted(set(a) | set(b)):
            if a.get(field) != b.get(field):
                if isinstance(a.get(field), list) and isinstance(b.get(field), list):
                    gained = sorted(set(b[field]) - set(a[field]))
                    lost = sorted(set(a[field]) - set(b[field]))
                    change = " ".join([*(f"+{item}" for item in gained), *(f"-{item}" for item in lost)])
                    found.append(f"{part}.{field}: {change or 'order differs'}")
                else:
                    found.append(f"{part}.{field}: {a.get(field)!r} -> {b.get(field)!r}")
    return found


def same_hardware(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None) -> bool:
    """Whether two fingerprints name the same hardware (both must have one)."""
    return bool(first and second and first.get("id") and first.get("id") == second.get("id"))
