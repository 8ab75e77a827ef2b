"""Every method on one zoo, in one loop: fit on ID, estimate on OOD, collect trust, errors and a label-free ranking.

:func:`evaluate` is what the command line runs; :func:`fit_methods` and :func:`estimate_all`
are its two halves, for fitting once and estimating on many OOD sets (the benchmark does,
and so does the label-free choice of a test-time adaptation). Errors are in accuracy points
everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ontheline._optional import MissingExtraError
from ontheline._validation import EstimationError, InputError, check_choice
from ontheline.agreement import DEFAULT_KEEP, DEFAULT_MIN_R2, encode_labels
from ontheline.estimators import BOUNDS, METHODS, EstimateResult, Estimator, make_estimator
from ontheline.estimators.auto import AUTO, choose, load_table, shift_diagnostics
from ontheline.estimators.gde_check import GDEDiagnostics, gde_diagnostics
from ontheline.evaluation import RANKING_METHOD, Evaluation, RankedModel, _json_settings, rank_models
from ontheline.predictions import Predictions, as_predictions

#: Above this many classes, the bounds (a K x K critic per model) are skipped with a note.
MAX_BOUND_CLASSES = 100

#: What :func:`estimate_all` does when a method cannot estimate a shift: leave it out, with the
#: reason in ``skipped``, or let its :class:`~ontheline.EstimationError` propagate.
OnFailure = Literal["skip", "raise"]


@dataclass(frozen=True)
class FittedMethods:
    """Methods fitted on one zoo's ID data (and those the zoo defeated, with the reason), ready
    to estimate any number of OOD sets with :func:`estimate_all`.

    Attributes
    ----------
    estimators : dict of str to Estimator
        The fitted estimators, by method name.
    skipped : dict of str to str
        Each method that could not be fitted, and why.
    id_preds : Predictions
        The ID predictions they were fitted on.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, _, _ = otl.make_line_zoo(n_models=8)
    >>> fitted = fit_methods(id_probs.argmax(axis=-1), id_labels, methods=["aline-d", "gde", "doc"], n_bootstrap=0)
    >>> list(fitted.estimators), fitted.skipped  # hard labels only: DoC needs probabilities
    (['aline-d', 'gde'], {'doc': 'needs probabilities or logits; only labels were given'})
    """

    estimators: dict[str, Estimator]
    skipped: dict[str, str]
    id_preds: Predictions = field(repr=False)
    #: GDE's check on the ID data (:func:`~ontheline.estimators.gde_diagnostics`).
    id_gde: GDEDiagnostics | None = field(default=None, repr=False)
    #: Whether :func:`estimate_all` adds ``auto`` (:mod:`ontheline.estimators.auto`) to the results.
    auto: bool = False


def fit_methods(
    id_preds: Any,
    id_labels: Any,
    *,
    methods: Sequence[str] | None = None,
    min_r2: float = DEFAULT_MIN_R2,
    n_bootstrap: int = 200,
    keep: tuple[float, float] = DEFAULT_KEEP,
    calibrate: bool = True,
    on_failure: OnFailure = "skip",
) -> FittedMethods:
    """Fit each method on labelled ID predictions; a method the zoo defeats (too few models, only
    labels where it needs probabilities) is skipped with the reason. Arguments as in :func:`evaluate`.

    Returns
    -------
    FittedMethods
        To estimate any number of OOD sets with :func:`estimate_all`.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, _, _ = otl.make_line_zoo(n_models=8)
    >>> fitted = fit_methods(id_probs, id_labels, methods=["aline-d", "gde"], n_bootstrap=0)
    >>> fitted.estimators["aline-d"]
    ALineD(n_bootstrap=0, confidence=0.95, n_groups=32, random_state=0, keep=(0.05, 0.98), min_r2=0.95)
    """
    names = [*METHODS, AUTO] if methods is None else list(dict.fromkeys(methods))
    auto = AUTO in names
    # auto chooses among the other methods, so asking for it runs every one of them; those not
    # asked for are skipped where they cannot run, whatever on_failure says.
    implicit = [m for m in METHODS if m not in names] if auto else []
    names = [n for n in names if n != AUTO] + implicit
    settings = {"min_r2": min_r2, "n_bootstrap": n_bootstrap, "keep": keep, "calibrate": calibrate}
    estimators = {name: make_estimator(name, **settings) for name in names}
    id_p = as_predictions(id_preds, name="id_preds")
    fitted, skipped = {}, {}
    for name, estimator in estimators.items():
        if estimator.needs_probs and id_p.probs is None:
            skipped[name] = "needs probabilities or logits; only labels were given"
            continue
        try:
            fitted[name] = estimator.fit(id_p, id_labels)
        except (EstimationError, MissingExtraError) as exc:  # this zoo, or this machine, defeats this method
            if on_failure == "raise" and name not in implicit:
                raise
            skipped[name] = str(exc)
    return FittedMethods(fitted, skipped, id_p, gde_diagnostics(id_p, id_labels), auto)


def estimate_all(
    fitted: FittedMethods, ood_preds: Any, *, ood_labels: Any = None, on_failure: OnFailure = "skip"
) -> Evaluation:
    """Every fitted method's estimate on one OOD set, with the true accuracies when ``ood_labels`` are given.

    Warnings of the estimators are collected into ``Evaluation.warnings`` (once each), not
    shown. ``on_failure`` says what happens when a method cannot estimate this set (see
    :data:`OnFailure`); when none can, :class:`~ontheline.EstimationError` is raised.

    Parameters
    ----------
    fitted : FittedMethods
        From :func:`fit_methods`.
    ood_preds : Predictions, array-like or mapping
        The same models' predictions on one OOD set.
    ood_labels : array-like of shape (n_ood_samples,), optional
        When given, the true OOD accuracy of each model is reported beside the estimates.
    on_failure : {'skip', 'raise'}

    Returns
    -------
    Evaluation

    Examples
    --------
    Fit once, estimate two shifts of different strength:

    >>> import ontheline as otl
    >>> id_probs, id_labels, mild, mild_labels = otl.make_line_zoo(n_models=8)
    >>> _, _, strong, strong_labels = otl.make_line_zoo(n_models=8, contrast=0.5)
    >>> fitted = fit_methods(id_probs, id_labels, methods=["aline-d", "gde"], n_bootstrap=0)
    >>> for ood, labels in [(mild, mild_labels), (strong, strong_labels)]:
    ...     evaluation = estimate_all(fitted, ood, ood_labels=labels)
    ...     print(evaluation.trusted, round(evaluation.mae()["aline-d"], 1))  # error in points
    True 0.6
    True 1.6
    """
    check_choice("estimate_all", "on_failure", on_failure, ("skip", "raise"))
    id_p = fitted.id_preds
    ood_p = as_predictions(ood_preds, models=None if _named(ood_preds) else id_p.models, name="ood_preds")
    if ood_p.models != id_p.models and sorted(ood_p.models) == sorted(id_p.models):
        ood_p = ood_p.select(id_p.models)  # once, so every method shares its agreement matrix
    results: dict[str, EstimateResult] = {}
    skipped = dict(fitted.skipped)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, estimator in fitted.estimators.items():
            if estimator.needs_probs and ood_p.probs is None:
                skipped[name] = "needs probabilities or logits; ood_preds holds only labels"
                continue
            try:
                results[name] = estimator.estimate(ood_p)
            except (EstimationError, MissingExtraError) as exc:  # this zoo defeats this method; others may run
                if on_failure == "raise":
                    raise
                skipped[name] = str(exc)
    if not results:
        raise EstimationError(
            f"None of the methods could run: {skipped}. Pass probabilities, or more (and more diverse) models."
        )
    if fitted.auto:
        results[AUTO] = auto_result(results, id_p, ood_p)
    messages = tuple(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    truth, ood_gde = None, None
    if ood_labels is not None:
        truth = np.asarray((ood_p.labels == encode_labels(ood_p, ood_labels, "ood_labels")).mean(axis=1))
        ood_gde = gde_diagnostics(ood_p, ood_labels)
    settings = {name: fitted.estimators[name].get_params() for name in results if name in fitted.estimators}
    if AUTO in results:
        table = load_table()
        settings[AUTO] = {"calibration": table.label, "alpha": table.alpha}
    return Evaluation(results, truth, skipped, messages, settings, {"id": fitted.id_gde, "ood": ood_gde})


def auto_result(results: dict[str, EstimateResult], id_preds: Predictions, ood_preds: Predictions) -> EstimateResult:
    """``auto``'s answer on one OOD set from the other methods' results: the method the shipped
    calibration table relies on for shifts with these label-free diagnostics, its calibrated
    interval, and a note naming both (:func:`~ontheline.estimators.auto.choose`)."""
    ref = results.get(RANKING_METHOD) or next(iter(results.values()))
    line = next((r.line for r in results.values() if r.line is not None), None)
    diagnostics = shift_diagnostics(id_preds, ood_preds, line, ref.min_r2)
    choice = choose({m: r.ood_accuracy for m, r in results.items()}, diagnostics, load_table())
    return EstimateResult(AUTO, ref.models, choice.estimate, ref.id_accuracy, line, choice.interval, ref.min_r2,
                          notes=(choice.note,), id_agreement=ref.id_agreement, ood_agreement=ref.ood_agreement)  # fmt: skip


def evaluate(
    id_preds: Any,
    id_labels: Any,
    ood_preds: Any,
    *,
    methods: Sequence[str] | None = None,
    ood_labels: Any = None,
    min_r2: float = DEFAULT_MIN_R2,
    n_bootstrap: int = 200,
    keep: tuple[float, float] = DEFAULT_KEEP,
    calibrate: bool = True,
    on_failure: OnFailure = "skip",
    bounds: Sequence[str] = ("dis2",),
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
    calibrate : bool
        Temperature-scale each model on the ID data before the confidence and transport
        baselines (ATC, DoC, AC, COT, COTT) use its probabilities; False gives their raw variants.
    on_failure : {'skip', 'raise'}
        A method the zoo defeats (ALine-D with fewer than 3 models, or without a line) is
        skipped with its reason, or its error is raised.
    bounds : sequence of str, default ('dis2',)
        Names from :data:`ontheline.BOUNDS`: lower bounds on each model's OOD accuracy, with
        their default settings, computed when probabilities are given (``()``: none). A bound
        the data defeats is skipped, with the reason in ``skipped``, like a method.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=8, random_state=0)
    >>> evaluation = otl.evaluate(id_preds, id_labels, ood_preds, methods=["aline-d", "gde"], n_bootstrap=0)
    >>> list(evaluation.results), evaluation.ranking()[0].rank, list(evaluation.bounds)
    (['aline-d', 'gde'], 1, ['dis2'])
    """
    fitted = fit_methods(
        id_preds, id_labels, methods=methods, min_r2=min_r2, n_bootstrap=n_bootstrap, keep=keep,
        calibrate=calibrate, on_failure=on_failure,
    )  # fmt: skip
    evaluation = estimate_all(fitted, ood_preds, ood_labels=ood_labels, on_failure=on_failure)
    return _with_bounds(evaluation, fitted.id_preds, id_labels, ood_preds, bounds, on_failure)


