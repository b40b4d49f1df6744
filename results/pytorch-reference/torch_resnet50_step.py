"""The framework our users would otherwise pick, on the step our issue 28 measures: torchvision's ResNet-50
(v1.5, as ours) training on 224x224 images, batch 32, SGD with momentum, channels_last, 2 intra-op threads,
float32 and bfloat16 autocast, the two alternating round by round in one process.

    /path/to/torch-venv/bin/python results/pytorch-reference/torch_resnet50_step.py [ROUNDS] [STEPS] [WARMUP]

Prints each round's median step per precision, then the medians over the rounds and img/s. Random images and
labels (the step's speed does not depend on their values); WARMUP (default 3) steps per precision first. Its
float32 step takes about 20 steps to settle on the Zen 5 VM (4.0-5.7 s in the first rounds, 2.5-3.1 s from the
sixth round of 3 steps on: results/pytorch-reference/2026-12-08-zen5-torch-14-rounds.txt), so a float32 figure
needs WARMUP 20 or the later rounds.
"""
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import torchvision

torch.set_num_threads(2)
torch.set_num_interop_threads(1)
BATCH, SIZE = 32, 224


def make_step(bfloat16: bool):
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=1000).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(BATCH, 3, SIZE, SIZE).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (BATCH,))
    loss_function = torch.nn.CrossEntropyLoss()

    def step() -> float:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bfloat16 else nullcontext():
            loss = loss_function(model(images), labels)
        loss.backward()
        optimizer.step()
        loss.item()  # the step has finished
        return time.perf_counter() - started

    return step


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads, "
          f"oneDNN bf16 {torch.backends.mkldnn.is_available()}, {warmup} warm-up steps, "
          f"{rounds} rounds of {steps} steps", flush=True)
    precisions = {"fp32": make_step(False), "bf16 autocast": make_step(True)}
    for step in precisions.values():
        for _ in range(warmup):
            step()
    medians = {name: [] for name in precisions}
    for number in range(1, rounds + 1):
        for name, step in precisions.items():
            medians[name].append(statistics.median(step() for _ in range(steps)))
        print(f"round {number}: " + ", ".join(f"{name} {times[-1] * 1e3:.0f} ms" for name, times in medians.items()),
              flush=True)
    for name, times in medians.items():
        median = statistics.median(times)
        print(f"{name}: median step {median * 1e3:.0f} ms ({min(times) * 1e3:.0f}-{max(times) * 1e3:.0f} over the "
              f"rounds), {BATCH / median:.1f} img/s")


if __name__ == "__main__":
    main()
