"""Devices, strategies, Keras defaults, the environment record, unsupported cases."""
from __future__ import annotations

import subprocess
import sys

import keras
import tensorflow as tf

from resnet_perf.errors import UserError
from resnet_perf.machine.runtime import environment, keras_defaults, unsupported_reason
from resnet_perf.training.strategies import setup_cpu_replicas

import pytest


def test_keras_defaults_are_restored_even_after_an_error(tiny_config):
    config = tiny_config.replace(precision="mixed_fp16", layout="nchw")
    with pytest.raises(RuntimeError):
        with keras_defaults(config):
            assert keras.config.dtype_policy().name == "mixed_float16"
            assert keras.config.image_data_format() == "channels_first"
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == "float32"
    assert keras.config.image_data_format() == "channels_last"


def test_environment_records_what_produced_a_result():
    env = environment()
    machine = env["machine"]
    assert machine["software"]["tensorflow"] == tf.__version__ and machine["software"]["keras"] == keras.__version__
    assert machine["hardware"]["cores"] >= 1 and machine["hardware"]["cpu_model"]
    assert machine["id"].split("-")[1] == f"{machine['hardware']['cores']}c"
    assert env["devices"] and {"intra_op_threads", "git_commit", "xla_auto_jit"} <= set(env)


def test_two_replica_mirrored_strategy_on_cpu():
    code = (
        "import tensorflow as tf\n"
        "from resnet_perf.training.strategies import make_strategy\n"
        "s = make_strategy(2)\n"
        "v = s.run(lambda: tf.distribute.get_replica_context().replica_id_in_sync_group + 1)\n"
        "print(s.num_replicas_in_sync, int(s.reduce('SUM', v, axis=None)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2", "3"]


def test_replicas_cannot_change_after_tensorflow_started():
    tf.constant(1.0)  # TensorFlow is initialised in this process by now
    with pytest.raises(UserError, match="already initialised"):
        setup_cpu_replicas(len(tf.config.list_logical_devices("CPU")) + 1)


def test_out_of_memory_and_missing_kernels_are_unsupported_not_bugs():
    assert unsupported_reason(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")) \
        .startswith("out of memory: OOM when allocating")
    assert unsupported_reason(tf.errors.UnimplementedError(None, None, "no NCHW")).startswith("not supported")
    onednn = tf.errors.AbortedError(None, None, "Graph execution error:\n\nDetected at node resnet18/stage3_block1_conv1/"
                                                "convolution defined at (most recent call last):\n<stack traces "
                                                "unavailable>\nOperation received an exception:Status: 1, message: "
                                                "could not create a primitive, in file mkl_conv_ops.cc:1112")
    assert unsupported_reason(onednn) == (  # the line that says what, and where: not "Graph execution error:"
        "out of memory (oneDNN could not allocate a primitive): Operation received an exception:Status: 1, message: "
        "could not create a primitive, in file mkl_conv_ops.cc:1112 (at resnet18/stage3_block1_conv1/convolution)")
    assert unsupported_reason(tf.errors.AbortedError(None, None, "Status: 3, message: unimplemented")) is None
    assert unsupported_reason(KeyError("bug")) is None


def test_a_lost_worker_is_one_line_and_other_errors_are_not_taken_for_it():
    from resnet_perf.training.strategies import lost_worker_reason

    error = tf.errors.UnavailableError(None, None, "Socket closed\nAdditional GRPC error information: ...")
    assert lost_worker_reason(error) == "lost contact with another worker (UnavailableError: Socket closed)"
    assert lost_worker_reason(ValueError("no")) is None
