"""Which oneDNN kernels PyTorch runs for torchvision's ResNet-50 training step in bfloat16 autocast (224x224,
batch 32, channels_last, 2 threads, SGD with momentum), and how long each kind takes: one step under
``torch.backends.mkldnn.verbose`` after 4 without it, its primitives summed by kind, implementation and
propagation (the verbose log's own times, ms).

    /path/to/torch-venv/bin/python results/pytorch-reference/torch_onednn_kernels.py \
        > results/pytorch-reference/<date>-<machine>-torch-onednn.txt

Prints oneDNN's version and ISA lines from the log, then the sums, each line starting with ``summary``.
"""
import collections
import os
import sys
import time

import torch
import torchvision

torch.set_num_threads(2)
torch.set_num_interop_threads(1)


def main():
    model = torchvision.models.resnet50(num_classes=1000).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(32, 3, 224, 224).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (32,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()

    for _ in range(4):
        step()
    # oneDNN writes its log to the process's stdout (file descriptor 1), not Python's: send that to a file
    sys.stdout.flush()
    log_path = f"/tmp/torch-onednn-{os.getpid()}.log"
    saved = os.dup(1)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                started = time.perf_counter()
                step()
                elapsed = time.perf_counter() - started
        finally:
            os.dup2(saved, 1)
    with open(log_path) as log:
        lines = log.read().splitlines()
    os.remove(log_path)
    totals, calls = collections.Counter(), collections.Counter()
    for line in lines:
        fields = line.split(",")
        if line.startswith("onednn_verbose") and "exec" in fields:
            at = fields.index("exec")
            key = (fields[at + 2], fields[at + 3], fields[at + 4])
            totals[key] += float(fields[-1])
            calls[key] += 1
    print("\n".join(line for line in lines if ",info," in line))
    print(f"summary: torch {torch.__version__}, the logged step {elapsed * 1e3:.0f} ms (with the log's cost)")
    for key, ms in totals.most_common():
        print(f"summary: {ms:8.1f} ms {calls[key]:4d} calls  {' '.join(key)}")
    print(f"summary: {sum(totals.values()):8.1f} ms in all primitives; convolutions "
          f"{sum(ms for key, ms in totals.items() if key[0] == 'convolution'):.1f} ms")


if __name__ == "__main__":
    main()
