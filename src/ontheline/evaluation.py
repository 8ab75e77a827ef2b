"""What one evaluation of a zoo on one OOD set holds: every method's result, the truth when known,
the label-free ranking, GDE's check, the bounds, and their JSON.

:func:`ontheline.evaluate` builds it; the command line, the reports and the benchmark read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontheline.agreement import AgreementLine
from ontheline.estimators import BoundResult, EstimateResult
from ontheline.estimators.gde_check import GDEDiagnostics

#: The method that ranks the models and that trust, selection and the benchmark's goals are read from.
RANKING_METHOD = "aline-d"


@dataclass(frozen=True)
class RankedModel:
    """One row of a ranking.

    ``tied_with_best`` is True when the model's interval reaches the best model's estimate:
    the data cannot tell it apart from the top choice. Without intervals only the best is tied.

    Attributes
    ----------
    rank : int
        1 for the highest estimated OOD accuracy.
    name : str
    estimate : float
        The estimated OOD accuracy.
    low, high : float or None
        The estimate's interval, when the method gives one.
    tied_with_best : bool

    Examples
    --------
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=8)
    >>> first, second = otl.rank_models(otl.ALineD(n_bootstrap=50).fit(id_preds, id_labels).estimate(ood_preds))[:2]
    >>> (first.rank, first.name), (second.rank, second.name, second.tied_with_best)
    ((1, 'model_0'), (2, 'model_1', False))
    >>> bool(first.low <= first.estimate <= first.high)
    True
    """

    rank: int
    name: str
    estimate: float
    low: float | None
    high: float | None
    tied_with_best: bool


def rank_models(result: EstimateResult) -> list[RankedModel]:
    """Models ordered from the highest to the lowest estimated OOD accuracy (rank 1 is best).

    Ties in the estimate keep the zoo's order.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=5, random_state=0)
    >>> result = otl.ALineD(n_bootstrap=50).fit(id_preds, id_labels).estimate(ood_preds)
    >>> best = rank_models(result)[0]
    >>> best.rank, best.tied_with_best
    (1, True)
    """
    order = np.argsort(-result.ood_accuracy, kind="stable")
    best = float(result.ood_accuracy[order[0]])
    ranking = []
    for rank, i in enumerate(order, start=1):
        low = high = None
        if result.interval is not None:
            low, high = (float(v) for v in result.interval[i])
        tied = rank == 1 or (high is not None and high >= best)
        ranking.append(RankedModel(rank, result.models[i], float(result.ood_accuracy[i]), low, high, tied))
    return ranking


@dataclass(frozen=True)
class Evaluation:
    """Every requested method's result on one zoo and one OOD set.

    ``ood_accuracy`` holds the true OOD accuracies when OOD labels were given (None otherwise);
    ``skipped`` maps a method to why it did not run; ``warnings`` lists what the estimators
    warned about, once each. ``gde`` holds GDE's check on the labelled sets (``'id'``, and
    ``'ood'`` with OOD labels): the zoo's calibration (CACE) against the GDE gap
    (:func:`~ontheline.estimators.gde_diagnostics`). ``bounds`` maps a bound's name (``'dis2'``)
    to its lower bounds on each model's OOD accuracy (:class:`~ontheline.estimators.BoundResult`).

    Examples
    --------
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, ood_labels = otl.make_line_zoo(n_models=8, random_state=0)
    >>> evaluation = otl.evaluate(id_preds, id_labels, ood_preds, ood_labels=ood_labels, n_bootstrap=0)
    >>> evaluation.ranking_method, bool(evaluation.mae()["aline-d"] < 3.0)  # points
    ('aline-d', True)
    >>> evaluation.gde["id"].bound_holds, evaluation.gde["ood"].bound_holds  # Theorem 4.2: |gap| <= CACE
    (True, True)
    """

    results: dict[str, EstimateResult]
    ood_accuracy: np.ndarray | None
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    gde: dict[str, GDEDiagnostics | None] = field(default_factory=dict)
    bounds: dict[str, BoundResult] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        return self._ranked.models

    @property
    def line(self) -> AgreementLine | None:
        return self._ranked.line

    @property
    def trusted(self) -> bool:
        """Whether the ranking method's result can be trusted (its agreement line, and its own flags)."""
        return self._ranked.trusted

    @property
    def _ranked(self) -> EstimateResult:
        return self.results[self.ranking_method]

    @property
    def ranking_method(self) -> str:
        """:data:`RANKING_METHOD` when it ran; otherwise the first method that did."""
        return RANKING_METHOD if RANKING_METHOD in self.results else next(iter(self.results))

    def ranking(self) -> list[RankedModel]:
        return rank_models(self.results[self.ranking_method])

    def trust_message(self) -> str:
        """One paragraph that says whether agreement-on-the-line holds here and what follows for the estimates."""
        issues = self._ranked.trust_issues
        line = self.line
        if line is None:
            return (
                f"WARNING: {'; '.join(issues)}, so nothing says whether agreement-on-the-line holds; "
                "treat every estimate with caution."
            )
        stats = (
            f"slope {line.slope:.3f}, bias {line.bias:.3f}, R² {line.r2:.3f} over {line.n_pairs} pairs "
            f"({line.n_distinct} distinct)"
        )
        if not issues:
            return (
                f"Agreement line: {stats}. Agreement-on-the-line holds (R² >= {self._ranked.min_r2}): "
                "the ALine estimates can be trusted."
            )
        return (
            f"WARNING: agreement line {stats}. Not to be trusted: {'; '.join(issues)}. "
            "Every estimate may be off by many points."
        )

    def plot(self, ax: Any = None) -> Any:
        """The agreement plot of the ranking method's result, with the true accuracies when known (matplotlib Axes)."""
        return self.results[self.ranking_method].plot(ax, ood_accuracy=self.ood_accuracy)

    def plot_estimates(self, ax: Any = None) -> Any:
        """Every method's estimate against the true OOD accuracy (needs OOD labels; matplotlib Axes)."""
        from ontheline.report.figures import plot_estimates

        return plot_estimates(self, ax=ax)

    def mae(self) -> dict[str, float]:
        """Mean absolute error of each method against the true OOD accuracy, in accuracy points (empty without labels)."""
        if self.ood_accuracy is None:
            return {}
        return {m: float(100 * np.abs(r.ood_accuracy - self.ood_accuracy).mean()) for m, r in self.results.items()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object printed by ``ontheline estimate --format json``."""
        truth = self.ood_accuracy
        rank = {r.name: r.rank for r in self.ranking()}
        models = []
        for i, name in enumerate(self.models):
            estimates = {m: float(r.ood_accuracy[i]) for m, r in self.results.items()}
            entry: dict[str, Any] = {
                "name": name,
                "id_accuracy": float(self._ranked.id_accuracy[i]),
                "estimates": estimates,
                "intervals": {
                    m: [float(v) for v in r.interval[i]] for m, r in self.results.items() if r.interval is not None
                },
                "rank": rank[name],
                "ood_accuracy": None if truth is None else float(truth[i]),
                "bounds": {b: float(r.accuracy_at_least[r.models.index(name)]) for b, r in self.bounds.items()},
            }
            if truth is not None:
                entry["errors"] = {m: e - float(truth[i]) for m, e in estimates.items()}
            models.append(entry)
        line = self.line
        return {
            "models": models,
            "agreement_line": None if line is None else line.to_dict(),
            "trusted": self.trusted,
            "trust_issues": list(self._ranked.trust_issues),
            "min_r2": self._ranked.min_r2,
            "methods": list(self.results),
            "ranked_by": self.ranking_method,
            "mae": self.mae() or None,
            "skipped": self.skipped,
            "warnings": list(self.warnings),
            "notes": {m: list(r.notes) for m, r in self.results.items() if r.notes},
            "settings": {m: _json_settings(p) for m, p in self.settings.items()},
            "gde_diagnostics": {k: None if d is None else d.to_dict() for k, d in self.gde.items()} or None,
        }


def _json_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as JSON values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


__all__ = ["RANKING_METHOD", "Evaluation", "RankedModel", "rank_models"]
