"""Machine fingerprints: what is read from /proc/cpuinfo, the stable id, and how two differ."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from resnet_perf.machine.fingerprint import (allocator, describe, differences, hardware, machine_id, measured_on,
                                             same_hardware)

AMD = """processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 17
model name	: AMD EPYC
stepping	: 1
flags		: fpu avx2 fma avx512f avx512bw avx512vl avx512_bf16 avx512_vnni

processor	: 1
vendor_id	: AuthenticAMD
model name	: AMD EPYC
"""
INTEL = AMD.replace("AuthenticAMD", "GenuineIntel").replace("AMD EPYC", "Intel(R) Xeon(R) Platinum 8481C CPU") \
    .replace("cpu family	: 25", "cpu family	: 6").replace("model		: 17", "model		: 143") \
    .replace("avx512_vnni", "avx512_vnni amx_bf16 amx_tile amx_int8 avx512_fp16")


def test_hardware_reads_the_first_cpu_and_the_flags_that_matter():
    amd = hardware(AMD)
    assert amd["cpu_vendor"] == "AuthenticAMD" and amd["cpu_model"] == "AMD EPYC"
    assert (amd["cpu_family"], amd["cpu_model_number"], amd["cpu_stepping"]) == ("25", "17", "1")
    assert amd["isa_flags"] == ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512vl", "avx512bw"]
    assert "fpu" not in amd["isa_flags"] and amd["cores"] >= 1


def test_the_id_names_the_hardware_and_nothing_else():
    amd, intel = hardware(AMD), hardware(INTEL)
    assert machine_id(amd) == machine_id(hardware(AMD))  # stable
    assert machine_id(amd).startswith(f"amd-{amd['cores']}c-") and machine_id(intel).startswith("intel-")
    assert machine_id(amd) != machine_id({**amd, "memory_gib": (amd["memory_gib"] or 0) + 8})
    a = {"id": machine_id(amd), "hardware": amd, "software": {"tensorflow": "2.21.0"}}
    newer_tf = {**a, "software": {"tensorflow": "2.22.0"}}
    assert same_hardware(a, newer_tf) and differences(a, newer_tf) == ["software.tensorflow: '2.21.0' -> '2.22.0'"]


def test_differences_name_each_changed_field():
    amd, intel = hardware(AMD), hardware(INTEL)
    a = {"id": machine_id(amd), "hardware": amd, "software": {}}
    b = {"id": machine_id(intel), "hardware": intel, "software": {}}
    found = differences(a, b)
    assert not same_hardware(a, b)
    assert "hardware.cpu_vendor: 'AuthenticAMD' -> 'GenuineIntel'" in found
    assert "hardware.isa_flags: +amx_bf16 +amx_int8 +amx_tile +avx512_fp16" in found
    assert not same_hardware(None, a) and differences(a, a) == []


def _fingerprint(cpuinfo: str, **hardware_fields) -> dict:
    part = {**hardware(cpuinfo), "memory_gib": 24, **hardware_fields}
    return {"id": machine_id(part), "hardware": part, "software": {}}


@pytest.mark.parametrize("cpuinfo, flags, bfloat16", [
    (INTEL, None, "bfloat16 instructions: AMX (amx_bf16)"),
    (AMD, None, "bfloat16 instructions: avx512_bf16, no AMX"),
    (AMD, ["avx2", "fma", "avx512f"], "bfloat16 instructions: none (AVX-512)"),
    (AMD, ["avx2", "fma"], "bfloat16 instructions: none (AVX2)"),
])
def test_a_machine_is_described_by_its_id_generation_and_bfloat16_instructions(cpuinfo, flags, bfloat16):
    machine = _fingerprint(cpuinfo, **({"isa_flags": flags} if flags else {}))
    text = describe(machine)
    family = "family 6 model 143" if cpuinfo is INTEL else "family 25 model 17"
    assert text.startswith(f"{machine['id']} (") and text.endswith(f"; {bfloat16})")
    assert f", {family}, {machine['hardware']['cores']} cores, 24 GiB;" in text


def test_a_description_names_gpus_and_survives_missing_fields():
    assert describe(_fingerprint(AMD, gpu_names=["NVIDIA A100-SXM4-40GB"])).endswith("; GPUs: NVIDIA A100-SXM4-40GB)")
    assert describe({"id": "cpu-1c-00000000", "hardware": {}}) == \
        "cpu-1c-00000000 (unknown CPU; bfloat16 instructions: none (no AVX2))"
    assert measured_on({"id": "cpu-1c-00000000", "hardware": {}}) == \
        "measured on cpu-1c-00000000 (unknown CPU; bfloat16 instructions: none (no AVX2))"
    assert measured_on(None) == "measured on an unknown machine (no fingerprint)"


MAPS = """7f0000000000-7f0000001000 r--p 00000000 00:20 123 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000002000-7f0000003000 r-xp 00000000 00:20 456 {library}
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
"""


@pytest.mark.parametrize("library, expected", [
    ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.5.10", "tcmalloc"),
    ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "jemalloc"),
    ("/usr/lib/x86_64-linux-gnu/libm.so.6", "system"),
])
def test_the_allocator_is_named_by_the_library_mapped(library, expected, monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert allocator(MAPS.format(library=library)) == expected


def test_glibc_tunables_are_part_of_the_system_allocator(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0")
    assert allocator(MAPS.format(library="/usr/lib/libm.so.6")) == "system (glibc.malloc.mmap_max=0)"


def test_a_preloaded_allocator_is_seen_in_the_fingerprint_of_that_process():
    library = next((path for path in ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
                                      "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2") if os.path.exists(path)), None)
    if library is None:
        if os.environ.get("CI"):
            pytest.fail("CI has no tcmalloc: .ci/run installs Debian's libtcmalloc-minimal4")
        pytest.skip("neither tcmalloc nor jemalloc is installed (Debian: libtcmalloc-minimal4, libjemalloc2)")
    code = "from resnet_perf.machine.fingerprint import fingerprint; print(fingerprint()['software']['allocator'])"
    env = {**os.environ, "LD_PRELOAD": library}
    env.pop("GLIBC_TUNABLES", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("tcmalloc" if "tcmalloc" in library else "jemalloc")
