"""The native residual tail: its kernels give TensorFlow's bits, the layer's gradients reach both consumers, and
without the kernels the layer runs TensorFlow's ops."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from resnet_perf.kernels import build
from resnet_perf.models import residual
from resnet_perf.models.residual import ResidualReLU, residual_relu
from resnet_perf.models.resnet import build_resnet
from resnet_perf.spawn import package_env

DTYPES = [tf.float32, tf.bfloat16]
SPECIAL = [float("nan"), -0.0, 0.0, float("inf"), float("-inf"), 1.0, -1.0, 3.0e38, -3.0e38, 1e-40, -1e-40]
"""Values whose sums and ReLUs test the edges: NaN, signed zeros, infinities, overflow, denormals."""


@pytest.fixture(scope="module")
def kernels():
    loaded = build.native_kernels()
    if loaded is None:
        if os.environ.get("CI") or shutil.which("g++"):
            pytest.fail(f"the native kernels should build here: {build.load_kernels().status}")
        pytest.skip(f"no native kernels on this machine: {build.load_kernels().status}")
    return loaded


def _bits(tensor: tf.Tensor) -> np.ndarray:
    return tf.bitcast(tensor, tf.int16 if tensor.dtype == tf.bfloat16 else tf.int32).numpy()


def _operands(dtype: tf.DType, count: int) -> list[tf.Tensor]:
    """``count`` tensors of shape (2, 5, 5, 11): random values, each paired with each special value once."""
    rng = np.random.default_rng(7)
    values = [rng.normal(0.0, 2.0, (2, 5, 5, 11)).astype("float32") for _ in range(count)]
    values[0][0, 0, 0, :] = SPECIAL
    values[1][0, 0, 1:, 0] = SPECIAL[:4]
    values[1][1, :, 0, 0] = SPECIAL[4:9]
    return [tf.cast(tf.constant(value), dtype) for value in values]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: dtype.name)
@pytest.mark.parametrize("in_graph", [False, True], ids=["eager", "graph"])
def test_the_kernels_give_tensorflows_bits(kernels, dtype, in_graph):
    residual_values, shortcut, first, second = _operands(dtype, 4)
    run = tf.function if in_graph else (lambda fn: fn)
    output = run(kernels.residual_relu)(residual_values, shortcut)
    expected = tf.nn.relu(residual_values + shortcut)
    np.testing.assert_array_equal(_bits(output), _bits(expected))
    both = run(lambda a, b, y: kernels.residual_relu_grad([a, b], y))(first, second, expected)
    np.testing.assert_array_equal(_bits(both), _bits(tf.raw_ops.ReluGrad(gradients=tf.add_n([first, second]),
                                                                          features=expected)))
    one = run(lambda a, y: kernels.residual_relu_grad([a], y))(first, expected)
    np.testing.assert_array_equal(_bits(one), _bits(tf.raw_ops.ReluGrad(gradients=first, features=expected)))


def test_the_kernels_refuse_mismatched_shapes(kernels):
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ"):
        kernels.residual_relu(tf.zeros([2, 3]), tf.zeros([3, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most two"):
        kernels.residual_relu_grad([tf.zeros([2])] * 3, tf.zeros([2]))


def _gradients(tail, dtype: tf.DType) -> list[np.ndarray]:
    """The gradients of a loss that uses the tail's output twice (as a next block does: one path transformed,
    one as it is) with respect to the tail's two inputs, in a graph."""
    residual_values, shortcut, weights = _operands(dtype, 3)

    @tf.function
    def step(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            main, side = tail(a, b)
            loss = tf.reduce_sum(tf.cast(tf.sin(main) * weights, tf.float32)) + tf.reduce_sum(tf.cast(side, tf.float32))
        return tape.gradient(loss, [a, b])

    finite = [tf.where(tf.math.is_finite(value), value, tf.zeros_like(value)) for value in (residual_values, shortcut)]
    return [_bits(gradient) for gradient in step(*finite)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: dtype.name)
def test_each_consumers_gradient_reaches_the_layer_and_sums_as_tensorflow_sums(kernels, dtype):
    def tensorflows(a, b):
        output = tf.nn.relu(a + b)
        return output, output

    for ours, theirs in zip(_gradients(lambda a, b: residual_relu(a, b, copies=2), dtype),
                            _gradients(tensorflows, dtype)):
        np.testing.assert_array_equal(ours, theirs)


def _op_types(layer: ResidualReLU, a: tf.Tensor, b: tf.Tensor) -> set[str]:
    return {op.type for op in tf.function(layer).get_concrete_function(a, b).graph.get_operations()}


def test_without_the_kernels_the_layer_runs_tensorflows_ops(kernels, monkeypatch):
    a, b = _operands(tf.float32, 2)
    assert "ResidualRelu" in _op_types(ResidualReLU(copies=2), a, b)
    assert "ResidualRelu" not in _op_types(ResidualReLU(copies=2, dtype="mixed_float16"), a, b)  # no float16 kernel
    with monkeypatch.context() as patch:  # CPU kernels: on a GPU its tensors would go to the host and back
        patch.setattr(residual, "gpus", lambda: ["/physical_device:GPU:0"])
        assert "ResidualRelu" not in _op_types(ResidualReLU(copies=2), a, b)
    native = _gradients(lambda a, b: residual_relu(a, b, copies=2), tf.bfloat16)
    monkeypatch.setattr(residual, "native_kernels", lambda: None)
    with pytest.warns(UserWarning, match="native kernels .*: the block tails run TensorFlow's ops"):
        layer = ResidualReLU(copies=2)
    types = _op_types(layer, a, b)
    assert "ResidualRelu" not in types and {"AddV2", "Relu"} <= types
    outputs = layer(a, b)
    assert len(outputs) == 2
    np.testing.assert_array_equal(_bits(outputs[0]), _bits(tf.nn.relu(a + b)))
    fallback = _gradients(lambda a, b: residual_relu(a, b, copies=2), tf.bfloat16)
    for ours, theirs in zip(native, fallback):
        np.testing.assert_array_equal(ours, theirs)


def test_a_fused_model_hands_each_block_output_to_its_two_consumers():
    model = build_resnet(18, num_classes=10, input_shape=(32, 32, 1), batch_norm="fused")
    tails = [layer for layer in model.layers if isinstance(layer, ResidualReLU)]
    assert [layer.name for layer in tails] == [f"stage{stage}_block{block}_out" for stage in range(1, 5)
                                               for block in (1, 2)]
    assert [layer.copies for layer in tails] == [2] * 7 + [1]  # the last feeds the pool alone
    plain = build_resnet(18, num_classes=10, input_shape=(32, 32, 1))
    assert not any(isinstance(layer, ResidualReLU) for layer in plain.layers)
    with pytest.raises(ValueError, match="one or two consumers"):
        ResidualReLU(copies=3)


def test_the_build_says_why_there_are_no_kernels(tmp_path):
    missing = build.build_kernels("no-such-compiler-here", tmp_path)
    assert missing.library is None and missing.status.startswith("unavailable: no C++ compiler 'no-such-compiler-here'")
    failing = build.build_kernels("false", tmp_path)  # a "compiler" that exits 1 and says nothing
    assert failing.library is None and failing.status == "unavailable: false failed: no output"
    assert not list(tmp_path.iterdir())  # no half-built library left behind
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    if shutil.which("g++"):
        unwritable = build.build_kernels("g++", blocked / "cache")  # a cache "directory" under a file
        assert unwritable.library is None and unwritable.status.startswith("unavailable:")


KERNEL_LOOP = re.compile(r"for \(int64_t i = begin; i < end; \+\+i\)")
"""How each loop over a tensor's values begins in ``residual_relu.cc``."""


@pytest.mark.parametrize("target", ["x86-64-v3", "x86-64-v4"], ids=["avx2", "avx512"])
def test_every_loop_over_the_values_vectorizes(target, tmp_path):
    """With the build's flags, for an AVX2 CPU (Zen 3) and an AVX-512 one, GCC's report names every loop vectorized:
    left value by value on AVX2, the gradient ran 5-10x slower than TensorFlow's ops."""
    if shutil.which("g++") is None and not os.environ.get("CI"):
        pytest.skip("no g++ here")
    loops = {number for number, line in enumerate(build.SOURCE.read_text().splitlines(), 1) if KERNEL_LOOP.search(line)}
    flags = [flag for flag in build.OPTIMIZE if flag not in ("-march=native", "-shared")]
    done = subprocess.run(["g++", *flags, f"-march={target}", "-fopt-info-vec-optimized", "-c", str(build.SOURCE),
                           "-o", str(tmp_path / "kernels.o"), *tf.sysconfig.get_compile_flags()],
                          capture_output=True, text=True, timeout=build.BUILD_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    report = re.findall(rf"{re.escape(build.SOURCE.name)}:(\d+):\d+: optimized: loop vectorized", done.stderr)
    vectorized = {int(line) for line in report}
    assert len(loops) == 3 and loops <= vectorized, f"left scalar: lines {sorted(loops - vectorized)}"


def test_a_library_is_named_by_all_it_is_built_from():
    base = dict(source_text="source", command=["g++", "-O3"], versions={"tensorflow": "2.21.0"}, cpu="zen5 avx512f")
    name = build.library_name(**base)
    assert name.startswith("residual_relu-") and name.endswith(".so")
    assert name == build.library_name(**base)
    for change in (dict(source_text="source 2"), dict(command=["g++", "-O2"]), dict(versions={"tensorflow": "2.22"}),
                   dict(cpu="zen4 avx512f")):
        assert build.library_name(**{**base, **change}) != name


def test_the_cache_directory():
    assert build.cache_dir({"RESNET_PERF_KERNEL_CACHE": "/somewhere"}) == Path("/somewhere")
    assert build.cache_dir({"XDG_CACHE_HOME": "/cache"}) == Path("/cache/resnet_perf/kernels")
    assert build.cache_dir({}) == Path.home() / ".cache" / "resnet_perf" / "kernels"


def test_loading_puts_the_ops_on_the_bfloat16_rewrites_infer_list(kernels):
    listed = os.environ[build.AMP_INFER_LIST].split(",")
    assert all(listed.count(op) == 1 for op in build.OPS)


AMP_STEP = textwrap.dedent("""
    import tensorflow as tf
    tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    from resnet_perf.models.residual import residual_relu
    weights = tf.Variable(tf.random.normal([3, 3, 8, 8]))

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            main, side = residual_relu(tf.nn.conv2d(images, weights, 1, "SAME"),
                                       tf.nn.conv2d(images, 2.0 * weights, 1, "SAME"), copies=2)
            loss = tf.reduce_sum(tf.nn.conv2d(main, weights, 1, "SAME")) + tf.reduce_sum(side)
        return tape.gradient(loss, weights)

    step(tf.random.normal([2, 8, 8, 8]))
""")


@pytest.mark.slow
def test_the_bfloat16_rewrite_runs_the_kernels_in_bfloat16(kernels, tmp_path):
    """Under amp_bf16 (a setting of the whole process: its own process here) grappler's rewrite, which runs an op
    it does not know in float32 with casts around it, runs the kernels in bfloat16 between the convolutions."""
    environment = {**package_env(), "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_LOG_PATH": str(tmp_path),
                   "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-c", AMP_STEP], env=environment, check=True, timeout=300, capture_output=True)
    rewritten = next(tmp_path.glob("graphdef_AutoMixedPrecision_*.pb.txt")).read_text()
    dtypes = {op: re.findall(rf'op: "{op}"\n(?:.*\n)*?\s*key: "T"\n\s*value {{\n\s*type: (\w+)', rewritten)
              for op in build.OPS}
    assert dtypes == {"ResidualRelu": ["DT_BFLOAT16"], "ResidualReluGrad": ["DT_BFLOAT16"]}
