"""resnet_perf: a TensorFlow benchmark suite for the ResNet family.

``import resnet_perf`` does not import TensorFlow: the runtime must be able to set up logical
devices before TensorFlow initialises, and ``python -m resnet_perf.<tool>`` must not import its own
module twice.  ``build_resnet`` is loaded on first use.
"""
from typing import Any

__version__ = "0.1.0"
__all__ = ["build_resnet"]


def __getattr__(name: str) -> Any:
    if name == "build_resnet":
        from resnet_perf.model import build_resnet

        return build_resnet
    raise AttributeError(f"module 'resnet_perf' has no attribute {name!r}")
