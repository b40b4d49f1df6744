"""The three steps and the workload they run on."""
from __future__ import annotations

import keras
import numpy as np
import pytest

import tensorflow as tf

from resnet_perf.bench.steps import _STEP_FUNCTIONS, Step
from resnet_perf.bench.workload import build_model, synthetic_batch
from resnet_perf.config import MODES
from resnet_perf.models.objective import make_optimizer


def test_synthetic_batch_matches_the_layout(tiny_config):
    images, labels = synthetic_batch(tiny_config.replace(layout="nchw"))
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2,)
    assert int(labels.numpy().max()) < tiny_config.num_classes


def test_forward_returns_logits(tiny_config):
    (logits,) = Step(tiny_config, "forward")()
    assert logits.shape == (2, 10) and logits.dtype == np.float32


def test_every_mode_has_a_step():
    assert tuple(_STEP_FUNCTIONS) == MODES


def test_fwd_bwd_computes_every_gradient_without_updating(tiny_config):
    step = Step(tiny_config, "fwd_bwd")
    before = [w.numpy().copy() for w in step.model.trainable_weights]
    loss, anchor = step()
    assert np.isfinite(loss) and np.isfinite(anchor)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, step.model.trainable_weights))
    graph = step.function.get_concrete_function(*step.args).graph
    op_types = {op.type for op in graph.get_operations()}
    assert "Conv2DBackpropFilter" in op_types and "Conv2DBackpropInput" in op_types
    assert "L2Loss" not in op_types  # no pass over all gradients that the train step does not make


def test_train_forward_runs_the_training_mode_forward_and_loss_only(tiny_config):
    step = Step(tiny_config, "train_forward")
    bn = step.model.get_layer("stem_bn")
    before = bn.moving_mean.numpy().copy()
    (loss,) = step()
    assert np.isfinite(loss) and loss.shape == ()
    assert not np.array_equal(before, bn.moving_mean.numpy())  # batch statistics, as in training
    op_types = {op.type for op in step.function.get_concrete_function(*step.args).graph.get_operations()}
    assert "Conv2DBackpropFilter" not in op_types


def test_a_step_synchronises_the_devices_before_it_counts_as_finished(tiny_config, monkeypatch):
    calls = []
    sync = tf.test.experimental.sync_devices
    monkeypatch.setattr(tf.test.experimental, "sync_devices", lambda: calls.append("sync") or sync())
    step = Step(tiny_config, "forward")
    step()
    step()
    assert calls == ["sync", "sync"]


@pytest.mark.parametrize("precision", ["fp32", "mixed_bf16", "mixed_fp16"])
def test_train_step_updates_weights(tiny_config, precision):
    step = Step(tiny_config.replace(precision=precision), "train")
    kernel = step.model.get_layer("fc").kernel
    before = kernel.numpy().copy()
    # float16 starts with a loss scale of 2**15 and skips the steps whose gradients overflow,
    # halving the scale each time, so its first update can take a few steps.
    for _ in range(30):
        (loss,) = step()
        if not np.array_equal(before, kernel.numpy()):
            break
    assert np.isfinite(loss) and not np.array_equal(before, kernel.numpy())


def test_loss_scaling_only_for_float16():
    assert isinstance(make_optimizer("mixed_fp16", 0.1), keras.optimizers.LossScaleOptimizer)
    assert not isinstance(make_optimizer("mixed_bf16", 0.1), keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("precision", ["fp32", "mixed_fp16"])
def test_the_optimizer_clips_the_gradients_to_the_global_norm(precision):
    weights = [keras.Variable(np.zeros(3, np.float32)), keras.Variable(np.zeros(4, np.float32))]
    gradients = [np.full(3, 3.0, np.float32), np.full(4, 4.0, np.float32)]  # global norm sqrt(27 + 64)
    optimizer = make_optimizer(precision, 1.0, momentum=0.0, clip_norm=0.5)
    optimizer.build(weights)
    # gradients as the step hands them over: loss-scaled under mixed_fp16 (unscaled first, then clipped)
    gradients = [gradient * float(optimizer.scale_loss(1.0)) for gradient in gradients]
    optimizer.apply(gradients, weights)
    step = np.concatenate([weight.numpy() for weight in weights])
    np.testing.assert_allclose(np.linalg.norm(step), 0.5, rtol=1e-5)  # lr 1: the step is the clipped gradient
    np.testing.assert_allclose(step / np.linalg.norm(step), -np.array([3.0] * 3 + [4.0] * 4) / np.sqrt(91), rtol=1e-5)
    below = make_optimizer(precision, 1.0, momentum=0.0, clip_norm=100.0)
    small = [keras.Variable(np.zeros(2, np.float32))]
    below.build(small)
    below.apply([np.array([0.3, 0.4], np.float32) * float(below.scale_loss(1.0))], small)
    np.testing.assert_allclose(small[0].numpy(), [-0.3, -0.4], rtol=1e-5)  # below the norm: left as it was


def test_xla_nchw_train_step_runs(tiny_config):
    (loss,) = Step(tiny_config.replace(xla=True, layout="nchw"), "train")()
    assert np.isfinite(loss)


def test_keras_reference_model_is_built_with_the_config_and_leaves_globals_alone(tiny_config):
    config = tiny_config.replace(depth=50, model="keras", precision="mixed_bf16", layout="nchw")
    model = build_model(config)
    assert model.name == "resnet50"
    assert model.input_shape == (None, 3, 32, 32)
    assert model.get_layer("conv1_conv").compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"
    assert keras.config.image_data_format() == "channels_last"


def test_unknown_mode_is_rejected(tiny_config):
    with pytest.raises(ValueError, match="unknown step mode"):
        Step(tiny_config, "backward")
