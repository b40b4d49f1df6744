"""The benchmark suite: the configuration matrix from command-line options, the cases, the report.

    pytest benchmarks/ --benchmark-only [--depths 18,50] [--precisions fp32,mixed_bf16,amp_bf16] [--xla off,on]
        [--layouts nhwc] [--batch-size 16] [--image-size 112] [--rounds 3] [--steps 3] [--warmup 2]
        [--batch-norms keras,fused] [--threads auto,2:1] [--onednn on,off] [--fpmath default,bf16]
        [--breakdown] [--latency] [--latency-steps 30] [--find-max-batch] [--max-batch-memory GIB]
        [--peak-readings 3] [--reference keras] [--results-dir results] [--per-machine] [--profile-dir DIR] [--profile-steps 3]
        [--train-recipe fast] [--train-to-target] [--train-depths 18] [--train-precisions mixed_bf16]
        [--train-replicas 1] [--train-epochs 1] [--train-strategy mirrored|multiworker] [--train-workers 2]

At the end of the session every measured (and skipped) case is printed as one table and written
to ``{results-dir}/bench-<UTC time>.json`` (never over an earlier file), also after a failure,
Ctrl-C or SIGTERM, so no measured result is lost.  The file keeps the session's matmul peak
readings (taken before the first and after the last step case) once; MFU is derived on reading.
"""
from __future__ import annotations

import argparse
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import resnet_perf
from resnet_perf.cli import ON_OFF
from resnet_perf.config import AUTO_THREADS, expand_matrix, parse_threads
from resnet_perf.errors import UserError
from resnet_perf.fingerprint import fingerprint
from resnet_perf.measure import PEAK_READINGS
from resnet_perf.precision import PRECISIONS, compute_dtype
from resnet_perf.results import check_writable
from resnet_perf.recipes import DEFAULT_RECIPE, RECIPES, TrainConfig

resnet_perf.quiet_tensorflow_logs()  # before the test modules import TensorFlow
resnet_perf.enable_onednn()

MATRIX = pytest.StashKey[list]()
LATENCY = pytest.StashKey[list]()
MAX_BATCH = pytest.StashKey[list]()
TERMINATED = pytest.StashKey[bool]()
TRAINING = pytest.StashKey[list]()
RECORDER = pytest.StashKey["Recorder"]()



def _comma_list(text: str, convert: Callable[[str], Any], option: str) -> list:
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise UserError(f"{option}: give at least one value")
    if not all(parts):
        raise UserError(f"{option}: {text!r} has an empty item")
    try:
        values = [convert(part) for part in parts]
    except UserError:  # a value's own message says more than "cannot read"
        raise
    except (KeyError, ValueError):
        raise UserError(f"{option}: cannot read {text!r} as a comma-separated list") from None
    return values


def _threads_text(text: str) -> str:
    parse_threads(text)
    return text


def latency_configs(matrix: Sequence, steps: int) -> list:
    """A batch-1 config (``steps`` steps per round) for every distinct config of ``matrix`` that is
    not batch 1 already: the latency cases (their forward step is timed)."""
    configs = {config.replace(batch_size=1, steps=steps): None for config in matrix if config.batch_size != 1}
    return list(configs)  # a dict keeps the matrix's order


