"""resnet_perf: a TensorFlow benchmark suite for the ResNet family.

``import resnet_perf`` does not import TensorFlow: the runtime must be able to set up logical
devices before TensorFlow initialises, and ``python -m resnet_perf.<tool>`` must not import its own
module twice.  ``build_resnet`` is loaded on first use.
"""
import os
import sys
from typing import Any

__version__ = "0.1.0"
__all__ = ["build_resnet", "enable_onednn", "quiet_tensorflow_logs"]


def quiet_tensorflow_logs() -> None:
    """Hide TensorFlow's C++ INFO and WARNING lines (CPU feature guard, ...), which bury a command's
    output and its one ``error:`` line, unless the user set ``TF_CPP_MIN_LOG_LEVEL``.  Processes
    started from here (workers, probes, suite processes) inherit it.  The few lines TensorFlow logs
    while its libraries load, before its logging is initialised, ignore the level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def enable_onednn() -> None:
    """Turn TensorFlow's oneDNN kernels on unless the user set ``TF_ENABLE_ONEDNN_OPTS``: every
    configuration here says oneDNN on unless it is switched off (``--onednn off``), and TensorFlow
    turns it on by itself only on CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX
    (``resnet_perf.machine.cpu.ONEDNN_DEFAULT_FLAGS``).  On an AVX2-only AMD EPYC its Eigen kernels
    trained ResNet-18 3-11x slower (README, "oneDNN on every CPU, and the allocator").  Processes started from
    here inherit it."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


if sys.argv[:1] == ["-m"]:  # python -m resnet_perf.<tool>: the package is imported before the tool
    quiet_tensorflow_logs()
    enable_onednn()


def __getattr__(name: str) -> Any:
    if name == "build_resnet":
        from resnet_perf.models.resnet import build_resnet

        return build_resnet
    raise AttributeError(f"module 'resnet_perf' has no attribute {name!r}")
