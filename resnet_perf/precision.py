"""The precision switch: one name -> one Keras dtype policy, resolved here and nowhere else.

Policies are handed to each layer explicitly (``dtype=policy``); the global Keras policy is never
touched, so one benchmark case cannot leak its precision into the next.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from resnet_perf.errors import UserError

if TYPE_CHECKING:
    import keras

PRECISION_POLICIES: dict[str, str] = {
    "fp32": "float32",
    "mixed_fp16": "mixed_float16",
    "mixed_bf16": "mixed_bfloat16",
}
PRECISIONS: tuple[str, ...] = tuple(PRECISION_POLICIES)
COMPUTE_DTYPES: dict[str, str] = {"fp32": "float32", "mixed_fp16": "float16", "mixed_bf16": "bfloat16"}
"""The dtype the math runs in under each precision (what the policy's ``compute_dtype`` says)."""


def check_precision(name: str) -> str:
    """``name`` unchanged if it is a known precision; a ``ValueError`` listing them otherwise."""
    if name not in PRECISION_POLICIES:
        raise UserError(f"unknown precision {name!r}: choose one of {', '.join(PRECISIONS)}")
    return name


def dtype_policy(name: str) -> keras.DTypePolicy:
    """The Keras dtype policy for a precision name (``fp32``, ``mixed_fp16``, ``mixed_bf16``)."""
    import keras  # here, not at the top: validating a name must not start TensorFlow

    return keras.DTypePolicy(PRECISION_POLICIES[check_precision(name)])


def compute_dtype(name: str) -> str:
    """The dtype the math runs in under ``name`` (``float32``, ``float16`` or ``bfloat16``)."""
    return COMPUTE_DTYPES[check_precision(name)]
