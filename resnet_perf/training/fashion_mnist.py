"""Fashion-MNIST from its IDX files, checked, as tf.data pipelines (and synthetic-free: real data).

Where the files are looked for, in order (the first folder holding all four files wins):

1. ``data_dir`` given by the caller (``--data-dir``), then ``$RESNET_PERF_DATA``: a folder the user
   named must hold the files, or it is an error (no silent fallback to other data);
2. Debian's ``dataset-fashion-mnist`` package: ``/usr/share/datasets/fashion-mnist/``;
3. the Keras cache: ``~/.keras/datasets/fashion-mnist/``;
4. only then Keras's downloader (``keras.datasets.fashion_mnist``), which fills the Keras cache.

Every file is checked: gzip integrity, IDX magic number, the counts in the header against the
payload and against each other, 28x28 images, labels in 0..9.  Files with the published sizes
(60,000 training and 10,000 test images) must also match the SHA-256 of the published data, so a
damaged copy of the real data cannot pass; smaller files (tests, subsets) are read as given and
reported as not verified.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet_perf.errors import UserError

ENV_VAR = "RESNET_PERF_DATA"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE_DIR = Path("~/.keras/datasets/fashion-mnist")
INSTALL_HINT = "install it with 'apt-get install dataset-fashion-mnist' or point --data-dir at the IDX files"

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
IMAGE_SIDE = 28
NUM_CLASSES = 10
AUGMENTATIONS = ("none", "translate", "flip-translate")
"""translate: each training image shifted by up to ``TRANSLATE_PIXELS`` in each direction;
flip-translate: also flipped left-right with probability 1/2 (``augment_batch``)."""
TRANSLATE_PIXELS = 2

# SHA-256 of the decompressed IDX payloads of Zalando's Fashion-MNIST, as shipped by Debian's
# dataset-fashion-mnist 0.0~git20200523.55506a9-1.  The payload is hashed, not the .gz: Debian's
# gzip wrappers differ from Zalando's by their header bytes while the data inside is the same.
PUBLISHED_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


class DataError(UserError):
    """Missing or damaged data: the message names the file, the fault and how to get the data."""


@dataclass(frozen=True)
class Split:
    name: str
    images_file: str
    labels_file: str
    published_count: int


SPLITS = {
    "train": Split("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": Split("test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
FILES = tuple(name for split in SPLITS.values() for name in (split.images_file, split.labels_file))


@dataclass(frozen=True)
class Images:
    """One split: uint8 images (N, 28, 28), uint8 labels (N,), and whether it is the published data."""

    images: np.ndarray
    labels: np.ndarray
    verified: bool

    def __len__(self) -> int:
        return len(self.labels)


def _has_all_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def _missing(folder: Path) -> str:
    return ", ".join(name for name in FILES if not (folder / name).is_file())


def locate(data_dir: str | Path | None = None, download: bool = True) -> Path:
    """The folder holding the four Fashion-MNIST files (see the module docstring for the order)."""
    for named, source in ((data_dir, "--data-dir"), (os.environ.get(ENV_VAR), f"${ENV_VAR}")):
        if named:
            folder = Path(named).expanduser()
            if not _has_all_files(folder):
                raise DataError(f"{source} {folder} does not hold Fashion-MNIST (missing: {_missing(folder)}); "
                                f"{INSTALL_HINT}")
            return folder
    found = [folder.expanduser() for folder in (DEBIAN_DIR, KERAS_CACHE_DIR)]
    for folder in found:
        if _has_all_files(folder):
            return folder
    if download:
        try:
            import keras

            keras.datasets.fashion_mnist.load_data()
        except Exception as error:  # no network here; any failure ends in the same advice
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise DataError(f"Fashion-MNIST not found in {', '.join(map(str, found))} and the Keras download "
                            f"failed ({reason}); {INSTALL_HINT}") from None
        if _has_all_files(found[1]):
            return found[1]
    raise DataError(f"Fashion-MNIST not found in {', '.join(map(str, found))}; {INSTALL_HINT}")


def _read_gzip(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {INSTALL_HINT}") from None
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a valid gzip file ({error or 'truncated'}); {INSTALL_HINT}") from None


def read_idx(path: Path, kind: str) -> tuple[np.ndarray, bytes]:
    """An IDX file's array (``kind`` ``images`` or ``labels``) and its raw payload, checked."""
    raw = _read_gzip(path)
    magic, header_len = (IMAGE_MAGIC, 16) if kind == "images" else (LABEL_MAGIC, 8)
    if len(raw) < header_len:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes); {INSTALL_HINT}")
    header = np.frombuffer(raw[:header_len], dtype=">u4")
    if header[0] != magic:
        raise DataError(f"{path}: IDX magic number is {int(header[0])}, expected {magic} for {kind}; {INSTALL_HINT}")
    count = int(header[1])
    shape = (count,) if kind == "labels" else (count, int(header[2]), int(header[3]))
    if kind == "images" and shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{path}: images are {shape[1]}x{shape[2]}, expected {IMAGE_SIDE}x{IMAGE_SIDE}; {INSTALL_HINT}")
    expected = int(np.prod(shape))
    if len(raw) - header_len != expected:
        raise DataError(f"{path}: header says {count} {kind} ({expected} bytes) but the file holds "
                        f"{len(raw) - header_len} bytes; {INSTALL_HINT}")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)
    if kind == "labels" and count and int(array.max()) >= NUM_CLASSES:
        raise DataError(f"{path}: label {int(array.max())} is outside 0..{NUM_CLASSES - 1}; {INSTALL_HINT}")
    return array, raw


