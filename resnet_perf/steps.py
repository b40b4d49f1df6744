"""The three steps a benchmark times, as ``tf.function``s compiled (or not) with XLA per config.

- ``forward``: inference, ``training=False``.
- ``fwd_bwd``: forward, loss and gradients, no update.  Backward time is reported as
  ``fwd_bwd - forward`` (derived, not measured on its own: TensorFlow cannot run a backward pass
  without its forward).
- ``train``: forward, loss, backward and an SGD-momentum update; loss scaling for ``mixed_fp16``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from resnet_perf.config import MODES, STEP_COST_IN_FORWARDS, RunConfig
from resnet_perf.runtime import global_auto_jit
from resnet_perf.workload import build_model, synthetic_batch

LEARNING_RATE = 0.01
MOMENTUM = 0.9


def _loss(model: keras.Model, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    logits = tf.cast(model(images, training=True), tf.float32)  # peer models may return bf16/fp16
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def make_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    """SGD with momentum, wrapped in dynamic loss scaling where float16 gradients could underflow."""
    optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    if config.precision == "mixed_fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _forward_fn(model: keras.Model, config: RunConfig) -> Callable:
    def forward(images, labels):
        del labels
        return model(images, training=False)
    return forward


def _fwd_bwd_fn(model: keras.Model, config: RunConfig) -> Callable:
    def fwd_bwd(images, labels):
        with tf.GradientTape() as tape:
            loss = _loss(model, images, labels)
        gradients = tape.gradient(loss, model.trainable_variables)
        # Returning a value that depends on every gradient keeps graph pruning from dropping any.
        return loss, tf.linalg.global_norm(gradients)
    return fwd_bwd


def _train_fn(model: keras.Model, config: RunConfig) -> Callable:
    optimizer = make_optimizer(config)
    optimizer.build(model.trainable_variables)  # create slots now, not inside the traced step
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def train(images, labels):
        with tf.GradientTape() as tape:
            loss = _loss(model, images, labels)
            objective = optimizer.scale_loss(loss) if scaled else loss
        gradients = tape.gradient(objective, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)  # unscales first when loss-scaled
        return loss
    return train


_STEP_FUNCTIONS = {"forward": _forward_fn, "fwd_bwd": _fwd_bwd_fn, "train": _train_fn}


def finish(outputs: Any) -> list[np.ndarray]:
    """Fetch every output to the host: the step is finished only when its results exist."""
    return [np.asarray(tensor) for tensor in tf.nest.flatten(outputs)]


class Step:
    """One benchmarkable step: calling it runs the step on its batch and waits for the result."""

    def __init__(self, config: RunConfig, mode: str, model: keras.Model | None = None) -> None:
        if mode not in _STEP_FUNCTIONS:
            raise ValueError(f"unknown step mode {mode!r}: choose one of {', '.join(MODES)}")
        self.config, self.mode = config, mode
        self.model = model if model is not None else build_model(config)
        self.function = tf.function(_STEP_FUNCTIONS[mode](self.model, config), jit_compile=config.xla)
        self.args = synthetic_batch(config)

    def __call__(self) -> list[np.ndarray]:
        return finish(self.function(*self.args))

    @property
    def tracing_count(self) -> int:
        """How often the function has been traced; it must not change while steps are timed."""
        return self.function.experimental_get_tracing_count()

    def xla_compiled(self) -> bool:
        """Whether the traced step carries XLA's must-compile mark (jit_compile took effect)."""
        attrs = self.function.get_concrete_function(*self.args).function_def.attr
        return "_XlaMustCompile" in attrs and attrs["_XlaMustCompile"].b

    @property
    def cost_in_forwards(self) -> int:
        return STEP_COST_IN_FORWARDS[self.mode]

    def problems(self, tracing_count_before: int) -> list[str]:
        """What makes timings since ``tracing_count_before`` untrustworthy (empty when none).

        A retrace means some timed steps include tracing or compilation; an XLA switch that did not
        take effect means the number would be reported under the wrong configuration.
        """
        found = []
        retraces = self.tracing_count - tracing_count_before
        if retraces:
            found.append(f"the step was retraced {retraces} time(s) while being timed")
        if self.config.xla and not self.xla_compiled():
            found.append("XLA was requested but the step is not XLA-compiled")
        if not self.config.xla and global_auto_jit():
            found.append("XLA is off in the config but global XLA auto-clustering is on (TF_XLA_FLAGS / set_jit)")
        return found
