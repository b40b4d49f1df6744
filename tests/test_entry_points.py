"""Every public entry point keeps working where it always was, whatever folder its code lives in."""
from __future__ import annotations

import subprocess
import sys

from resnet_perf.spawn import package_env

COMMANDS = ("train", "profile", "compare", "ab", "report", "launch", "model", "interleave", "reference")


def test_every_command_answers_help_as_python_m_and_build_resnet_imports_from_the_package():
    code = ("import contextlib, io, runpy, sys\n"
            "from resnet_perf import build_resnet\n"
            "assert callable(build_resnet)\n"
            f"for name in {COMMANDS!r}:\n"
            "    sys.argv = [name, '--help']\n"
            "    out = io.StringIO()\n"
            "    try:\n"
            "        with contextlib.redirect_stdout(out):\n"
            "            runpy.run_module(f'resnet_perf.{name}', run_name='__main__')\n"
            "    except SystemExit as done:\n"
            "        assert done.code in (0, None), (name, done.code)\n"
            "    assert f'python -m resnet_perf.{name}' in out.getvalue(), (name, out.getvalue()[:200])\n"
            "    print(name)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=package_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == list(COMMANDS)
