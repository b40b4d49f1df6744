"""The precision switch: one name -> one Keras dtype policy, resolved here and nowhere else.

Policies are handed to each layer explicitly (``dtype=policy``), so one benchmark case cannot leak
its precision into the next; the global Keras policy is set only inside
``resnet_perf.machine.runtime.keras_defaults``, around building a ``keras.applications`` peer (which
reads nothing else), and restored after it.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from resnet_perf.errors import require_choice

if TYPE_CHECKING:
    import keras

PRECISION_POLICIES: dict[str, str] = {
    "fp32": "float32",
    "mixed_fp16": "mixed_float16",
    "mixed_bf16": "mixed_bfloat16",
    "amp_bf16": "float32",
}
"""``amp_bf16`` is a float32 model whose graph TensorFlow's grappler rewrites to bfloat16 where oneDNN
has bf16 kernels (``auto_mixed_precision_onednn_bfloat16``), instead of Keras casting per layer; a
process-wide option, so such cases run in processes of their own (``resnet_perf.machine.switches``)."""
PRECISIONS: tuple[str, ...] = tuple(PRECISION_POLICIES)
COMPUTE_DTYPES: dict[str, str] = {"fp32": "float32", "mixed_fp16": "float16", "mixed_bf16": "bfloat16",
                                  "amp_bf16": "bfloat16"}
"""The dtype the convolutions and matmuls run in under each precision (the MFU denominator's dtype)."""
AUTO_PRECISION = "auto"
"""A training recipe's precision chosen by the CPU: ``mixed_bf16`` where it has bfloat16 instructions
(``NATIVE_BF16_FLAGS``), else ``fp32``: without them bfloat16 is converted in software, and an
AVX2-only AMD EPYC trained ResNet-18 11x slower in mixed_bf16 than in fp32 (docs/measurements/2026-11-30-zen3-onednn-allocator.md)."""
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
GRAPH_REWRITE_PRECISIONS = ("amp_bf16",)
"""Precisions made by a grappler rewrite of a float32 model, not by a Keras policy: an option of the
whole process (the suite's workers, ``interleave``'s workers, a training process of its own)."""
LOSS_SCALED_PRECISIONS = ("mixed_fp16",)
"""Precisions whose training needs dynamic loss scaling (float16's range is narrow; bfloat16's is float32's)."""


def is_graph_rewrite(name: str) -> bool:
    """Whether ``name`` is made by grappler's rewrite of a float32 model (a process-wide setting)."""
    return name in GRAPH_REWRITE_PRECISIONS


def check_precision(name: str) -> str:
    """``name`` unchanged if it is a known precision; a ``ValueError`` listing them otherwise."""
    require_choice("precision", name, PRECISIONS)
    return name


def has_native_bf16(cpu_flags: Collection[str]) -> bool:
    """Whether a CPU with ``cpu_flags`` computes in bfloat16 itself (``NATIVE_BF16_FLAGS``)."""
    return any(flag in cpu_flags for flag in NATIVE_BF16_FLAGS)


def training_precision(name: str, cpu_flags: Collection[str]) -> str:
    """``name``, or for ``AUTO_PRECISION`` the precision it stands for on a CPU with ``cpu_flags``."""
    if name != AUTO_PRECISION:
        return name
    return "mixed_bf16" if has_native_bf16(cpu_flags) else "fp32"


def dtype_policy(name: str) -> keras.DTypePolicy:
    """The Keras dtype policy for a precision name (``fp32``, ``mixed_fp16``, ``mixed_bf16``)."""
    import keras  # here, not at the top: validating a name must not start TensorFlow

    return keras.DTypePolicy(PRECISION_POLICIES[check_precision(name)])


def compute_dtype(name: str) -> str:
    """The dtype the math runs in under ``name`` (``float32``, ``float16`` or ``bfloat16``)."""
    return COMPUTE_DTYPES[check_precision(name)]
