"""Stage 2 of the benchmark: every estimator scored against the held-aside truth, and the summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from ontheline.agreement import DEFAULT_KEEP, AgreementLine, accuracy, fit_line, kept_pairs, probit
from ontheline.bench.config import ShiftSpec
from ontheline.bench.predict import ZooPredictions
from ontheline.estimators import CALIBRATABLE, METHODS, PER_MODEL
from ontheline.estimators.aline import aline_s
from ontheline.estimators.auto import ShiftDiagnostics, coverage, shift_diagnostics
from ontheline.estimators.dis2 import DIS2
from ontheline.evaluate import RANKING_METHOD, Evaluation, estimate_all, fit_methods
from ontheline.predictions import Predictions, as_predictions

#: The zoos of the image benchmark: the whole zoo and its two parts (the text zoo's parts are its backbones).
ZOOS = ("all", "neural", "non-neural")
ORACLE = "oracle"
#: Models per shift whose DIS² bound the benchmark computes (a critic is trained per model and shift).
BOUNDED_MODELS = 16
#: Resamples of ALine's bootstrap intervals (95% nominal) on the whole zoo, whose coverage the benchmark measures.
BOOTSTRAP = 50


@dataclass(frozen=True)
class ShiftScore:
    """Every estimator's estimates for one zoo on one shift, next to the truth.

    ``estimates`` maps each method, and ``'oracle'`` (the accuracy line fitted *with* OOD
    labels, the floor for any method that maps ID to OOD accuracy along a line), to the
    estimated OOD accuracy of every model, ``(n_models,)``.
    """

    shift: ShiftSpec
    zoo: str
    models: tuple[str, ...]
    n_samples: int
    n_id: int
    id_accuracy: np.ndarray
    ood_accuracy: np.ndarray
    estimates: dict[str, np.ndarray]
    agreement: AgreementLine | None
    min_r2: float
    failures: dict[str, str]
    pairs: np.ndarray  # (n_kept_pairs, 2) model indices of the pairs inside the agreement filter
    pair_agreement: np.ndarray  # (n_kept_pairs, 2) their ID and OOD agreement
    #: The label-free diagnostics ``auto`` reads (:func:`~ontheline.estimators.auto.shift_diagnostics`).
    diagnostics: ShiftDiagnostics | None = None
    #: ALine's nominal bootstrap intervals ``(n_models, 2)`` per method (whole zoo only).
    bootstrap: dict[str, np.ndarray] = field(default_factory=dict)
    #: Calibrated intervals per method and for ``auto``, from a table that never saw this shift's family.
    intervals: dict[str, np.ndarray] = field(default_factory=dict)
    #: Lower bounds on each model's accuracy per bound (``'dis2'``).
    bounds: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``(method, bucket)``: what ``auto`` relied on here, and the bucket of diagnostics that said so.
    auto: tuple[str, str] | None = None

    @property
    def trusted(self) -> bool:
        """Whether the agreement line can be trusted (see :meth:`AgreementLine.trust_issues`)."""
        return self.agreement is not None and not self.agreement.trust_issues(self.min_r2)

    @cached_property
    def accuracy_line(self) -> tuple[float, float, float]:
        """``(slope, bias, r2)`` of the accuracy line, fitted with the OOD labels."""
        return fit_accuracy_line(self.id_accuracy, self.ood_accuracy, self.n_id, self.n_samples)

    def mae(self) -> dict[str, float]:
        """Mean absolute error of each method, in accuracy points (NaN where it failed)."""
        return dict(self._errors[0])

    def mape(self) -> dict[str, float]:
        """Mean absolute error relative to the true accuracy, in percent."""
        return dict(self._errors[1])

    def coverage(self) -> dict[str, float]:
        """Per method, the share of models whose true accuracy lies in its calibrated interval."""
        return {m: coverage(iv, self.ood_accuracy) for m, iv in self.intervals.items()}

    def bootstrap_coverage(self) -> dict[str, float]:
        """Per method, the share of models whose true accuracy lies in its nominal bootstrap interval."""
        return {m: coverage(iv, self.ood_accuracy) for m, iv in self.bootstrap.items()}

    def bound_scores(self) -> dict[str, dict[str, float]]:
        """Per bound: ``held``, the share of models whose true accuracy is at least the bound, and
        ``mean_slack``, the mean of true accuracy minus the bound (points), over the models it was
        computed for (the others are NaN)."""
        out = {}
        for name, b in self.bounds.items():
            gap = (self.ood_accuracy - b)[np.isfinite(b)]
            if len(gap):
                out[name] = {"held": float(np.mean(gap >= -1e-12)), "mean_slack": float(100 * np.mean(gap))}
        return out

    @cached_property
    def _errors(self) -> tuple[dict[str, float], dict[str, float]]:
        # Computed once: the summaries ask for them many times.
        error = {m: np.abs(e - self.ood_accuracy) for m, e in self.estimates.items()}
        truth = np.maximum(self.ood_accuracy, 1.0 / self.n_samples)
        mae = {m: float(100 * e.mean()) for m, e in error.items()}
        return mae, {m: float(100 * (e / truth).mean()) for m, e in error.items()}

    def to_dict(self, *, per_model: bool = False) -> dict[str, Any]:
        slope, bias, r2 = self.accuracy_line
        line = self.agreement
        entry: dict[str, Any] = {
            "name": self.shift.name,
            "dataset": self.shift.dataset,
            "family": self.shift.family,
            "kind": self.shift.kind,
            "severity": self.shift.severity,
            "zoo": self.zoo,
            "n_models": len(self.models),
            "n_samples": self.n_samples,
            "agreement_r2": None if line is None else line.r2,
            "agreement_slope": None if line is None else line.slope,
            "agreement_bias": None if line is None else line.bias,
            "accuracy_r2": r2,
            "accuracy_slope": slope,
            "accuracy_bias": bias,
            "trusted": self.trusted,
            "mean_id_accuracy": float(self.id_accuracy.mean()),
            "mean_ood_accuracy": float(self.ood_accuracy.mean()),
            "mae": _json_numbers(self.mae()),
            "mape": _json_numbers(self.mape()),
            "failures": self.failures,
        }
        if self.diagnostics is not None:
            entry["diagnostics"] = self.diagnostics.to_dict()
        if self.auto is not None:
            entry["auto"] = {"method": self.auto[0], "bucket": self.auto[1]}
        if self.intervals:
            entry["coverage"] = _json_numbers(self.coverage())
        if self.bootstrap:
            entry["bootstrap_coverage"] = _json_numbers(self.bootstrap_coverage())
        for name, scores in self.bound_scores().items():
            entry[name] = scores
        if per_model:
            entry["models"] = [
                {
                    "name": name,
                    "id_accuracy": float(self.id_accuracy[i]),
                    "ood_accuracy": float(self.ood_accuracy[i]),
                    "estimates": _json_numbers({m: e[i] for m, e in self.estimates.items()}),
                    "intervals": {m: [float(v) for v in iv[i]] for m, iv in self.intervals.items()},
                    "bounds": _json_numbers({b: v[i] for b, v in self.bounds.items()}),
                }
                for i, name in enumerate(self.models)
            ]
        return entry


def score(
    preds: ZooPredictions,
    shifts: list[ShiftSpec],
    *,
    min_r2: float = 0.95,
    methods: Iterable[str] = METHODS,
    calibrate: bool = True,
    zoos: Iterable[str] | None = None,
    n_bootstrap: int = BOOTSTRAP,
    bounds: bool = True,
) -> list[ShiftScore]:
    """Fit every method once per zoo on ID validation, then score it on each shift.

    The zoos are the whole zoo (``'all'``) and each of its parts (:meth:`ZooPredictions.zoo_parts`:
    the neural and non-neural models of the image zoos, the backbones of the text zoo), or
    those named in ``zoos``. A method that estimates each model from that model's predictions
    alone (ATC, DoC, AC, COT, COTT) gives a part of the zoo exactly the whole zoo's numbers for
    its models, so it is estimated once, on the whole zoo, and its estimates are sliced for the
    parts; the methods that read the zoo as a whole (ALine, GDE) run on each part.
    A method that cannot estimate a shift (say, ALine-D when the kept pairs form a bipartite
    graph) gets NaN estimates there, with its reason in ``ShiftScore.failures``. On the whole zoo,
    ALine's estimates come with ``n_bootstrap``-resample intervals (``ShiftScore.bootstrap``) and,
    with ``bounds``, each model gets the DIS² lower bound on its accuracy (``ShiftScore.bounds``).
    """
    methods, scores = list(methods), []
    whole: dict[str, ShiftScore] = {}  # the whole zoo's score of each shift, to slice from
    id_labels = preds.labels["id_val"]
    parts = preds.zoo_parts()
    for zoo in parts if zoos is None else zoos:
        keep = parts[zoo]
        if keep.sum() < 3:  # too few models for an agreement line
            continue
        sliced = [m for m in methods if whole and m in PER_MODEL]
        own = [m for m in methods if m not in sliced]
        models = tuple(np.array(preds.models)[keep].tolist())
        id_preds = as_predictions(preds.probs["id_val"][keep], models=models, kind="probs")
        # ALine's bootstrap intervals on the whole zoo only: the benchmark measures their coverage there.
        resamples = n_bootstrap if zoo == "all" else 0
        fitted = fit_methods(
            id_preds, id_labels, methods=own, min_r2=min_r2, n_bootstrap=resamples, calibrate=calibrate
        )
        # The DIS² bound is per model, and trains a critic per model and shift: on the whole zoo only,
        # for BOUNDED_MODELS models spread over the zoo's ID accuracies (a label-free choice).
        bounded = _spread(accuracy(id_preds, id_labels), BOUNDED_MODELS) if bounds and zoo == "all" else None
        critic = None if bounded is None else DIS2().fit(id_preds.select([models[i] for i in bounded]), id_labels)
        for spec in shifts:
            ood = as_predictions(preds.probs[spec.name][keep], models=models, kind="probs")
            # The estimators see the unlabelled predictions only; the labels score them afterwards.
            evaluation = estimate_all(fitted, ood, ood_labels=preds.labels[spec.name])
            scored = _score_shift(spec, zoo, evaluation, own, (id_preds, id_labels), ood, min_r2)
            if critic is not None and bounded is not None:
                scored = replace(scored, bounds={critic.name: _bound(critic, ood, bounded)})
            if sliced:
                scored = _with_slices(scored, whole[spec.name], sliced, keep)
            if zoo == "all":
                whole[spec.name] = scored
            scores.append(scored)
    return scores


def _with_slices(scored: ShiftScore, whole: ShiftScore, methods: list[str], keep: np.ndarray) -> ShiftScore:
    """``scored`` with the whole zoo's estimates of ``methods`` for the models ``keep`` selects."""
    estimates = {m: whole.estimates[m][keep] for m in methods} | scored.estimates
    failures = {m: whole.failures[m] for m in methods if m in whole.failures} | scored.failures
    order = [m for m in whole.estimates if m in estimates]  # the whole zoo's column order
    return replace(scored, estimates={m: estimates[m] for m in order}, failures=failures)


