"""RunConfig validation and run ids."""
from __future__ import annotations

import subprocess
import sys

import pytest

from resnet_perf.config import RunConfig, expand_matrix


def test_run_id_names_every_switch():
    config = RunConfig(depth=50, precision="mixed_bf16", xla=True, layout="nhwc", batch_size=32, image_size=224)
    assert config.run_id == "resnet50-mixed_bf16-xla-nhwc-b32-224"
    assert RunConfig(depth=18, channels=1, num_classes=10, image_size=32, batch_size=2).run_id == \
        "resnet18-fp32-noxla-nhwc-b2-32-c1-k10"


def test_layout_gives_data_format_and_batch_shape():
    config = RunConfig(layout="nchw", batch_size=4, image_size=64, channels=1)
    assert config.data_format == "channels_first"
    assert config.batch_shape == (4, 1, 64, 64)
    assert config.input_shape == (64, 64, 1)
    assert config.replace(layout="nhwc").batch_shape == (4, 64, 64, 1)


def test_config_is_frozen_and_flat():
    config = RunConfig()
    with pytest.raises(AttributeError):
        config.depth = 18
    row = config.as_dict()
    assert row["run_id"] == config.run_id and row["depth"] == 50


@pytest.mark.parametrize("changes, message", [
    (dict(depth=20), "unknown ResNet depth 20"),
    (dict(precision="float16"), "unknown precision"),
    (dict(layout="nwhc"), "unknown layout"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(image_size=31), "image_size must be an integer >= 32"),
    (dict(steps=0), "steps"),
    (dict(warmup=-1), "warmup"),
    (dict(xla="yes"), "xla must be True or False"),
    (dict(batch_size=True), "batch_size"),
])
def test_invalid_fields_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**changes)


def test_config_does_not_import_tensorflow():
    code = "import sys; from resnet_perf.config import RunConfig; RunConfig(); print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_matrix_is_every_combination_with_keras_twins():
    matrix = expand_matrix(depths=[18, 50], precisions=["fp32", "mixed_bf16"], xla=[False, True],
                           layouts=["nhwc"], batch_sizes=[2], image_sizes=[32], warmup=1, steps=2,
                           reference="keras")
    ours = [config for config in matrix if config.model == "resnet_perf"]
    twins = [config for config in matrix if config.model == "keras"]
    assert len(ours) == 8 and len(twins) == 4  # keras.applications has no ResNet-18
    assert twins[0].run_id == "keras-resnet50-fp32-noxla-nhwc-b2-32"
    assert len({config.run_id for config in matrix}) == len(matrix)


def test_matrix_rejects_bad_values_and_unknown_reference():
    with pytest.raises(ValueError, match="unknown ResNet depth 19"):
        expand_matrix(depths=[19], precisions=["fp32"], xla=[False], layouts=["nhwc"], batch_sizes=[2],
                      image_sizes=[32], warmup=1, steps=2)
    with pytest.raises(ValueError, match="unknown reference model"):
        expand_matrix(depths=[50], precisions=["fp32"], xla=[False], layouts=["nhwc"], batch_sizes=[2],
                      image_sizes=[32], warmup=1, steps=2, reference="torch")
    with pytest.raises(ValueError, match="has no ResNet-18"):
        RunConfig(depth=18, model="keras")
