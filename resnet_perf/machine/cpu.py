"""This machine's CPU as TensorFlow's kernels see it: its ISA flags (read from ``/proc/cpuinfo``,
never from TensorFlow) and whether TensorFlow runs its oneDNN kernels on it."""
from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx512vl", "avx512bw",
             "amx_bf16", "amx_tile", "amx_int8", "avx_vnni")
"""CPU flags that change which kernels run (and so the results), among them all of
``resnet_perf.machine.switches.ONEDNN_DEFAULT_FLAGS``."""
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
BOOLEAN_VALUES = {"0": False, "false": False, "1": True, "true": True}
"""The values TensorFlow reads a boolean environment variable as (case aside); others keep its default."""
ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
"""The x86 CPU flags with which TensorFlow turns oneDNN on by itself on Linux; without any of them
(an AVX2-only CPU) it runs its Eigen kernels unless ``TF_ENABLE_ONEDNN_OPTS`` says otherwise
(``DefaultOneDnnPolicy``, tensorflow/core/util/util.cc)."""


def first_cpu(text: str) -> dict[str, str]:
    """The ``key: value`` lines of the first processor block of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def read_proc(name: str) -> str:
    """The text of ``/proc/<name>``; empty where there is none."""
    try:
        return Path("/proc", name).read_text()
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The ``ISA_FLAGS`` this machine's CPU has (``cpuinfo``: the text of /proc/cpuinfo, for tests)."""
    flags = set(first_cpu(read_proc("cpuinfo") if cpuinfo is None else cpuinfo).get("flags", "").split())
    return [flag for flag in ISA_FLAGS if flag in flags]


def onednn_enabled(cpu_flags: Collection[str], environ: Mapping[str, str] = os.environ) -> bool:
    """Whether TensorFlow runs its oneDNN kernels on an x86 Linux CPU with ``cpu_flags`` under
    ``environ``: as ``TF_ENABLE_ONEDNN_OPTS`` says, else by TensorFlow's default (``ONEDNN_DEFAULT_FLAGS``)."""
    default = any(flag in cpu_flags for flag in ONEDNN_DEFAULT_FLAGS)
    return BOOLEAN_VALUES.get(environ.get(ONEDNN_VARIABLE, "").lower(), default)
