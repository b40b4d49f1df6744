"""build_resnet against published references: parameters, shapes, layouts, precisions."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from resnet_perf.config import LAYOUTS
from resnet_perf.errors import UserError
from resnet_perf.model import main
from resnet_perf.models.resnet import build_resnet, count_params, stage_output_shapes
from resnet_perf.specs import DEPTHS, RESNET_SPECS, get_spec

# torchvision.models resnet{18,34,50,101,152}: "num_params" of the ImageNet weights (v1.5).
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}

# The seed article's ResNet-18 on a (1, 224, 224, 1) input, 10 classes: the shapes it prints.
SEED_SHAPES = [
    ("Conv2D", (112, 112, 64)),
    ("BatchNormalization", (112, 112, 64)),
    ("Activation", (112, 112, 64)),
    ("MaxPooling2D", (56, 56, 64)),
    ("ResnetBlock", (56, 56, 64)),
    ("ResnetBlock", (28, 28, 128)),
    ("ResnetBlock", (14, 14, 256)),
    ("ResnetBlock", (7, 7, 512)),
    ("GlobalAveragePooling2D", (512,)),
    ("Dense", (10,)),
]


@pytest.mark.parametrize("depth", DEPTHS)
def test_trainable_parameters_equal_torchvision(depth):
    trainable, _ = count_params(build_resnet(depth))
    assert trainable == TORCHVISION_PARAMS[depth]


def test_spec_table_has_every_depth_and_rejects_others():
    assert set(RESNET_SPECS) == {18, 34, 50, 101, 152}
    assert get_spec(50).block == "bottleneck" and get_spec(34).block == "basic"
    assert get_spec(101).blocks_per_stage == (3, 4, 23, 3)
    with pytest.raises(ValueError, match="18, 34, 50, 101, 152"):
        get_spec(19)


def test_seed_article_resnet18_stage_shapes():
    model = build_resnet(18, num_classes=10, input_shape=(224, 224, 1))
    shapes = [shape[1:] for _, _, shape in stage_output_shapes(model)]
    assert shapes == [shape for _, shape in SEED_SHAPES]


@pytest.mark.parametrize("depth", DEPTHS)
def test_small_input_gives_logits_for_every_depth(depth):
    model = build_resnet(depth, num_classes=10, input_shape=(32, 32, 3))
    logits = model(np.zeros((2, 32, 32, 3), "float32"), training=False)
    assert logits.shape == (2, 10)


def test_one_channel_and_non_square_input():
    model = build_resnet(18, num_classes=7, input_shape=(64, 96, 1))
    assert model(np.zeros((2, 64, 96, 1), "float32")).shape == (2, 7)


def test_layer_names_follow_the_architecture():
    names = {layer.name for layer in build_resnet(50, input_shape=(32, 32, 3)).layers}
    assert {"stem_conv", "stem_pool", "stage1_block1_proj_conv", "stage3_block2_conv1",
            "stage4_block3_conv3", "stage4_block3_out", "avg_pool", "fc", "logits"} <= names
    assert "stage2_block2_proj_conv" not in names  # identity shortcut where shapes match


def test_bottleneck_stride_is_on_the_3x3_conv_v1_5():
    model = build_resnet(50, input_shape=(64, 64, 3))
    assert model.get_layer("stage2_block1_conv1").strides == (1, 1)
    assert model.get_layer("stage2_block1_conv2").strides == (2, 2)
    assert all(not layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))


def test_nchw_and_nhwc_give_the_same_outputs_with_shared_weights():
    nhwc = build_resnet(18, num_classes=10, input_shape=(32, 32, 3))
    nchw = build_resnet(18, num_classes=10, input_shape=(32, 32, 3), data_format="channels_first")
    # Give BN non-trivial statistics so the comparison covers them too.
    rng = np.random.default_rng(0)
    nhwc.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(w.dtype) for w in nhwc.get_weights()])
    nchw.set_weights(nhwc.get_weights())
    images = rng.uniform(size=(2, 32, 32, 3)).astype("float32")
    expected = nhwc(images, training=False).numpy()
    actual = nchw(np.transpose(images, (0, 3, 1, 2)), training=False).numpy()
    assert nchw.input_shape == (None, 3, 32, 32)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("precision, compute", [("fp32", "float32"), ("mixed_fp16", "float16"),
                                                ("mixed_bf16", "bfloat16")])
def test_precision_sets_compute_and_variable_dtypes(precision, compute):
    model = build_resnet(18, num_classes=10, input_shape=(32, 32, 3), precision=precision)
    conv = model.get_layer("stage2_block1_conv1")
    assert conv.compute_dtype == compute
    assert conv.kernel.dtype == "float32"  # master weights stay float32
    logits = model(np.ones((2, 32, 32, 3), "float32"), training=False)
    assert logits.dtype == "float32"
    assert model.get_layer("fc").output.dtype == compute


def test_mixed_model_does_not_leak_its_policy_into_the_next():
    before = keras.config.dtype_policy().name
    build_resnet(18, input_shape=(32, 32, 3), precision="mixed_bf16")
    assert keras.config.dtype_policy().name == before == "float32"
    plain = build_resnet(18, input_shape=(32, 32, 3))
    assert {layer.compute_dtype for layer in plain.layers if layer.weights} == {"float32"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=42), "unknown ResNet depth 42"),
    (dict(depth=18, precision="fp8"), "unknown precision 'fp8'.*fp32, mixed_fp16, mixed_bf16"),
    (dict(depth=18, input_shape=(16, 16, 3)), "too small"),
    (dict(depth=18, input_shape=(224, 224)), "three integers"),
    (dict(depth=18, input_shape=(224, 224, 0)), "at least one channel"),
    (dict(depth=18, data_format="NHWC"), "unknown data_format"),
    (dict(depth=18, num_classes=0), "num_classes"),
])
def test_bad_input_is_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_resnet(**kwargs)


def test_summary_command_prints_shapes_parameters_and_macs(capsys):
    assert main(["--depth", "18", "--input-shape", "224,224,1", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "stage4" in out and "(None, 7, 7, 512)" in out
    assert "11,175,370 trainable" in out
    assert "GMACs" in out


@pytest.mark.parametrize("argv, message", [(["--depth", "19"], "unknown ResNet depth 19"),
                                           (["--precision", "half"], "unknown precision 'half'")])
def test_summary_command_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def _twin_models(layout: str, precision: str = "fp32"):
    """ResNet-18 with Keras's batch norm and with the fused one, holding the same weights (64x64
    images: with 32x32 and a batch of 4 the last stage normalizes 4 values per channel, where float32
    rounding alone moves gradients by percents)."""
    keras.utils.set_random_seed(0)
    shape = (64, 64, 1)
    plain = build_resnet(18, num_classes=10, input_shape=shape, data_format=LAYOUTS[layout], precision=precision)
    fused = build_resnet(18, num_classes=10, input_shape=shape, data_format=LAYOUTS[layout], precision=precision,
                         batch_norm="fused")
    assert [w.path.split("/")[-1] for w in plain.weights] == [w.path.split("/")[-1] for w in fused.weights]
    fused.set_weights(plain.get_weights())
    return plain, fused


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_the_fused_batch_norm_computes_what_keras_batch_norm_computes(layout):
    import tensorflow as tf

    plain, fused = _twin_models(layout)
    assert count_params(plain) == count_params(fused)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(1.0, 2.0, (8, 1, 64, 64) if layout == "nchw" else (8, 64, 64, 1)), tf.float32)
    labels = tf.constant([1, 2, 3, 4, 5, 6, 7, 8])
    for model in (plain, fused):  # a moving-statistics update each
        model(images, training=True)
    for a, b in zip(plain.non_trainable_weights, fused.non_trainable_weights):  # moving mean and variance
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(plain(images, training=False).numpy(), fused(images, training=False).numpy(),
                               rtol=1e-3, atol=1e-4)
    gradients = []
    for model in (plain, fused):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, model(images, training=True), from_logits=True))
        gradients.append(tape.gradient(loss, model.trainable_weights))
    for a, b in zip(*gradients):  # the backward pass too, tensor by tensor (float32 sums in another order)
        assert np.linalg.norm(a.numpy() - b.numpy()) <= 1e-2 * np.linalg.norm(a.numpy())


def test_the_fused_batch_norm_runs_in_mixed_bfloat16():
    plain, fused = _twin_models("nhwc", "mixed_bf16")
    images = np.random.default_rng(1).normal(0.5, 1.0, (4, 64, 64, 1)).astype("float32")
    assert fused.get_layer("stem_bn").gamma.dtype == "float32"  # weights stay float32
    np.testing.assert_allclose(plain(images, training=False).numpy(), fused(images, training=False).numpy(),
                               rtol=0.05, atol=0.05)  # bfloat16 keeps 8 bits of mantissa
    with pytest.raises(UserError, match="unknown batch norm 'batch'"):
        build_resnet(18, num_classes=10, input_shape=(32, 32, 1), batch_norm="batch")


@pytest.mark.parametrize("depth, batch_norm", [(18, "keras"), (50, "fused")])
def test_zero_init_residual_starts_every_block_as_its_shortcut(depth, batch_norm):
    last = "bn2" if depth == 18 else "bn3"  # the residual branch's last batch norm
    model = build_resnet(depth, num_classes=10, input_shape=(32, 32, 1), batch_norm=batch_norm,
                         zero_init_residual=True)
    scales = {layer.name: layer.gamma.numpy() for layer in model.layers if hasattr(layer, "gamma")}
    zeroed = sorted(name for name, gamma in scales.items() if not gamma.any())
    assert zeroed == sorted(name for name in scales if name.startswith("stage") and name.endswith(f"_{last}"))
    assert len(zeroed) == sum(get_spec(depth).blocks_per_stage)
    assert all((gamma == 1).all() for name, gamma in scales.items() if name not in zeroed)
    # an identity block: its sum is its input (the fused model's ``_out`` adds and applies the ReLU in one layer,
    # which leaves the shortcut, a ReLU's output, as it is)
    block = model.get_layer("stage1_block2_add" if batch_norm == "keras" else "stage1_block2_out")
    output = block.output[0] if isinstance(block.output, list) else block.output
    probe = keras.Model(model.input, [block.input[1], output])
    shortcut, added = probe(np.random.default_rng(0).normal(size=(2, 32, 32, 1)).astype("float32"), training=False)
    np.testing.assert_allclose(added.numpy(), shortcut.numpy(), rtol=1e-6, atol=1e-6)
    if depth == 18:  # off by default
        default = build_resnet(depth, num_classes=10, input_shape=(32, 32, 1), batch_norm=batch_norm)
        assert all(layer.gamma.numpy().all() for layer in default.layers if hasattr(layer, "gamma"))
