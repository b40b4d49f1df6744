"""Where a configuration meets TensorFlow: devices, strategies, Keras defaults, the environment.

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
from resnet_perf.errors import UserError
from resnet_perf.precision import PRECISION_POLICIES


def gpus() -> list:
    """The physical GPUs TensorFlow sees (empty on this CPU-only machine)."""
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def setup_cpu_replicas(replicas: int) -> None:
    """Split the CPU into ``replicas`` logical devices, so MirroredStrategy has replicas to mirror.

    Must run before TensorFlow initialises (before any op or device query); a ``UserError`` says
    so otherwise.  Asking again for the layout already in place is fine.
    """
    import tensorflow as tf

    if replicas < 1:
        raise UserError(f"replicas must be at least 1, got {replicas}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != replicas:
            raise UserError(
                f"cannot split the CPU into {replicas} devices: TensorFlow was already initialised "
                f"with {have}; choose the replicas before anything else runs") from None


def make_strategy(replicas: int | str = "auto"):
    """A MirroredStrategy over ``replicas`` devices: all (or the first N) GPUs, else N logical CPUs.

    ``"auto"`` means every GPU, or one CPU device where there is no GPU.
    """
    import tensorflow as tf

    found = gpus()
    if replicas == "auto":
        replicas = len(found) or 1
    if not isinstance(replicas, int) or replicas < 1:
        raise UserError(f"replicas must be 'auto' or a positive integer, got {replicas!r}")
    if found:
        if replicas > len(found):
            raise UserError(f"asked for {replicas} replicas but this machine has {len(found)} GPUs")
        devices = [f"/gpu:{i}" for i in range(replicas)]
    else:
        setup_cpu_replicas(replicas)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


COLLECTIVE_TIMEOUT_S = 600
"""A collective waiting longer than this for another worker fails instead of hanging forever."""


def make_multiworker_strategy():
    """A MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG`` (validated first).

    Must be made before TensorFlow runs anything else in the process; it waits for every worker
    without a deadline (``resnet_perf.cluster.wait_for_peers`` gives one, before TensorFlow starts).
    TensorFlow's preemption notifier takes SIGTERM for itself while the strategy starts: this
    process's own handler is put back after.
    """
    import signal

    import tensorflow as tf

    from resnet_perf.cluster import current_task

    current_task()
    on_sigterm = signal.getsignal(signal.SIGTERM)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if callable(on_sigterm):
        signal.signal(signal.SIGTERM, on_sigterm)
    return strategy


@contextlib.contextmanager
def keras_defaults(config: RunConfig) -> Iterator[None]:
    """Set Keras's global dtype policy and image data format for ``config``, and restore them.

    Our own models take both per layer and need none of this; ``keras.applications`` models read
    the globals when they are built, so the reference models are built inside this block.
    """
    import keras

    policy, data_format = keras.config.dtype_policy(), keras.config.image_data_format()
    keras.config.set_dtype_policy(PRECISION_POLICIES[config.precision])
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
    settings that change results), devices, thread pools, git commit."""
    import keras
    import tensorflow as tf

    from resnet_perf.fingerprint import fingerprint

    build = tf.sysconfig.get_build_info()
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__,
                "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version")}
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


def lost_worker_reason(error: BaseException) -> str | None:
    """One line for a collective that failed because another worker went away (it died, or stopped
    answering); ``None`` for other errors."""
    import tensorflow as tf

    lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError)
    if not isinstance(error, lost):
        return None
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    return f"lost contact with another worker ({type(error).__name__}: {first_line})"


ONEDNN_OUT_OF_MEMORY = "Status: 1, message:"
"""How TensorFlow's oneDNN kernels word a failed allocation: ``AbortedError: Operation received an
exception:Status: 1, message: could not create a primitive`` (oneDNN's status 1 is
``dnnl_out_of_memory``; seen under ``prlimit --as=3G``)."""


def unsupported_reason(error: BaseException) -> str | None:
    """Why the device cannot run a configuration, if ``error`` says so; ``None`` for other errors.

    Out of memory, an op or layout without a kernel here, or something XLA cannot compile: the
    benchmark reports the case as skipped with this reason and goes on with the rest.
    """
    import tensorflow as tf

    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    if isinstance(error, (tf.errors.ResourceExhaustedError, MemoryError)):
        return f"out of memory: {first_line}"
    if isinstance(error, tf.errors.AbortedError) and ONEDNN_OUT_OF_MEMORY in str(error):
        return f"out of memory (oneDNN could not allocate a primitive): {first_line}"
    if isinstance(error, (tf.errors.UnimplementedError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)):
        return f"not supported on this device: {first_line}"
    return None
