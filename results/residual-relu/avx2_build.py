"""Run one of this folder's scripts with the native kernels built for an AVX2 CPU (``-march=znver3``, Zen 3) instead
of this machine's: the code a Zen 3 would compile, on the CPU at hand. ``old`` builds without ``-fno-trapping-math``
(the flags before 2026-12-07's fix), ``new`` with the build's flags as they are. Its own kernel cache, so the
machine's own build is not replaced.

    RESNET_PERF_KERNEL_CACHE=/tmp/kcache_znver3 python results/residual-relu/avx2_build.py old|new \
        results/residual-relu/per_op.py
    RESNET_PERF_KERNEL_CACHE=/tmp/kcache_znver3 python results/residual-relu/avx2_build.py old|new \
        results/residual-relu/tail_in_step.py fp32 6
"""
import runpy
import sys

from resnet_perf.kernels import build

flags = tuple("-march=znver3" if flag == "-march=native" else flag for flag in build.OPTIMIZE)
if sys.argv[1] == "old":
    flags = tuple(flag for flag in flags if flag != "-fno-trapping-math")
build.OPTIMIZE = flags
print(build.load_kernels().status, " ".join(build.OPTIMIZE), flush=True)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
