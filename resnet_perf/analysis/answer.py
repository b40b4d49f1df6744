"""The answer a run gives, on one screen: per model, depth, batch, image size and step, the fastest
configuration, its speed-up over the fp32 default with its interval and verdict, why (the op
categories that changed, where the run has a breakdown), its lead over the runner-up, and the
switches that do not pay here (slower, or no difference within the band).

``findings`` computes (from a ``speedup.speedups`` frame); ``render`` writes the lines.  The wide
tables stay in the JSON, in ``python -m resnet_perf.compare`` and behind the suite's ``--wide-tables``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from resnet_perf.analysis.regression import METRICS, is_true, round_values
from resnet_perf.analysis.sequential import ALPHA, BAND, FASTER, SAME, SLOWER, UNDECIDED, Verdict, decide
from resnet_perf.analysis.speedup import SAME as GROUP_FIELDS


@dataclass(frozen=True)
class Finding:
    """One group's answer (a group: same model, depth, batch, image size and step)."""

    group: str
    fastest: str
    images_per_sec: float
    vs_baseline: Verdict | None
    why: str | None = None
    runner_up: str | None = None
    lead: Verdict | None = None
    do_not_pay: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)


def _group_label(row: pd.Series) -> str:
    model = "" if row["model"] == "resnet_perf" else f"{row['model']} "
    depth, batch, size = (int(row[name]) for name in ("depth", "batch_size", "image_size"))  # pandas made them floats
    return f"{model}ResNet-{depth} {row['mode']}, batch {batch}, {size}x{size}"


def _name(row: pd.Series) -> str:
    return row["switches"] if isinstance(row["switches"], str) and row["switches"] else "fp32 default"


def _estimate(row: pd.Series) -> str:
    """An undecided switch's ratio with its interval, so that the reader sees how far it is from a verdict:
    ``1.02x [0.958, 1.08]``, ``1.02x no interval (2 units)`` before the first look."""
    verdict = row["speedup_decision"]
    if isinstance(verdict, Verdict) and verdict.ratio is not None:
        return f"{verdict.ratio.value:.3g}x {verdict.ratio.interval_text()}"
    return f"{row['speedup']:.2f}x"


def findings(frame: pd.DataFrame, alpha: float = ALPHA, band: float = BAND) -> list[Finding]:
    """The answer of every group of a ``speedup.speedups`` frame that has its baseline measured."""
    usable = frame[~frame["derived"].map(is_true) & frame["images_per_sec"].notna()
                   & frame["baseline"].notna()]
    images_per_sec = METRICS["images_per_sec"]
    answers = []
    for _key, group in usable.groupby(list(GROUP_FIELDS), sort=False):
        ranked = group.sort_values("images_per_sec", ascending=False)
        best = ranked.iloc[0]
        runner_up = ranked.iloc[1] if len(ranked) > 1 else None
        others = group[group["switches"] != ""]
        answers.append(Finding(  # the verdict against fp32 and its why: speedups computed them
            group=_group_label(best), fastest=_name(best), images_per_sec=float(best["images_per_sec"]),
            vs_baseline=best["speedup_decision"] if isinstance(best["speedup_decision"], Verdict) else None,
            why=best["speedup_why"] if isinstance(best["speedup_why"], str) else None,
            runner_up=None if runner_up is None else _name(runner_up),
            lead=None if runner_up is None else decide(round_values(images_per_sec, best),
                                                       round_values(images_per_sec, runner_up), alpha, band),
            do_not_pay=[f"{_name(row)} ({row['speedup_verdict']}, {row['speedup']:.2f}x)"
                        for _i, row in others.iterrows() if row["speedup_verdict"] in (SLOWER, SAME)],
            undecided=[f"{_name(row)} ({_estimate(row)})" for _i, row in others.iterrows()
                       if row["speedup_verdict"] == UNDECIDED]))
    return answers


def render(answers: Sequence[Finding], rounds: Mapping[str, Any] | None = None, band: float = BAND) -> str:
    """The answer as lines of text: a block per group, then how the rounds ended."""
    lines = []
    for answer in answers:
        lines.append(f"{answer.group}: fastest is {answer.fastest}, {answer.images_per_sec:.1f} img/s")
        if answer.vs_baseline is not None:
            lines.append(f"  vs fp32 default: {answer.vs_baseline.text(band)}")
        if answer.why:
            lines.append(f"  why: {answer.why}")
        if answer.lead is not None:
            lead = answer.lead
            said = {FASTER: "ahead of", SAME: "level with", UNDECIDED: "not yet told apart from"}.get(lead.kind, "vs")
            lines.append(f"  {said} the runner-up {answer.runner_up}: {lead.text(band)}")
        if answer.do_not_pay:
            lines.append(f"  does not pay here: {', '.join(answer.do_not_pay)}")
        if answer.undecided:
            lines.append(f"  undecided: {', '.join(answer.undecided)}")
    if rounds:
        lines.append(f"rounds: {rounds.get('rounds')}, stopped because {rounds.get('stopped_because')}")
    return "\n".join(lines)


def decided_share(frame: pd.DataFrame) -> tuple[int, int]:
    """``(decided, total)`` switch verdicts of a ``speedup.speedups`` frame."""
    verdicts = frame["speedup_verdict"].dropna()
    return int((verdicts != UNDECIDED).sum()), int(len(verdicts))
