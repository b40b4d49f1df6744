"""One training batch norm, forward and backward, at ResNet-50's shapes (224x224, batch 32), bfloat16 activations
with float32 scale, shift and statistics, 2 threads: TensorFlow's fused kernel as our ``FusedBatchNorm`` layer
runs it (``tf``), or PyTorch's ``BatchNorm2d`` on a channels_last bfloat16 input (``torch``), each followed by a
ReLU where the network has one (``relu``), medians of 10 calls after 3.

    python results/pytorch-reference/batch_norm_layers.py tf                      # the project's venv
    /path/to/torch-venv/bin/python results/pytorch-reference/batch_norm_layers.py torch
"""
import statistics
import sys
import time

# (batch, side, channels, followed by a ReLU)
SHAPES = [(32, 112, 64, True), (32, 56, 64, True), (32, 56, 256, False), (32, 28, 512, False), (32, 14, 1024, False),
          (32, 7, 2048, False)]


def median_ms(call) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(10):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def tensorflow_layer(batch, side, channels, relu):
    import tensorflow as tf

    x = tf.cast(tf.random.normal([batch, side, side, channels]), tf.bfloat16)
    dy = tf.cast(tf.random.normal([batch, side, side, channels]), tf.bfloat16)
    gamma, beta = tf.Variable(tf.ones([channels])), tf.Variable(tf.zeros([channels]))

    @tf.function
    def step(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=1.001e-5, is_training=True)
            y = tf.nn.relu(y) if relu else y
        return tape.gradient(y, [x, gamma, beta], output_gradients=dy)

    return lambda: [g.numpy() for g in step(x, dy)]


def torch_layer(batch, side, channels, relu):
    import torch

    x = torch.randn(batch, channels, side, side).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    dy = torch.randn_like(x)
    layer = torch.nn.BatchNorm2d(channels, eps=1.001e-5).train()

    def call():
        inputs = x.detach().requires_grad_()
        y = layer(inputs)
        y = torch.relu_(y) if relu else y
        y.backward(dy)
        layer.zero_grad(set_to_none=True)

    return call


def main():
    framework = sys.argv[1]
    if framework == "tf":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(2)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        build = tensorflow_layer
    else:
        import torch

        torch.set_num_threads(2)
        build = torch_layer
    print(f"| shape (NHWC) | ReLU | {framework} ms (forward + backward) |\n|---|---|---|")
    for batch, side, channels, relu in SHAPES:
        ms = median_ms(build(batch, side, channels, relu))
        print(f"| {batch}x{side}x{side}x{channels} | {'yes' if relu else 'no'} | {ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
