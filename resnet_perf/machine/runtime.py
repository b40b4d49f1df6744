"""Where a configuration meets TensorFlow: devices, Keras defaults, the environment, errors that say
a configuration cannot run here.

Everything here imports TensorFlow lazily, because logical CPU devices can only be set up before
TensorFlow initialises its runtime.
"""
from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from resnet_perf.config import RunConfig
from resnet_perf.kernels.build import load_kernels
from resnet_perf.machine.fingerprint import fingerprint
from resnet_perf.precision import dtype_policy


def gpus() -> list:
    """The physical GPUs TensorFlow sees (empty on this CPU-only machine)."""
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


@contextlib.contextmanager
def keras_defaults(config: RunConfig) -> Iterator[None]:
    """Set Keras's global dtype policy and image data format for ``config``, and restore them.

    Our own models take both per layer and need none of this; ``keras.applications`` models read
    the globals when they are built, so the reference models are built inside this block.
    """
    import keras

    policy, data_format = keras.config.dtype_policy(), keras.config.image_data_format()
    keras.config.set_dtype_policy(dtype_policy(config.precision))
    keras.config.set_image_data_format(config.data_format)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
        keras.config.set_image_data_format(data_format)


def global_auto_jit() -> bool:
    """Whether XLA auto-clustering is on for every graph (``tf.config.optimizer.set_jit`` or
    ``TF_XLA_FLAGS=--tf_xla_auto_jit=1|2``): then "XLA off" would not be off."""
    import tensorflow as tf

    level = re.search(r"--tf_xla_auto_jit=(-?\d+)", os.environ.get("TF_XLA_FLAGS", ""))
    return bool(tf.config.optimizer.get_jit()) or (level is not None and int(level.group(1)) > 0)


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of this package's checkout (``-dirty`` with uncommitted changes), read once per
    process: a command calls it when it starts, so edits made while it runs are not credited to it."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


@lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """What produced a result: the machine's fingerprint (hardware, and the software versions and
    settings that change results, among them whether the native kernels were built here), devices, thread pools,
    git commit."""
    import keras
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__,
                "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version"),
                "native_kernels": load_kernels().status}
    return {
        "machine": fingerprint(extra_software=versions),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "devices": [device.name for device in tf.config.list_logical_devices()],
        "gpu_devices": [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
                        for gpu in gpus()],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "xla_auto_jit": global_auto_jit(),
        "git_commit": git_commit(),
    }


NO_SPACE = "No space left on device"
ONEDNN_OUT_OF_MEMORY = "Status: 1, message:"
"""How TensorFlow's oneDNN kernels word a failed allocation: ``AbortedError: Operation received an
exception:Status: 1, message: could not create a primitive`` (oneDNN's status 1 is
``dnnl_out_of_memory``; seen under ``prlimit --as=3G``)."""


_NOT_THE_CAUSE = re.compile(r"^(Graph execution error:|Detected at node|<stack traces unavailable>|\s*\[\[)")
_NODE = re.compile(r"Detected at node (\S+)")


def error_summary(error: BaseException) -> str:
    """One line of a TensorFlow error: the line that says what went wrong (a graph error's first
    line is only ``Graph execution error:``), and the node it happened at, if named."""
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _NOT_THE_CAUSE.match(line)]
    node = _NODE.search(text)
    cause = lines[0] if lines else type(error).__name__
    return (cause + (f" (at {node.group(1)})" if node else ""))[:300]


def unsupported_reason(error: BaseException) -> str | None:
    """Why the device cannot run a configuration, if ``error`` says so; ``None`` for other errors.

    Out of memory, an op or layout without a kernel here, or something XLA cannot compile: the
    benchmark reports the case as skipped with this reason and goes on with the rest.
    """
    import tensorflow as tf

    if NO_SPACE in str(error):  # TensorFlow raises ResourceExhaustedError for a full disk too
        return f"the disk is full: {error_summary(error)}"
    if isinstance(error, (tf.errors.ResourceExhaustedError, MemoryError)):
        return f"out of memory: {error_summary(error)}"
    if isinstance(error, tf.errors.AbortedError) and ONEDNN_OUT_OF_MEMORY in str(error):
        return f"out of memory (oneDNN could not allocate a primitive): {error_summary(error)}"
    if isinstance(error, (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)):
        return f"not supported on this device: {error_summary(error)}"
    return None
