"""Small pieces shared by the command-line entry points."""
from __future__ import annotations

import argparse
import sys

LAYOUTS: dict[str, str] = {"nhwc": "channels_last", "nchw": "channels_first"}
"""Layout names on the command line and in configs -> Keras ``data_format``."""


def fail(error: BaseException, exit_code: int = 2) -> int:
    """Print ``error`` as one line on stderr and return the exit code to end with."""
    print(f"error: {error}", file=sys.stderr)
    return exit_code


def fail_if_unsupported(error: Exception) -> int:
    """One line and exit 2 for out of memory or an op this device cannot run; other errors propagate."""
    from resnet_perf.runtime import unsupported_reason

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
