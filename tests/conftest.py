"""Shared fixtures for the fast tests: tiny shapes (32x32 images, batch 2)."""
from __future__ import annotations

import pytest

import resnet_perf
from resnet_perf.config import RunConfig

resnet_perf.enable_onednn()  # before the tests import TensorFlow: the process their configs describe

TINY = dict(depth=18, batch_size=2, image_size=32, num_classes=10, warmup=1, steps=2)


@pytest.fixture
def tiny_config() -> RunConfig:
    """The smallest configuration that still runs the real ResNet-18."""
    return RunConfig(**TINY)
