"""Where a step's time goes: op categories read from a real trace, adding up to the step."""
from __future__ import annotations

import pytest

from resnet_perf.config import RunConfig
from resnet_perf.trace.breakdown import CATEGORIES, category, explain, op_seconds_by_category, step_shares, trace_fields


@pytest.mark.parametrize("kind, op_type, name, expected", [
    ("tf", "_MklNativeConv2D", "resnet18_1/stage1_block1_conv1_1/convolution", "conv_forward"),
    ("tf", "_FusedConv2D", "model/conv", "conv_forward"),
    ("tf", "_MklNativeConv2DBackpropInput", "gradient_tape/x/Conv2DBackpropInput", "conv_backward_data"),
    ("tf", "Conv2DBackpropFilter", "gradient_tape/x/Conv2DBackpropFilter", "conv_backward_filter"),
    # the filter gradients as GEMMs (resnet_perf.models.gemm_filter_grad): the patches and the matmul
    ("tf", "ExtractImagePatches", "stage4_block1_conv1/filter_gradient_gemm/ExtractImagePatches",
     "conv_backward_filter"),
    ("tf", "_MklMatMul", "stage4_block2_conv2_1/filter_gradient_gemm_3/MatMul", "conv_backward_filter"),
    ("tf", "_MklMatMul", "filter_gradient_gemms/MatMul", "pool_dense"),
    ("tf", "Mul", "gradient_tape/resnet18_1/stage1_block1_bn1_1/batchnorm/mul/Mul", "batch_norm"),
    ("tf", "AssignVariableOp", "resnet50_1/stem_bn_1/AssignVariableOp", "batch_norm"),
    ("tf", "Mean", "resnet50/conv2_block1_1_bn/moments/mean", "batch_norm"),  # keras.applications' names
    ("tf", "_MklFusedBatchNormV3", "resnet18/stage1_block1_fbn1/FusedBatchNormV3", "batch_norm"),
    ("tf", "AssignAddVariableOp", "sgd/AssignAddVariableOp_3", "optimizer"),
    ("tf", "ResourceApplyKerasMomentum", "update/x", "optimizer"),
    ("tf", "Cast", "resnet18_1/stage1_block1_conv1_1/Cast", "cast_reorder"),
    ("tf", "_MklNativeMaxPool", "resnet18_1/stem_pool_1/MaxPool2d", "pool_dense"),
    ("tf", "Tile", "gradient_tape/resnet18_1/avg_pool_1/Tile", "pool_dense"),
    ("tf", "_MklMatMul", "gradient_tape/resnet18_1/fc_1/MatMul/MatMul", "pool_dense"),
    ("tf", "ReluGrad", "gradient_tape/resnet18_1/stage1_block1_out_1/ReluGrad", "elementwise"),
    ("tf", "AddN", "AddN_3", "elementwise"),
    ("tf", "ReadVariableOp", "resnet18_1/fc_1/BiasAdd/ReadVariableOp", "pool_dense"),
    ("tf", "ReadVariableOp", "Add/ReadVariableOp", "other"),
    ("tf", "SparseSoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits/x", "other"),
    ("xla", "convolution", "convolution.20", "conv_xla"),
    ("xla", "convolution-window-dilated", "convolution-window-dilated.2", "conv_xla"),
    ("xla", "dot", "dot.1", "conv_xla"),
    ("xla", "wrapped_reduce-window", "wrapped_reduce-window.1", "pool_dense"),
    ("xla", "copy_reverse_fusion", "copy_reverse_fusion.3", "cast_reorder"),
    ("xla", "copy", "copy.7", "cast_reorder"),
    ("xla", "copy_subtract_fusion", "copy_subtract_fusion.1", "xla_fusion"),
    ("xla", "wrapped_add", "wrapped_add.5", "xla_fusion"),
])
def test_each_op_falls_into_its_category(kind, op_type, name, expected):
    assert category(kind, op_type, name) == expected


@pytest.fixture(scope="module")
def train_trace(tmp_path_factory):
    """A real trace of 2 training steps of a tiny ResNet-18, with the step markers profile writes."""
    from resnet_perf.bench.steps import Step
    from resnet_perf.trace.capture import capture

    step = Step(RunConfig(depth=18, batch_size=2, image_size=32), "train")
    step()
    return capture(step, tmp_path_factory.mktemp("trace"), 2).path


def test_categories_add_up_to_the_ops_and_the_step(train_trace):
    from resnet_perf.trace.xplane import op_times, read_xspace

    fields = trace_fields(train_trace)
    space = read_xspace(train_trace)
    assert fields["breakdown_steps"] == 2 and fields["breakdown_step_s"] > 0
    # every op's self time is in exactly one category: the categories sum to xplane's own total
    total = sum(op.total_s for op in op_times(space))
    assert sum(op_seconds_by_category(space).values()) == pytest.approx(total, rel=1e-9)
    assert sum(fields["breakdown_op_s"].values()) * 2 == pytest.approx(total, rel=1e-9)
    for key in ("conv_forward", "conv_backward_data", "conv_backward_filter", "batch_norm", "optimizer",
                "elementwise", "pool_dense"):
        assert fields["breakdown_op_s"][key] > 0, key
    assert fields["breakdown_op_s"]["conv_xla"] == 0 == fields["breakdown_op_s"]["xla_fusion"]
    shares = step_shares(fields)
    assert set(shares) == set(CATEGORIES)
    assert sum(share["share"] for share in shares.values()) == pytest.approx(1)
    assert sum(share["ms"] for share in shares.values()) == pytest.approx(fields["breakdown_step_s"] * 1e3)


def _row(step_ms: float, **op_ms: float) -> dict:
    return {"breakdown_step_s": step_ms / 1e3,
            "breakdown_op_s": {key: op_ms.get(key, 0.0) / 1e3 for key in CATEGORIES}}


def test_a_speed_up_is_explained_by_the_categories_that_changed_most():
    base = _row(300, conv_forward=100, conv_backward_data=100, batch_norm=50, elementwise=50)
    faster = _row(210, conv_forward=50, conv_backward_data=50, batch_norm=50, cast_reorder=40, elementwise=20)
    assert explain(faster, base) == ("convolutions 2.0x faster (-100 ms), casts + reorders appeared (+40 ms), "
                                     "elementwise 2.5x faster (-30 ms)")
    assert explain(faster, {"breakdown_step_s": 0.3}) is None
