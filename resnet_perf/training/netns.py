"""A private network for the launcher's workers: a Linux network namespace holding only loopback.

TensorFlow's gRPC server listens on every interface (``0.0.0.0:<port>``) whatever address
``TF_CONFIG`` gives, and has no option to do otherwise.  Workers started in a network namespace of
their own can be reached through its loopback only, by each other: nothing listens on the
machine's interfaces.  ``unshare --net --map-root-user`` makes one without privileges where user
namespaces are allowed; the launcher re-executes itself inside it, brings its loopback up, and
starts the workers there.
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence

from resnet_perf.errors import UserError
from resnet_perf.spawn import package_env

INSIDE = "RESNET_PERF_PRIVATE_NETWORK"
"""Set in the environment of a process re-executed inside the private network."""
UNSHARE = ("unshare", "--net", "--map-root-user", "--")

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sh22x"  # struct ifreq: the interface name, then the flags in a 24-byte union


def inside() -> bool:
    """Whether this process runs inside the private network ``reexec_inside`` made."""
    return os.environ.get(INSIDE) == "1"


def check_available() -> None:
    """A ``UserError`` saying why no private network can be made here (``unshare`` missing or refused)."""
    try:
        done = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise UserError("cannot give the workers a private network: no 'unshare' command (util-linux); "
                        "--network shared runs them without one") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise UserError(f"cannot give the workers a private network ({said}); --network shared runs them "
                        f"without one, their TensorFlow servers listening on every interface")


def reexec_inside(module: str, argv: Sequence[str]) -> None:
    """Replace this process by ``python -m module argv`` inside a new private network (never returns)."""
    command = [*UNSHARE, sys.executable, "-m", module, *argv]
    os.execvpe(command[0], command, {**package_env(), INSIDE: "1"})


def loopback_up() -> None:
    """Bring up the loopback interface (a new network namespace has it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack(_IFREQ, b"lo", 0)
        _name, flags = struct.unpack_from("16sh", fcntl.ioctl(control, _SIOCGIFFLAGS, request))
        fcntl.ioctl(control, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))
