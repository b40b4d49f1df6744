"""Fashion-MNIST reading, checking, locating and the tf.data pipelines."""
from __future__ import annotations

import numpy as np
import pytest

from resnet_perf.training import fashion_mnist
from resnet_perf.training.fashion_mnist import DataError, SPLITS, load_split, locate, make_dataset
from tests.fmnist_files import idx_bytes, learnable_split, write_dataset, write_gz

TRAIN = SPLITS["train"]


def test_good_files_load_as_unverified_subset(tmp_path):
    folder = write_dataset(tmp_path)
    split = load_split(folder, "train")
    assert split.images.shape == (256, 28, 28) and split.labels.shape == (256,)
    assert split.images.dtype == np.uint8 and not split.verified
    assert np.array_equal(split.labels, learnable_split(256, 0)[1])
    assert len(load_split(folder, "test", limit=10)) == 10


@pytest.mark.parametrize("damage, message", [
    ("truncate", "not a valid gzip file"),
    ("not_gzip", "not a valid gzip file"),
    ("magic", "IDX magic number is 2049, expected 2051"),
    ("count", "header says 300 images"),
    ("image_size", "images are 28x14"),
])
def test_damaged_image_file_names_itself(tmp_path, damage, message):
    folder = write_dataset(tmp_path)
    path = folder / TRAIN.images_file
    images, _ = learnable_split(256, 0)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "not_gzip":
        path.write_bytes(b"plain text, not gzip")
    elif damage == "magic":
        write_gz(path, idx_bytes(images, fashion_mnist.LABEL_MAGIC))
    elif damage == "count":
        write_gz(path, idx_bytes(images, fashion_mnist.IMAGE_MAGIC, count=300))
    elif damage == "image_size":
        write_gz(path, idx_bytes(images[:, :, :14], fashion_mnist.IMAGE_MAGIC))
    with pytest.raises(DataError, match=message) as caught:
        load_split(folder, "train")
    assert str(path) in str(caught.value) and "apt-get install dataset-fashion-mnist" in str(caught.value)


def test_labels_out_of_range_and_count_mismatch(tmp_path):
    folder = write_dataset(tmp_path)
    write_gz(folder / TRAIN.labels_file, idx_bytes(np.full(256, 12, np.uint8), fashion_mnist.LABEL_MAGIC))
    with pytest.raises(DataError, match="label 12 is outside 0..9"):
        load_split(folder, "train")
    write_gz(folder / TRAIN.labels_file, idx_bytes(np.zeros(255, np.uint8), fashion_mnist.LABEL_MAGIC))
    with pytest.raises(DataError, match="holds 256 images but .* holds 255 labels"):
        load_split(folder, "train")


def test_published_size_with_other_content_is_rejected(tmp_path):
    folder = write_dataset(tmp_path)
    test = SPLITS["test"]
    write_gz(folder / test.images_file, idx_bytes(np.zeros((10_000, 28, 28), np.uint8), fashion_mnist.IMAGE_MAGIC))
    write_gz(folder / test.labels_file, idx_bytes(np.zeros(10_000, np.uint8), fashion_mnist.LABEL_MAGIC))
    with pytest.raises(DataError, match="not the published SHA-256"):
        load_split(folder, "test")


@pytest.fixture
def search_dirs(tmp_path, monkeypatch):
    """Point the Debian and Keras-cache locations at empty temporary folders."""
    debian, cache = tmp_path / "debian", tmp_path / "keras"
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", debian)
    monkeypatch.setattr(fashion_mnist, "KERAS_CACHE_DIR", cache)
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    return debian, cache


def test_search_order(tmp_path, monkeypatch, search_dirs):
    debian, cache = search_dirs
    write_dataset(cache)
    assert locate(download=False) == cache
    write_dataset(debian)
    assert locate(download=False) == debian
    env_dir = write_dataset(tmp_path / "env")
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(env_dir))
    assert locate(download=False) == env_dir
    explicit = write_dataset(tmp_path / "explicit")
    assert locate(explicit, download=False) == explicit


def test_a_named_folder_without_the_files_is_an_error_not_a_fallback(tmp_path, monkeypatch, search_dirs):
    write_dataset(search_dirs[0])
    with pytest.raises(DataError, match=r"--data-dir .*empty does not hold Fashion-MNIST \(missing: train-images"):
        locate(tmp_path / "empty")
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"\$RESNET_PERF_DATA .*nowhere does not hold"):
        locate()


def test_nothing_anywhere_tries_the_download_then_says_how_to_get_the_data(monkeypatch, search_dirs):
    import keras

    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DataError, match="Keras download failed \\(network unreachable\\).*apt-get install"):
        locate()
    with pytest.raises(DataError, match="not found in .*apt-get install dataset-fashion-mnist"):
        locate(download=False)


@pytest.mark.skipif(not fashion_mnist.DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_real_files_are_verified():
    train = load_split(fashion_mnist.DEBIAN_DIR, "train")
    test = load_split(fashion_mnist.DEBIAN_DIR, "test")
    assert train.verified and test.verified
    assert train.images.shape == (60_000, 28, 28) and test.images.shape == (10_000, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10


def test_training_pipeline_shapes_scale_and_layout(tmp_path):
    split = load_split(write_dataset(tmp_path, train=100), "train")
    batches = list(make_dataset(split, batch_size=32, image_size=32, layout="nchw", training=True, seed=3).take(6))
    # 100 // 32 = 3 full batches a pass (the partial one is dropped), then the next, reshuffled pass.
    first_pass, second_pass = batches[:3], batches[3:]
    images, labels = batches[0]
    assert images.shape == (32, 1, 32, 32) and labels.dtype == "int32"
    assert all(len(b[1]) == 32 for b in batches)
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
    assert not all(np.array_equal(a[1].numpy(), b[1].numpy()) for a, b in zip(first_pass, second_pass))
    evaluation = list(make_dataset(split, batch_size=32, training=False).take(5))
    assert [len(b[1]) for b in evaluation] == [32, 32, 32, 4, 32] and evaluation[0][0].shape == (32, 28, 28, 1)
    assert np.array_equal(evaluation[0][1].numpy(), split.labels[:32])  # no shuffling for evaluation
    assert np.array_equal(evaluation[4][1].numpy(), split.labels[:32])  # the next pass starts over


def test_an_unreadable_file_says_so(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path, train=32, test=32)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fashion_mnist.gzip, "open", denied)  # root reads any file: simulate the denial
    with pytest.raises(DataError, match="cannot read .*train-images-idx3-ubyte.gz: permission denied$"):
        load_split(folder, "train")
