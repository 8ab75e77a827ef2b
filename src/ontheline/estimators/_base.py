"""The one contract every estimator follows, and the immutable result it returns.

Hyperparameters go to the constructor and are checked there and again where they are used;
``fit(id_preds, id_labels)`` learns from labelled in-distribution predictions, keeps its own
copies of what estimation needs (attributes ending in ``_``) and returns the estimator;
``estimate(ood_preds)`` predicts each model's accuracy on unlabelled OOD predictions, returns
an :class:`EstimateResult` and changes nothing.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ontheline._optional import extra
from ontheline._validation import (
    AgreementNotLinearWarning,
    EstimationError,
    InputError,
    NotFittedError,
    check_interval,
    check_number,
)
from ontheline.agreement import DEFAULT_KEEP, DEFAULT_MIN_R2, AgreementLine, encode_labels, fit_agreement_line
from ontheline.predictions import Predictions, as_predictions

NO_LINE = "no agreement line: it needs at least 3 models and 2 model pairs inside the agreement filter"


@dataclass(frozen=True)
class EstimateResult:
    """Estimated OOD accuracy of every model, with the trust diagnostics.

    Attributes
    ----------
    method : str
        The estimator's name, e.g. ``'aline-d'``.
    models : tuple of str
        Model names, in the order of the arrays below.
    ood_accuracy : ndarray of shape (n_models,)
        The estimated OOD accuracy of each model, a fraction in [0, 1].
    id_accuracy : ndarray of shape (n_models,)
        Each model's accuracy on the labelled ID data the estimator was fitted on.
    line : AgreementLine or None
        The ID-vs-OOD probit agreement line over the zoo (None with fewer than 3 models or
        too few pairs inside the agreement filter).
    interval : ndarray of shape (n_models, 2) or None
        A bootstrap interval for each estimate, when the method provides one; it always
        contains the estimate.
    min_r2 : float
        The R² below which agreement-on-the-line is not trusted.
    notes : tuple of str
        Anything the user should know about how these numbers were obtained.
    flags : tuple of str
        Reasons of the method's own not to trust these numbers (beside the agreement line's).
    id_agreement, ood_agreement : ndarray of shape (n_models, n_models) or None
        Pairwise agreement of the models on the ID and OOD data (the points of the agreement
        plot; None with fewer than 2 models).

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=8)
    >>> result = otl.ALineD(n_bootstrap=20).fit(id_probs, id_labels).estimate(ood_probs)
    >>> result.method, result.models[:2], result.interval.shape, result.trusted
    ('aline-d', ('model_0', 'model_1'), (8, 2), True)
    >>> sorted(result.to_dict())
    ['agreement_line', 'method', 'models', 'notes', 'trust_issues', 'trusted']
    """

    method: str
    models: tuple[str, ...]
    ood_accuracy: np.ndarray
    id_accuracy: np.ndarray
    line: AgreementLine | None
    interval: np.ndarray | None = None
    min_r2: float = DEFAULT_MIN_R2
    notes: tuple[str, ...] = field(default=())
    flags: tuple[str, ...] = field(default=())
    id_agreement: np.ndarray | None = field(default=None, repr=False)
    ood_agreement: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for array in (self.ood_accuracy, self.id_accuracy, self.interval, self.id_agreement, self.ood_agreement):
            if array is not None:
                array.flags.writeable = False

    @property
    def trust_issues(self) -> tuple[str, ...]:
        """Every reason not to trust these estimates; empty when agreement-on-the-line can be trusted."""
        line = (NO_LINE,) if self.line is None else self.line.trust_issues(self.min_r2)
        return line + self.flags

    @property
    def trusted(self) -> bool:
        """Whether agreement-on-the-line can be trusted: a line with R² >= min_r2 through enough
        distinct, spread-out pairs, and nothing else flagged (see :attr:`trust_issues`)."""
        return not self.trust_issues

    @property
    def agreement_r2(self) -> float:
        return float("nan") if self.line is None else self.line.r2

    @property
    def slope(self) -> float:
        return float("nan") if self.line is None else self.line.slope

    @property
    def bias(self) -> float:
        return float("nan") if self.line is None else self.line.bias

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything in the result."""
        interval = self.interval.tolist() if self.interval is not None else [None] * len(self.models)
        return {
            "method": self.method,
            "models": [
                {"name": m, "id_accuracy": float(a), "estimate": float(e), "interval": iv}
                for m, a, e, iv in zip(self.models, self.id_accuracy, self.ood_accuracy, interval)
            ],
            "agreement_line": None if self.line is None else self.line.to_dict(),
            "trusted": self.trusted,
            "trust_issues": list(self.trust_issues),
            "notes": list(self.notes),
        }

    def plot(self, ax: Any = None, *, ood_accuracy: Any = None) -> Any:
        """The agreement-on-the-line picture on probit axes; returns a matplotlib Axes (needs the ``plot`` extra).

        Model pairs' ID vs OOD agreement with the fitted line, and each model's ID accuracy
        against this method's estimate; with ``ood_accuracy`` (true OOD accuracy per model),
        the true accuracies and their line too.
        """
        from ontheline.report.figures import plot_agreement

        return plot_agreement(self, ax=ax, ood_accuracy=ood_accuracy)

    def to_frame(self) -> Any:
        """The per-model numbers as a pandas DataFrame (needs the ``frame`` extra)."""
        with extra("frame"):
            import pandas as pd
        frame = pd.DataFrame(
            {"id_accuracy": self.id_accuracy, f"{self.method}": self.ood_accuracy},
            index=pd.Index(self.models, name="model"),
        )
        if self.interval is not None:
            frame["low"], frame["high"] = self.interval[:, 0], self.interval[:, 1]
        return frame


