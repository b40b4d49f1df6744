"""One training epoch: its steps timed (``run_epoch``), what its wall time was made of (``EpochTiming``), and what
it shows while it runs (``EpochProgress``).

``run_epoch`` runs and measures; it hands each step's running figures to the progress display and prints nothing
itself.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from resnet_perf.bench.timing import finish
from resnet_perf.errors import UserError
from resnet_perf.machine.cpu_usage import CpuCounters, read_counters, row_fields

# Into a pipe the bar prints only at an epoch's end: a line this often in between shows a long epoch
# (an epoch of the d2l recipe takes 11-20 minutes on 2 cores: 650 s on Zen 4, 910-1,175 s on Zen 3) is running.
PIPE_PROGRESS_S = 60.0


@dataclass
class EpochTiming:
    """Where an epoch's wall time went: ``wall_s = compile_s + sum(step_times_s) + data_wait_s + other_s``.

    ``compile_s``: the run's first step (tracing, XLA), in the first epoch only; ``step_times_s``:
    every other step, each finished (devices synced, results fetched); ``data_wait_s``: waiting for
    the next batch; ``other_s``: the rest (progress bar, Python); ``cpu``: what the CPU gave the
    epoch after its compile step (this process's CPU time, the machine's steal and throttling).
    """

    wall_s: float
    compile_s: float
    step_times_s: list[float]
    data_wait_s: float
    cpu: CpuCounters | None = None

    @property
    def other_s(self) -> float:
        return self.wall_s - self.compile_s - sum(self.step_times_s) - self.data_wait_s

    def as_row(self, batch_size: int) -> dict[str, Any]:
        """The epoch's timing fields; images/s over the timed steps only (the compile step left out);
        the CPU's fields as a step row has them (``resnet_perf.machine.cpu_usage.row_fields``)."""
        timed = self.wall_s - self.compile_s
        return {"epoch_time_s": self.wall_s, "compile_s": self.compile_s, "step_time_sum_s": sum(self.step_times_s),
                "data_wait_s": self.data_wait_s, "other_s": self.other_s, "step_times_s": self.step_times_s,
                "images_per_sec": len(self.step_times_s) * batch_size / timed if timed > 0 else None,
                **(row_fields([self.cpu]) if self.cpu else {})}


class EpochProgress:
    """An epoch's progress as it runs: Keras's live bar on a terminal; into a pipe (CI logs, the launcher) the
    bar's one line at the epoch's end, and a progress line (``write``) every ``PIPE_PROGRESS_S`` in between."""

    def __init__(self, steps: int, write: Callable[[str], None], live: bool | None = None) -> None:
        import keras  # loads TensorFlow: not when this module is imported, before the run's process settings

        self.steps, self.write = steps, write
        self.live = sys.stdout.isatty() if live is None else live
        self.bar = keras.utils.Progbar(steps, stateful_metrics=["loss", "acc", "img/s"], verbose=1 if self.live else 2)
        self.next_line = time.perf_counter() + PIPE_PROGRESS_S

    def update(self, step: int, elapsed_s: float, mean_loss: float, accuracy: float, images: float) -> None:
        """After ``step`` of the epoch's steps, ``elapsed_s`` into it, ``images`` seen so far."""
        pace = images / elapsed_s
        self.bar.update(step, [("loss", mean_loss), ("acc", accuracy), ("img/s", pace)])
        now = time.perf_counter()
        if not self.live and step < self.steps and now >= self.next_line:
            self.write(f"  step {step}/{self.steps}: {elapsed_s:.0f} s, loss {mean_loss:.4f}, acc {accuracy:.4f}, "
                       f"{pace:.0f} img/s")
            self.next_line = now + PIPE_PROGRESS_S


def run_epoch(train_step: Callable, batches: Iterator, steps: int, batch_size: int, first_epoch: bool,
              progress: EpochProgress, sync: bool = True) -> tuple[EpochTiming, dict[str, Any]]:
    """Run ``steps`` calls of ``train_step`` (a batch -> its summed loss and correct predictions) on the batches
    of the iterator ``batches``; return their timing and the epoch's mean loss and accuracy, with every step's
    loss (a spike shows where it began).  ``sync``: finish each step on its devices before its time is read
    (``resnet_perf.bench.timing.finish``).  A loss that is not finite ends the run with a ``UserError``."""
    timing = EpochTiming(wall_s=0.0, compile_s=0.0, step_times_s=[], data_wait_s=0.0)
    losses: list[float] = []
    loss_sum = correct = seen = 0.0
    epoch_start = time.perf_counter()
    before = read_counters()
    for step in range(1, steps + 1):
        asked = time.perf_counter()
        batch = next(batches)
        started = time.perf_counter()
        loss, right = finish(train_step(batch), sync=sync)
        ended = time.perf_counter()
        timing.data_wait_s += started - asked
        if first_epoch and step == 1:
            timing.compile_s = ended - started
            before = read_counters()  # the compile step's CPU time is none of the timed steps'
        else:
            timing.step_times_s.append(ended - started)
        loss = float(loss)
        if not math.isfinite(loss):
            raise UserError(f"the training loss became {loss} at step {step} of this epoch; the epochs "
                            f"before it are kept (a lower --lr, a --clip-norm, or fp32 may train)")
        losses.append(loss)
        loss_sum += loss
        correct += int(right)
        seen += batch_size
        progress.update(step, ended - epoch_start, loss_sum / step, correct / seen, seen)
    timing.wall_s = time.perf_counter() - epoch_start
    timing.cpu = read_counters().since(before)
    return timing, {"train_loss": loss_sum / steps, "train_accuracy": correct / seen, "step_losses": losses}
