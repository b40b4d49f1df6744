"""Small SVG charts for the report site, drawn here in Python: no script, no network, they open from
disk and print.  A time chart has one line per machine, a dot per run (its tooltip: time, commit,
value), whiskers for intervals and dashed marks at detected changes; a sparkline is its thumbnail.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
CHANGE_COLOR = "#c00000"


@dataclass(frozen=True)
class ChartPoint:
    x: float
    """POSIX seconds."""
    y: float
    tooltip: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ChartLine:
    name: str
    color: str
    points: Sequence[ChartPoint]


@dataclass(frozen=True)
class ChartMark:
    """A vertical dashed line at ``x`` (a detected change), labelled ``text``."""

    x: float
    text: str


RELATIVE_RESOLUTION = 1e-9
"""Values closer than this share of their magnitude are drawn as one level: ticks finer than that
could not be told apart in a label (and below a float's resolution they would not even advance)."""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) covering [low, high], for any
    finite ``low <= high``, however close or far apart; at least two, at most ``3 * count``."""
    if not math.isfinite(high - low):  # farther apart than a float holds: ticks of the halves, doubled
        return [2 * tick for tick in nice_ticks(low / 2, high / 2, count) if math.isfinite(2 * tick)]
    magnitude = max(abs(low), abs(high))
    if high - low <= magnitude * RELATIVE_RESOLUTION:  # one level: a band around it
        middle = (low + high) / 2
        pad = abs(middle) * 0.1 or 1.0
        low, high = middle - pad, middle + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(multiple * power for multiple in (1, 2, 5, 10) if multiple * power >= raw)
    digits = max(0, 1 - math.floor(math.log10(step)))  # a tick's decimals: float noise rounded away
    first = math.floor(low / step) * step
    ticks = []
    for index in range(3 * count):  # bounded: the step makes about count ticks of the range
        ticks.append(round(first + index * step, digits))
        if first + index * step >= high - step * 0.001 and len(ticks) > 1:
            break
    return ticks


def _time_label(seconds: float, span: float) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return f"{moment:%Y-%m-%d}" if span > 3 * 86400 else f"{moment:%m-%d %H:%M}"


def time_chart(lines: Sequence[ChartLine], marks: Sequence[ChartMark], y_label: str,
               reference_y: float | None = None, width: int = 760, height: int = 260) -> str:
    """An SVG line chart of values over time, one line per ``ChartLine``, with a legend."""
    left, right, top, bottom = 64, 16, 12, 40
    xs = [point.x for line in lines for point in line.points] or [0.0]
    ys = [value for line in lines for point in line.points
          for value in (point.y, point.low, point.high) if value is not None and math.isfinite(value)]
    ys += [reference_y] if reference_y is not None else []
    x_low, x_high = min(xs), max(xs)
    if x_high - x_low < 60:  # one run, or runs a moment apart: an hour around them
        x_low, x_high = x_low - 1800, x_high + 1800
    ticks = nice_ticks(min(ys or [0.0]), max(ys or [1.0]))
    y_low, y_high = ticks[0], ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    parts = [f'<svg class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(y_label)} over time">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>']
    for tick in ticks:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end" class="tick">{tick:g}</text>')
    for index, anchor in enumerate(("start", "middle", "middle", "middle", "end")):  # the ends stay inside
        x = x_low + (x_high - x_low) * index / 4
        parts.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}" class="tick">'
                     f'{_time_label(x, x_high - x_low)}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.0f}" transform="rotate(-90 14 {top + plot_h / 2:.0f})" '
                 f'text-anchor="middle" class="axis">{escape(y_label)}</text>')
    if reference_y is not None:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(reference_y):.1f}" y2="{sy(reference_y):.1f}" '
                     f'stroke="#888" stroke-dasharray="2 3"/>')
    for mark in marks:
        parts.append(f'<g class="change-mark"><line x1="{sx(mark.x):.1f}" x2="{sx(mark.x):.1f}" y1="{top}" '
                     f'y2="{top + plot_h}" stroke="{CHANGE_COLOR}" stroke-dasharray="5 4"/>'
                     f'<text x="{sx(mark.x) + 4:.1f}" y="{top + 12}" class="mark" fill="{CHANGE_COLOR}">'
                     f'{escape(mark.text)}</text></g>')
    for line in lines:
        drawn = [point for point in line.points if math.isfinite(point.y)]
        parts.append(f'<g class="series" data-series="{escape(line.name)}">')
        if len(drawn) > 1:
            path = " ".join(f"{sx(point.x):.1f},{sy(point.y):.1f}" for point in drawn)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{line.color}" stroke-width="1.5"/>')
        for point in drawn:
            if point.low is not None and point.high is not None:
                parts.append(f'<line x1="{sx(point.x):.1f}" x2="{sx(point.x):.1f}" y1="{sy(point.low):.1f}" '
                             f'y2="{sy(point.high):.1f}" stroke="{line.color}"/>')
            parts.append(f'<circle cx="{sx(point.x):.1f}" cy="{sy(point.y):.1f}" r="3.5" fill="{line.color}">'
                         f'<title>{escape(point.tooltip)}</title></circle>')
        parts.append("</g>")
    for index, line in enumerate(lines):  # the legend, below the time axis
        x = left + index * 230
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{line.color}"/>'
                     f'<text x="{x + 14}" y="{height - 5}" class="legend">{escape(line.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline(values: Sequence[float], color: str, width: int = 120, height: int = 26) -> str:
    """A thumbnail of a series (finite values, oldest first), its last value as a dot."""
    drawn = [value for value in values if math.isfinite(value)]
    if not drawn:
        return ""
    low, high = min(drawn), max(drawn)
    span = high - low or 1.0
    step = (width - 6) / max(len(drawn) - 1, 1)
    coordinates = [(3 + index * step, height - 3 - (value - low) / span * (height - 6))
                   for index, value in enumerate(drawn)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    last_x, last_y = coordinates[-1]
    return (f'<svg class="spark" width="{width}" height="{height}">'
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.2"/>'
            f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.5" fill="{color}"/></svg>')
