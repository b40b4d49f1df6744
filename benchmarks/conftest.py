"""The benchmark suite: the configuration matrix from command-line options, the cases, the report.

    pytest benchmarks/ --benchmark-only [--depths 18,50] [--precisions fp32,mixed_bf16] [--xla off,on]
        [--layouts nhwc] [--batch-size 16] [--image-size 112] [--steps 10] [--warmup 2]
        [--reference keras] [--results-dir results]

At the end of the session every measured (and skipped) case is printed as one table and written
to ``{results-dir}/bench-<UTC time>.json`` (never over an earlier file), also after a failure or
Ctrl-C, so no measured result is lost.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resnet_perf.config import RunConfig, expand_matrix
from resnet_perf.errors import UserError

MATRIX = pytest.StashKey[list]()
RECORDER = pytest.StashKey["Recorder"]()

XLA_SWITCH = {"on": True, "off": False}


def _comma_list(text: str, convert: Callable[[str], Any], option: str) -> list:
    try:
        values = [convert(part.strip()) for part in text.split(",") if part.strip()]
    except (KeyError, ValueError):
        raise UserError(f"{option}: cannot read {text!r} as a comma-separated list") from None
    if not values:
        raise UserError(f"{option}: give at least one value")
    return values


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resnet_perf", "resnet_perf benchmark matrix (comma-separated lists)")
    group.addoption("--depths", default="18,50", help="ResNet depths (default 18,50)")
    group.addoption("--precisions", default="fp32,mixed_bf16",
                    help="fp32, mixed_fp16, mixed_bf16 (default fp32,mixed_bf16)")
    group.addoption("--xla", default="off,on", help="XLA jit_compile: off, on (default off,on)")
    group.addoption("--layouts", default="nhwc", help="nhwc, nchw (default nhwc)")
    group.addoption("--batch-size", default="16", help="images per step (default 16)")
    group.addoption("--image-size", default="112", help="image height = width (default 112)")
    group.addoption("--steps", type=int, default=10, help="timed steps per case (default 10)")
    group.addoption("--warmup", type=int, default=2, help="untimed steps after the first call (default 2)")
    group.addoption("--reference", choices=("keras",), default=None,
                    help="also measure keras.applications.ResNet50/101/152 on the same configs")
    group.addoption("--results-dir", default="results", help="where the session's JSON goes (default results/)")


class Recorder:
    """Collects the session's rows; writes and prints them once at the end."""

    def __init__(self, results_dir: Path) -> None:
        self.results_dir = results_dir
        self.rows: list[dict[str, Any]] = []
        self.saved_to: Path | None = None
        self.save_error: str | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def save(self) -> None:
        from resnet_perf.measure import matmul_peak_flops
        from resnet_perf.results import save_rows
        from resnet_perf.runtime import environment

        peaks = {dtype: matmul_peak_flops(dtype) for dtype in sorted({row["compute_dtype"] for row in self.rows})}
        try:
            self.saved_to = save_rows(self.results_dir, "bench", self.rows, environment(), matmul_peak_flops=peaks)
        except UserError as error:
            self.save_error = str(error)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config.option, "depths"):  # this conftest was not loaded at start-up
        return
    option = config.option
    try:
        matrix = expand_matrix(
            depths=_comma_list(option.depths, int, "--depths"),
            precisions=_comma_list(option.precisions, str, "--precisions"),
            xla=_comma_list(option.xla, XLA_SWITCH.__getitem__, "--xla"),
            layouts=_comma_list(option.layouts, str, "--layouts"),
            batch_sizes=_comma_list(option.batch_size, int, "--batch-size"),
            image_sizes=_comma_list(option.image_size, int, "--image-size"),
            warmup=option.warmup, steps=option.steps, reference=option.reference)
    except UserError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[MATRIX] = matrix
    config.stash[RECORDER] = Recorder(Path(option.results_dir))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "run_config" in metafunc.fixturenames:
        matrix = metafunc.config.stash[MATRIX]
        metafunc.parametrize("run_config", matrix, ids=[config.run_id for config in matrix])


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Recorder:
    return request.config.stash[RECORDER]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    recorder = session.config.stash.get(RECORDER, None)
    if recorder is None or not recorder.rows:
        return
    recorder.save()
    if recorder.save_error:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR if exitstatus == 0 else exitstatus


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    recorder = config.stash.get(RECORDER, None)
    if recorder is None or not recorder.rows:
        return
    from resnet_perf.compare import format_table

    terminalreporter.section("resnet_perf results")
    terminalreporter.write_line(format_table(recorder.rows))
    if recorder.saved_to:
        terminalreporter.write_line(f"rows written to {recorder.saved_to}")
    if recorder.save_error:
        terminalreporter.write_line(f"error: {recorder.save_error}", red=True)