def max_batch_configs(matrix: Sequence) -> list:
    """One config per configuration of ``matrix`` apart from its batch: the first batch listed, where
    the search for the largest batch starts."""
    firsts: dict = {}
    for config in matrix:
        firsts.setdefault(config.replace(batch_size=1), config)
    return list(firsts.values())


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resnet_perf", "resnet_perf benchmark matrix (comma-separated lists)")
    group.addoption("--depths", default="18,50", help="ResNet depths (default 18,50)")
    group.addoption("--precisions", default="fp32,mixed_bf16",
                    help=f"{', '.join(PRECISIONS)} (default fp32,mixed_bf16; amp_bf16: grappler's bf16 rewrite "
                         "of the float32 model)")
    group.addoption("--xla", default="off,on", help="XLA jit_compile: off, on (default off,on)")
    group.addoption("--layouts", default="nhwc", help="nhwc, nchw (default nhwc)")
    group.addoption("--batch-size", default="16", help="images per step (default 16)")
    group.addoption("--image-size", default="112", help="image height = width (default 112)")
    group.addoption("--batch-norms", default="keras",
                    help="our model's batch norm: keras, fused (one TensorFlow op each way) (default keras)")
    group.addoption("--threads", default=AUTO_THREADS,
                    help="TensorFlow thread pools as INTRA:INTER, or auto (default auto); cases with other "
                         "thread counts, oneDNN off, fpmath bf16 or amp_bf16 run in worker processes of their own")
    group.addoption("--onednn", default="on", help="TensorFlow's oneDNN kernels: on, off (default on)")
    group.addoption("--fpmath", default="default",
                    help="oneDNN's float32 math mode: default, bf16 (ONEDNN_DEFAULT_FPMATH_MODE=BF16) (default default)")
    group.addoption("--breakdown", action="store_true",
                    help="after its timing, trace each step case and put where its time went (by op category) "
                         "into its row and a breakdown table")
    group.addoption("--latency", action="store_true",
                    help="also measure batch-1 forward latency (p50/p99 ms) of every configuration")
    group.addoption("--latency-steps", type=int, default=30,
                    help="timed batch-1 steps per round of a latency case (default 30)")
    group.addoption("--find-max-batch", action="store_true",
                    help="also find the largest training batch of every configuration that runs, each probe "
                         "in a fresh process under --max-batch-memory")
    group.addoption("--max-batch-memory", type=float, default=None, metavar="GIB",
                    help="memory a --find-max-batch probe may use (default: 90%% of this machine's memory)")
    group.addoption("--rounds", type=int, default=3,
                    help="rounds: every step case is timed once per round, round after round, so a slow spell "
                         "of the machine falls on all cases alike; the per-round medians are the units of the "
                         "speed-up intervals (default 3)")
    group.addoption("--steps", type=int, default=3, help="timed steps per case in each round (default 3)")
    group.addoption("--warmup", type=int, default=2, help="untimed steps after the first call (default 2)")
    group.addoption("--peak-readings", type=int, default=PEAK_READINGS,
                    help="matmul peak readings per dtype at the session's start and end, the denominator of MFU "
                         f"(default {PEAK_READINGS}; 0: no MFU, e.g. for A/B runs that judge images/s)")
    group.addoption("--turns", default=None, metavar="PIPES/NAME",
                    help="for python -m resnet_perf.ab: time each block of steps only when the A/B coordinator "
                         "gives this process the turn (named pipes PIPES/NAME.go and PIPES/NAME.done)")
    group.addoption("--reference", choices=("keras",), default=None,
                    help="also measure keras.applications.ResNet50/101/152 on the same configs")
    group.addoption("--results-dir", default="results", help="where the session's JSON goes (default results/)")
    group.addoption("--per-machine", action="store_true",
                    help="write into RESULTS_DIR/<this machine's fingerprint id>/ (how baselines are kept)")
    group.addoption("--profile-dir", default=None,
                    help="also capture a profiler trace of every step case, after its timing, into "
                         "PROFILE_DIR/<run_id>-<step> (view: tensorboard --logdir PROFILE_DIR)")
    group.addoption("--profile-steps", type=int, default=3, help="traced steps per case with --profile-dir (default 3)")
    training = parser.getgroup("resnet_perf training", "Fashion-MNIST training benchmark (test_fashion_mnist)")
    training.addoption("--train-recipe", default=DEFAULT_RECIPE, choices=tuple(RECIPES),
                       help=f"the recipe the training cases start from (resnet_perf.recipes; default {DEFAULT_RECIPE}); "
                            "the options below change its settings")
    training.addoption("--train-depths", help="depths to train (default: the recipe's)")
    training.addoption("--train-precisions", help="precisions to train (default: the recipe's)")
    training.addoption("--train-replicas", default="1",
                       help="MirroredStrategy replicas: N GPUs or N logical CPU devices (default 1)")
    training.addoption("--train-epochs", type=int,
                       help="epochs over all 60,000 images (default 1; with --train-to-target the recipe's)")
    training.addoption("--train-to-target", action="store_true",
                       help="train to the recipe's target accuracy (stopping there) and record the time to it")
    training.addoption("--train-batch-size", type=int, help="global batch (default: the recipe's)")
    training.addoption("--train-image-size", type=int, help="images resized to (default: the recipe's)")
    training.addoption("--train-strategy", choices=("mirrored", "multiworker"), default="mirrored",
                       help="mirrored: one process; multiworker: --train-workers processes on this machine "
                            "(python -m resnet_perf.launch), --train-replicas ignored (default mirrored)")
    training.addoption("--train-workers", type=int, default=2, help="workers with --train-strategy multiworker (default 2)")
    training.addoption("--train-limit", type=int, default=None,
                       help="train and test on the first N images only (smoke runs; default: all)")