def _with_bounds(
    evaluation: Evaluation, id_p: Predictions, id_labels: Any, ood_preds: Any, bounds: Sequence[str], on_failure: str
) -> Evaluation:
    """``evaluation`` with each of ``bounds`` (names in :data:`BOUNDS`) computed when probabilities are given."""
    if isinstance(bounds, str):
        raise InputError(f"bounds must be a sequence of names such as ('dis2',); got the string {bounds!r}.")
    unknown = [b for b in bounds if b not in BOUNDS]
    if unknown:
        raise InputError(f"Unknown bound {unknown[0]!r} in bounds; choose from {list(BOUNDS)}, or pass bounds=().")
    ood_p = as_predictions(ood_preds, models=None if _named(ood_preds) else id_p.models, name="ood_preds")
    if not bounds or id_p.probs is None or ood_p.probs is None:
        return evaluation
    results, skipped = {}, dict(evaluation.skipped)
    for name in dict.fromkeys(bounds):
        if len(id_p.classes) > MAX_BOUND_CLASSES:
            skipped[name] = (f"{name} trains a critic with {len(id_p.classes)}² weights per model; skipped above "
                             f"{MAX_BOUND_CLASSES} classes")  # fmt: skip
            continue
        try:
            results[name] = BOUNDS[name]().fit(id_p, id_labels).bound(ood_p)
        except EstimationError as exc:  # this data defeats this bound; the estimates still stand
            if on_failure == "raise":
                raise
            skipped[name] = str(exc)
    return replace(evaluation, bounds=results, skipped=skipped)


def method_settings(methods: Sequence[str], **settings: Any) -> dict[str, dict[str, Any]]:
    """Each method's hyperparameters, as JSON values, when made with ``settings`` (as :func:`fit_methods` does).

    Examples
    --------
    >>> method_settings(["doc"], calibrate=False, n_bootstrap=0)
    {'doc': {'calibrate': False, 'keep': [0.05, 0.98], 'min_r2': 0.95}}
    """
    return {m: _json_settings(make_estimator(m, **settings).get_params()) for m in methods}


def _named(preds: Any) -> bool:
    return isinstance(preds, (Mapping, Predictions))


__all__ = [
    "RANKING_METHOD",
    "Evaluation",
    "FittedMethods",
    "RankedModel",
    "estimate_all",
    "evaluate",
    "fit_methods",
    "method_settings",
    "rank_models",
]
