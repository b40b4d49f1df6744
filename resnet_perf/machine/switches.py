"""The CPU switches that are settings of a whole process: thread pools, oneDNN on/off, oneDNN's
float32 math mode, and grappler's bf16 auto mixed precision (the ``amp_bf16`` precision).

They have to be in place before TensorFlow starts: oneDNN and its math mode are read from the
environment when TensorFlow loads, the thread pools are fixed when its runtime starts, and the
grappler option belongs to the whole context.  So a case whose settings are not TensorFlow's
defaults runs in a process of its own (``resnet_perf.processes.isolated``), started with ``environment`` and
set up by ``prepare_process`` before anything runs.

Whether a switch took effect is read from what the runtime reports, not assumed: the thread pool
sizes and grappler options TensorFlow reports (``process_problems``), and oneDNN's own log of the
primitives it created (``ONEDNN_VERBOSE=profile_create``, ``primitive_problems``): none at all when
oneDNN is off, ``fpmath:bf16`` attributes in that math mode, bfloat16 convolutions under amp_bf16.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from resnet_perf.config import AUTO_THREADS, FPMATH_MODES, RunConfig, parse_threads
from resnet_perf.errors import UserError
from resnet_perf.machine.cpu import ONEDNN_VARIABLE, cpu_flags, onednn_enabled
from resnet_perf.precision import NATIVE_BF16_FLAGS, has_native_bf16, is_graph_rewrite

FPMATH_VARIABLE = "ONEDNN_DEFAULT_FPMATH_MODE"
VERBOSE_VARIABLE = "ONEDNN_VERBOSE"
SUITE_VARIABLES = (ONEDNN_VARIABLE, FPMATH_VARIABLE)
"""The variables a case's switches set (``ProcessSettings.environment``): not for a user to set beside them."""
VERBOSE_CREATIONS = "profile_create"
"""oneDNN logs each primitive it creates (one line each, none per execution)."""
VERBOSE_EXECUTIONS = "profile_exec"
"""oneDNN logs every primitive execution with its time (``resnet_perf.trace.onednn_log`` reads it)."""
AMP_OPTION = "auto_mixed_precision_onednn_bfloat16"
@dataclass(frozen=True)
class ProcessSettings:
    """What a case needs of its process; by default, that of a default ``RunConfig``."""

    threads: str = RunConfig.threads
    onednn: bool = RunConfig.onednn
    fpmath: str = RunConfig.fpmath
    amp_bf16: bool = is_graph_rewrite(RunConfig.precision)

    @classmethod
    def of(cls, config: RunConfig) -> ProcessSettings:
        return cls(threads=config.threads, onednn=config.onednn, fpmath=config.fpmath,
                   amp_bf16=is_graph_rewrite(config.precision))

    @property
    def is_default(self) -> bool:
        """Whether these are the settings of a process of this suite as it starts (oneDNN on:
        ``resnet_perf.enable_onednn``; the rest TensorFlow's defaults)."""
        return self == ProcessSettings()

    def describe(self) -> str:
        changed = [f"threads {self.threads}" if self.threads != AUTO_THREADS else "",
                   "" if self.onednn else "oneDNN off", f"fpmath {self.fpmath}" if self.fpmath != "default" else "",
                   "amp_bf16" if self.amp_bf16 else ""]
        return ", ".join(filter(None, changed)) or "the suite's defaults"

    def environment(self, base: Mapping[str, str], onednn_log: str | None = None) -> dict[str, str]:
        """``base`` with this process's variables set (and oneDNN's log, if asked: an ``ONEDNN_VERBOSE``
        value such as ``VERBOSE_CREATIONS``)."""
        env = {**base, ONEDNN_VARIABLE: "1" if self.onednn else "0"}
        env.pop(FPMATH_VARIABLE, None)
        env.pop(VERBOSE_VARIABLE, None)
        if FPMATH_MODES[self.fpmath]:
            env[FPMATH_VARIABLE] = FPMATH_MODES[self.fpmath]
        if onednn_log:
            env[VERBOSE_VARIABLE] = onednn_log
        return env


