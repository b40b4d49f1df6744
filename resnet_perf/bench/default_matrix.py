"""The suite's default matrix, chosen for the hardware the run finds: the switches that can pay off
there, each compared with the fp32 default, rather than every combination of every switch.

- A CPU with bfloat16 instructions (avx512_bf16, AMX): fp32, mixed_bf16 and amp_bf16, each with
  Keras's and the fused batch norm.  On this project's Zen 4 and AMX VMs the fastest ResNet-50
  training configurations were bf16 with the fused batch norm (1.95-2.34x fp32), which a matrix
  without the fused batch norm never showed.
- A CPU without them: fp32 only (bfloat16 is converted in software there, 3-11x slower), with
  both batch norms.
- A GPU (TensorFlow's documented mixed-precision guidance): mixed_float16 from compute capability
  7.0 (Tensor Cores), mixed_bfloat16 from 8.0, Keras's batch norm (cuDNN fuses it already).

The filter gradients as GEMMs (``filter_grad="gemm"``) are measured on a CPU as a twin of each
configuration with the fused batch norm (the fastest of each precision), in its training steps only (its
forward pass is its twin's): oneDNN's backward-weights convolutions without AMX lose most on the small
deep layers the GEMM takes over (ResNet-18 at 32x32: its training step 1.58x faster in mixed_bf16 with
the fused batch norm on the Zen 4 VM).

XLA is measured as one comparison (fp32 with XLA against fp32 without), not crossed with every
precision: on every CPU measured so far it lost (0.57-0.80x), so crossing it doubled the run to
learn that twice.  ``--precisions``, ``--batch-norms`` and ``--xla`` given explicitly replace the
choice (``--xla off,on`` crosses XLA with everything again).
"""
from __future__ import annotations

import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from resnet_perf.precision import has_native_bf16

AUTO = "auto"
TENSOR_CORES = (7, 0)
GPU_BF16 = (8, 0)


@dataclass(frozen=True)
class SwitchChoice:
    """The switches of a default matrix and why: ``xla_comparison`` adds fp32 + XLA beside fp32,
    ``gemm_comparison`` the GEMM filter gradients beside each configuration with the fused batch norm."""

    precisions: tuple[str, ...]
    batch_norms: tuple[str, ...]
    xla_comparison: bool
    why: str
    gemm_comparison: bool = False


def choose_switches(cpu_flags: Collection[str], gpu_capabilities: Sequence[tuple[int, int]] = ()) -> SwitchChoice:
    """The default switches for a machine with ``cpu_flags`` and GPUs of ``gpu_capabilities``
    (CUDA compute capabilities; none on a CPU-only machine)."""
    if gpu_capabilities:
        lowest = min(gpu_capabilities)
        precisions = ("fp32",) + (("mixed_fp16",) if lowest >= TENSOR_CORES else ()) + (
            ("mixed_bf16",) if lowest >= GPU_BF16 else ())
        return SwitchChoice(precisions, ("keras",), True, f"GPU of compute capability {lowest[0]}.{lowest[1]}")
    if has_native_bf16(cpu_flags):
        return SwitchChoice(("fp32", "mixed_bf16", "amp_bf16"), ("keras", "fused"), True,
                            "CPU with bfloat16 instructions", gemm_comparison=True)
    return SwitchChoice(("fp32",), ("keras", "fused"), True, "CPU without bfloat16 instructions", gemm_comparison=True)


def gpu_capabilities() -> list[tuple[int, int]]:
    """The CUDA compute capability of every GPU TensorFlow sees (``tf.config.experimental.get_device_details``);
    TensorFlow is imported only where ``nvidia-smi`` exists, so a CPU-only machine decides without it."""
    if shutil.which("nvidia-smi") is None:
        return []
    import tensorflow as tf

    details = [tf.config.experimental.get_device_details(gpu) for gpu in tf.config.list_physical_devices("GPU")]
    return [tuple(detail["compute_capability"]) for detail in details if "compute_capability" in detail]
