"""Bar charts of throughput and MFU (matplotlib, headless)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from resnet_perf.analysis.regression import is_true
from resnet_perf.errors import UserError
from resnet_perf.files import partial_path


def check_plot_path(path: str | Path) -> Path:
    """``path`` if a PNG can be written under exactly that name (matplotlib would write ``DIR.png``
    for a directory or a name without the suffix); a ``UserError`` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--plot {path} is a directory: give a file name ending in .png")
    if path.suffix.lower() != ".png":
        raise UserError(f"--plot {path}: give a file name ending in .png")
    return path


def plot_bars(frame: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Write a PNG with images/s (top) and MFU % (bottom) per ``config step``, one bar per run.

    ``frame`` has ``run_id``, ``mode``, ``run``, ``images_per_sec`` and ``mfu`` columns; derived
    rows are left out (they were not measured).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: CI machines and servers
    import matplotlib.pyplot as plt

    measured = frame[~frame["derived"].map(is_true)].copy()
    measured["case"] = measured["run_id"] + " " + measured["mode"]
    throughput = measured.pivot_table(index="case", columns="run", values="images_per_sec", sort=False)
    mfu = measured.pivot_table(index="case", columns="run", values="mfu", sort=False) * 100
    if throughput.empty:
        raise UserError("nothing to plot: no measured throughput in these results")
    runs = list(dict.fromkeys(measured["run"]))
    throughput, mfu = throughput.reindex(columns=runs), mfu.reindex(index=throughput.index, columns=runs)
    height = max(4.0, 0.3 * len(throughput) * max(1, len(runs)) / 2 + 2)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 2 * height), constrained_layout=True)
    throughput.plot.barh(ax=top, legend=len(runs) > 1)
    top.set_xlabel("images/s (median step)")
    top.set_title(title)
    mfu.plot.barh(ax=bottom, legend=False)
    bottom.set_xlabel("MFU % (achieved FLOP/s / measured matmul peak)")
    for axis in (top, bottom):
        axis.invert_yaxis()  # first config at the top, as in the tables
        axis.set_ylabel("")
    path = check_plot_path(path)
    temporary = partial_path(path)  # renamed into place when whole: an earlier plot is never half-replaced
    try:
        figure.savefig(temporary, dpi=100, format="png")
        os.replace(temporary, path)
    except OSError as error:
        raise UserError(f"cannot write the plot to {path}: {error.strerror or error}") from None
    finally:
        temporary.unlink(missing_ok=True)
        plt.close(figure)
    return path