def _score_shift(
    spec: ShiftSpec,
    zoo: str,
    evaluation: Evaluation,
    methods: list[str],
    id_data: tuple[Predictions, np.ndarray],
    ood: Predictions,
    min_r2: float,
) -> ShiftScore:
    id_preds, id_labels = id_data
    assert evaluation.ood_accuracy is not None
    nan = np.full(ood.n_models, np.nan)
    estimates = {m: evaluation.results[m].ood_accuracy if m in evaluation.results else nan for m in methods}
    failures = {m: evaluation.skipped[m] for m in methods if m in evaluation.skipped}
    id_accuracy = next(iter(evaluation.results.values())).id_accuracy
    truth = evaluation.ood_accuracy
    estimates[ORACLE] = _oracle(id_accuracy, truth, len(id_labels), ood.n_samples)
    pairs = np.argwhere(kept_pairs(id_preds.agreement, ood.agreement, DEFAULT_KEEP))  # the line's pairs
    return ShiftScore(
        shift=spec,
        zoo=zoo,
        models=ood.models,
        n_samples=ood.n_samples,
        n_id=len(id_labels),
        id_accuracy=np.asarray(id_accuracy),
        ood_accuracy=truth,
        estimates=estimates,
        agreement=evaluation.line,
        min_r2=min_r2,
        failures=failures,
        pairs=pairs,
        pair_agreement=np.stack([id_preds.agreement[tuple(pairs.T)], ood.agreement[tuple(pairs.T)]], axis=1),
        diagnostics=shift_diagnostics(id_preds, ood, evaluation.line, min_r2),
        bootstrap={m: r.interval for m, r in evaluation.results.items() if m in methods and r.interval is not None},
    )


