"""DIS²: an (almost) provable lower bound on each model's OOD accuracy (Rosenfeld and Garg, NeurIPS 2023).

For a classifier ``h`` and a critic ``h'``, the disagreement rate on a distribution D is
``dis_D(h, h') = P_D[h(x) != h'(x)]`` and the disagreement discrepancy is
``Δ(h, h') = dis_T(h, h') - dis_S(h, h')`` (T: the OOD target, S: the ID source). A critic is
trained to agree with ``h`` on ID data and disagree with it on OOD data; if the true labelling
``y*`` does not disagree with ``h`` *more* than that critic does (the assumption
``Δ(h, y*) <= Δ(h, ĥ')``), then with probability at least ``1 - δ``::

    ε_T(h) <= ε̂_S(h) + Δ̂(h, ĥ') + sqrt((n_S + 4 n_T) log(1/δ) / (2 n_S n_T))

where ``ε̂_S`` and ``Δ̂`` are measured on held-out halves of size ``n_S`` (ID) and ``n_T``
(OOD) that the critic never saw. The pieces are in :mod:`ontheline.estimators.critic`; :class:`DIS2` runs
them model by model.

Only each model's probabilities are available here, so the critic is the paper's *logits*
variant: a linear map (``K x K`` weights and a bias) of the model's own log-probabilities.
Both surrogate losses are convex in its parameters, so it is fitted by L-BFGS to the global
optimum, deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ontheline._validation import (
    EstimationError,
    InputError,
    NotFittedError,
    check_choice,
    check_number,
)
from ontheline.agreement import encode_labels
from ontheline.estimators.critic import (
    _AGREEMENT,
    DEFAULT_DELTA,
    agreement_loss,
    critic_features,
    critic_objective,
    dis2_bound,
    disagreement_discrepancy,
    disagreement_loss,
    finite_sample_slack,
    logit_margin,
    train_critic,
)
from ontheline.predictions import Predictions, as_predictions

#: Samples of each distribution (ID and OOD) that one critic is trained on, at most; larger
#: training halves are subsampled (deterministically, from ``random_state``). The held-out
#: halves that the bound is measured on are never subsampled.
MAX_TRAIN_SAMPLES = 5000

#: The assumption under which each bound holds, in words.
ASSUMPTION = (
    "The true labels disagree with the model no more on OOD than on ID data, relative to the critic: "
    "Δ(h, y*) = err_OOD(h) - err_ID(h) is at most Δ(h, ĥ') = dis_OOD(h, ĥ') - dis_ID(h, ĥ') for the critic ĥ' "
    "trained to disagree with the model on OOD and agree on ID (a linear map of its log-probabilities)."
)


@dataclass(frozen=True)
class BoundResult:
    """Each model's DIS² lower bound on OOD accuracy, with its parts.

    Attributes
    ----------
    method : str
        ``'dis2'``.
    models : tuple of str
        Model names, in the order of the arrays below.
    accuracy_at_least : ndarray of shape (n_models,)
        ``1 - (ε̂_S + max(Δ̂, 0) + slack)``, clipped to [0, 1]: with probability at least
        ``1 - delta`` (per model, under :attr:`assumption`) the OOD accuracy is at least this.
    id_error : ndarray of shape (n_models,)
        Each model's error on the held-out ID samples, ``ε̂_S``.
    discrepancy : ndarray of shape (n_models,)
        The critic's disagreement discrepancy on the held-out samples, ``Δ̂`` (may be negative
        when the critic finds none; the bound then uses 0, which the critic ``h' = h`` attains).
    slack : float
        The finite-sample term ``sqrt((n_S + 4 n_T) log(1/δ) / (2 n_S n_T))``.
    delta : float
    n_id, n_ood : int
        Held-out ID and OOD samples the bound was measured on.
    assumption : str
        The assumption under which the bound holds, in words.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=3, n_samples=1000)
    >>> result = otl.DIS2().fit(id_probs, id_labels).bound(ood_probs)
    >>> result.method, result.accuracy_at_least.shape
    ('dis2', (3,))
    >>> bool((result.accuracy_at_least <= otl.accuracy(ood_probs, ood_labels)).all())
    True
    >>> sorted(result.to_dict())
    ['assumption', 'delta', 'method', 'models', 'n_id', 'n_ood', 'slack']
    """

    method: str
    models: tuple[str, ...]
    accuracy_at_least: np.ndarray
    id_error: np.ndarray
    discrepancy: np.ndarray
    slack: float
    delta: float
    n_id: int
    n_ood: int
    assumption: str = ASSUMPTION

    def __post_init__(self) -> None:
        for array in (self.accuracy_at_least, self.id_error, self.discrepancy):
            array.flags.writeable = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything in the result."""
        return {
            "method": self.method,
            "models": [
                {"name": m, "accuracy_at_least": float(a), "id_error": float(e), "discrepancy": float(d)}
                for m, a, e, d in zip(self.models, self.accuracy_at_least, self.id_error, self.discrepancy)
            ],
            "slack": self.slack,
            "delta": self.delta,
            "n_id": self.n_id,
            "n_ood": self.n_ood,
            "assumption": self.assumption,
        }


