"""The benchmark suite: the configuration matrix from command-line options, the cases, the report.

    pytest benchmarks/ --benchmark-only [--depths 50] [--precisions auto|fp32,mixed_bf16,amp_bf16]
        [--xla auto|off,on] [--batch-norms auto|keras,fused] [--filter-grads auto|conv,gemm]
        [--modes forward,train] [--memory-modes train] [--layouts nhwc]
        [--batch-size 16] [--image-size 112] [--budget 270] [--rounds N] [--steps 1] [--warmup 2]
        [--threads auto,2:1] [--onednn on,off] [--fpmath default,bf16] [--wide-tables]
        [--breakdown] [--latency] [--latency-steps 30] [--find-max-batch] [--max-batch-memory GIB]
        [--peak-readings 3] [--reference keras] [--results-dir results] [--per-machine] [--profile-dir DIR] [--profile-steps 3]
        [--train-recipe fast] [--train-to-target] [--train-depths 18] [--train-precisions mixed_bf16]
        [--train-replicas 1] [--train-epochs 1] [--train-strategy mirrored|multiworker] [--train-workers 2]

By default the matrix is chosen for the hardware the run finds (``resnet_perf.bench.default_matrix``), and
the step cases are timed in rounds until every switch verdict is decided or ``--budget`` is spent
(``resnet_perf.analysis.sequential``).  At the end of the session the answer is printed on one screen (the
fastest configuration per depth and step, its speed-up over fp32 with its interval and why, and
the switches that do not pay: ``resnet_perf.analysis.answer``); every measured (and skipped) case is written
to ``{results-dir}/bench-<UTC time>.json`` (never over an earlier file), also after a failure,
Ctrl-C or SIGTERM, so no measured result is lost, and shown as wide tables with ``--wide-tables``.
The file keeps the session's matmul peak readings (taken before the first and after the last step
case) once; MFU is derived on reading.
"""
from __future__ import annotations

import argparse
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import resnet_perf
from resnet_perf import cli
from resnet_perf.bench.default_matrix import AUTO, choose_switches, gpu_capabilities
from resnet_perf.bench.maxbatch import check_search_start
from resnet_perf.bench.timing import PEAK_READINGS
from resnet_perf.config import AUTO_THREADS, MODES as MODES_ALL, ON_OFF, expand_matrix, gemm_layers, parse_threads
from resnet_perf.errors import UserError, require_choice
from resnet_perf.files import check_writable
from resnet_perf.machine.cpu import cpu_flags
from resnet_perf.machine.fingerprint import fingerprint, measured_on
from resnet_perf.precision import GRAPH_REWRITE_PRECISIONS, PRECISIONS, compute_dtype
from resnet_perf.training.recipes import DEFAULT_RECIPE, RECIPES, TrainConfig

resnet_perf.quiet_tensorflow_logs()  # before the test modules import TensorFlow
resnet_perf.enable_onednn()

MATRIX = pytest.StashKey[list]()
MODES = pytest.StashKey[list]()
MEMORY_MODES_ASKED = pytest.StashKey[list]()
MEMORY_MODES = ("forward", "train")
"""The steps ``test_memory`` can probe."""
LATENCY = pytest.StashKey[list]()
MAX_BATCH = pytest.StashKey[list]()
TERMINATED = pytest.StashKey[bool]()
TRAINING = pytest.StashKey[list]()
RECORDER = pytest.StashKey["Recorder"]()

FORWARD_PASS_MODES = ("forward", "train_forward")
"""Steps without a backward pass: the filter gradients' algorithm does not change them."""


BUDGET_S = 270.0


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


