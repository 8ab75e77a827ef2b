"""``auto``: on every shift, the estimate that shifts which looked the same said to trust, with an
interval calibrated on their real errors.

Agreement-on-the-line is excellent where it holds and a flag is all it gives where it breaks.
``auto`` answers on every shift. It reads only label-free diagnostics of the shift
(:class:`ShiftDiagnostics`: the agreement line's R² and trust verdict, how much the models'
confidence drops from ID to OOD), puts the shift in a bucket, and looks the bucket up in a
:class:`CalibrationTable` learned on labelled shifts of the built-in benchmark
(:mod:`ontheline.bench.calibrate`): the method whose estimates were closest to the truth there
(or the per-model median of every method's estimate), and, for every method, the quantiles of
its real errors there, which make a split-conformal interval around its estimate.

The table ships with the package (``auto_table.json``, rebuilt by ``ontheline bench --config
full --calibration-out FILE``). Its coverage is only as good as the resemblance between your
shifts and the benchmark's (exchangeability, which no label-free check can prove): the
benchmark measures it leave-one-shift-family-out and on text, and every result names the
table it used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ontheline._validation import InputError
from ontheline.agreement import AgreementLine
from ontheline.predictions import Predictions

#: The method name of the adaptive estimator.
AUTO = "auto"
#: Agreement R² from which a line is a line, if not a trusted one (the buckets' middle class).
LINE_R2 = 0.8
#: The per-model median of every method's estimate: the combination ``auto`` may choose.
MEDIAN = "median"
#: The bucket used when a finer one had too few calibration shifts.
ANY = "any"
_SHIPPED = "auto_table.json"


@dataclass(frozen=True)
class ShiftDiagnostics:
    """What can be read off a shift without its labels.

    ``confidence_gap`` is the models' mean maximum probability on ID minus on OOD, averaged over
    the models (NaN without probabilities); ``label_shift`` the total-variation distance between
    each model's predicted-class histograms on ID and OOD, averaged over the models.

    Examples
    --------
    >>> d = ShiftDiagnostics(agreement_r2=0.9, trusted=False, confidence_gap=0.12, label_shift=0.05)
    >>> d.line_class, d.bucket(gap_edge=0.1)
    ('line', 'line/large-gap')
    """

    agreement_r2: float
    trusted: bool
    confidence_gap: float
    label_shift: float

    @property
    def line_class(self) -> str:
        """``'trusted'``, ``'line'`` (R² >= :data:`LINE_R2`, not trusted) or ``'no-line'``."""
        if self.trusted:
            return "trusted"
        return "line" if self.agreement_r2 >= LINE_R2 else "no-line"  # NaN (no line) compares False

    def bucket(self, gap_edge: float) -> str:
        """The fine bucket: the line class and whether the confidence gap is below ``gap_edge``."""
        if not np.isfinite(self.confidence_gap):
            return f"{self.line_class}/unknown-gap"
        return f"{self.line_class}/{'small' if self.confidence_gap < gap_edge else 'large'}-gap"

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def shift_diagnostics(
    id_preds: Predictions, ood_preds: Predictions, line: AgreementLine | None, min_r2: float
) -> ShiftDiagnostics:
    """The label-free diagnostics of one shift for one zoo.

    Examples
    --------
    >>> import ontheline as otl
    >>> from ontheline.predictions import as_predictions
    >>> id_probs, _, ood_probs, _ = otl.make_line_zoo(n_models=6, random_state=0)
    >>> d = shift_diagnostics(as_predictions(id_probs), as_predictions(ood_probs), None, 0.95)
    >>> d.line_class, bool(d.confidence_gap > 0)
    ('no-line', True)
    """
    gap = math.nan
    if id_preds.probs is not None and ood_preds.probs is not None:
        gap = float(np.mean(_mean_max(id_preds.probs) - _mean_max(ood_preds.probs)))
    # ID and OOD predictions encode their own class lists: count each over the union of both.
    position = {c: i for i, c in enumerate(dict.fromkeys([*id_preds.classes, *ood_preds.classes]))}
    id_at = np.array([position[c] for c in id_preds.classes], np.int64)
    ood_at = np.array([position[c] for c in ood_preds.classes], np.int64)
    k = len(position)
    shift = np.mean([0.5 * np.abs(_histogram(id_at[a], k) - _histogram(ood_at[b], k)).sum()
                     for a, b in zip(np.asarray(id_preds.labels), np.asarray(ood_preds.labels))])  # fmt: skip
    r2 = math.nan if line is None else float(line.r2)
    trusted = line is not None and not line.trust_issues(min_r2)
    return ShiftDiagnostics(r2, trusted, gap, float(shift))


@dataclass(frozen=True)
class BucketRule:
    """What the calibration shifts of one bucket say.

    ``method`` is the one ``auto`` relies on there (lowest mean MAE over the bucket's shifts);
    ``quantiles[m]`` the split-conformal quantiles ``(low, high)`` of method m's errors
    ``truth - estimate`` over every (model, shift) of the bucket, so that
    ``[estimate + low, estimate + high]`` should cover ``1 - alpha`` of a new shift's models
    (:func:`ontheline.bench.calibrate.conformal_quantiles`); ``mae[m]`` in points.
    """

    method: str
    n_shifts: int
    n_points: int
    quantiles: dict[str, tuple[float, float]]
    mae: dict[str, float]
    #: The bucket whose shifts gave the quantiles: this one, or a coarser one when this one had too
    #: few shifts for finite conformal bounds.
    intervals_from: str = ANY


@dataclass(frozen=True)
class CalibrationTable:
    """Buckets of label-free diagnostics, each with the method to rely on and calibrated error quantiles.

    Learned by :func:`ontheline.bench.calibrate.fit_table`; :func:`load_table` reads the shipped one.
    """

    alpha: float
    gap_edge: float
    min_shifts: int
    rules: dict[str, BucketRule]
    #: The methods whose per-model median the table's :data:`MEDIAN` is.
    median_of: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)

    def rule(self, diagnostics: ShiftDiagnostics) -> tuple[str, BucketRule]:
        """The finest bucket with enough calibration shifts: fine, then the line class, then :data:`ANY`."""
        for name in (diagnostics.bucket(self.gap_edge), diagnostics.line_class, ANY):
            if name in self.rules:
                return name, self.rules[name]
        raise InputError(
            "The calibration table has no 'any' bucket; rebuild it with ontheline bench --calibration-out."
        )

    @property
    def label(self) -> str:
        """One line naming the table: what it was learned on, when, by which command."""
        s = self.source
        return (
            f"calibration table {s.get('name', '?')} ({s.get('n_shifts', '?')} labelled shifts of "
            f"{s.get('config', '?')}, families {', '.join(s.get('families', [])) or '?'}; {s.get('date', '?')})"
        )

    def to_dict(self) -> dict[str, Any]:
        rules = {
            k: {**asdict(r), "quantiles": {m: list(q) for m, q in r.quantiles.items()}} for k, r in self.rules.items()
        }
        gap = self.gap_edge if math.isfinite(self.gap_edge) else None
        return {"alpha": self.alpha, "gap_edge": gap, "min_shifts": self.min_shifts, "rules": rules,
                "median_of": self.median_of, "source": self.source}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationTable:
        try:
            rules = {
                k: BucketRule(r["method"], int(r["n_shifts"]), int(r["n_points"]),
                              {m: (float(q[0]), float(q[1])) for m, q in r["quantiles"].items()},
                              {m: float(v) for m, v in r["mae"].items()}, str(r.get("intervals_from", ANY)))
                for k, r in data["rules"].items()
            }  # fmt: skip
            gap = math.nan if data["gap_edge"] is None else float(data["gap_edge"])
            return cls(float(data["alpha"]), gap, int(data["min_shifts"]), rules, list(data.get("median_of", [])),
                       dict(data.get("source", {})))  # fmt: skip
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise InputError(f"Not a calibration table ({type(exc).__name__}: {exc}); rebuild it with "
                             "ontheline bench --config full --calibration-out FILE.") from None  # fmt: skip


def load_table(path: str | Path | None = None) -> CalibrationTable:
    """The calibration table at ``path``, or the one shipped with the package.

    Examples
    --------
    >>> table = load_table()
    >>> table.alpha, "any" in table.rules
    (0.1, True)
    """
    if path is None:
        return _shipped()
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise InputError(f"Cannot read the calibration table {str(path)!r}: {exc.strerror}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"The calibration table {str(path or _SHIPPED)!r} is not JSON ({exc.msg}).") from None
    return CalibrationTable.from_dict(data)


@cache
def _shipped() -> CalibrationTable:
    return CalibrationTable.from_dict(
        json.loads(resources.files("ontheline.estimators").joinpath(_SHIPPED).read_text())
    )


def median_estimate(estimates: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per model, the median of the methods' finite estimates (NaN where none is finite)."""
    stacked = np.stack([np.asarray(e, np.float64) for e in estimates.values()])
    finite = np.isfinite(stacked).any(axis=0)
    out = np.full(stacked.shape[1], np.nan)
    out[finite] = np.nanmedian(stacked[:, finite], axis=0)
    return out


def with_median(estimates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``estimates`` and their per-model :data:`MEDIAN` (the candidates ``auto`` chooses from)."""
    return {**estimates, MEDIAN: median_estimate(estimates)}


def calibrated_interval(estimate: np.ndarray, quantiles: tuple[float, float]) -> np.ndarray:
    """``[estimate + low, estimate + high]``, clipped to [0, 1]: ``(n_models, 2)``.

    A method biased one way has both quantiles of one sign; the interval is then widened to
    reach the estimate, since every interval of the library contains its estimate.

    Examples
    --------
    >>> calibrated_interval(np.array([0.5, 0.95]), (-0.1, 0.08)).tolist()
    [[0.4, 0.58], [0.85, 1.0]]
    >>> calibrated_interval(np.array([0.5]), (0.02, 0.1)).tolist()  # always below the truth: widened down to it
    [[0.5, 0.6]]
    """
    e = np.asarray(estimate, np.float64)
    low, high = min(quantiles[0], 0.0), max(quantiles[1], 0.0)
    return np.clip(np.stack([e + low, e + high], axis=1), 0.0, 1.0)


@dataclass(frozen=True)
class AutoChoice:
    """What ``auto`` answered on one shift: the method it relied on, the bucket that said so, its
    estimates and calibrated interval, and every method's calibrated interval there."""

    method: str
    bucket: str
    estimate: np.ndarray
    interval: np.ndarray
    intervals: dict[str, np.ndarray]
    table: str

    @property
    def note(self) -> str:
        return f"auto relied on {self.method} (bucket {self.bucket}); intervals from the {self.table}"


def choose(estimates: Mapping[str, np.ndarray], diagnostics: ShiftDiagnostics, table: CalibrationTable) -> AutoChoice:
    """``auto`` on one shift: in the diagnostics' bucket, the method with the lowest calibration MAE
    among those that estimated every model here, and the calibrated interval of every method the
    bucket has quantiles for.

    The table's :data:`MEDIAN` is the median of ``table.median_of``; it is a candidate only when
    the same methods ran here (the median of fewer methods is another estimator, uncalibrated).
    A method without quantiles gets the interval [0, 1].

    Examples
    --------
    >>> table = load_table()
    >>> d = ShiftDiagnostics(agreement_r2=0.99, trusted=True, confidence_gap=0.02, label_shift=0.01)
    >>> c = choose({m: np.array([0.7, 0.8]) for m in ("aline-d", "aline-s", "doc")}, d, table)
    >>> c.estimate.shape, c.interval.shape, bool((c.interval[:, 0] <= c.estimate).all())
    ((2,), (2, 2), True)
    """
    candidates = {m: np.asarray(e, np.float64) for m, e in estimates.items() if m != MEDIAN}
    if sorted(candidates) == sorted(table.median_of):
        candidates[MEDIAN] = median_estimate(candidates)
    bucket, rule = table.rule(diagnostics)
    intervals = {m: calibrated_interval(candidates[m], q) for m, q in rule.quantiles.items() if m in candidates}
    usable = [m for m, e in candidates.items() if np.isfinite(e).all() and m in rule.mae]
    method = min(usable, key=lambda m: (rule.mae[m], m != MEDIAN, m), default=MEDIAN)  # the table's own order
    if method not in candidates:  # nothing the table knows ran everywhere: the median of what did, uncalibrated
        candidates[method] = median_estimate(candidates)
    estimate = candidates[method]
    interval = intervals.get(method, calibrated_interval(estimate, (-1.0, 1.0)))
    return AutoChoice(method, bucket, estimate, interval, intervals, table.label)


def coverage(interval: np.ndarray, truth: np.ndarray) -> float:
    """The share of models whose true accuracy lies in its interval ``(n_models, 2)``, over the
    models that have one (a method that failed has NaN bounds); NaN when none has.

    Examples
    --------
    >>> coverage(np.array([[0.4, 0.6], [0.5, 0.55], [np.nan, np.nan]]), np.array([0.5, 0.6, 0.7]))
    0.5
    """
    known = np.isfinite(interval).all(axis=1)
    if not known.any():
        return math.nan
    low, high = interval[known].T
    return float(np.mean((low <= truth[known]) & (truth[known] <= high)))


def _mean_max(probs: Any) -> np.ndarray:
    return np.asarray(probs.max(axis=-1).mean(axis=-1), np.float64)


def _histogram(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(labels.astype(np.int64), minlength=n_classes) / max(len(labels), 1)


__all__ = [
    "ANY",
    "AUTO",
    "LINE_R2",
    "MEDIAN",
    "AutoChoice",
    "BucketRule",
    "CalibrationTable",
    "ShiftDiagnostics",
    "calibrated_interval",
    "choose",
    "coverage",
    "load_table",
    "median_estimate",
    "shift_diagnostics",
    "with_median",
]
