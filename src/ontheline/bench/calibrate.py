"""Learning ``auto``'s calibration table from labelled shifts, and scoring it leave-one-family-out.

A :class:`~ontheline.estimators.auto.CalibrationTable` is learned from the benchmark's shifts
(whole zoo): each shift falls in a bucket of label-free diagnostics; in each bucket with at least
``min_shifts`` shifts, ``auto`` relies on the method with the lowest mean MAE over them, and
every method's interval is the split-conformal band of its errors there. Evaluating it on the
same shifts would grade it on its own training data, so :func:`leave_one_family_out` scores
each shift family (noise, blur, ..., natural) with a table learned on the *other* families only.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ontheline.bench.score import ORACLE, ShiftScore
from ontheline.estimators.auto import (
    ANY,
    AUTO,
    MEDIAN,
    AutoChoice,
    BucketRule,
    CalibrationTable,
    ShiftDiagnostics,
    choose,
    coverage,
    load_table,
    with_median,
)

#: Nominal miscoverage of the calibrated intervals: 90% intervals.
ALPHA = 0.1
#: A bucket needs this many calibration shifts to have its own rule (else a coarser bucket answers).
MIN_SHIFTS = 8


@dataclass(frozen=True)
class Labelled:
    """One labelled shift as calibration sees it: its family, label-free diagnostics, each
    method's estimates ``(n_models,)`` and the true accuracies."""

    name: Any  # unique per shift: (dataset, shift name) in the benchmark
    family: str
    diagnostics: ShiftDiagnostics
    estimates: dict[str, np.ndarray]
    truth: np.ndarray


def conformal_quantiles(errors: Sequence[np.ndarray], alpha: float) -> tuple[float, float]:
    """Split-conformal ``(low, high)`` over shifts: ``[e + low, e + high]`` should cover about
    ``1 - alpha`` of a new shift's models (``alpha / 2`` on each side).

    ``errors`` holds one array of signed errors per calibration shift. The errors of one shift's
    models are not independent (a whole shift can be off together), so the unit is the shift: each
    shift's errors get weight ``1 / n_models`` (a pooled CDF, as in the hierarchical split conformal
    of Dunn, Wasserman and Ramdas, JASA 2022), and with S shifts the bounds are the smallest errors
    where the cumulative weight reaches ``floor((S + 1) alpha / 2)`` and ``ceil((S + 1)(1 - alpha / 2))``.
    With one error per shift this is the textbook split conformal; with too few shifts for either
    bound (S < 2 / alpha - 1) that bound is the whole range (-1 or +1).

    Examples
    --------
    >>> conformal_quantiles([np.array([e]) for e in np.arange(1, 20) / 100], 0.1)
    (0.01, 0.19)
    >>> conformal_quantiles([np.array([0.1, 0.2])], 0.1)
    (-1.0, 1.0)
    """
    shifts = [np.asarray(e, np.float64)[np.isfinite(e)] for e in errors]
    shifts = [e for e in shifts if len(e)]
    n = len(shifts)
    if n == 0:
        return -1.0, 1.0
    values = np.concatenate(shifts)
    weights = np.concatenate([np.full(len(e), 1.0 / len(e)) for e in shifts])
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(weights[order])

    def at(mass: int) -> float:  # the smallest error where the cumulative weight reaches ``mass`` shifts
        return float(values[np.searchsorted(cumulative, mass - 1e-9)])

    k_low = math.floor((n + 1) * alpha / 2)
    k_high = math.ceil((n + 1) * (1 - alpha / 2))
    return (at(k_low) if k_low >= 1 else -1.0), (at(k_high) if k_high <= n else 1.0)


def fit_table(
    shifts: Sequence[Labelled],
    *,
    alpha: float = ALPHA,
    min_shifts: int = MIN_SHIFTS,
    source: dict[str, Any] | None = None,
) -> CalibrationTable:
    """Learn the table from labelled shifts (every method they share, and their median).

    The confidence-gap edge is the median gap of these shifts; each bucket (fine, line class,
    and :data:`~ontheline.estimators.auto.ANY`) with at least ``min_shifts`` shifts gets a rule.
    """
    if not shifts:
        raise ValueError("fit_table needs at least one labelled shift.")
    gaps = [s.diagnostics.confidence_gap for s in shifts if np.isfinite(s.diagnostics.confidence_gap)]
    gap_edge = float(np.median(gaps)) if gaps else math.nan
    groups: dict[str, list[Labelled]] = {ANY: list(shifts)}
    for s in shifts:
        groups.setdefault(s.diagnostics.line_class, []).append(s)
        groups.setdefault(s.diagnostics.bucket(gap_edge), []).append(s)
    # A finite conformal bound needs at least 2 / alpha - 1 shifts; a bucket with fewer takes its
    # intervals from the nearest coarser bucket that has them (its method is still its own).
    enough = math.ceil(2 / alpha) - 1
    rules = {}
    for name, group in groups.items():
        if len(group) >= min_shifts or name == ANY:
            parent = next(
                p for p in (name, name.split("/")[0], ANY) if p in groups and len(groups[p]) >= enough or p == ANY
            )
            rules[name] = _rule(group, groups[parent], parent, alpha)
    about = {"n_shifts": len(shifts), "families": sorted({s.family for s in shifts}),
             "date": datetime.date.today().isoformat()} | (source or {})  # fmt: skip
    return CalibrationTable(alpha, gap_edge, min_shifts, rules, sorted(shifts[0].estimates), about)