def load_split(folder: Path, split: str, limit: int | None = None) -> Images:
    """Read and check one split (``train`` or ``test``); ``limit`` keeps the first N images."""
    spec = SPLITS[split]
    images, image_raw = read_idx(folder / spec.images_file, "images")
    labels, label_raw = read_idx(folder / spec.labels_file, "labels")
    if len(images) != len(labels):
        raise DataError(f"{folder / spec.images_file} holds {len(images)} images but "
                        f"{folder / spec.labels_file} holds {len(labels)} labels; {INSTALL_HINT}")
    verified = len(labels) == spec.published_count
    if verified:
        for name, raw in ((spec.images_file, image_raw), (spec.labels_file, label_raw)):
            if hashlib.sha256(raw).hexdigest() != PUBLISHED_SHA256[name]:
                raise DataError(f"{folder / name}: has the published size but not the published SHA-256 "
                                f"(damaged or modified); {INSTALL_HINT}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Images(images, labels, verified)


def augment_batch(images, augment: str, pixels: int = TRANSLATE_PIXELS):
    """Each image of an NHWC batch shifted by up to ``pixels`` in each direction, zeros filling in
    (Fashion-MNIST's background), and with ``augment="flip-translate"`` first flipped left-right with
    probability 1/2; ``augment="none"`` returns the batch as it is."""
    import tensorflow as tf

    if augment == "none":
        return images
    if augment == "flip-translate":
        images = tf.image.random_flip_left_right(images)  # each image of a 4-D batch on its own
    count = tf.shape(images)[0]
    shifts = tf.cast(tf.random.uniform((count, 2), -pixels, pixels + 1, dtype=tf.int32), tf.float32)
    ones, zeros = tf.ones((count, 1)), tf.zeros((count, 1))
    # Projective transforms map output to input points: [1, 0, dx, 0, 1, dy, 0, 0] shifts by (-dx, -dy).
    transforms = tf.concat([ones, zeros, shifts[:, :1], zeros, ones, shifts[:, 1:], zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms,
                                                 output_shape=tf.shape(images)[1:3], fill_value=0.0,
                                                 interpolation="NEAREST", fill_mode="CONSTANT")


def shift_images(images, rows: int, columns: int, height_axis: int = 1, width_axis: int = 2):
    """A batch moved down by ``rows`` and right by ``columns`` pixels (negative: up, left), zeros
    filling in; ``height_axis``/``width_axis`` say where the image's axes are (NHWC: 1, 2; NCHW: 2, 3)."""
    import tensorflow as tf

    paddings, begin = [[0, 0]] * 4, [0] * 4
    for axis, amount in ((height_axis, rows), (width_axis, columns)):
        paddings[axis] = [max(amount, 0), max(-amount, 0)]
        begin[axis] = max(-amount, 0)
    return tf.slice(tf.pad(images, paddings), begin, tf.shape(images))


def make_dataset(split: Images, *, batch_size: int, image_size: int = IMAGE_SIDE, layout: str = "nhwc",
                 training: bool, seed: int = 0, augment: str = "none"):
    """A ``tf.data`` pipeline of (images, labels) batches.

    Images become float32 in [0, 1] with one channel, resized (bilinear) when ``image_size`` is not
    28, in the layout asked for.  Training shuffles with ``seed`` anew each epoch and drops the last
    partial batch, so every step has the same shape and nothing retraces; evaluation keeps it.
    ``augment`` (training only; ``AUGMENTATIONS``) shifts, or flips and shifts, each training image
    anew every epoch (``augment_batch``).
    Both repeat without end: a run reads each through one iterator, a known number of batches at a
    time (an epoch's worth, or the test set's), instead of making and destroying an iterator per pass.
    """
    import tensorflow as tf

    def preprocess(images, labels):
        images = tf.cast(images, tf.float32)[..., tf.newaxis] / 255.0
        if image_size != IMAGE_SIDE:
            images = tf.image.resize(images, (image_size, image_size))
        if training:
            images = augment_batch(images, augment)
        if layout == "nchw":
            images = tf.transpose(images, (0, 3, 1, 2))
        return images, tf.cast(labels, tf.int32)

    dataset = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
    if training:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=training)  # batch first: preprocess whole batches
    dataset = dataset.repeat()  # after batching, so that no batch spans two passes
    return dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