def fit_accuracy_line(
    id_accuracy: np.ndarray, ood_accuracy: np.ndarray, n_id: int, n_ood: int
) -> tuple[float, float, float]:
    """``(slope, bias, r2)`` of probit(OOD accuracy) against probit(ID accuracy): needs OOD labels."""
    return fit_line(probit(id_accuracy, n_samples=n_id), probit(ood_accuracy, n_samples=n_ood))


def _spread(id_accuracy: np.ndarray, k: int) -> list[int]:
    """``k`` models evenly spaced over the ranking by ID accuracy (all of them when there are fewer)."""
    order = np.argsort(id_accuracy, kind="stable")
    picks = np.unique(np.linspace(0, len(order) - 1, min(k, len(order))).round().astype(np.int64))
    return sorted(int(order[i]) for i in picks)


def _bound(critic: DIS2, ood: Predictions, bounded: list[int]) -> np.ndarray:
    """The critic's bound for the ``bounded`` models, NaN for the others: ``(n_models,)``."""
    from threadpoolctl import threadpool_limits

    out = np.full(ood.n_models, np.nan)
    with threadpool_limits(1):  # many small L-BFGS problems: BLAS threads only fight over the cores
        out[bounded] = critic.bound(ood.select([ood.models[i] for i in bounded])).accuracy_at_least
    return out


