"""What a benchmark runs on: the model for a config and a synthetic batch that lives on the device."""
from __future__ import annotations

import keras
import tensorflow as tf

from resnet_perf.config import RunConfig
from resnet_perf.machine.runtime import keras_defaults
from resnet_perf.models.resnet import build_resnet

KERAS_APPLICATIONS = {50: "ResNet50", 101: "ResNet101", 152: "ResNet152"}


def build_model(config: RunConfig) -> keras.Model:
    """The model ``config`` names: ours, or the ``keras.applications`` peer with logits out."""
    if config.model == "resnet_perf":
        return build_resnet(config.depth, num_classes=config.num_classes, input_shape=config.input_shape,
                            data_format=config.data_format, precision=config.precision,
                            batch_norm=config.batch_norm, filter_grad=config.filter_grad)
    with keras_defaults(config):  # keras.applications read the global policy and data format
        return getattr(keras.applications, KERAS_APPLICATIONS[config.depth])(
            weights=None, input_shape=config.batch_shape[1:], classes=config.num_classes,
            classifier_activation=None)


def synthetic_batch(config: RunConfig, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """Random images in [0, 1) and labels, created on the default device so no step copies input."""
    images = tf.random.stateless_uniform(config.batch_shape, seed=(seed, 0), dtype=tf.float32)
    labels = tf.random.stateless_uniform((config.batch_size,), seed=(seed, 1), maxval=config.num_classes,
                                         dtype=tf.int32)
    return images, labels