def suite_matrix(option: argparse.Namespace) -> list:
    """The configurations the options ask for; ``auto`` switches as ``default_matrix.choose_switches``
    picks them for this machine, with XLA as one comparison (fp32 + XLA beside fp32)."""
    choice = None
    if AUTO in (option.precisions, option.batch_norms, option.xla, option.filter_grads):
        choice = choose_switches(cpu_flags(), gpu_capabilities())
    precisions = list(choice.precisions) if option.precisions == AUTO else _comma_list(option.precisions, str,
                                                                                          "--precisions")
    if option.precisions == AUTO and option.turns:  # an A/B suite has no worker processes
        precisions = [name for name in precisions if name not in GRAPH_REWRITE_PRECISIONS]
    batch_norms = list(choice.batch_norms) if option.batch_norms == AUTO else _comma_list(option.batch_norms, str,
                                                                                             "--batch-norms")
    common = dict(depths=_comma_list(option.depths, int, "--depths"),
                  layouts=_comma_list(option.layouts, str, "--layouts"),
                  batch_sizes=_comma_list(option.batch_size, int, "--batch-size"),
                  image_sizes=_comma_list(option.image_size, int, "--image-size"),
                  warmup=option.warmup, steps=option.steps, reference=option.reference,
                  threads=_comma_list(option.threads, _threads_text, "--threads"),
                  onednn=_comma_list(option.onednn, ON_OFF.__getitem__, "--onednn"),
                  fpmath=_comma_list(option.fpmath, str, "--fpmath"))
    filter_grads = ["conv"] if option.filter_grads == AUTO else _comma_list(option.filter_grads, str,
                                                                            "--filter-grads")
    if option.xla != AUTO:
        matrix = expand_matrix(precisions=precisions, batch_norms=batch_norms, filter_grads=filter_grads,
                               xla=_comma_list(option.xla, ON_OFF.__getitem__, "--xla"), **common)
    else:
        matrix = expand_matrix(precisions=precisions, batch_norms=batch_norms, filter_grads=filter_grads, xla=[False],
                               **common)
        if choice.xla_comparison and "fp32" in precisions:
            matrix += expand_matrix(precisions=["fp32"], batch_norms=[batch_norms[0]], filter_grads=filter_grads[:1],
                                    xla=[True], **common)
    if option.filter_grads == AUTO and choice.gemm_comparison:
        matrix += [config.replace(filter_grad="gemm") for config in matrix
                   if config.batch_norm == "fused" and config.layout == "nhwc" and not config.xla
                   and gemm_layers(config.depth, config.image_size)]
    if not matrix:  # every combination asked for is one expand_matrix leaves out
        raise UserError("no configuration to measure: --fpmath other than default and amp_bf16 are oneDNN settings, "
                        "which --onednn off leaves out, and --filter-grads gemm needs --layouts nhwc and a depth "
                        "and image size where some layer takes it")
    return matrix


def _given(value: Any, default: Any) -> Any:
    """An option's value, or ``default`` when it was not given (0 is a value, refused where it is bad)."""
    return default if value is None else value


def _threads_text(text: str) -> str:
    parse_threads(text)
    return text


def latency_configs(matrix: Sequence, steps: int) -> list:
    """A batch-1 config (``steps`` steps per round) for every distinct config of ``matrix`` that is
    not batch 1 already: the latency cases (their forward step is timed)."""
    configs = {config.replace(batch_size=1, steps=steps, filter_grad="conv"): None  # forward: the same step
               for config in matrix if config.batch_size != 1}
    return list(configs)  # a dict keeps the matrix's order


