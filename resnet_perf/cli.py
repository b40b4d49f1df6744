"""Small pieces shared by the command-line entry points."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resnet_perf.config import BATCH_NORMS, FILTER_GRADS, FPMATH_MODES, LAYOUTS, ON_OFF, ON_OFF_FIELDS, RunConfig
from resnet_perf.errors import UserError
from resnet_perf.machine.runtime import unsupported_reason
from resnet_perf.precision import PRECISIONS
from resnet_perf.specs import DEPTHS

CONFIG_OPTIONS = ("depth", "batch_size", "image_size", "precision", "xla", "layout")
"""RunConfig fields with a command-line flag of the same name (``--batch-size`` for ``batch_size``)."""
SWITCH_OPTIONS = ("batch_norm", "filter_grad", "threads", "onednn", "fpmath")
"""The model variant and CPU switches of a step (``resnet_perf.machine.switches``), for commands that run one."""


def argument_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse ``type=``: its ``UserError`` becomes argparse's one-line usage error."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except UserError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return convert


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose bad-usage message is one ``error:`` line (argparse's own prints the
    usage first), exit status 2 as argparse's."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken as Ctrl-C is: CI runners, ``timeout`` and the launcher stop a job with it."""


def say(line: str) -> None:
    """Show a line of a command's progress now: on a terminal, or in a pipe read as it comes (CI logs, a launcher)."""
    print(line, flush=True)


def take_interrupts() -> None:
    """From now on SIGTERM raises ``Terminated`` and SIGINT ``KeyboardInterrupt``, so a command stops
    keeping what it has measured, however it was started.

    SIGTERM's default action would end the process on the spot. SIGINT needs restoring because
    Python raises ``KeyboardInterrupt`` only when SIGINT was not ignored at start-up, and a
    background job of a non-interactive shell (``pytest tests &``) starts with it ignored: its
    commands, and the workers they start, would otherwise wait out Ctrl-C (seen: a launched
    worker waiting for its peers until its 180 s start-up deadline)."""
    def terminate(signum, frame):
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def interrupted_status(error: KeyboardInterrupt) -> int:
    """The conventional exit status of a command stopped by SIGTERM (143) or Ctrl-C (130)."""
    return 128 + (signal.SIGTERM if isinstance(error, Terminated) else signal.SIGINT)


def exit_process(status: int) -> None:
    """End a command's process with ``status``, without the interpreter's teardown: a ``tf.data``
    iterator waits in its destructor for its input threads, for minutes after an interrupt (seen:
    ``train`` stopped by SIGTERM, ``py-spy dump --native`` in
    ``UnboundedThreadPool::LogicalThreadWrapper::~LogicalThreadWrapper``) and tens of seconds after
    a finished run, and everything worth keeping (result files) is already written.

    A signal from here on takes its default action (the process ends with 128 + its number): raised
    as an exception while the streams are flushed, it would end the command with a traceback."""
    for interrupt in (signal.SIGTERM, signal.SIGINT):
        signal.signal(interrupt, signal.SIG_DFL)
    remove_autograph_sources()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


AUTOGRAPH_MODULE_PREFIX = "__autograph_generated_file"
"""How autograph names the module (and temporary file) of each ``tf.function`` it converts."""


def remove_autograph_sources() -> None:
    """Delete the source files autograph wrote for this process's ``tf.function``s, one per function in the
    temporary directory. Autograph deletes them in exit handlers, which ``exit_process`` skips: every worker
    of the suite left four behind (3,555 files in one VM's /tmp after a day of runs)."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith(AUTOGRAPH_MODULE_PREFIX) and path:
            with contextlib.suppress(OSError):  # already gone (a temp cleaner): nothing to do
                os.remove(path)


def fail(error: BaseException, exit_code: int = 2) -> int:
    """Print ``error`` as one line on stderr and return the exit code to end with."""
    print(f"error: {error}", file=sys.stderr)
    return exit_code


def fail_if_unsupported(error: Exception) -> int:
    """One line and exit 2 for out of memory or an op this device cannot run; other errors propagate."""
    reason = unsupported_reason(error)
    if reason is None:
        raise error
    return fail(reason)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"224,224,3"`` -> ``(224, 224, 3)`` for argparse."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C integers, got {text!r}") from None
    if len(shape) != 3:
        raise argparse.ArgumentTypeError(f"expected three integers H,W,C, got {text!r}")
    return shape


FILTER_GRAD_HELP = ("the convolutions' filter gradients: conv, TensorFlow's; gemm, in the layers with few pixels, "
                    "one GEMM over the input's patches (float32) or one forward convolution (bfloat16) (NHWC)")
"""What ``--filter-grad`` / ``--filter-grads`` mean, for every command that takes them."""


def add_config_options(parser: argparse.ArgumentParser, defaults: RunConfig,
                       fields: Sequence[str] = CONFIG_OPTIONS, image_help: str = "synthetic images",
                       batch_help: str = "images per step",
                       precision_help: str = f"one of {', '.join(PRECISIONS)}",
                       described_defaults: Mapping[str, str] | None = None) -> None:
    """Add the ``RunConfig`` flags named in ``fields`` with ``defaults``'s values: one definition
    of each flag for every command (``config_kwargs`` reads them back).  A field in ``described_defaults`` has no
    default (None: the command chooses) and its help describes the choice."""
    helps = {
        "depth": (dict(type=int), f"ResNet depth: one of {', '.join(map(str, DEPTHS))}"),
        "batch_size": (dict(type=int), batch_help),
        "image_size": (dict(type=int), f"height = width of the {image_help}, at least 32"),
        "precision": (dict(), precision_help),
        "xla": (dict(choices=tuple(ON_OFF)), "XLA jit_compile of the step functions"),
        "layout": (dict(choices=tuple(LAYOUTS)), "tensor layout: nhwc (channels last) or nchw (channels first)"),
        "batch_norm": (dict(choices=BATCH_NORMS), "batch norm layer: keras, or fused (one TensorFlow op each way)"),
        "filter_grad": (dict(choices=FILTER_GRADS), FILTER_GRAD_HELP),
        "threads": (dict(), "TensorFlow's intra-op:inter-op thread pools, e.g. 2:1, or auto"),
        "onednn": (dict(choices=tuple(ON_OFF)), "TensorFlow's oneDNN kernels (TF_ENABLE_ONEDNN_OPTS)"),
        "fpmath": (dict(choices=tuple(FPMATH_MODES)),
                   "oneDNN's float32 math mode: bf16 computes float32 convolutions with bfloat16 multiplies"),
    }
    for field in fields:
        kwargs, text = helps[field]
        default = getattr(defaults, field)
        if field in ON_OFF_FIELDS:
            default = "on" if default else "off"
        if field in (described_defaults or {}):
            default, described = None, described_defaults[field]
        else:
            described = "%(default)s"
        parser.add_argument(f"--{field.replace('_', '-')}", default=default, help=f"{text} (default {described})",
                            **kwargs)


def config_kwargs(args: argparse.Namespace, fields: Sequence[str] = CONFIG_OPTIONS) -> dict:
    """The ``RunConfig`` fields ``add_config_options`` added, as keyword arguments."""
    return {field: ON_OFF[getattr(args, field)] if field in ON_OFF_FIELDS else getattr(args, field) for field in fields}
