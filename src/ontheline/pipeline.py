"""Run several estimators on one zoo and collect what a user reads: estimates, trust, errors, ranking."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontheline._validation import EstimationError
from ontheline.agreement import AgreementLine, encode_labels
from ontheline.estimators import METHODS, EstimateResult, make_estimator
from ontheline.predictions import Predictions, as_predictions
from ontheline.selection import RankedModel, rank_models


@dataclass(frozen=True)
class Evaluation:
    """Every requested method's result on one zoo and one OOD set.

    ``ood_accuracy`` holds the true OOD accuracies when OOD labels were given (None otherwise);
    ``skipped`` maps a method to why it did not run; ``warnings`` lists what the estimators
    warned about, once each.
    """

    results: dict[str, EstimateResult]
    ood_accuracy: np.ndarray | None
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def models(self) -> tuple[str, ...]:
        return next(iter(self.results.values())).models

    @property
    def line(self) -> AgreementLine | None:
        return next((r.line for r in self.results.values() if r.line is not None), None)

    @property
    def trusted(self) -> bool:
        return next(iter(self.results.values())).trusted

    @property
    def ranking_method(self) -> str:
        """ALine-D ranks the models when it ran; otherwise the first method that did."""
        return "aline-d" if "aline-d" in self.results else next(iter(self.results))

    def ranking(self) -> list[RankedModel]:
        return rank_models(self.results[self.ranking_method])

    def trust_message(self) -> str:
        """One paragraph that says whether agreement-on-the-line holds here and what follows for the estimates."""
        first = next(iter(self.results.values()))
        issues = first.trust_issues
        line = self.line
        if line is None:
            return f"WARNING: {'; '.join(issues)}, so nothing says whether agreement-on-the-line holds; treat every estimate with caution."
        stats = (
            f"slope {line.slope:.3f}, bias {line.bias:.3f}, R² {line.r2:.3f} over {line.n_pairs} pairs "
            f"({line.n_distinct} distinct)"
        )
        if not issues:
            return (
                f"Agreement line: {stats}. Agreement-on-the-line holds (R² >= {first.min_r2}): "
                "the ALine estimates can be trusted."
            )
        return f"WARNING: agreement line {stats}. Not to be trusted: {'; '.join(issues)}. Every estimate may be off by many points."

    def plot(self, ax: Any = None) -> Any:
        """The agreement plot of the ranking method's result, with the true accuracies when known (matplotlib Axes)."""
        return self.results[self.ranking_method].plot(ax, ood_accuracy=self.ood_accuracy)

    def plot_estimates(self, ax: Any = None) -> Any:
        """Every method's estimate against the true OOD accuracy (needs OOD labels; matplotlib Axes)."""
        from ontheline.report.figures import plot_estimates

        return plot_estimates(self, ax=ax)

    def mae(self) -> dict[str, float]:
        """Mean absolute error of each method against the true OOD accuracy (empty without labels)."""
        if self.ood_accuracy is None:
            return {}
        return {m: float(np.abs(r.ood_accuracy - self.ood_accuracy).mean()) for m, r in self.results.items()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``ontheline estimate --format json``."""
        truth = self.ood_accuracy
        rank = {r.name: r.rank for r in self.ranking()}
        first = next(iter(self.results.values()))
        models = []
        for i, name in enumerate(self.models):
            estimates = {m: float(r.ood_accuracy[i]) for m, r in self.results.items()}
            entry: dict[str, Any] = {
                "name": name,
                "id_accuracy": float(first.id_accuracy[i]),
                "estimates": estimates,
                "intervals": {
                    m: [float(v) for v in r.interval[i]] for m, r in self.results.items() if r.interval is not None
                },
                "rank": rank[name],
                "ood_accuracy": None if truth is None else float(truth[i]),
            }
            if truth is not None:
                entry["errors"] = {m: e - float(truth[i]) for m, e in estimates.items()}
            models.append(entry)
        line = self.line
        return {
            "models": models,
            "agreement_line": None if line is None else line.to_dict(),
            "trusted": self.trusted,
            "min_r2": first.min_r2,
            "methods": list(self.results),
            "ranked_by": self.ranking_method,
            "mae": self.mae() or None,
            "skipped": self.skipped,
            "warnings": list(self.warnings),
        }


def evaluate(
    id_preds: Any,
    id_labels: Any,
    ood_preds: Any,
    *,
    methods: Sequence[str] | None = None,
    ood_labels: Any = None,
    min_r2: float = 0.95,
    n_bootstrap: int = 200,
    keep: tuple[float, float] = (0.05, 0.98),
) -> Evaluation:
    """Fit every method on the ID data and estimate on the OOD data.

    Parameters
    ----------
    id_preds, ood_preds : Predictions, array-like or mapping
        The zoo's predictions (see :func:`ontheline.as_predictions`).
    id_labels : array-like of shape (n_id_samples,)
    methods : sequence of str, optional
        Names from :data:`ontheline.METHODS` (default: all). A method that needs
        probabilities is skipped, with the reason, when only labels are given.
    ood_labels : array-like of shape (n_ood_samples,), optional
        When given, the true OOD accuracy of each model is reported beside the estimates.
    min_r2 : float
        Trust threshold on the agreement line's R².
    n_bootstrap : int
        Resamples for the ALine intervals.
    keep : (float, float)
        The agreement filter: pairs whose ID and OOD agreement both lie in this range make the line.
    """
    names = list(METHODS) if methods is None else list(dict.fromkeys(methods))
    estimators = {name: make_estimator(name, min_r2=min_r2, n_bootstrap=n_bootstrap, keep=keep) for name in names}
    id_p = as_predictions(id_preds, name="id_preds")
    ood_p = as_predictions(ood_preds, models=None if _named(ood_preds) else id_p.models, name="ood_preds")
    results: dict[str, EstimateResult] = {}
    skipped: dict[str, str] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, estimator in estimators.items():
            if estimator.needs_probs and (id_p.probs is None or ood_p.probs is None):
                skipped[name] = "needs probabilities or logits; only labels were given"
                continue
            try:
                results[name] = estimator.fit(id_p, id_labels).estimate(ood_p)
            except EstimationError as exc:  # this zoo defeats this method; the others may still run
                skipped[name] = str(exc)
    if not results:
        raise EstimationError(
            f"None of the methods {names} could run: {skipped}. Pass probabilities or choose label-based methods."
        )
    messages = tuple(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    truth = None
    if ood_labels is not None:
        aligned = ood_p.select(results[next(iter(results))].models) if ood_p.models != id_p.models else ood_p
        truth = np.asarray((aligned.labels == encode_labels(aligned, ood_labels, "ood_labels")).mean(axis=1))
    return Evaluation(results, truth, skipped, messages)


def _named(preds: Any) -> bool:
    return isinstance(preds, (Mapping, Predictions))