def max_batch_configs(matrix: Sequence) -> list:
    """One config per configuration of ``matrix`` apart from its batch: the first batch listed, where
    the search for the largest batch starts."""
    firsts: dict = {}
    for config in matrix:
        firsts.setdefault(config.replace(batch_size=1), config)
    return list(firsts.values())


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resnet_perf", "resnet_perf benchmark matrix (a LIST is comma-separated: every "
                                           "combination of the lists is measured)")
    group.addoption("--depths", metavar="LIST", default="50", help="ResNet depths: 18, 34, 50, 101, 152 (default 50)")
    group.addoption("--precisions", metavar="LIST", default=AUTO,
                    help=f"{', '.join(PRECISIONS)}, or auto: what can pay off on this hardware (a CPU with bfloat16 "
                         "instructions: fp32,mixed_bf16,amp_bf16; without: fp32; resnet_perf.bench.default_matrix) "
                         "(default auto; amp_bf16: grappler's bf16 rewrite of the float32 model)")
    group.addoption("--xla", metavar="LIST", default=AUTO,
                    help="XLA jit_compile: off, on, or auto: off, plus fp32 with XLA as one comparison (default auto; "
                         "off,on crosses XLA with every configuration)")
    group.addoption("--modes", metavar="LIST", default="forward,train",
                    help=f"the steps to time: {', '.join(MODES_ALL)} (default forward,train)")
    group.addoption("--memory-modes", metavar="LIST", default="train",
                    help="the steps whose peak memory is probed, each configuration in a fresh process: forward, "
                         "train, or none (default train)")
    group.addoption("--layouts", metavar="LIST", default="nhwc", help="nhwc, nchw (default nhwc)")
    group.addoption("--batch-size", metavar="LIST", default="16", help="images per step (default 16)")
    group.addoption("--image-size", metavar="LIST", default="112", help="image height = width (default 112)")
    group.addoption("--batch-norms", metavar="LIST", default=AUTO,
                    help="our model's batch norm: keras, fused (one TensorFlow op each way), or auto: keras,fused on "
                         "a CPU, keras on a GPU (default auto)")
    group.addoption("--filter-grads", metavar="LIST", default=AUTO,
                    help=f"{cli.FILTER_GRAD_HELP}; a comma-separated list, or auto: on a CPU, each configuration "
                         "with the fused batch norm also with gemm, in its training steps (default auto)")
    group.addoption("--threads", metavar="LIST", default=AUTO_THREADS,
                    help="TensorFlow thread pools as INTRA:INTER, or auto (default auto); cases with other "
                         "thread counts, oneDNN off, fpmath bf16 or amp_bf16 run in worker processes of their own")
    group.addoption("--onednn", metavar="LIST", default="on", help="TensorFlow's oneDNN kernels: on, off (default on)")
    group.addoption("--fpmath", metavar="LIST", default="default",
                    help="oneDNN's float32 math mode: default, bf16 (ONEDNN_DEFAULT_FPMATH_MODE=BF16) (default default)")
    group.addoption("--breakdown", action="store_true",
                    help="after its timing, trace each step case and put where its time went (by op category) "
                         "into its row and a breakdown table")
    group.addoption("--no-explain", dest="explain", action="store_false",
                    help="without --breakdown, the two fastest configurations and the fp32 baseline of every depth "
                         "and step are traced after the rounds (not timed) so the answer can say where the time "
                         "went; this skips those traces")
    group.addoption("--latency", action="store_true",
                    help="also measure batch-1 forward latency (p50/p99 ms) of every configuration")
    group.addoption("--latency-steps", type=int, default=30,
                    help="timed batch-1 steps per round of a latency case (default 30)")
    group.addoption("--find-max-batch", action="store_true",
                    help="also find the largest training batch of every configuration that runs, each probe "
                         "in a fresh process under --max-batch-memory")
    group.addoption("--max-batch-memory", type=float, default=None, metavar="GIB",
                    help="memory a --find-max-batch probe may use (default: 90%% of this machine's memory)")
    group.addoption("--budget", type=float, default=BUDGET_S, metavar="SECONDS",
                    help="time for the rounds: every step case is timed once per round, round after round, until "
                         "every switch verdict is decided (faster, slower, or no difference within +-5%%) or the "
                         "next look of the stopping rule would pass the budget (resnet_perf.analysis.sequential) "
                         f"(default {BUDGET_S:.0f}: the default run within 10 minutes on 2 cores)")
    group.addoption("--rounds", type=int, default=None,
                    help="at most this many rounds (default: no cap, the budget decides; fewer than 3 cannot decide)")
    group.addoption("--steps", type=int, default=1,
                    help="timed steps per case in each round, at least: a block is raised to 3 steps and 0.2 s "
                         "at its warm-up pace (resnet_perf.bench.rounds.MIN_BLOCK_S) (default 1)")
    group.addoption("--wide-tables", action="store_true",
                    help="also print every row as the wide table (it is always in the JSON and in compare)")
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
                       help=f"the recipe the training cases start from (resnet_perf.training.recipes; default {DEFAULT_RECIPE}); "
                            "the options below change its settings")
    training.addoption("--train-depths", metavar="LIST", help="depths to train (default: the recipe's)")
    training.addoption("--train-precisions", metavar="LIST", help="precisions to train (default: the recipe's)")
    training.addoption("--train-replicas", metavar="LIST", default="1",
                       help="MirroredStrategy replicas: N GPUs or N logical CPU devices (default 1)")
    training.addoption("--train-epochs", type=int,
                       help="epochs over all 60,000 images (default 1; with --train-to-target the recipe's)")
    training.addoption("--train-to-target", action="store_true",
                       help="train to the recipe's target accuracy (stopping there) and record the time to it")
    training.addoption("--train-batch-size", type=int, help="global batch (default: the recipe's)")
    training.addoption("--train-image-size", type=int,
                       help="images resized to (default: the recipe's for each run's precision)")
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
        self.rounds: dict[str, Any] = {}
        self.saved_to: Path | None = None
        self.save_error: str | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def probe_peaks(self) -> None:
        """Take the fixed set of matmul peak readings (``resnet_perf.bench.timing.probe_matmul_peaks``)."""
        from resnet_perf.bench.timing import probe_matmul_peaks

        if not self.readings:
            return
        for dtype, readings in probe_matmul_peaks(self.peak_dtypes, self.readings).items():
            self.peak_readings.setdefault(dtype, []).extend(readings)

    def session_data(self) -> dict[str, Any]:
        """What belongs to the session, not to a row: the peak readings and the environment."""
        from resnet_perf.machine.runtime import environment

        return {"matmul_peak_readings": self.peak_readings, "rounds": self.rounds, "environment": environment()}

    def save(self) -> None:
        from resnet_perf.analysis.results import save_rows

        data = self.session_data()
        try:
            self.saved_to = save_rows(self.results_dir, "bench", self.rows, data.pop("environment"), **data)
        except UserError as error:
            self.save_error = str(error)


