"""Processes this package starts and ends: why a child failed, stopping one, exiting on a signal."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from resnet_perf.spawn import last_words, package_env, stop_process


def test_the_line_naming_the_cause_is_chosen_over_pytests_closing_count():
    log = ("collected 9 items\nerror: cannot write results to /full: No space left on device\n"
           "=========== 1 passed, 8 deselected in 40.1s ===========\n")
    assert last_words(log) == "error: cannot write results to /full: No space left on device"
    failed = "FAILED benchmarks/test_resnet.py::test_train[x] - UserError: oneDNN is off in this process\n== 1 failed =="
    assert last_words(failed).startswith("FAILED benchmarks/test_resnet.py::test_train[x] - UserError: oneDNN is off")
    assert last_words("starting\nSegmentation fault\n") == "Segmentation fault"
    assert last_words("") == "(no output)"


def test_a_stopped_process_is_continued_so_that_it_acts_on_sigterm_and_writes_what_it_has(tmp_path):
    out = tmp_path / "rows.txt"
    code = ("import signal, sys, time\n"
            "from resnet_perf import cli\n"
            "cli.take_interrupts()\n"
            "print('ready', flush=True)\n"
            "try:\n    time.sleep(600)\n"
            f"except KeyboardInterrupt:\n    open({str(out)!r}, 'w').write('finished rounds')\n    sys.exit(143)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=package_env())
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGSTOP)
    # 143 and the file: it acted on SIGTERM (killed at the deadline instead, it would be -9 with nothing written)
    assert stop_process(process, wait_s=60) == 143 and out.read_text() == "finished rounds"
    process.stdout.close()


def test_a_signal_while_a_command_exits_ends_it_without_a_traceback():
    """SIGTERM as the streams are flushed at the end once raised ``Terminated`` there: a traceback, exit 1."""
    code = ("import os, signal, sys\n"
            "from resnet_perf import cli\n"
            "cli.take_interrupts()\n"
            "flush = sys.stdout.flush\n"
            "def flush_then_signal():\n    flush()\n    os.kill(os.getpid(), signal.SIGTERM)\n"
            "sys.stdout.flush = flush_then_signal\n"
            "cli.exit_process(0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=package_env(), timeout=60)
    assert done.returncode == -signal.SIGTERM and "Traceback" not in done.stderr, done.stderr


def _autograph_command(path: Path, ending: str) -> Path:
    """A script at ``path`` that converts a ``tf.function``, prints the files of autograph's sources as a JSON
    line, then runs ``ending``. A file: autograph converts only functions whose source it can read."""
    path.write_text("import json, sys, time\n"
                    "import tensorflow as tf\n"
                    "from resnet_perf import cli\n"
                    "@tf.function\n"
                    "def halve_even(x):\n    return x // 2 if x % 2 == 0 else x\n"
                    "halve_even(tf.constant(4))\n"
                    "prefix = cli.AUTOGRAPH_MODULE_PREFIX\n"
                    "files = [m.__file__ for name, m in sys.modules.items() if name.startswith(prefix)]\n"
                    "print(json.dumps(files), flush=True)\n"
                    f"{ending}\n")
    return path


def test_a_command_ended_by_exit_process_leaves_no_autograph_sources_behind(tmp_path):
    """Autograph writes each converted function's source to the temp directory and deletes it in an exit handler,
    which ``os._exit`` skips: the files are listed while the process runs, and gone after it."""
    script = _autograph_command(tmp_path / "command.py", "cli.exit_process(0)")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=package_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout.strip().splitlines()[-1])
    assert files and not any(Path(file).exists() for file in files)


def test_a_killed_childs_autograph_sources_are_in_the_temp_dir_its_parent_gave_it(tmp_path):
    """Nothing runs in a process killed by SIGKILL: its files stay, in the folder its parent removes after it."""
    given = tmp_path / "children"
    given.mkdir()
    script = _autograph_command(tmp_path / "command.py", "time.sleep(600)")
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=package_env(given))
    try:
        files = json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert files and all(Path(file).parent == given and Path(file).exists() for file in files)
