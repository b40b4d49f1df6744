"""Small Fashion-MNIST-shaped IDX files for the tests: learnable, or damaged on purpose."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from resnet_perf.training.fashion_mnist import IMAGE_MAGIC, LABEL_MAGIC, SPLITS


def idx_bytes(array: np.ndarray, magic: int, count: int | None = None) -> bytes:
    """IDX encoding of a uint8 array; ``count`` overrides the header's count (to damage it)."""
    dims = array.shape
    header = struct.pack(">I", magic) + struct.pack(">I", dims[0] if count is None else count)
    header += b"".join(struct.pack(">I", d) for d in dims[1:])
    return header + array.astype(np.uint8).tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload))
    return path


def learnable_split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class (0..9) is where a bright 7x7 block sits: a network learns it in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 5)
        image[2 + 12 * row: 9 + 12 * row, 1 + 5 * col: 8 + 5 * col] = 255
    return images, labels


def write_dataset(folder: Path, train: int = 256, test: int = 128) -> Path:
    """All four files of a small learnable dataset in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = learnable_split(count, seed)
        write_gz(folder / SPLITS[split].images_file, idx_bytes(images, IMAGE_MAGIC))
        write_gz(folder / SPLITS[split].labels_file, idx_bytes(labels, LABEL_MAGIC))
    return folder