class Estimates(NamedTuple):
    """What a method's ``_estimate`` returns: the estimates ``(n_models,)``, an interval
    ``(n_models, 2)`` or None, notes for the user, and reasons of its own not to trust them."""

    ood_accuracy: np.ndarray
    interval: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shift:
    """What ``_estimate`` sees of one OOD set: the aligned predictions, their pairwise
    agreement, and the agreement line with its kept-pair mask (both None when there is none,
    with the reason in ``no_line`` when the zoo was big enough to try)."""

    preds: Predictions
    agreement: np.ndarray | None
    line: AgreementLine | None
    mask: np.ndarray | None
    no_line: EstimationError | None = None


class Estimator(ABC):
    """Base of every estimator: checks, model alignment and the agreement-line diagnostics.

    Parameters
    ----------
    keep : (float, float), default (0.05, 0.98)
        Model pairs enter the agreement line only when both their ID and OOD agreement lie in
        this range (the official code's filter, which keeps probits finite and stable).
    min_r2 : float, default 0.95
        Below this R² of the agreement line, results are flagged as untrusted and an
        :class:`AgreementNotLinearWarning` is issued.

    Examples
    --------
    Every method follows the same contract: hyperparameters in the constructor, ``fit`` on
    labelled ID predictions, ``estimate`` on unlabelled OOD ones.

    >>> import ontheline as otl
    >>> estimator = otl.GDE(min_r2=0.9)
    >>> isinstance(estimator, otl.Estimator), estimator.name, estimator.get_params()
    (True, 'gde', {'keep': (0.05, 0.98), 'min_r2': 0.9})
    >>> id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=8)
    >>> estimator.fit(id_probs, id_labels).estimate(ood_probs).ood_accuracy.shape
    (8,)
    """

    #: The method's name in results and on the command line; a method with variants names the
    #: hyperparameter that selects one in ``variant`` and maps each of its values to a name.
    names: ClassVar[Mapping[Any, str]]
    variant: ClassVar[str | None] = None
    needs_probs: ClassVar[bool] = False
    min_models: ClassVar[int] = 1
    #: Whether each model's estimate depends on that model's predictions alone (not on the zoo).
    per_model: ClassVar[bool] = False

    def __init__(self, *, keep: tuple[float, float] = DEFAULT_KEEP, min_r2: float = DEFAULT_MIN_R2) -> None:
        self.keep = keep
        self.min_r2 = min_r2
        self._check_params()
        self.keep = check_interval(type(self).__name__, "keep", keep)  # a plain (float, float) pair

    @property
    def name(self) -> str:
        """The method's name in results and on the command line, e.g. ``'aline-d'``."""
        if self.variant is None:
            return self.names[None]
        value = getattr(self, self.variant)
        if value not in self.names:  # set to a bad value after construction
            self._check_params()
        return self.names[value]

    def _check_params(self) -> None:
        """Validate every hyperparameter; run at construction and again by ``fit`` and ``estimate``."""
        owner = type(self).__name__
        check_interval(owner, "keep", self.keep)
        check_number(owner, "min_r2", self.min_r2, low=0.0, high=1.0)

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as passed to the constructor."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def fit(self, id_preds: Any, id_labels: Any) -> Estimator:
        """Learn from labelled ID predictions.

        Parameters
        ----------
        id_preds : Predictions, array-like or mapping
            ID predictions: labels ``(n_models, n_samples)`` or probabilities
            ``(n_models, n_samples, n_classes)``, or a ``{name: array}`` mapping.
        id_labels : array-like of shape (n_samples,)
            The true ID labels, in the class order of ``id_preds``.

        Returns
        -------
        self
        """
        self._check_params()
        owner = type(self).__name__
        preds = as_predictions(id_preds, name="id_preds")
        if preds.n_models < self.min_models:  # a property of the zoo: other methods may still run
            raise EstimationError(f"{owner} needs at least {self.min_models} models; id_preds has {preds.n_models}.")
        if self.needs_probs and preds.probs is None:
            raise InputError(
                f"{owner} needs probabilities or logits of shape (n_models, n_samples, n_classes); id_preds holds only labels."
            )
        labels = encode_labels(preds, id_labels, "id_labels")
        for name in [k for k in vars(self) if k.endswith("_")]:  # a refit starts from nothing
            delattr(self, name)
        self.models_ = preds.models
        self.classes_ = preds.classes
        self.n_id_samples_ = preds.n_samples
        self.id_accuracy_ = np.asarray((preds.labels == labels).mean(axis=1))  # dask: chunk by chunk
        self.id_agreement_ = np.array(preds.agreement)  # our own copy
        self._fit(preds, labels)
        self.params_ = self.get_params()  # what the learned state was fitted with
        return self

    def estimate(self, ood_preds: Any) -> EstimateResult:
        """Estimate each model's accuracy on unlabelled OOD predictions.

        Parameters
        ----------
        ood_preds : Predictions, array-like or mapping
            OOD predictions of the same models, in the same form as in ``fit``. Named
            predictions (a mapping or :class:`Predictions`) are matched by model name.

        Returns
        -------
        EstimateResult
        """
        owner = type(self).__name__
        if not hasattr(self, "id_accuracy_"):
            raise NotFittedError(
                f"This {owner} instance is not fitted yet. Call 'fit' with ID predictions and labels before 'estimate'."
            )
        self._check_params()
        changed = {k: v for k, v in self.get_params().items() if self.params_.get(k) != v}
        if changed:
            was = ", ".join(f"{k}={self.params_.get(k)!r}" for k in changed)
            now = ", ".join(f"{k}={v!r}" for k, v in changed.items())
            raise InputError(
                f"{owner}'s {', '.join(changed)} changed after fit ({was} -> {now}); call fit again before estimate."
            )
        ood = self._align(ood_preds)
        if self.needs_probs and ood.probs is None:
            raise InputError(
                f"{owner} needs probabilities or logits of shape (n_models, n_samples, n_classes); ood_preds holds only labels."
            )
        shift = self._shift(ood)
        out = self._estimate(shift)
        result = EstimateResult(
            method=self.name,
            models=self.models_,
            # Every accuracy is a fraction: float rounding is not allowed to step outside [0, 1].
            ood_accuracy=np.clip(np.asarray(out.ood_accuracy, dtype=np.float64), 0.0, 1.0),
            id_accuracy=self.id_accuracy_.copy(),
            line=shift.line,
            interval=None if out.interval is None else np.clip(np.asarray(out.interval, np.float64), 0.0, 1.0),
            min_r2=float(self.min_r2),
            notes=tuple(out.notes),
            flags=tuple(out.flags),
            id_agreement=self.id_agreement_.copy() if ood.n_models >= 2 else None,
            ood_agreement=shift.agreement,
        )
        issues = result.trust_issues
        if issues and result.line is not None:
            warnings.warn(
                AgreementNotLinearWarning(
                    f"Agreement-on-the-line cannot be trusted for this shift: {'; '.join(issues)}. "
                    "These estimates may be far off."
                ),
                stacklevel=2,
            )
        return result

    def _align(self, ood_preds: Any) -> Predictions:
        """OOD predictions in the fitted model order; named inputs are matched by name."""
        owner = type(self).__name__
        fitted = self.models_
        named = isinstance(ood_preds, (Mapping, Predictions))
        ood = as_predictions(ood_preds, models=None if named else _default_names(ood_preds, fitted), name="ood_preds")
        if ood.n_models != len(fitted):
            raise InputError(
                f"ood_preds has {ood.n_models} models but {owner} was fitted on {len(fitted)}; "
                "pass predictions from the same models, in the same order."
            )
        if ood.models != fitted:
            missing = sorted(set(fitted) - set(ood.models))
            if missing:
                raise InputError(
                    f"ood_preds lacks models {missing[:5]} that {owner} was fitted on; pass predictions from the same models."
                )
            ood = ood.select(fitted)
        if ood.probs is not None and len(ood.classes) != len(self.classes_):
            raise InputError(
                f"ood_preds has {len(ood.classes)} classes but {owner} was fitted on {len(self.classes_)}; "
                "both must score the same classes in the same order."
            )
        return ood

    def _shift(self, ood: Predictions) -> Shift:
        """The OOD agreement and the probit agreement line (None when the zoo is too small or too uniform)."""
        if ood.n_models < 2:
            return Shift(ood, None, None, None)
        agreement = np.array(ood.agreement)
        if ood.n_models < 3:
            return Shift(ood, agreement, None, None)
        try:
            line, mask = fit_agreement_line(
                self.id_agreement_, agreement, check_interval(type(self).__name__, "keep", self.keep),
                n_id_samples=self.n_id_samples_,
            )  # fmt: skip
        except EstimationError as exc:
            return Shift(ood, agreement, None, None, exc)
        return Shift(ood, agreement, line, mask)

    def _fit(self, preds: Predictions, labels: np.ndarray) -> None:
        """Learn method-specific state (attributes ending in ``_``) from ID predictions (labels are class indices)."""

    @abstractmethod
    def _estimate(self, shift: Shift) -> Estimates:
        """The estimates for one aligned OOD set."""


def _default_names(preds: Any, fitted: tuple[str, ...]) -> tuple[str, ...] | None:
    """Fitted names for an unnamed array with the same number of models; otherwise let the count check speak."""
    n_models = len(preds) if hasattr(preds, "__len__") else None
    return fitted if n_models == len(fitted) else None
