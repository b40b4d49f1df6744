"""Distribution strategies for training: MirroredStrategy over GPUs or logical CPU devices, and
MultiWorkerMirroredStrategy over a TF_CONFIG cluster; and telling a lost worker from other errors.

TensorFlow is imported lazily: logical CPU devices can only be set up before it initialises.
"""
from __future__ import annotations

from resnet_perf.errors import UserError
from resnet_perf.machine.runtime import ONEDNN_OUT_OF_MEMORY, error_summary, gpus
from resnet_perf.training.cluster import current_task


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
    without a deadline (``resnet_perf.training.cluster.wait_for_peers`` gives one, before TensorFlow starts).
    TensorFlow's preemption notifier takes SIGTERM for itself while the strategy starts: this
    process's own handler is put back after.
    """
    import signal

    import tensorflow as tf

    current_task()
    on_sigterm = signal.getsignal(signal.SIGTERM)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if callable(on_sigterm):
        signal.signal(signal.SIGTERM, on_sigterm)
    return strategy


def lost_worker_reason(error: BaseException) -> str | None:
    """One line for a collective that failed because another worker went away (it died, or stopped
    answering); ``None`` for other errors."""
    import tensorflow as tf

    lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError)
    if not isinstance(error, lost) or ONEDNN_OUT_OF_MEMORY in str(error):  # that abort is this worker's memory
        return None
    return f"lost contact with another worker ({type(error).__name__}: {error_summary(error)})"