def _oracle(id_accuracy: np.ndarray, ood_accuracy: np.ndarray, n_id: int, n_ood: int) -> np.ndarray:
    slope, bias, _ = fit_accuracy_line(id_accuracy, ood_accuracy, n_id, n_ood)
    return aline_s(id_accuracy, n_id, slope, bias)  # ALine-S's map, with the line the OOD labels give


def summarise(scores: Iterable[ShiftScore]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Mean MAE per method, mean R² and shift counts: ``summary[zoo][grouping][group]``.

    Groupings are ``'overall'`` (one group, ``'all'``), ``'dataset'``, ``'family'`` and
    ``'severity'`` (the natural shift is severity 0).
    """
    keys: dict[str, Callable[[ShiftScore], str]] = {
        "overall": lambda s: "all",
        "dataset": lambda s: s.shift.dataset,
        "family": lambda s: s.shift.family,
        "severity": lambda s: str(s.shift.severity),
    }
    summary: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for score in scores:
        for grouping, key in keys.items():
            group = summary.setdefault(score.zoo, {}).setdefault(grouping, {}).setdefault(key(score), {"scores": []})
            group["scores"].append(score)
    for by_grouping in summary.values():
        for groups in by_grouping.values():
            for name, group in groups.items():
                groups[name] = _group_summary(group["scores"])
    return summary


def _group_summary(scores: list[ShiftScore]) -> dict[str, Any]:
    maes = [s.mae() for s in scores]
    mapes = [s.mape() for s in scores]
    r2 = [s.agreement.r2 for s in scores if s.agreement is not None]
    return {
        "n_shifts": len(scores),
        "n_trusted": sum(s.trusted for s in scores),
        "mean_agreement_r2": float(np.mean(r2)) if r2 else None,
        "mean_accuracy_r2": float(np.mean([s.accuracy_line[2] for s in scores])),
        # A method that failed on a shift is averaged over the shifts it could estimate.
        "mae": _json_numbers({m: mean_finite([mae[m] for mae in maes]) for m in maes[0]}),
        "mape": _json_numbers({m: mean_finite([mape[m] for mape in mapes]) for m in maes[0]}),
        "n_failed": {m: n for m in maes[0] if (n := int(sum(np.isnan(mae[m]) for mae in maes)))},
    }


def trust_groups(scores: Iterable[ShiftScore]) -> dict[str, list[ShiftScore]]:
    """The scores of trusted shifts, of flagged ones, and all of them (the rows of the trust table)."""
    scores = list(scores)
    return {
        "trusted": [s for s in scores if s.trusted],
        "flagged": [s for s in scores if not s.trusted],
        "all": scores,
    }


def group_mae(scores: Iterable[ShiftScore]) -> dict[str, dict[str, float | None]]:
    """Mean MAE (points) per method on the trusted shifts, the flagged ones and all of them; empty groups left out."""
    return {
        group: _json_numbers(summarise(chosen)[chosen[0].zoo]["overall"]["all"]["mae"])
        for group, chosen in trust_groups(scores).items()
        if chosen
    }


def mean_finite(values: list[float]) -> float:
    """The mean of the finite values (NaN marks a method that could not estimate a shift)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _json_numbers(values: dict[str, Any]) -> dict[str, float | None]:
    """Plain floats, with None where a value is missing (JSON has no NaN)."""
    return {k: float(v) if np.isfinite(v) else None for k, v in values.items()}


def quality(scores: Iterable[ShiftScore], *, bad_mae: float = 5.0, good_mae: float = 1.5) -> dict[str, Any]:
    """The benchmark's two quality goals for one zoo's scores.

    ``trusted_shifts``: on the trusted shifts, ALine-D's mean MAE should be at most ``good_mae``
    points and below that of every confidence and transport baseline (the strongest of them is
    named). ``flagged_failures``: among shifts where ALine-D's MAE exceeds ``bad_mae`` points,
    the share that the trust check flagged should be >= 0.9.
    """
    scores = list(scores)
    trusted = [s.mae() for s in scores if s.trusted]
    aline = mean_finite([m[RANKING_METHOD] for m in trusted]) if trusted else None
    baselines = {b: mean_finite([m[b] for m in trusted]) for b in CALIBRATABLE if trusted and b in trusted[0]}
    best = min(baselines, key=lambda b: baselines[b], default=None)
    failures = [s for s in scores if s.mae()[RANKING_METHOD] > bad_mae]
    flagged = sum(not s.trusted for s in failures)
    share = flagged / len(failures) if failures else None
    return {
        "trusted_shifts": {
            "n_shifts": len(trusted),
            "aline_d_mae": aline,
            "best_baseline": best,
            "best_baseline_mae": None if best is None else baselines[best],
            "baselines_mae": baselines,
            "goal": f"ALine-D MAE <= {good_mae} and below every confidence and transport baseline",
            "met": None if aline is None or best is None else bool(aline <= good_mae and aline < baselines[best]),
        },
        "flagged_failures": {
            "n_shifts": len(failures),
            "n_flagged": flagged,
            "share_flagged": share,
            "goal": f"R² flag raised on >= 90% of shifts where ALine-D MAE > {bad_mae}",
            "met": None if share is None else bool(share >= 0.9),
        },
    }
