"""The CPU switches: as config fields, as process settings, and whether they reach the runtime."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from resnet_perf.config import RunConfig, expand_matrix
from resnet_perf.errors import UserError
import resnet_perf
from resnet_perf.machine.cpu import ONEDNN_VARIABLE, cpu_flags, onednn_enabled
from resnet_perf.precision import NATIVE_BF16_FLAGS, has_native_bf16
from resnet_perf.machine.switches import (FPMATH_VARIABLE, VERBOSE_VARIABLE, VERBOSE_CREATIONS, ProcessSettings,
                                  primitive_problems, process_problems)
from tests.bench.test_bench_suite import run_suite

TINY = dict(depth=18, batch_size=2, image_size=32)


def test_switches_name_themselves_in_the_run_id_only_when_set():
    assert RunConfig(**TINY).run_id == "resnet18-fp32-noxla-nhwc-b2-32"
    config = RunConfig(**TINY, precision="amp_bf16", batch_norm="fused", threads="2:1", fpmath="bf16")
    assert config.run_id == "resnet18-amp_bf16-noxla-nhwc-b2-32-fbn-t2x1-fpmath_bf16"
    assert RunConfig(**TINY, onednn=False).run_id.endswith("-noonednn")


@pytest.mark.parametrize("changes, message", [
    (dict(threads="2"), "INTRA:INTER"), (dict(threads="0:1"), "INTRA:INTER"), (dict(fpmath="tf32"), "fpmath"),
    (dict(onednn=False, fpmath="bf16"), "needs onednn on"), (dict(onednn=False, precision="amp_bf16"), "needs onednn on"), (dict(batch_norm="fused", model="keras", depth=50),
                                                            "variant of this package's model"),
    (dict(precision="amp_fp16"), "unknown precision")])
def test_bad_switch_values_are_refused(changes, message):
    with pytest.raises(UserError, match=message):
        RunConfig(**{**TINY, **changes})


def test_the_matrix_pairs_onednn_settings_with_onednn_on_only():
    configs = expand_matrix(depths=[18], precisions=["fp32", "amp_bf16"], xla=[False], layouts=["nhwc"],
                            batch_sizes=[2], image_sizes=[32], warmup=0, steps=1, onednn=[True, False],
                            fpmath=["default", "bf16"])
    assert [(config.precision, config.onednn, config.fpmath) for config in configs] == [
        ("fp32", True, "default"), ("fp32", True, "bf16"), ("fp32", False, "default"),
        ("amp_bf16", True, "default"), ("amp_bf16", True, "bf16")]


def test_process_settings_and_their_environment():
    assert ProcessSettings.of(RunConfig(**TINY, precision="mixed_bf16")).is_default
    settings = ProcessSettings.of(RunConfig(**TINY, precision="amp_bf16", onednn=True, fpmath="bf16", threads="1:1"))
    assert not settings.is_default and settings.describe() == "threads 1:1, fpmath bf16, amp_bf16"
    env = settings.environment({FPMATH_VARIABLE: "ANY", "HOME": "/root"}, onednn_log=VERBOSE_CREATIONS)
    assert env[ONEDNN_VARIABLE] == "1" and env[FPMATH_VARIABLE] == "BF16" and env[VERBOSE_VARIABLE] == "profile_create"
    plain = ProcessSettings(onednn=False).environment({FPMATH_VARIABLE: "BF16", VERBOSE_VARIABLE: "1"})
    assert plain[ONEDNN_VARIABLE] == "0" and FPMATH_VARIABLE not in plain and VERBOSE_VARIABLE not in plain


def test_a_process_that_is_not_what_the_config_says_is_reported(monkeypatch):
    import tensorflow as tf

    assert process_problems(ProcessSettings()) == []
    monkeypatch.setenv(ONEDNN_VARIABLE, "0")
    monkeypatch.setenv(FPMATH_VARIABLE, "BF16")
    found = process_problems(ProcessSettings(threads="1:1", amp_bf16=True))
    assert len(found) == 4, found
    assert "oneDNN is off in this process" in found[0]
    assert "ONEDNN_DEFAULT_FPMATH_MODE is 'BF16' in this process, the config says fpmath default" in found[1]
    assert "intra:inter threads, the config says 1:1" in found[2]
    assert "auto_mixed_precision_onednn_bfloat16 is off, the config asks for amp_bf16" in found[3]
    assert tf.config.threading.get_intra_op_parallelism_threads() == 0  # nothing was changed by asking


@pytest.mark.parametrize("flags, value, enabled", [
    (["avx2", "fma"], None, False),  # an AVX2-only CPU: TensorFlow leaves oneDNN off by itself
    (["avx2", "avx512f", "avx512_vnni"], None, True), (["avx2", "amx_bf16"], None, True),
    (["avx2"], "1", True), (["avx2"], "TRUE", True), (["avx512_bf16"], "0", False), (["avx512_bf16"], "false", False),
    (["avx2"], "yes", False), (["avx512_bf16"], "yes", True),  # a value TensorFlow does not read: its default
])
def test_onednn_is_on_as_tensorflow_decides_it(flags, value, enabled):
    assert onednn_enabled(flags, {} if value is None else {ONEDNN_VARIABLE: value}) is enabled


def test_the_suite_turns_onednn_on_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv(ONEDNN_VARIABLE, raising=False)
    resnet_perf.enable_onednn()
    assert os.environ[ONEDNN_VARIABLE] == "1" and onednn_enabled([])
    monkeypatch.setenv(ONEDNN_VARIABLE, "0")
    resnet_perf.enable_onednn()
    assert not onednn_enabled(["avx512_vnni"])


CONVOLUTION = """
import tensorflow as tf
x, w = tf.random.uniform((2, 8, 8, 4)), tf.random.uniform((3, 3, 4, 4))
tf.nn.conv2d(x, w, 1, "SAME").numpy()
"""


def _primitive_log(settings: ProcessSettings) -> list[str]:
    done = subprocess.run([sys.executable, "-c", CONVOLUTION], capture_output=True, text=True, timeout=300,
                          env=settings.environment(os.environ, onednn_log=VERBOSE_CREATIONS))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_a_process_of_the_suite_runs_onednn_on_a_cpu_where_tensorflow_would_not():
    """What TensorFlow itself does with the variable enable_onednn sets before it loads: oneDNN
    creates primitives (on an AVX2-only CPU, without it, it creates none)."""
    env = {**os.environ, VERBOSE_VARIABLE: VERBOSE_CREATIONS}
    env.pop(ONEDNN_VARIABLE, None)
    code = "import resnet_perf; resnet_perf.enable_onednn()\n" + CONVOLUTION
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert any(",primitive,create" in line and ",convolution," in line for line in done.stdout.splitlines())


@pytest.mark.slow
def test_onednns_own_log_tells_which_switch_took_effect():
    """The log of real processes: what each setting did, and a switch that did not take effect."""
    plain, in_bf16_math = _primitive_log(ProcessSettings()), _primitive_log(ProcessSettings(fpmath="bf16"))
    switched_off = _primitive_log(ProcessSettings(onednn=False))
    assert primitive_problems(ProcessSettings(), plain) == []
    assert primitive_problems(ProcessSettings(fpmath="bf16"), in_bf16_math) == []
    assert primitive_problems(ProcessSettings(onednn=False), switched_off) == [] and switched_off == []
    # the same logs judged against settings they were not made with
    assert "no oneDNN primitive was created in that math mode" in primitive_problems(ProcessSettings(fpmath="bf16"), plain)[0]
    assert "in bf16 math mode, the config says default" in primitive_problems(ProcessSettings(), in_bf16_math)[0]
    assert "switched off but created" in primitive_problems(ProcessSettings(onednn=False), plain)[0]
    assert "logged no primitive" in primitive_problems(ProcessSettings(), switched_off)[0]
    assert "none of 1 oneDNN convolution(s) ran in bfloat16" in primitive_problems(ProcessSettings(amp_bf16=True), plain)[0]


def test_amp_bf16_without_bfloat16_instructions_is_named_for_what_it_is():
    """On an AVX2-only CPU the rewritten graph created no oneDNN primitive at all (AMD EPYC Zen 3)."""
    amp = ProcessSettings(amp_bf16=True)
    assert "this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16)" in primitive_problems(amp, [], ["avx2"])[0]
    assert "logged no primitive" in primitive_problems(amp, [], ["avx2", "avx512_bf16"])[0]


@pytest.mark.slow
def test_suite_measures_process_switches_in_workers_taking_turns(tmp_path):
    """Threads and amp_bf16 in one run: every case measured in its worker, each switch confirmed by
    the runtime, with breakdowns and batch-1 latency; compare names the best.  (fpmath and oneDNN off
    reach the runtime the same way: their logs are judged above.)"""
    if not has_native_bf16(cpu_flags()):  # the case's error is then right: below
        pytest.skip(f"amp_bf16 needs bfloat16 instructions ({', '.join(NATIVE_BF16_FLAGS)}), which this CPU lacks")
    done = run_suite("--depths", "18", "--precisions", "fp32,amp_bf16", "--xla", "off", "--batch-norms", "keras",
                     "--image-size", "32", "--batch-size", "2", "--rounds", "2", "--steps", "1", "--warmup", "0", "--threads", "1:1",
                     "--breakdown", "--latency", "--latency-steps", "3",
                     "-k", "test_latency or (test_train and not test_train_forward and not fashion)",
                     "--peak-readings", "1", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (saved,) = tmp_path.glob("bench-*.json")
    rows = {(row["run_id"], row["mode"]): row for row in json.loads(saved.read_text())["rows"]}
    # 2 precisions = 2 configs, each train + latency, a worker each
    assert len(rows) == 4 and not [row for row in rows.values() if row.get("error") or row.get("skipped")]
    assert {row["process_settings"] for row in rows.values()} == {"threads 1:1", "threads 1:1, amp_bf16"}
    assert "worker w1: " in done.stdout and "round 2 done" in done.stdout
    one_thread = rows[("resnet18-amp_bf16-noxla-nhwc-b2-32-t1x1", "train")]
    assert one_thread["cpu_threads"] == 1 and len(one_thread["round_medians_s"]) == 2
    assert one_thread["breakdown_op_s"]["conv_backward_filter"] > 0 and one_thread["breakdown_step_s"] > 0
    latency = rows[("resnet18-fp32-noxla-nhwc-b1-32-t1x1", "forward")]
    assert len(latency["step_times_s"]) == 2 * latency["block_steps"] and latency["p99_s"] >= latency["median_s"]
    assert "batch-1 forward latency" in done.stdout and "where the step time went" in done.stdout

    completed = subprocess.run([sys.executable, "-m", "resnet_perf.compare", str(saved), "--baseline", "threads=1:1"],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    best = completed.stdout.split("best configuration per depth, batch, image size and step:")[1].split("\n\n")[0]
    assert best.count("| resnet18-") == 2  # train at batch 2, forward at batch 1
    # each switch against its baseline (2 tiny rounds decide nothing), explained by the breakdown: which
    # op category changed most is a measurement, so only the explanation's form is checked
    main_table = completed.stdout.split("\n\n")[0]
    amp = next(line for line in main_table.splitlines() if "| resnet18-amp_bf16-noxla-nhwc-b2-32-t1x1 " in line)
    assert "amp_bf16 vs fp32: undecided: " in amp, amp
    assert re.search(r"; [a-z +]+ (\d+\.\d+x (faster|slower)|appeared|gone) \([+-]\d+ ms\)", amp), amp