def _take_interrupts(config: pytest.Config) -> None:
    """CI runners and ``timeout`` stop a job with SIGTERM: stop as on Ctrl-C, so the session finishes and
    saves every row measured so far, then exit with 128 + 15 (see ``pytest_sessionfinish``).  Ctrl-C
    acts however the suite was started (``cli.take_interrupts``); SIGTERM is then noted, for the status."""
    cli.take_interrupts()

    def terminate(signum, frame):
        config.stash[TERMINATED] = True
        raise cli.Terminated

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
    _take_interrupts(config)
    from resnet_perf.machine.runtime import git_commit

    git_commit()  # the code this session runs, read now (the environment is read at its end)
    option = config.option
    try:
        matrix = suite_matrix(option)
        modes = _comma_list(option.modes, str, "--modes")
        for mode in modes:
            require_choice("--modes step", mode, MODES_ALL)
        memory_modes = [] if option.memory_modes == "none" else _comma_list(option.memory_modes, str, "--memory-modes")
        for mode in memory_modes:
            require_choice("--memory-modes step", mode, MEMORY_MODES)
        if not option.budget > 0:
            raise UserError(f"--budget must be a positive number of seconds, got {option.budget}")
        if option.rounds is not None and option.rounds < 1:
            raise UserError(f"--rounds must be at least 1, got {option.rounds}")
        if option.max_batch_memory is not None and not option.max_batch_memory > 0:
            raise UserError(f"--max-batch-memory must be a positive number of GiB, got {option.max_batch_memory}")
        if option.latency_steps < 1:
            raise UserError(f"--latency-steps must be at least 1, got {option.latency_steps}")
        latency = latency_configs(matrix, option.latency_steps) if option.latency else []
        recipe = RECIPES[option.train_recipe]
        # unset: the recipe's for each run's precision (epochs: 1, or the recipe's when training to its target)
        given = {name: value for name, value in (("batch_size", option.train_batch_size),
                                                 ("image_size", option.train_image_size),
                                                 ("epochs", _given(option.train_epochs,
                                                                   None if option.train_to_target else 1)))
                 if value is not None}
        training = [
            TrainConfig.from_recipe(recipe.name, depth=depth, precision=precision, **given,
                                    stop_at_target=option.train_to_target, replicas=replicas,
                                    limit_train=option.train_limit, limit_test=option.train_limit,
                                    strategy=option.train_strategy)
            for depth in _comma_list(option.train_depths or str(recipe.depth), int, "--train-depths")
            for precision in _comma_list(option.train_precisions or recipe.precision, str, "--train-precisions")
            for replicas in (["auto"] if option.train_strategy == "multiworker"
                             else _comma_list(option.train_replicas, int, "--train-replicas"))]
        if option.train_workers < 1:
            raise UserError(f"--train-workers must be at least 1, got {option.train_workers}")
        if option.profile_steps < 1:  # --breakdown and the answer's explanation trace too
            raise UserError(f"--profile-steps must be at least 1, got {option.profile_steps}")
        if option.profile_dir:
            check_writable(Path(option.profile_dir), "traces")
        if option.find_max_batch:
            for config in max_batch_configs(matrix):
                check_search_start(config.batch_size)
        if option.turns:
            from resnet_perf.bench.turns import Turns
            from resnet_perf.processes.isolated import needs_workers

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
    config.stash[MODES] = modes
    config.stash[MEMORY_MODES_ASKED] = memory_modes
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
    ``--find-max-batch``), the step cases of the ``--modes`` and the memory cases of the
    ``--memory-modes`` asked for: the others are deselected, not skipped as empty; so are the
    forward-pass cases of a GEMM filter-gradient config whose conv twin is measured (the same step)."""
    if not hasattr(config.option, "depths"):
        return
    asked = {"test_latency": config.stash[LATENCY], "test_max_batch": config.stash[MAX_BATCH]}
    modes, memory_modes = config.stash[MODES], config.stash[MEMORY_MODES_ASKED]

    def unasked_mode(item: pytest.Item) -> bool:  # test_<mode> times <mode>; test_memory has a mode parameter
        name = getattr(item, "originalname", "")
        if name == "test_memory":
            return item.callspec.params["mode"] not in memory_modes
        return name.removeprefix("test_") in MODES_ALL and name.removeprefix("test_") not in modes
    matrix = set(config.stash[MATRIX])

    def forward_of_a_twin(item: pytest.Item) -> bool:  # a GEMM config's forward pass is its conv twin's
        run = item.callspec.params.get("run_config") if hasattr(item, "callspec") else None
        if run is None or run.filter_grad == "conv" or run.replace(filter_grad="conv") not in matrix:
            return False
        name = getattr(item, "originalname", "")
        mode = item.callspec.params["mode"] if name == "test_memory" else name.removeprefix("test_")
        return mode in FORWARD_PASS_MODES

    unused = [item for item in items if getattr(item, "originalname", None) in asked
              and not asked[item.originalname] or unasked_mode(item) or forward_of_a_twin(item)]
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
    from resnet_perf.analysis.results import PYTEST_BENCHMARK_KEY

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


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's table: the answer ends the run
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    recorder = config.stash.get(RECORDER, None)
    if recorder is None or not recorder.rows:
        return
    from resnet_perf.analysis.tables import extra_tables, format_table, format_training_table, tabulate_frame
    from resnet_perf.models.flops import session_peaks, with_derived_metrics

    terminalreporter.section("resnet_perf results")
    rows = with_derived_metrics(recorder.rows, session_peaks(recorder.peak_readings))
    if config.option.wide_tables and any(row["bench"] in ("step", "memory") for row in rows):
        terminalreporter.write_line(format_table(rows))
    for title, frame in extra_tables(rows):  # tables of what was asked for: --latency, --breakdown, ...
        terminalreporter.write_line(f"\n{title}:\n{tabulate_frame(frame)}")
    if any(row["bench"] == "train" for row in rows):
        terminalreporter.write_line("\n" + format_training_table(rows))
    if any(row["bench"] == "step" for row in rows):
        from resnet_perf.analysis.answer import decided_share, findings, render
        from resnet_perf.analysis.speedup import speedups
        from resnet_perf.analysis.tables import step_frame

        frame = speedups(step_frame(rows))
        decided, total = decided_share(frame)
        terminalreporter.write_sep("-", f"the answer: {decided} of {total} switch verdicts decided")
        terminalreporter.write_line(measured_on(fingerprint()))  # "here": figures are the CPU's
        terminalreporter.write_line(render(findings(frame), recorder.rounds))
    if recorder.saved_to:
        terminalreporter.write_line(f"rows written to {recorder.saved_to} "
                                    f"(every table: python -m resnet_perf.compare {recorder.saved_to})")
    if config.option.profile_dir and any(row.get("trace") for row in recorder.rows):
        from resnet_perf.profile import view_commands

        terminalreporter.write_line(f"traces of every step case: {view_commands(Path(config.option.profile_dir))}")
    if recorder.save_error:
        terminalreporter.write_line(f"error: {recorder.save_error}", red=True)
