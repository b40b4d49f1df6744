"""The steps a benchmark times, as ``tf.function``s compiled (or not) with XLA per config.

- ``forward``: inference, ``training=False``.
- ``train_forward``: the forward pass of a training step, ``training=True`` (batch statistics,
  moving averages updated) and the loss: the part of ``fwd_bwd`` before the gradients.
- ``fwd_bwd``: ``train_forward`` plus all gradients, no update.  Backward time is reported as
  ``fwd_bwd - train_forward`` (derived, not measured on its own: TensorFlow cannot run a backward
  pass without its forward); both sides run the same training-mode forward.
- ``train``: forward, loss, backward and an SGD-momentum update; loss scaling for ``mixed_fp16``.

A step is finished when its outputs are on the host and every device has synchronised
(``tf.test.experimental.sync_devices``), so a GPU's queued work is inside the timed step.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from resnet_perf.bench.timing import finish
from resnet_perf.bench.workload import build_model, synthetic_batch
from resnet_perf.config import MODES, RunConfig
from resnet_perf.machine.runtime import global_auto_jit
from resnet_perf.machine.switches import ProcessSettings, process_problems
from resnet_perf.models.flops import flops_per_step
from resnet_perf.models.objective import is_loss_scaled, logits_and_loss, make_optimizer

LEARNING_RATE = 0.01


def _forward_fn(model: keras.Model, config: RunConfig) -> Callable:
    def forward(images, labels):
        del labels
        return model(images, training=False)
    return forward


def _train_forward_fn(model: keras.Model, config: RunConfig) -> Callable:
    def train_forward(images, labels):
        return logits_and_loss(model, images, labels)[1]
    return train_forward


def _fwd_bwd_fn(model: keras.Model, config: RunConfig) -> Callable:
    def fwd_bwd(images, labels):
        with tf.GradientTape() as tape:
            _, loss = logits_and_loss(model, images, labels)
        gradients = tape.gradient(loss, model.trainable_variables)
        # One element of every gradient keeps graph pruning from dropping any, at O(1) cost each
        # (a norm over all gradients would add a pass over every parameter that train does not do).
        anchor = tf.add_n([tf.cast(tf.reshape(gradient, [-1])[0], tf.float32) for gradient in gradients])
        return loss, anchor
    return fwd_bwd


def _train_fn(model: keras.Model, config: RunConfig) -> Callable:
    optimizer = make_optimizer(config.precision, LEARNING_RATE)
    optimizer.build(model.trainable_variables)  # create slots now, not inside the traced step
    scaled = is_loss_scaled(optimizer)

    def train(images, labels):
        with tf.GradientTape() as tape:
            _, loss = logits_and_loss(model, images, labels)
            objective = optimizer.scale_loss(loss) if scaled else loss
        gradients = tape.gradient(objective, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)  # unscales first when loss-scaled
        return loss
    return train


_STEP_FUNCTIONS = {"forward": _forward_fn, "train_forward": _train_forward_fn, "fwd_bwd": _fwd_bwd_fn,
                   "train": _train_fn}


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
    def flops_per_step(self) -> int:
        """Analytic FLOPs of one step over the batch (``resnet_perf.models.flops``)."""
        return flops_per_step(self.model, self.mode, self.config.batch_size)

    def problems(self, tracing_count_before: int) -> list[str]:
        """What makes timings since ``tracing_count_before`` untrustworthy (empty when none).

        A retrace means some timed steps include tracing or compilation; an XLA switch that did not
        take effect, or a process whose settings are not the config's (threads, oneDNN, fpmath, amp_bf16:
        ``resnet_perf.machine.switches``), means the number would be reported under the wrong configuration.
        """
        found = []
        retraces = self.tracing_count - tracing_count_before
        if retraces:
            found.append(f"the step was retraced {retraces} time(s) while being timed")
        if self.config.xla and not self.xla_compiled():
            found.append("XLA was requested but the step is not XLA-compiled")
        if not self.config.xla and global_auto_jit():
            found.append("XLA is off in the config but global XLA auto-clustering is on (TF_XLA_FLAGS / set_jit)")
        return found + process_problems(ProcessSettings.of(self.config))