class Recorder:
    """Collects the session's rows and matmul peak readings; writes and prints them once at the end."""

    def __init__(self, results_dir: Path, peak_dtypes: Sequence[str], readings: int) -> None:
        self.results_dir = results_dir
        self.peak_dtypes = list(peak_dtypes)
        self.readings = readings
        self.rows: list[dict[str, Any]] = []
        self.peak_readings: dict[str, list[float]] = {}
        self.saved_to: Path | None = None
        self.save_error: str | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def probe_peaks(self) -> None:
        """Take the fixed set of matmul peak readings (``resnet_perf.measure.probe_matmul_peaks``)."""
        from resnet_perf.measure import probe_matmul_peaks

        if not self.readings:
            return
        for dtype, readings in probe_matmul_peaks(self.peak_dtypes, self.readings).items():
            self.peak_readings.setdefault(dtype, []).extend(readings)

    def session_data(self) -> dict[str, Any]:
        """What belongs to the session, not to a row: the peak readings and the environment."""
        from resnet_perf.runtime import environment

        return {"matmul_peak_readings": self.peak_readings, "environment": environment()}

    def save(self) -> None:
        from resnet_perf.results import save_rows

        data = self.session_data()
        try:
            self.saved_to = save_rows(self.results_dir, "bench", self.rows, data.pop("environment"), **data)
        except UserError as error:
            self.save_error = str(error)


def _stop_like_ctrl_c_on_sigterm(config: pytest.Config) -> None:
    """CI runners and ``timeout`` stop a job with SIGTERM: stop as on Ctrl-C, so the session finishes and
    saves every row measured so far, then exit with 128 + 15 (see ``pytest_sessionfinish``)."""
    def terminate(signum, frame):
        config.stash[TERMINATED] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)


