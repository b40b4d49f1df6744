"""Which switch pays off: each configuration's throughput against its baseline configuration.

The baseline of a config is the same model, depth, batch, image size and step with the switches at
their reference values (fp32, XLA off, NHWC, unless told otherwise).  A speed-up is the ratio of
images/s at the median step; whether it is significant comes from the raw step times (see
``resnet_perf.regression``).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from resnet_perf.config import RunConfig
from resnet_perf.errors import UserError
from resnet_perf.regression import METRICS, is_true, metric_change

SWITCHES = ("precision", "xla", "layout")
REFERENCE = {"precision": "fp32", "xla": False, "layout": "nhwc"}
SAME = ("model", "depth", "batch_size", "image_size", "channels", "num_classes", "mode")


def switch_text(field: str, value: Any) -> str:
    """How a switch's value reads in a label: ``mixed_bf16``, ``xla``/``noxla``, ``nchw``."""
    if field == "xla":
        return "xla" if value else "noxla"
    return str(value)


def parse_baseline(text: str) -> dict[str, Any]:
    """``"precision=fp32,xla=off,layout=nhwc"`` (any subset) -> the reference switch values."""
    reference = dict(REFERENCE)
    for part in filter(None, (item.strip() for item in text.split(","))):
        field, _, value = part.partition("=")
        if field not in SWITCHES or not value:
            raise UserError(f"--baseline expects FIELD=VALUE for {', '.join(SWITCHES)}, got {part!r}")
        reference[field] = {"on": True, "off": False}.get(value, value) if field == "xla" else value
    if not isinstance(reference["xla"], bool):
        raise UserError(f"--baseline: xla must be on or off, got {reference['xla']!r}")
    RunConfig(precision=reference["precision"], layout=reference["layout"])  # names must exist
    return reference


def speedups(frame: pd.DataFrame, reference: dict[str, Any] = REFERENCE) -> pd.DataFrame:
    """Per measured (non-derived) row: its baseline config, the switches that differ, the speed-up.

    Columns added: ``baseline`` (run_id), ``switches`` (e.g. ``mixed_bf16+xla``), ``speedup``
    (images/s ratio), ``speedup_p``, ``speedup_significant``, ``vs_baseline`` (e.g.
    ``mixed_bf16+xla = 1.52x fp32+noxla``).  Rows without a baseline in the frame get none.
    """
    frame = frame.copy()
    for column in ("baseline", "switches", "speedup", "speedup_p", "speedup_significant", "vs_baseline"):
        frame[column] = None
    if not set(SAME + SWITCHES) <= set(frame.columns):
        return frame
    is_reference = pd.Series(True, index=frame.index)
    for field in SWITCHES:
        is_reference &= frame[field] == reference[field]
    derived = frame["derived"].map(is_true)
    baselines = frame[is_reference & ~derived]
    by_key = {tuple(row[field] for field in SAME): row for _index, row in baselines.iterrows()}
    images_per_sec = METRICS["images_per_sec"]
    for index, row in frame.iterrows():
        base = by_key.get(tuple(row[field] for field in SAME))
        if base is None or derived[index]:
            continue
        changed = [field for field in SWITCHES if row[field] != base[field]]
        change = metric_change(images_per_sec, base, row)
        if change["change"] is None:
            continue
        ratio = 1 + change["change"]
        frame.loc[index, ["baseline", "speedup", "speedup_p", "speedup_significant"]] = [
            base["run_id"], ratio, change["p"], change["significant"]]
        if changed:
            new = "+".join(switch_text(field, row[field]) for field in changed)
            old = "+".join(switch_text(field, base[field]) for field in changed)
            unsure = "" if change["significant"] else " (not significant)"
            frame.loc[index, ["switches", "vs_baseline"]] = [new, f"{new} = {ratio:.2f}x {old}{unsure}"]
        else:
            frame.loc[index, ["switches", "vs_baseline", "speedup_p", "speedup_significant"]] = ["", "baseline", None, None]
    return frame
