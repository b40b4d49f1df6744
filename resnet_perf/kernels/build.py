"""Build and load this package's native kernels (``residual_relu.cc``) as a TensorFlow op library.

TensorFlow's wheel ships the headers and the library a custom op compiles against
(``tf.sysconfig.get_compile_flags()`` / ``get_link_flags()``); the kernels are compiled on first use by the
machine's C++ compiler (``$CXX``, else ``g++``) with ``-O3 -march=native``, so their loops vectorize for the
CPU they run on, and cached in ``$RESNET_PERF_KERNEL_CACHE`` (default ``~/.cache/resnet_perf/kernels``) under a
name that hashes everything the binary depends on: the source, the command, TensorFlow's version, the
compiler's, and the CPU (model and flags). Another CPU, TensorFlow or source builds anew (a few seconds).

Where there is no compiler, or the build or the load fails, ``load_kernels`` says why (``KernelBuild.status``)
instead of raising: the layers that use the kernels then run TensorFlow's own ops (the same values, slower),
and every result records the status (``resnet_perf.machine.runtime.environment``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from resnet_perf.machine.cpu import first_cpu, read_proc

SOURCE = Path(__file__).with_name("residual_relu.cc")
OPTIMIZE = ("-O3", "-march=native", "-fno-trapping-math", "-std=c++17", "-shared", "-fPIC",
            "-Wno-deprecated-declarations")
"""``-fno-trapping-math``: without AVX-512's masks GCC vectorizes the gradient's ``value * (output > 0 ? 1 : 0)``
only if its multiply may run for every value (no floating-point exception is ever looked at here; the values are
the same). Without it, on an AVX2 CPU (Zen 3), the loop ran value by value, branching on the sign: 5-10x slower
than TensorFlow's AddN + ReluGrad (``tests/models/test_residual_relu.py`` checks every loop vectorizes)."""
OPS = ("ResidualRelu", "ResidualReluGrad")
AMP_INFER_LIST = "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_INFERLIST_ADD"
"""Grappler's auto mixed precision (amp_bf16) runs an op it does not know in float32, with casts around it; on
its infer list (where it keeps ``AddV2`` and ``AddN``) an op runs in bfloat16 when its inputs do."""
BUILD_TIMEOUT_S = 300


@dataclass(frozen=True)
class KernelBuild:
    """The loaded op library (``None`` where unavailable) and one line saying what happened (``built`` and the
    library's name, which hashes all it was built from, or ``unavailable:`` and why)."""

    library: ModuleType | None
    status: str


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where built libraries are kept: ``$RESNET_PERF_KERNEL_CACHE``, else ``~/.cache/resnet_perf/kernels``."""
    if environ.get("RESNET_PERF_KERNEL_CACHE"):
        return Path(environ["RESNET_PERF_KERNEL_CACHE"])
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "resnet_perf" / "kernels"


def compile_command(compiler: str, source: Path, output: Path, compile_flags: Sequence[str],
                    link_flags: Sequence[str]) -> list[str]:
    """The compiler's command line for ``source`` into the shared library ``output``."""
    return [compiler, *OPTIMIZE, str(source), "-o", str(output), *compile_flags, *link_flags]


def library_name(source_text: str, command: Sequence[str], versions: Mapping[str, str], cpu: str) -> str:
    """The cached library's file name: a hash of all a build depends on (the command with the source's and the
    output's bare names, so the checkout's place does not count; TensorFlow's include path in its flags does)."""
    digest = hashlib.sha256()
    for part in (source_text, *command, *sorted(f"{key}={value}" for key, value in versions.items()), cpu):
        digest.update(part.encode())
        digest.update(b"\0")
    return f"residual_relu-{digest.hexdigest()[:16]}.so"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0][:300]


def _cpu_identity() -> str:
    cpu = first_cpu(read_proc("cpuinfo"))
    return f"{cpu.get('model name', '')} {cpu.get('cpu family', '')}/{cpu.get('model', '')} {cpu.get('flags', '')}"


def _build(compiler: str, library: Path, command_for: Callable[[Path], list[str]]) -> str | None:
    """Compile into ``library`` (through a temporary file, so processes building at once never load half a file);
    the reason it failed, or ``None``."""
    library.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=library.parent, prefix=".building-", suffix=".so")
    os.close(handle)
    try:
        done = subprocess.run(command_for(Path(partial)), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            return f"{compiler} failed: {_first_line(done.stderr + done.stdout)}"
        os.replace(partial, library)
        return None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def build_kernels(compiler: str, cache: Path) -> KernelBuild:
    """Build with ``compiler`` into ``cache`` (unless built there already) and load the native kernels."""
    import tensorflow as tf

    if shutil.which(compiler) is None:
        return KernelBuild(None, f"unavailable: no C++ compiler {compiler!r} on PATH (apt-get install g++)")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        versions = {"tensorflow": tf.__version__, "compiler": _first_line(version)}
        compile_flags, link_flags = tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()
        name = library_name(SOURCE.read_text(), compile_command(compiler, Path(SOURCE.name), Path("out.so"),
                                                                compile_flags, link_flags), versions, _cpu_identity())
        library = cache / name
        if not library.exists():
            failure = _build(compiler, library,
                             lambda output: compile_command(compiler, SOURCE, output, compile_flags, link_flags))
            if failure:
                return KernelBuild(None, f"unavailable: {failure}")
        loaded = tf.load_op_library(str(library))
    except (OSError, subprocess.SubprocessError, tf.errors.OpError) as error:
        return KernelBuild(None, f"unavailable: {_first_line(str(error)) or type(error).__name__}")
    known = [op for op in os.environ.get(AMP_INFER_LIST, "").split(",") if op]
    os.environ[AMP_INFER_LIST] = ",".join(known + [op for op in OPS if op not in known])
    return KernelBuild(loaded, f"built {library.name}")


@lru_cache(maxsize=1)
def load_kernels() -> KernelBuild:
    """The native kernels of this process: built by ``$CXX`` (else ``g++``) into ``cache_dir()``, once."""
    return build_kernels(os.environ.get("CXX") or "g++", cache_dir())


def native_kernels() -> ModuleType | None:
    """The loaded op library, or ``None`` where it could not be built (``load_kernels().status`` says why)."""
    return load_kernels().library
