"""Whether a fast configuration is shown to train: the median final test accuracy of its training
runs against float32's, the runs alike in everything but precision and batch norm (no printing here).

A configuration whose median falls more than ``MARGIN`` below the float32 default's (precision fp32,
Keras's batch norm) is *below fp32*: its speed is real, its training is not shown to match.
``python -m resnet_perf.compare --accuracy`` puts the verdict beside each best configuration.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from resnet_perf.errors import UserError
from resnet_perf.training.recipes import PLAIN_TRAINING

MARGIN = 0.003
"""0.3 points of test accuracy."""
REFERENCE = ("fp32", "keras")
SAME_TRAINING = ("recipe", "depth", "image_size", "batch_size", "epochs", "lr", "schedule", "momentum", "nesterov",
                 "weight_decay", "clip_norm", "label_smoothing", "augment", "ema", "zero_init_residual", "test_flip",
                 "test_shift", "layout", "xla")
"""The settings two runs must share for their accuracies to be compared."""


def final_accuracy(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """The test accuracy a training run ended with: after its last epoch, or at the evaluation that
    reached its target when it stopped there; ``None`` for a run stopped before either."""
    evaluated = [row for row in rows if row.get("test_accuracy") is not None]
    if not evaluated:
        return None
    last = evaluated[-1]
    complete = last.get("epoch") == last.get("epochs")
    stopped_at_target = bool(last.get("stop_at_target")) and last["test_accuracy"] >= last.get("target_accuracy", 1.0)
    return float(last["test_accuracy"]) if complete or stopped_at_target else None


@dataclass(frozen=True)
class Trained:
    """The final test accuracies of one configuration's runs, and float32's median (if it has runs)."""

    finals: tuple[float, ...]
    reference: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.finals)

    @property
    def below_reference(self) -> bool:
        return self.reference is not None and self.median < self.reference - MARGIN

    def text(self) -> str:
        spread = f" ({min(self.finals):.4f}-{max(self.finals):.4f})" if len(self.finals) > 1 else ""
        said = f"{self.median:.4f} median of {len(self.finals)}{spread}"
        if self.reference is None:
            return f"{said}; no fp32 runs to judge it against"
        if self.below_reference:
            return f"{said}: {(self.reference - self.median) * 100:.1f} points below fp32's {self.reference:.4f}, not shown to train"
        return f"{said}, fp32 {self.reference:.4f}"


@dataclass(frozen=True)
class Judged:
    """Every configuration's ``Trained``, keyed by (precision, batch norm); the shared settings; runs left out."""

    configurations: dict[tuple[str, str], Trained]
    settings: dict[str, Any]
    incomplete: int

    def text_for(self, precision: str, batch_norm: str) -> str:
        trained = self.configurations.get((precision, batch_norm))
        return trained.text() if trained else "not trained"


def judge(runs: Iterable[Sequence[Mapping[str, Any]]]) -> Judged:
    """``runs``: the rows of each training run.  Every run must share ``SAME_TRAINING`` (one recipe, as
    it was set): comparing the accuracies of different trainings would say nothing of the switches."""
    finals: dict[tuple[str, str], list[float]] = defaultdict(list)
    trainings: dict[tuple, None] = {}  # the SAME_TRAINING values of each training, in the order met
    incomplete = 0
    for rows in runs:
        if not rows:
            continue
        first = rows[0]
        # a setting newer than the run (missing from its rows) counts as plain, as in its run_id
        trainings.setdefault(tuple(first.get(name, PLAIN_TRAINING.get(name)) for name in SAME_TRAINING))
        final = final_accuracy(rows)
        if final is None:
            incomplete += 1
        else:
            finals[(first.get("precision"), first.get("batch_norm"))].append(final)
    if not trainings:
        raise UserError("no training runs among the accuracy files")
    settings = [dict(zip(SAME_TRAINING, values)) for values in trainings]
    if len(settings) > 1:
        described = "; ".join(", ".join(f"{name}={value}" for name, value in alike.items() if value is not None)
                              for alike in settings[:2])
        raise UserError(f"the accuracy files hold {len(settings)} different trainings (apart from precision and "
                        f"batch norm), e.g. {described}: give the runs of one")
    reference = statistics.median(finals[REFERENCE]) if finals.get(REFERENCE) else None
    configurations = {switches: Trained(tuple(values), reference) for switches, values in finals.items()}
    return Judged(configurations, settings[0], incomplete)
