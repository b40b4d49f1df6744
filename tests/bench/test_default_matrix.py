"""The main job's matrix is chosen by the hardware: what can pay off there, each against the fp32 default."""
from __future__ import annotations

from resnet_perf.bench.default_matrix import choose_switches


def test_a_cpu_with_bfloat16_gets_the_bf16_precisions_both_batch_norms_and_the_comparisons():
    choice = choose_switches(["avx2", "avx512f", "avx512_bf16"])
    assert choice.precisions == ("fp32", "mixed_bf16", "amp_bf16") and choice.batch_norms == ("keras", "fused")
    assert choice.xla_comparison and choice.gemm_comparison


def test_a_cpu_without_bfloat16_measures_float32_only():
    choice = choose_switches(["avx2", "fma"])
    assert choice.precisions == ("fp32",) and choice.gemm_comparison and "without bfloat16" in choice.why


def test_a_gpu_keeps_tensorflows_filter_gradients():  # the GEMM twin answers a oneDNN question, not a cuDNN one
    choice = choose_switches(["avx2"], [(8, 0)])
    assert choice.precisions == ("fp32", "mixed_fp16", "mixed_bf16") and not choice.gemm_comparison