def _rule(group: list[Labelled], interval_group: list[Labelled], interval_bucket: str, alpha: float) -> BucketRule:
    """The bucket's method (lowest mean MAE over its shifts) and each method's quantiles from ``interval_group``."""
    maes: dict[str, list[float]] = {}
    for s in group:
        for m, e in with_median(s.estimates).items():
            if np.isfinite(e).all():
                maes.setdefault(m, []).append(float(100 * np.abs(s.truth - e).mean()))
    # A method that failed on some of the bucket's shifts is judged on those it could estimate,
    # but only chosen if it estimated most of them.
    mae = {m: float(np.mean(v)) for m, v in maes.items() if len(v) >= max(1, len(group) // 2)}
    method = min(mae, key=lambda m: (mae[m], m != MEDIAN, m)) if mae else MEDIAN
    errors: dict[str, list[np.ndarray]] = {}
    for s in interval_group:
        for m, e in with_median(s.estimates).items():
            errors.setdefault(m, []).append(s.truth - e)
    quantiles = {m: conformal_quantiles(v, alpha) for m, v in errors.items()}
    return BucketRule(method, len(group), sum(len(s.truth) for s in group), quantiles, mae, interval_bucket)


@dataclass(frozen=True)
class Answered:
    """``auto`` and the calibrated intervals on one shift, from a table that never saw its family."""

    shift: Labelled
    choice: AutoChoice

    def coverage(self) -> dict[str, float]:
        """Per method and for ``auto``, the share of models whose true accuracy lies in its interval."""
        intervals = {AUTO: self.choice.interval} | self.choice.intervals
        return {m: coverage(iv, self.shift.truth) for m, iv in intervals.items()}


def leave_one_family_out(shifts: Sequence[Labelled], **fit: Any) -> list[Answered]:
    """Every shift answered by ``auto`` with a table fitted on the shifts of the other families.

    The held-out family's labels are never read: only its estimates and diagnostics go in.
    """
    out = []
    for family in sorted({s.family for s in shifts}):
        table = fit_table([s for s in shifts if s.family != family], source={"name": f"without {family}"}, **fit)
        out += [Answered(s, choose(s.estimates, s.diagnostics, table)) for s in shifts if s.family == family]
    order = {id(s): i for i, s in enumerate(shifts)}
    return sorted(out, key=lambda a: order[id(a.shift)])


def answer_with(table: CalibrationTable, shifts: Iterable[Labelled]) -> list[Answered]:
    """Every shift answered with one fixed table (say, the image table on the text shifts)."""
    return [Answered(s, choose(s.estimates, s.diagnostics, table)) for s in shifts]


def labelled(scores: Iterable[ShiftScore]) -> list[Labelled]:
    """The whole zoo's scored shifts as calibration sees them: every method's estimates (never
    the oracle, which reads the OOD labels, nor ``auto`` itself) and the truth."""
    return [
        Labelled(
            (s.shift.dataset, s.shift.name),
            s.shift.family,
            s.diagnostics,
            {m: e for m, e in s.estimates.items() if m not in (ORACLE, AUTO)},
            s.ood_accuracy,
        )  # fmt: skip
        for s in scores
        if s.zoo == "all" and s.diagnostics is not None
    ]


def with_auto(scores: Sequence[ShiftScore], table: CalibrationTable | None = None) -> tuple[list[ShiftScore], str]:
    """The scores, the whole zoo's with ``auto``'s estimates and every method's calibrated intervals
    added, and a sentence saying which calibration produced them.

    Without ``table``, leave-one-family-out when the shifts span at least two families; otherwise
    (the text configuration's three natural shifts) the table shipped with the package.
    """
    rows = labelled(scores)
    if not rows:
        return list(scores), "no calibration: no whole-zoo shifts"
    families = sorted({r.family for r in rows})
    if table is None and len(families) >= 2:
        answered = leave_one_family_out(rows)
        how = (f"leave-one-family-out: each of the {len(families)} families ({', '.join(families)}) answered by a "
               "table learned on the other families' labelled shifts of this run")  # fmt: skip
    else:
        table = table or load_table()
        answered = answer_with(table, rows)
        how = f"the {table.label}"
    by_shift = {a.shift.name: a for a in answered}
    out = []
    for s in scores:
        a = by_shift.get((s.shift.dataset, s.shift.name)) if s.zoo == "all" else None
        out.append(s if a is None else _answered(s, a))
    return out, how


def _answered(score: ShiftScore, answered: Answered) -> ShiftScore:
    c = answered.choice
    estimates = {m: e for m, e in score.estimates.items() if m != ORACLE} | {AUTO: c.estimate}
    if ORACLE in score.estimates:
        estimates[ORACLE] = score.estimates[ORACLE]
    intervals = {AUTO: c.interval} | c.intervals
    return replace(score, estimates=estimates, intervals=intervals, auto=(c.method, c.bucket))


def beyond_summary(scores: Sequence[ShiftScore]) -> dict[str, Any] | None:
    """``auto``, the calibrated and bootstrap coverage and the bounds, per family and trust group, with the goals.

    Every mean is over shifts (each shift has the same models, so a mean coverage is also the
    share of (model, shift) pairs covered).
    """
    scores = [s for s in scores if AUTO in s.estimates]
    if not scores:
        return None
    groups = {
        "all": scores,
        "trusted": [s for s in scores if s.trusted],
        "flagged": [s for s in scores if not s.trusted],
    }
    for s in scores:
        groups.setdefault(f"family:{s.shift.family}", []).append(s)
    summary = {name: _beyond_group(group) for name, group in groups.items() if group}
    single = [m for m in scores[0].estimates if m not in (AUTO, ORACLE)]
    families = {k: v for k, v in summary.items() if k.startswith("family:")}
    overall, trusted, flagged = summary["all"], summary.get("trusted"), summary.get("flagged")

    def below_every_method(g: dict[str, Any]) -> bool:
        finite = [g["mae"][m] for m in single if np.isfinite(g["mae"][m])]
        return not finite or g["mae"][AUTO] < min(finite)

    goals = {
        "auto_mae_at_most_5": overall["mae"][AUTO] <= 5.0,
        "auto_below_every_method_on_every_family": all(below_every_method(g) for g in families.values()),
        "auto_coverage_at_least_88_trusted_and_flagged": all(
            g is None or g["coverage"].get(AUTO, 0.0) >= 0.88 for g in (trusted, flagged)
        ),
        "dis2_holds_on_95": None if "dis2" not in overall["bounds"] else overall["bounds"]["dis2"]["held"] >= 0.95,
        "auto_no_worse_than_aline_d_on_trusted": None
        if trusted is None or not np.isfinite(trusted["mae"].get("aline-d", math.nan))
        else trusted["mae"][AUTO] <= trusted["mae"]["aline-d"] + 1e-9,
    }
    return {"groups": summary, "goals": {k: None if v is None else bool(v) for k, v in goals.items()}}


def _beyond_group(group: list[ShiftScore]) -> dict[str, Any]:
    methods = list(group[0].estimates)
    mae = {m: _mean([s.mae().get(m, math.nan) for s in group]) for m in methods}
    single = {m: v for m, v in mae.items() if m not in (AUTO, ORACLE) and np.isfinite(v)}
    best = min(single, key=single.__getitem__) if single else None
    coverage = {m: _mean([s.coverage().get(m, math.nan) for s in group]) for m in group[0].intervals}
    boot = {m: _mean([s.bootstrap_coverage().get(m, math.nan) for s in group]) for m in group[0].bootstrap}
    bounds = {
        b: {k: _mean([s.bound_scores()[b][k] for s in group if b in s.bounds]) for k in ("held", "mean_slack")}
        for b in group[0].bounds
    }
    relied: dict[str, int] = {}
    for s in group:
        if s.auto is not None:
            relied[s.auto[0]] = relied.get(s.auto[0], 0) + 1
    return {"n_shifts": len(group), "mae": mae, "best_single": best, "coverage": coverage,
            "bootstrap_coverage": boot, "bounds": bounds, "relied_on": relied}  # fmt: skip


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


__all__ = ["ALPHA", "AUTO", "MIN_SHIFTS", "Answered", "Labelled", "answer_with", "beyond_summary", "coverage", "conformal_quantiles", "fit_table",
           "labelled", "leave_one_family_out", "with_auto"]  # fmt: skip
