"""Matplotlib figures for papers: the agreement plot on probit axes and estimated vs true accuracy.

matplotlib is imported only when a figure is drawn (the ``plot`` extra), and with the
non-interactive Agg backend when no backend was chosen, so figures save on a headless machine.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import ndtri

from ontheline._io import atomic_write
from ontheline._optional import extra
from ontheline.agreement import fit_line

if TYPE_CHECKING:
    from ontheline.estimators import EstimateResult
    from ontheline.evaluate import Evaluation

_PROBIT_TICKS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
_CLIP = 1e-3  # agreement or accuracy of exactly 0 or 1 is drawn at 0.1% / 99.9%
FORMATS = ("png", "svg")
PAIR: dict[str, Any] = {"s": 6, "alpha": 0.35, "color": "#1f77b4", "linewidths": 0}
MODEL: dict[str, Any] = {"s": 16, "color": "#e6550d"}
ESTIMATE: dict[str, Any] = {"s": 16, "marker": "^", "color": "#2ca02c"}


def pyplot() -> Any:
    """matplotlib.pyplot, with a clear message when the extra is missing."""
    with extra("plot"):
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

    return plt


def probit_axis(p: Any) -> np.ndarray:
    """Phi^-1 of probabilities, clipped so that 0 and 1 stay on the plot."""
    return ndtri(np.clip(np.asarray(p, dtype=np.float64), _CLIP, 1 - _CLIP))


@dataclass(frozen=True)
class Points:
    """Probabilities to place on probit axes, with matplotlib scatter keywords."""

    label: str
    x: np.ndarray
    y: np.ndarray
    style: Mapping[str, Any]


@dataclass(frozen=True)
class ProbitLine:
    """``probit(y) = slope * probit(x) + bias``."""

    label: str
    slope: float
    bias: float
    dash: str = "-"
    color: str = PAIR["color"]


def plot_agreement(result: EstimateResult, *, ax: Any = None, ood_accuracy: Any = None) -> Any:
    """ID vs OOD agreement of every model pair and the fitted line; estimates, and the truth when given."""
    points, lines = [], []
    if result.id_agreement is not None and result.ood_agreement is not None:
        upper = np.triu_indices(len(result.models), k=1)
        points.append(Points("agreement (model pairs)", result.id_agreement[upper], result.ood_agreement[upper], PAIR))
    points.append(Points(f"{result.method} estimate (models)", result.id_accuracy, result.ood_accuracy, ESTIMATE))
    if result.line is not None:
        lines.append(ProbitLine(f"agreement line (R² {result.line.r2:.3f})", result.line.slope, result.line.bias, "-"))
    if ood_accuracy is not None:
        truth = np.asarray(ood_accuracy, dtype=np.float64)
        if truth.shape != result.id_accuracy.shape:
            raise ValueError(
                f"ood_accuracy has shape {truth.shape}; pass one true accuracy per model, shape {result.id_accuracy.shape}."
            )
        points.append(Points("true accuracy (models)", result.id_accuracy, truth, MODEL))
        x = probit_axis(result.id_accuracy)
        if np.ptp(x) > 0:
            slope, bias, r2 = fit_line(x, probit_axis(truth))
            lines.append(ProbitLine(f"accuracy line (R² {r2:.3f})", slope, bias, "--", MODEL["color"]))
    verdict = "holds" if result.trusted else "may not hold"
    return probit_scatter(points, lines, title=f"Agreement-on-the-line {verdict}", ax=ax)


def probit_scatter(points: Sequence[Points], lines: Sequence[ProbitLine], *, title: str, ax: Any = None) -> Any:
    """Points and lines on shared probit axes with percent ticks and the y = x diagonal."""
    if ax is None:
        _, ax = pyplot().subplots(figsize=(5, 4.5))
    placed = [(probit_axis(p.x), probit_axis(p.y)) for p in points]
    for p, (x, y) in zip(points, placed):
        ax.scatter(x, y, label=p.label, **p.style)
    lo, hi = _domain(placed)
    for line in lines:
        ends = [line.slope * lo + line.bias, line.slope * hi + line.bias]
        ax.plot([lo, hi], ends, color=line.color, lw=1.4, ls=line.dash, label=line.label)
    ax.plot([lo, hi], [lo, hi], color="#999", lw=0.8, ls=":", zorder=0)
    ticks = [p for p in _PROBIT_TICKS if lo <= ndtri(p) <= hi]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks([ndtri(p) for p in ticks], [f"{100 * p:g}" for p in ticks])
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("ID agreement or accuracy, % (probit scale)")
    ax.set_ylabel("OOD agreement or accuracy, % (probit scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)
    return ax


def plot_estimates(evaluation: Evaluation, *, ax: Any = None) -> Any:
    """Every method's estimate against the true OOD accuracy (needs OOD labels), with y = x."""
    if evaluation.ood_accuracy is None:
        raise ValueError("Estimated vs true accuracy needs the true OOD accuracy; pass OOD labels to evaluate().")
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    truth = 100 * evaluation.ood_accuracy
    mae = evaluation.mae()
    for k, (method, result) in enumerate(evaluation.results.items()):
        ax.scatter(
            truth, 100 * result.ood_accuracy, s=14, alpha=0.8, color=f"C{k}",
            label=f"{method} (MAE {mae[method]:.1f})",
        )  # fmt: skip
    lo = min(ax.get_xlim()[0], ax.get_ylim()[0])
    hi = max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([lo, hi], [lo, hi], color="#999", lw=0.8, ls=":", zorder=0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("true OOD accuracy, %")
    ax.set_ylabel("estimated OOD accuracy, %")
    ax.set_title("Estimated vs true OOD accuracy (MAE in points)", fontsize=10)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)
    return ax


def save_figure(ax: Any, folder: Path, stem: str, formats: Sequence[str] = FORMATS, dpi: int = 200) -> list[Path]:
    """Save the Axes' figure as ``stem.png`` and ``stem.svg`` (atomically, at ``dpi``), close it, return the paths."""
    figure = ax.figure
    figure.tight_layout()
    paths = []
    for fmt in formats:
        path = folder / f"{stem}.{fmt}"
        with atomic_write(path) as handle:
            figure.savefig(handle, format=fmt, dpi=dpi)
        paths.append(path)
    pyplot().close(figure)
    return paths


def save_evaluation_figures(evaluation: Evaluation, folder: str | Path) -> list[Path]:
    """``agreement.png|svg`` and, with OOD labels, ``estimates.png|svg`` in ``folder``."""
    folder = Path(folder)  # made by the first atomic write, and removed again if it fails
    paths = save_figure(evaluation.plot(), folder, "agreement")
    if evaluation.ood_accuracy is not None:
        paths += save_figure(plot_estimates(evaluation), folder, "estimates")
    return paths


def _domain(points: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """One range for both axes (so that y = x is the diagonal), padded by 5%."""
    values = np.concatenate([np.concatenate([x, y]) for x, y in points])
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.05 * (hi - lo), 0.05)
    return lo - pad, hi + pad