class DIS2:
    """DIS²: a lower bound on each model's OOD accuracy from a critic trained to disagree with it.

    For each model ``h``, a linear critic on ``h``'s log-probabilities (the paper's *logits*
    variant) is trained on one part of the ID and OOD data to agree with ``h`` on ID and
    disagree with it on OOD; on the other, held-out part::

        accuracy_OOD(h) >= 1 - ε̂_S(h) - Δ̂(h, ĥ') - sqrt((n_S + 4 n_T) log(1/δ) / (2 n_S n_T))

    with probability at least ``1 - δ``, *if* the true labels disagree with ``h`` no more than
    the critic does (``Δ(h, y*) <= Δ(h, ĥ')``; see :data:`ASSUMPTION`). ``Δ̂`` below 0 is
    taken as 0. Each model's bound is separate: ``δ`` is not split across the zoo.

    Parameters
    ----------
    delta : float, default 0.01
        The probability that a model's bound fails (given the assumption), in (0, 1).
    l2 : float, default 1e-3
        L2 penalty on the critic's weights (features are scaled to unit variance first).
    split : float, default 0.5
        The fraction of the ID and of the OOD samples held out to measure the bound; the
        critic is trained on the rest.
    agreement : {'cross_entropy', 'margin'}, default 'cross_entropy'
        The critic's loss on ID samples (see :func:`agreement_loss`); on OOD samples it is
        always the paper's disagreement loss.
    random_state : int, default 0
        Seeds the split (and the subsampling of training halves above :data:`MAX_TRAIN_SAMPLES`).
    max_iter : int, default 200
        L-BFGS iterations per critic.

    Raises
    ------
    InputError
        A bad hyperparameter, labels where probabilities are needed, or OOD predictions that do
        not match the fitted models.
    EstimationError
        Too few samples to split.

    References
    ----------
    .. [1] E. Rosenfeld and S. Garg, "(Almost) Provable Error Bounds Under Distribution Shift via
       Disagreement Discrepancy", NeurIPS 2023, arXiv:2306.00312.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=4, n_samples=1500)
    >>> result = otl.DIS2(delta=0.01).fit(id_probs, id_labels).bound(ood_probs)
    >>> truth = otl.accuracy(ood_probs, ood_labels)
    >>> bool((result.accuracy_at_least <= truth).all()), round(result.slack, 3)
    (True, 0.124)
    """

    name = "dis2"

    def __init__(
        self,
        *,
        delta: float = DEFAULT_DELTA,
        l2: float = 1e-3,
        split: float = 0.5,
        agreement: str = "cross_entropy",
        random_state: int = 0,
        max_iter: int = 200,
    ) -> None:
        self.delta = delta
        self.l2 = l2
        self.split = split
        self.agreement = agreement
        self.random_state = random_state
        self.max_iter = max_iter
        self._check_params()

    def _check_params(self) -> None:
        check_number("DIS2", "delta", self.delta, low=1e-300, high=1.0 - 1e-12)
        check_number("DIS2", "l2", self.l2, low=0.0)
        check_number("DIS2", "split", self.split, low=1e-6, high=1.0 - 1e-6)
        check_choice("DIS2", "agreement", self.agreement, _AGREEMENT)
        check_number("DIS2", "random_state", self.random_state, low=0, integer=True)
        check_number("DIS2", "max_iter", self.max_iter, low=1, integer=True)

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as passed to the constructor."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def __repr__(self) -> str:
        return f"DIS2({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def fit(self, id_preds: Any, id_labels: Any) -> DIS2:
        """Keep the labelled ID predictions, split into the critic's part and the held-out part.

        Parameters
        ----------
        id_preds : Predictions, array-like or mapping
            ID probabilities or logits ``(n_models, n_samples, n_classes)``, or a ``{name: array}`` mapping.
        id_labels : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        self._check_params()
        preds = as_predictions(id_preds, name="id_preds")
        if preds.probs is None:
            raise InputError(
                "DIS2 needs probabilities or logits of shape (n_models, n_samples, n_classes); id_preds holds only "
                "labels. Pass each model's probabilities (or logits with kind='logits')."
            )
        labels = encode_labels(preds, id_labels, "id_labels")
        if len(preds.classes) < 2:
            raise EstimationError(f"DIS2 needs at least 2 classes to disagree on; id_preds has {len(preds.classes)}.")
        train, held = _split(preds.n_samples, self.split, self.random_state, "id_preds")
        self.models_ = preds.models
        self.classes_ = preds.classes
        probs = np.asarray(preds.probs)
        pred = np.asarray(preds.labels).astype(np.int64)
        self.id_features_ = np.stack([critic_features(p) for p in probs])
        self.id_pred_ = pred
        self.id_train_ = _cap(train, self.random_state)
        self.id_held_ = held
        self.id_error_ = (pred[:, held] != labels[held]).mean(axis=1)
        self.params_ = self.get_params()
        return self

    def bound(self, ood_preds: Any) -> BoundResult:
        """Each model's lower bound on its accuracy on unlabelled OOD predictions.

        Parameters
        ----------
        ood_preds : Predictions, array-like or mapping
            The same models' OOD probabilities ``(n_models, n_ood_samples, n_classes)``; named
            predictions are matched by model name.

        Returns
        -------
        BoundResult
        """
        if not hasattr(self, "id_error_"):
            raise NotFittedError(
                "This DIS2 instance is not fitted yet. Call 'fit' with ID predictions and labels before 'bound'."
            )
        self._check_params()
        if self.get_params() != self.params_:
            raise InputError("DIS2's hyperparameters changed after fit; call fit again before bound.")
        ood = self._align(ood_preds)
        train, held = _split(ood.n_samples, self.split, self.random_state + 1, "ood_preds")
        train = _cap(train, self.random_state + 1)
        assert ood.probs is not None
        ood_probs = np.asarray(ood.probs)
        ood_pred = np.asarray(ood.labels).astype(np.int64)
        k = len(self.classes_)
        discrepancy = np.empty(len(self.models_))
        for m in range(len(self.models_)):
            id_x, id_y = self.id_features_[m], self.id_pred_[m]
            ood_x, ood_y = critic_features(ood_probs[m]), ood_pred[m]
            # Standardise each column on the critic's ID part: an affine map of the inputs, so the same
            # family of linear critics, but a well-conditioned problem for L-BFGS and a meaningful L2.
            centre = id_x[self.id_train_].mean(axis=0)
            scale = id_x[self.id_train_].std(axis=0)
            scale[scale < 1e-8] = 1.0
            id_z, ood_z = (id_x - centre) / scale, (ood_x - centre) / scale
            weights, bias = train_critic(
                id_z[self.id_train_], id_y[self.id_train_], ood_z[train], ood_y[train],
                n_classes=k, l2=self.l2, agreement=self.agreement, max_iter=self.max_iter,
            )  # fmt: skip
            discrepancy[m] = disagreement_discrepancy(
                weights, bias, id_z[self.id_held_], id_y[self.id_held_], ood_z[held], ood_y[held]
            )
        n_id, n_ood = len(self.id_held_), len(held)
        slack = finite_sample_slack(n_id, n_ood, self.delta)
        at_least = np.clip(1.0 - (self.id_error_ + np.maximum(discrepancy, 0.0) + slack), 0.0, 1.0)
        return BoundResult(
            method=self.name, models=self.models_, accuracy_at_least=at_least, id_error=self.id_error_.copy(),
            discrepancy=discrepancy, slack=slack, delta=float(self.delta), n_id=n_id, n_ood=n_ood,
        )  # fmt: skip

    def _align(self, ood_preds: Any) -> Predictions:
        """OOD predictions in the fitted model order, with probabilities over the fitted classes."""
        fitted = self.models_
        named = isinstance(ood_preds, (Mapping, Predictions))
        n_given = len(ood_preds) if hasattr(ood_preds, "__len__") else None
        models = None if named or n_given != len(fitted) else fitted
        ood = as_predictions(ood_preds, models=models, name="ood_preds")
        if ood.n_models != len(fitted):
            raise InputError(
                f"ood_preds has {ood.n_models} models but DIS2 was fitted on {len(fitted)}; "
                "pass predictions from the same models, in the same order."
            )
        if ood.models != fitted:
            missing = sorted(set(fitted) - set(ood.models))
            if missing:
                raise InputError(
                    f"ood_preds lacks models {missing[:5]} that DIS2 was fitted on; pass predictions from the same models."
                )
            ood = ood.select(fitted)
        if ood.probs is None:
            raise InputError(
                "DIS2 needs probabilities or logits of shape (n_models, n_samples, n_classes); ood_preds holds only "
                "labels. Pass each model's probabilities (or logits with kind='logits')."
            )
        if len(ood.classes) != len(self.classes_):
            raise InputError(
                f"ood_preds has {len(ood.classes)} classes but DIS2 was fitted on {len(self.classes_)}; "
                "both must score the same classes in the same order."
            )
        return ood


def _split(n: int, held_out: float, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``range(n)`` into the critic's part and the held-out part (both sorted, both non-empty)."""
    if n < 2:
        raise EstimationError(
            f"DIS2 needs at least 2 samples in {name} (one to train the critic, one to measure the bound); got {n}."
        )
    n_held = min(max(int(round(held_out * n)), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def _cap(index: np.ndarray, seed: int) -> np.ndarray:
    """At most :data:`MAX_TRAIN_SAMPLES` of ``index``, chosen by ``seed``."""
    if len(index) <= MAX_TRAIN_SAMPLES:
        return index
    return np.sort(np.random.default_rng([seed, 7]).choice(index, MAX_TRAIN_SAMPLES, replace=False))


__all__ = [
    "ASSUMPTION",
    "BoundResult",
    "DEFAULT_DELTA",
    "DIS2",
    "MAX_TRAIN_SAMPLES",
    "agreement_loss",
    "critic_features",
    "critic_objective",
    "disagreement_discrepancy",
    "disagreement_loss",
    "dis2_bound",
    "finite_sample_slack",
    "logit_margin",
    "train_critic",
]
