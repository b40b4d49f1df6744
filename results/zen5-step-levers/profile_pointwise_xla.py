"""The profile of one configuration with XLA auto-clustering limited to point-wise ops (run with
TF_XLA_FLAGS="--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit --tf_xla_ops_to_cluster=PW [--tf_xla_min_cluster_size=2]").
The profile command refuses a trace whose process clusters with XLA under an XLA-off config; this experiment lifts
that check for itself only.

    python results/zen5-step-levers/profile_pointwise_xla.py --depth 50 --precision mixed_bf16 --batch-norm fused ...
"""
import sys
import resnet_perf.bench.steps as steps
steps.global_auto_jit = lambda: False  # experiment only: let the profile run under PW-only auto-clustering
from resnet_perf import profile
sys.exit(profile.main(sys.argv[1:]))
