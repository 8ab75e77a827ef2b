"""Scatter plots as inline SVG: no plotting library, no network, readable in any browser.

Each point carries a ``<title>``, so hovering it names the model or pair. Axes are probit
(probabilities placed at Phi^-1(p), ticks labelled in percent) or linear.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np
from scipy.stats import norm

_CLIP_IDS = itertools.count()  # unique clip-path ids across every plot of a page
_PROBIT_TICKS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Series:
    """Points ``(n, 2)`` in data units (probabilities on probit axes), one hover text each."""

    label: str
    points: np.ndarray
    tips: Sequence[str]
    color: str
    radius: float = 3.0
    opacity: float = 0.8


@dataclass(frozen=True)
class Line:
    """``y = slope * x + bias`` in axis units (probit units on probit axes)."""

    label: str
    slope: float
    bias: float
    color: str
    dash: str = ""


@dataclass(frozen=True)
class Axes:
    x_label: str
    y_label: str
    probit: bool = True
    width: int = 380
    height: int = 320
    same_scale: bool = True  # probit plots share one domain so that y = x is the diagonal
    extra_ticks: tuple[float, ...] = field(default=())


def scatter(series: Sequence[Series], lines: Sequence[Line], axes: Axes, *, diagonal: bool = True) -> str:
    """An ``<svg>`` element with the points, the lines clipped to the plot, a legend and ticks."""
    left, right, top, bottom = 52, 12, 12, 44
    width, height = axes.width - left - right, axes.height - top - bottom
    transform = _probit if axes.probit else np.asarray
    xs = np.concatenate([transform(s.points[:, 0]) for s in series if len(s.points)] or [np.zeros(1)])
    ys = np.concatenate([transform(s.points[:, 1]) for s in series if len(s.points)] or [np.zeros(1)])
    x_range, y_range = _domain(xs), _domain(ys)
    if axes.same_scale:
        x_range = y_range = (min(x_range[0], y_range[0]), max(x_range[1], y_range[1]))

    def px(v: np.ndarray | float) -> np.ndarray:
        return left + (np.asarray(v) - x_range[0]) / (x_range[1] - x_range[0]) * width

    def py(v: np.ndarray | float) -> np.ndarray:
        return top + (1 - (np.asarray(v) - y_range[0]) / (y_range[1] - y_range[0])) * height

    clip_id = f"clip{next(_CLIP_IDS)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{axes.width}" height="{axes.height}" '
        f'viewBox="0 0 {axes.width} {axes.height}" role="img">',
        f'<defs><clipPath id="{clip_id}"><rect x="{left}" y="{top}" width="{width}" height="{height}"/></clipPath></defs>',
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="#fff" stroke="#bbb"/>',
    ]
    parts += _ticks(x_range, axes.probit, lambda v: (float(px(v)), top + height), horizontal=True)
    parts += _ticks(y_range, axes.probit, lambda v: (left, float(py(v))), horizontal=False)
    clip = f'clip-path="url(#{clip_id})"'
    if diagonal:
        lo, hi = x_range
        parts.append(
            f'<line x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" stroke="#999" '
            f'stroke-dasharray="2 3" {clip}><title>y = x</title></line>'
        )
    for line in lines:
        lo, hi = x_range
        parts.append(
            f'<line x1="{px(lo):.1f}" y1="{py(line.slope * lo + line.bias):.1f}" x2="{px(hi):.1f}" '
            f'y2="{py(line.slope * hi + line.bias):.1f}" stroke="{line.color}" stroke-width="1.6" '
            f'stroke-dasharray="{line.dash}" {clip}><title>{escape(line.label)}</title></line>'
        )
    for s in series:
        x, y = px(transform(s.points[:, 0])), py(transform(s.points[:, 1]))
        parts.append(f'<g fill="{s.color}" fill-opacity="{s.opacity}">')
        parts += [
            f'<circle cx="{a:.1f}" cy="{b:.1f}" r="{s.radius}"><title>{escape(tip)}</title></circle>'
            for a, b, tip in zip(x, y, s.tips)
        ]
        parts.append("</g>")
    if len(series) + len(lines) > 1:
        parts += _legend([*series, *lines], left + 8, top + 14)
    parts.append(
        f'<text x="{left + width / 2:.0f}" y="{axes.height - 6}" text-anchor="middle" class="axis">{escape(axes.x_label)}</text>'
        f'<text transform="translate(13 {top + height / 2:.0f}) rotate(-90)" text-anchor="middle" class="axis">'
        f"{escape(axes.y_label)}</text></svg>"
    )
    return "".join(parts)


def _probit(p: np.ndarray) -> np.ndarray:
    return norm.ppf(np.clip(p, 1e-3, 1 - 1e-3))


def _domain(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.05 * (hi - lo), 0.05)
    return lo - pad, hi + pad


def _ticks(domain: tuple[float, float], probit: bool, place: object, *, horizontal: bool) -> list[str]:
    if probit:
        values = [(float(norm.ppf(p)), f"{100 * p:g}") for p in _PROBIT_TICKS]
    else:
        step = _nice_step(domain[1] - domain[0])
        grid = np.arange(np.ceil(domain[0] / step) * step, domain[1], step).round(10) + 0.0  # no "-0"
        values = [(float(v), f"{v:g}") for v in grid]
    out = []
    for value, label in values:
        if not domain[0] <= value <= domain[1]:
            continue
        x, y = place(value)  # type: ignore[operator]
        if horizontal:
            out.append(
                f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#666"/>'
                f'<text x="{x:.1f}" y="{y + 15}" text-anchor="middle" class="tick">{label}</text>'
            )
        else:
            out.append(
                f'<line x1="{x - 4}" y1="{y:.1f}" x2="{x}" y2="{y:.1f}" stroke="#666"/>'
                f'<text x="{x - 6}" y="{y + 3:.1f}" text-anchor="end" class="tick">{label}</text>'
            )
    return out


def _nice_step(span: float) -> float:
    raw = span / 5
    magnitude = 10 ** np.floor(np.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def _legend(items: Sequence[Series | Line], x: float, y: float) -> list[str]:
    out = []
    for k, item in enumerate(items):
        row = y + 14 * k
        mark = (
            f'<circle cx="{x + 5}" cy="{row - 4}" r="3.5" fill="{item.color}"/>'
            if isinstance(item, Series)
            else f'<line x1="{x}" y1="{row - 4}" x2="{x + 12}" y2="{row - 4}" stroke="{item.color}" stroke-width="2" '
            f'stroke-dasharray="{item.dash}"/>'
        )
        out.append(f'{mark}<text x="{x + 17}" y="{row}" class="legend">{escape(item.label)}</text>')
    return out
