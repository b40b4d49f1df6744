"""What batch norm and ReLU cost in a whole ResNet-50 bf16 training step (224x224, batch 32, SGD with momentum,
2 threads), by taking them out: the step as built, without its batch norms (identity), and without its batch
norms and ReLUs, alternating round by round in one process. A model without them is not one anyone trains:
the differences say what the layers cost in the step, with the same convolutions around them.

    python results/pytorch-reference/without_parts.py tf [ROUNDS]      # ours: mixed_bf16, fused BN (the project's venv)
    /path/to/torch-venv/bin/python results/pytorch-reference/without_parts.py torch [ROUNDS]   # bf16 autocast
"""
import statistics
import sys
import time

VARIANTS = ("as built", "no batch norm", "no batch norm, no ReLU")
STEPS_PER_ROUND = 3


def tensorflow_steps():
    import keras
    import tensorflow as tf

    from resnet_perf.models import resnet

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    images = tf.random.normal([32, 224, 224, 3])
    labels = tf.random.uniform([32], 0, 1000, dtype=tf.int32)
    built_bn, built_relu = resnet._Layers.bn, resnet._Layers.relu

    def make(variant):
        identity = lambda self, name, *args: keras.layers.Identity(dtype=self.policy, name=name)  # noqa: E731
        resnet._Layers.bn = identity if variant != "as built" else built_bn
        resnet._Layers.relu = identity if variant == "no batch norm, no ReLU" else built_relu
        model = resnet.build_resnet(50, precision="mixed_bf16", batch_norm="fused")
        resnet._Layers.bn, resnet._Layers.relu = built_bn, built_relu
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = loss_function(labels, model(images, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        return lambda: step().numpy()

    return {variant: make(variant) for variant in VARIANTS}


def torch_steps():
    import torch
    import torchvision

    torch.set_num_threads(2)
    torch.set_num_interop_threads(1)
    images = torch.randn(32, 3, 224, 224).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (32,))

    def make(variant):
        model = torchvision.models.resnet50(num_classes=1000)
        for module in list(model.modules()):
            for name, child in module.named_children():
                if isinstance(child, torch.nn.BatchNorm2d) and variant != "as built":
                    setattr(module, name, torch.nn.Identity())
                if isinstance(child, torch.nn.ReLU) and variant == "no batch norm, no ReLU":
                    setattr(module, name, torch.nn.Identity())
        model = model.to(memory_format=torch.channels_last).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            return loss.item()

        return step

    return {variant: make(variant) for variant in VARIANTS}


def main():
    framework = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    steps = tensorflow_steps() if framework == "tf" else torch_steps()
    for step in steps.values():
        for _ in range(4):
            step()
    medians = {variant: [] for variant in steps}
    for _ in range(rounds):
        for variant, step in steps.items():
            times = []
            for _ in range(STEPS_PER_ROUND):
                started = time.perf_counter()
                step()
                times.append(time.perf_counter() - started)
            medians[variant].append(statistics.median(times))
    built = statistics.median(medians["as built"])
    print(f"{framework}, {rounds} rounds of {STEPS_PER_ROUND} steps each, alternating")
    for variant, times in medians.items():
        median = statistics.median(times)
        print(f"{variant}: {median * 1e3:.0f} ms ({min(times) * 1e3:.0f}-{max(times) * 1e3:.0f}); "
              f"as built minus this: {(built - median) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
