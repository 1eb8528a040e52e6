"""Line and step charts as inline SVG, for the simulator's HTML report: real axes with ticks
and labels, vertical markers for events (the failure, the restore), a legend. No scripts and
no external files, so the report is one page an operator can forward.

Ticks are "nice" numbers (1, 2 or 5 times a power of ten), as plotting libraries choose them,
so an axis reads 0, 20, 40, 60 s rather than 0, 17.3, 34.6.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Sequence

import attrs

WIDTH, HEIGHT = 720, 270
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 44, 40


@attrs.frozen
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    colour: str
    step: bool = False  # draw as a staircase (a CDF), not straight segments


@attrs.frozen
class Marker:
    """A vertical line at `x` with a label: an event on the time axis."""

    x: float
    label: str
    colour: str
    kind: str  # a CSS class, so a test (or a stylesheet) can find "failure", "restore"


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (a step of 1, 2 or 5 times a power of ten), the first at or below
    `lo`, the last at or above `hi` (the axis then spans exactly the ticks): of the steps giving
    3 to `count` + 2 intervals, the one that wastes least room past the data, then the one with
    more ticks (0-120 s reads 0, 20, ... 120, not 0, 50, 100, 150)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count - 1)
    exponent = math.floor(math.log10(raw))
    best: tuple[float, int, float] | None = None
    for e in (exponent - 1, exponent, exponent + 1):
        for m in (1, 2, 5):
            step = m * 10.0**e
            first = math.floor(lo / step + 1e-9)
            last = math.ceil(hi / step - 1e-9)
            intervals = last - first
            if not 3 <= intervals <= count + 2:
                continue
            key = ((last - first) * step, -intervals, step)
            if best is None or key < best:
                best = key
    step = best[2] if best else 10.0 ** math.ceil(math.log10(hi - lo))
    first_i = math.floor(lo / step + 1e-9)
    last_i = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first_i, last_i + 1)]


def _fmt(value: float) -> str:
    return f"{value:g}"


def chart(
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float] | None = None,
    markers: Sequence[Marker] = (),
    y_fmt: Callable[[float], str] = _fmt,
) -> str:
    x_lo, x_hi = x_range
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0
    if y_range is None:
        y_max = max([1.0] + [y for s in series for _, y in s.points])
        y_range = (0.0, y_max)
    y_ticks = nice_ticks(*y_range)
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    x_ticks = nice_ticks(x_lo, x_hi)
    x_lo, x_hi = x_ticks[0], x_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + plot_w * (x - x_lo) / (x_hi - x_lo)

    def sy(y: float) -> float:
        return TOP + plot_h - plot_h * (y - y_lo) / ((y_hi - y_lo) or 1.0)

    esc = html.escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{esc(title)}">',
        f'<text x="{LEFT}" y="16" class="title">{esc(title)}</text>',
    ]
    for t in x_ticks:
        x = sx(t)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}"/>'
            f'<text class="tick x" x="{x:.1f}" y="{TOP + plot_h + 14}" '
            f'text-anchor="middle">{esc(_fmt(t))}</text>'
        )
    for t in y_ticks:
        y = sy(t)
        out.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}"/>'
            f'<text class="tick y" x="{LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{esc(y_fmt(t))}</text>'
        )
    out.append(
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" '
        f'y2="{TOP + plot_h}"/>'
        f'<text class="label x" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{esc(x_label)}</text>'
        f'<text class="label y" transform="translate(12 {TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{esc(y_label)}</text>'
    )
    for m in markers:
        if not x_lo <= m.x <= x_hi:
            continue
        x = sx(m.x)
        out.append(
            f'<g class="marker {esc(m.kind)}" data-x="{m.x:g}">'
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" '
            f'stroke="{m.colour}" stroke-dasharray="4 3" stroke-width="1.5"/>'
            f'<text x="{x + 4:.1f}" y="{TOP + 10}" fill="{m.colour}">{esc(m.label)}</text></g>'
        )
    legend_x = LEFT
    for s in series:
        pts = list(s.points)
        if s.step and pts:
            stairs = [pts[0]]
            for (_, y0), (x1, y1) in itertools.pairwise(pts):
                stairs += [(x1, y0), (x1, y1)]
            pts = stairs
        if pts:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            out.append(
                f'<polyline class="series" fill="none" stroke="{s.colour}" stroke-width="2" '
                f'points="{path}"/>'
            )
        # the legend sits in one row above the plot, clear of the lines and the markers
        lx = legend_x
        legend_x += 30 + 7 * len(s.label)
        out.append(
            f'<rect x="{lx}" y="{TOP - 17}" width="14" height="3" fill="{s.colour}"/>'
            f'<text class="legend" x="{lx + 18}" y="{TOP - 12}">{esc(s.label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def cdf_points(values: Sequence[float]) -> list[tuple[float, float]]:
    """(value, share of values at or below it, in %) for a staircase from 0."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return []
    return [(ordered[0], 0.0)] + [(v, 100.0 * (i + 1) / n) for i, v in enumerate(ordered)]