def apply_here(settings: ProcessSettings, onednn_log: str | None = None) -> None:
    """Put this process under ``settings`` (for a command that runs a step itself, like ``profile``):
    its environment variables, then ``prepare_process``.  Once TensorFlow is loaded the variables
    can no longer change: a ``UserError`` if they would have to."""
    wanted = settings.environment(os.environ, onednn_log)
    if "tensorflow" in sys.modules:
        running = ProcessSettings(settings.threads, onednn_enabled(cpu_flags()),
                                  _fpmath_of(os.environ.get(FPMATH_VARIABLE)), settings.amp_bf16)
        if running != settings:
            raise UserError(f"TensorFlow is already loaded with {running.describe()}: oneDNN and fpmath cannot "
                            f"change to {settings.describe()} in this process")
    else:
        os.environ.pop(FPMATH_VARIABLE, None)
        os.environ.update(wanted)
    prepare_process(settings)


def _fpmath_of(value: str | None) -> str:
    """The ``FPMATH_MODES`` name of an ``ONEDNN_DEFAULT_FPMATH_MODE`` value (the value itself if none)."""
    return next((name for name, mode in FPMATH_MODES.items() if mode == value), str(value))


def prepare_process(settings: ProcessSettings) -> None:
    """Set the thread pools and the grappler option, in a process whose TensorFlow runtime has not
    started yet (started with ``settings.environment``)."""
    import tensorflow as tf

    pools = parse_threads(settings.threads)
    if pools:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(pools[0])
            tf.config.threading.set_inter_op_parallelism_threads(pools[1])
        except RuntimeError:  # the runtime has started: the pools are fixed
            raise UserError(f"TensorFlow's runtime has started: its thread pools cannot become {settings.threads}") from None
    if settings.amp_bf16:
        tf.config.optimizer.set_experimental_options({AMP_OPTION: True})


def process_problems(settings: ProcessSettings) -> list[str]:
    """How this process differs from ``settings``, as its environment and TensorFlow report it."""
    import tensorflow as tf

    found = []
    onednn = onednn_enabled(cpu_flags())
    if onednn != settings.onednn:
        found.append(f"oneDNN is {'on' if onednn else 'off'} in this process ({ONEDNN_VARIABLE}), "
                     f"the config says {'on' if settings.onednn else 'off'}")
    fpmath = os.environ.get(FPMATH_VARIABLE)
    if fpmath != FPMATH_MODES[settings.fpmath]:
        found.append(f"{FPMATH_VARIABLE} is {fpmath!r} in this process, the config says fpmath {settings.fpmath}")
    pools = parse_threads(settings.threads) or (0, 0)  # 0: TensorFlow chooses
    running = (tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads())
    if running != pools:
        found.append(f"TensorFlow runs {running[0]}:{running[1]} intra:inter threads, the config says {settings.threads}")
    amp = bool(tf.config.optimizer.get_experimental_options().get(AMP_OPTION, False))
    if amp != settings.amp_bf16:
        found.append(f"grappler's {AMP_OPTION} is {'on' if amp else 'off'}, "
                     f"the config {'asks for' if settings.amp_bf16 else 'does not ask for'} amp_bf16")
    return found


def primitive_problems(settings: ProcessSettings, log: Iterable[str],
                       flags: Collection[str] | None = None) -> list[str]:
    """What oneDNN's creation log (``VERBOSE_CREATIONS``) of a process run with ``settings`` on a CPU
    with ``flags`` (default: this machine's) says did not take effect (empty when every switch did)."""
    created = [line for line in log if ",primitive,create" in line]
    if not settings.onednn:
        return [f"oneDNN was switched off but created {len(created)} primitive(s)"] if created else []
    if not created and settings.amp_bf16 and not has_native_bf16(cpu_flags() if flags is None else flags):
        return [f"amp_bf16 ran no oneDNN primitive: this CPU has no bfloat16 instructions "
                f"({', '.join(NATIVE_BF16_FLAGS)}), so TensorFlow ran the rewritten graph on its own kernels"]
    if not created:
        return ["oneDNN is on but logged no primitive: is this TensorFlow built with oneDNN?"]
    found = []
    in_bf16_math = sum("fpmath:bf16" in line for line in created)
    if settings.fpmath == "bf16" and not in_bf16_math:
        found.append("fpmath bf16 was asked for but no oneDNN primitive was created in that math mode")
    if settings.fpmath == "default" and in_bf16_math:
        found.append(f"{in_bf16_math} oneDNN primitive(s) were created in bf16 math mode, the config says default")
    convolutions = [line for line in created if ",convolution," in line]
    if settings.amp_bf16 and not any("src:bf16" in line for line in convolutions):
        found.append(f"amp_bf16 was asked for but none of {len(convolutions)} oneDNN convolution(s) ran in bfloat16 "
                     f"(grappler did not rewrite the graph)")
    return found