def results_dir(option: argparse.Namespace) -> Path:
    """``--results-dir`` (with ``--per-machine``: its folder for this machine), checked writable
    before anything is measured."""
    directory = Path(option.results_dir)
    if option.per_machine:
        directory /= fingerprint()["id"]
    check_writable(directory, "results")
    return directory


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config.option, "depths"):  # this conftest was not loaded at start-up
        return
    # The memory and training cases measure in processes of their own: they request `benchmark` only
    # so that --benchmark-only runs them and leave it unused, so that no process wall time is ever
    # reported or compared (--benchmark-compare-fail) as a step time.  pytest-benchmark warns then.
    config.addinivalue_line("filterwarnings", "ignore:Benchmark fixture was not used at all in this test")
    _stop_like_ctrl_c_on_sigterm(config)
    from resnet_perf.runtime import git_commit

    git_commit()  # the code this session runs, read now (the environment is read at its end)
    option = config.option
    try:
        matrix = expand_matrix(
            depths=_comma_list(option.depths, int, "--depths"),
            precisions=_comma_list(option.precisions, str, "--precisions"),
            xla=_comma_list(option.xla, ON_OFF.__getitem__, "--xla"),
            layouts=_comma_list(option.layouts, str, "--layouts"),
            batch_sizes=_comma_list(option.batch_size, int, "--batch-size"),
            image_sizes=_comma_list(option.image_size, int, "--image-size"),
            warmup=option.warmup, steps=option.steps, rounds=option.rounds,
            reference=option.reference,
            batch_norms=_comma_list(option.batch_norms, str, "--batch-norms"),
            threads=_comma_list(option.threads, _threads_text, "--threads"),
            onednn=_comma_list(option.onednn, ON_OFF.__getitem__, "--onednn"),
            fpmath=_comma_list(option.fpmath, str, "--fpmath"))
        if option.max_batch_memory is not None and not option.max_batch_memory > 0:
            raise UserError(f"--max-batch-memory must be a positive number of GiB, got {option.max_batch_memory}")
        if option.latency_steps < 1:
            raise UserError(f"--latency-steps must be at least 1, got {option.latency_steps}")
        latency = latency_configs(matrix, option.latency_steps) if option.latency else []
        recipe = RECIPES[option.train_recipe]
        training = [
            TrainConfig.from_recipe(recipe.name, depth=depth, precision=precision,
                                    batch_size=option.train_batch_size or recipe.batch_size,
                                    image_size=option.train_image_size or recipe.image_size,
                                    epochs=option.train_epochs or (recipe.epochs if option.train_to_target else 1),
                                    stop_at_target=option.train_to_target, replicas=replicas,
                                    limit_train=option.train_limit, limit_test=option.train_limit,
                                    strategy=option.train_strategy)
            for depth in _comma_list(option.train_depths or str(recipe.depth), int, "--train-depths")
            for precision in _comma_list(option.train_precisions or recipe.precision, str, "--train-precisions")
            for replicas in (["auto"] if option.train_strategy == "multiworker"
                             else _comma_list(option.train_replicas, int, "--train-replicas"))]
        if option.train_workers < 1:
            raise UserError(f"--train-workers must be at least 1, got {option.train_workers}")
        if option.profile_dir:
            check_writable(Path(option.profile_dir), "traces")
            if option.profile_steps < 1:
                raise UserError(f"--profile-steps must be at least 1, got {option.profile_steps}")
        if option.turns:
            from resnet_perf.isolated import needs_workers
            from resnet_perf.turns import Turns

            Turns(option.turns)  # its pipes must exist
            if needs_workers(matrix + latency):
                raise UserError("--threads, --onednn off, --fpmath bf16 and amp_bf16 measure in worker processes of "
                                "their own, not inside an A/B run's suite (compare such settings with --a-env/--b-env)")
        if option.peak_readings < 0:
            raise UserError(f"--peak-readings must be at least 0, got {option.peak_readings}")
        directory = results_dir(option)
    except UserError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[MATRIX] = matrix
    config.stash[LATENCY] = latency
    config.stash[MAX_BATCH] = max_batch_configs(matrix) if option.find_max_batch else []
    config.stash[TRAINING] = training
    config.stash[RECORDER] = Recorder(directory, sorted({compute_dtype(run.precision) for run in matrix}),
                                       option.peak_readings)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "run_config" in metafunc.fixturenames:
        matrix = metafunc.config.stash[MATRIX]
        metafunc.parametrize("run_config", matrix, ids=[config.run_id for config in matrix])
    if "max_batch_config" in metafunc.fixturenames:
        configs = metafunc.config.stash[MAX_BATCH]
        metafunc.parametrize("max_batch_config", configs, ids=[config.run_id for config in configs])
    if "latency_config" in metafunc.fixturenames:
        latency = metafunc.config.stash[LATENCY]
        metafunc.parametrize("latency_config", latency, ids=[config.run_id for config in latency])
    if "train_config" in metafunc.fixturenames:
        cases, workers = metafunc.config.stash[TRAINING], metafunc.config.option.train_workers
        metafunc.parametrize("train_config", cases, ids=[
            case.run_id + (f"-w{workers}" if case.strategy == "multiworker" else "") for case in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The latency and largest-batch cases exist only when asked for (``--latency``,
    ``--find-max-batch``): without them, their tests are deselected, not skipped as empty."""
    if not hasattr(config.option, "depths"):
        return
    asked = {"test_latency": config.stash[LATENCY], "test_max_batch": config.stash[MAX_BATCH]}
    unused = [item for item in items if getattr(item, "originalname", None) in asked
              and not asked[item.originalname]]
    if unused:
        config.hook.pytest_deselected(items=unused)
        items[:] = [item for item in items if item not in unused]


@pytest.fixture(scope="session")
def recorder(request: pytest.FixtureRequest) -> Recorder:
    return request.config.stash[RECORDER]


@pytest.fixture(autouse=True)
def release_models():
    """Drop each case's model, step functions and Keras graph state before the next case starts."""
    yield
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session):
    """The session's closing peak readings, after the last case (and before pytest-benchmark writes
    its JSON at session finish); none when no step case probed at the start or the run was stopped."""
    outcome = yield
    recorder = session.config.stash.get(RECORDER, None)
    if recorder is not None and recorder.peak_readings and outcome.excinfo is None and not session.shouldstop:
        recorder.probe_peaks()


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    """Session data in pytest-benchmark's JSON, beside the rows in each benchmark's extra_info."""
    from resnet_perf.results import PYTEST_BENCHMARK_KEY

    recorder = config.stash.get(RECORDER, None)
    if recorder is not None:
        output_json[PYTEST_BENCHMARK_KEY] = recorder.session_data()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    recorder = session.config.stash.get(RECORDER, None)
    if recorder is not None and recorder.rows:
        recorder.save()
        if recorder.save_error:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR if exitstatus == 0 else exitstatus
    if session.config.stash.get(TERMINATED, False):
        session.exitstatus = 128 + signal.SIGTERM


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    recorder = config.stash.get(RECORDER, None)
    if recorder is None or not recorder.rows:
        return
    from resnet_perf.flops import session_peaks, with_derived_metrics
    from resnet_perf.tables import extra_tables, format_table, format_training_table, tabulate_frame

    terminalreporter.section("resnet_perf results")
    if any(row["bench"] in ("step", "memory") for row in recorder.rows):
        terminalreporter.write_line(format_table(with_derived_metrics(recorder.rows,
                                                                      session_peaks(recorder.peak_readings))))
    for title, frame in extra_tables(recorder.rows):
        terminalreporter.write_line(f"\n{title}:\n{tabulate_frame(frame)}")
    if any(row["bench"] == "train" for row in recorder.rows):
        terminalreporter.write_line(format_training_table(recorder.rows))
    if recorder.saved_to:
        terminalreporter.write_line(f"rows written to {recorder.saved_to}")
    if config.option.profile_dir and any(row.get("trace") for row in recorder.rows):
        from resnet_perf.profile import view_commands

        terminalreporter.write_line(f"traces of every step case: {view_commands(Path(config.option.profile_dir))}")
    if recorder.save_error:
        terminalreporter.write_line(f"error: {recorder.save_error}", red=True)
