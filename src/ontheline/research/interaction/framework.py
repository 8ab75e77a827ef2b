"""The combinatorial feature-learning framework: closed-form accuracy and agreement, and where GDE breaks.

The framework of Jiang, Baek and Kolter (ICLR 2024, §5), as we reconstruct it. There are
``c_d`` dominant and ``c_r`` rare features. A data point is dominant with probability ``π`` and
then carries ``n_d`` dominant features drawn at random; otherwise it carries ``n_r`` rare ones.
A model learns a random ``t_d`` of the dominant features and ``t_r`` of the rare ones. It is right on
a point when it learned one of the point's features; otherwise it guesses one of the K classes
uniformly. The chance a model misses every feature of a point is hypergeometric,

    q_d = C(c_d − n_d, t_d) / C(c_d, t_d),        q_r = C(c_r − n_r, t_r) / C(c_r, t_r),

and with ``g = 1 − 1/K`` (two models learn independently; their guesses are independent):

    E[Acc] = 1 − g [π q_d + (1 − π) q_r]
    E[Agr] = 1 − g [π (2 q_d − q_d²) + (1 − π)(2 q_r − q_r²)]
    E[Dis] − E[Err] = g [π q_d (1 − q_d) + (1 − π) q_r (1 − q_r)]  >= 0.

GDE holds exactly when every q is 0 or 1 (points every model learns, or none does: the
"easy and hard points" of the GDE paper), approximately when dominant points are nearly always
learned and rare ones nearly never; it breaks when points are learned by some models and not by
others (``q`` near 1/2), where disagreement exceeds error by up to ``g / 4``.

What is the paper's and what is ours: the dominant/rare split of features and of points, a fixed
number of features per point of each kind, and the parameters ``(t_d, t_r)`` and ``(n_d, n_r)`` are the
paper's (its Figure 4 and its reviewers' summaries); the hypergeometric form, the uniform guess
over K classes and the per-model ``t`` for a zoo of different models are ours, checked against
Monte-Carlo simulation of the same model (:func:`simulate`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ontheline._validation import InputError


@dataclass(frozen=True)
class FeatureModel:
    """The framework's parameters; ``t_d`` and ``t_r`` may be one per model (arrays), for a zoo.

    Attributes
    ----------
    c_d, c_r : int
        Dominant and rare features in the world.
    n_d, n_r : int
        Features carried by a dominant point and by a rare point.
    t_d, t_r : int or numpy.ndarray of shape (n_models,)
        Dominant and rare features a model learns.
    pi : float
        The share of dominant points.
    n_classes : int
        K: a model that learned none of a point's features guesses one of K classes.

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> fm = FeatureModel(c_d=4, c_r=100, n_d=1, n_r=1, t_d=4, t_r=50, pi=0.5)
    >>> fm.miss_probabilities()  # dominant points always learned, rare ones by half the models
    (0.0, 0.5)
    """

    c_d: int
    c_r: int
    n_d: int
    n_r: int
    t_d: Any
    t_r: Any
    pi: float
    n_classes: int = 2

    def __post_init__(self) -> None:
        for name in ("c_d", "c_r", "n_d", "n_r"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                raise InputError(f"FeatureModel.{name} must be a non-negative integer; got {getattr(self, name)!r}.")
        if not 0 <= self.pi <= 1 or self.n_classes < 2:
            raise InputError(
                f"FeatureModel needs 0 <= pi <= 1 and n_classes >= 2; got {self.pi!r}, {self.n_classes!r}."
            )
        if self.n_d > self.c_d or self.n_r > self.c_r:
            raise InputError("A point cannot carry more features than there are: n_d <= c_d and n_r <= c_r.")
        for t, c in ((self.t_d, self.c_d), (self.t_r, self.c_r)):
            if np.any(np.asarray(t) < 0) or np.any(np.asarray(t) > c):
                raise InputError("A model learns between 0 and all of the features: 0 <= t_d <= c_d, 0 <= t_r <= c_r.")

    def miss_probabilities(self) -> tuple[Any, Any]:
        """``(q_d, q_r)``: the chance a model misses every feature of a dominant point and of a rare one."""
        return miss_probability(self.c_d, self.n_d, self.t_d), miss_probability(self.c_r, self.n_r, self.t_r)


def miss_probability(pool: int, carried: int, learned: Any) -> Any:
    """``C(pool − carried, learned) / C(pool, learned)``: a random ``learned``-subset misses all ``carried`` features.

    Parameters
    ----------
    pool : int
        The features to choose from.
    carried : int
        The point's features among them.
    learned : int or array-like of int
        The features a model learns (one per model).

    Returns
    -------
    float or numpy.ndarray

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> round(miss_probability(10, 2, 3), 6)  # C(8, 3) / C(10, 3) = 56 / 120
    0.466667
    >>> miss_probability(10, 2, [0, 9, 10]).tolist()
    [1.0, 0.0, 0.0]
    """
    t = np.asarray(learned, dtype=np.float64)
    q = np.ones_like(t)
    for i in range(int(carried)):  # C(c - n, t) / C(c, t) = prod_{i < n} (c - t - i) / (c - i)
        q = q * np.clip(pool - t - i, 0, None) / (pool - i)
    return float(q) if q.ndim == 0 else q


def expected_accuracy(model: FeatureModel) -> Any:
    """``E[Acc] = 1 − (1 − 1/K)[π q_d + (1 − π) q_r]``, per model when ``t_d``/``t_r`` are arrays.

    Parameters
    ----------
    model : FeatureModel

    Returns
    -------
    float or numpy.ndarray of shape (n_models,)

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> expected_accuracy(FeatureModel(c_d=4, c_r=100, n_d=1, n_r=1, t_d=4, t_r=50, pi=0.5))
    0.875
    """
    q_d, q_r = model.miss_probabilities()
    g = 1 - 1 / model.n_classes
    return 1 - g * (model.pi * q_d + (1 - model.pi) * q_r)


def expected_agreement(model: FeatureModel) -> Any:
    """``E[Agr]`` of two independently trained models: ``(n_models, n_models)`` when ``t`` is per model.

    Per point, two models with miss chances ``q_i, q_j`` agree when both learned a feature of it,
    and otherwise with chance 1/K: ``Agr = 1 − (1 − 1/K)(1 − (1 − q_i)(1 − q_j))``; averaged over the kinds of point.

    Parameters
    ----------
    model : FeatureModel

    Returns
    -------
    float or numpy.ndarray of shape (n_models, n_models)
        Entry ``(i, j)``: models i and j (the diagonal: two independent models with model i's ``t``).

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> expected_agreement(FeatureModel(c_d=4, c_r=100, n_d=1, n_r=1, t_d=4, t_r=50, pi=0.5))
    0.8125
    """
    g = 1 - 1 / model.n_classes
    total: Any = 0.0
    for weight, q in zip((model.pi, 1 - model.pi), model.miss_probabilities()):
        hit = 1 - np.asarray(q, dtype=np.float64)
        both = np.multiply.outer(hit, hit) if hit.ndim else hit * hit
        total = total + weight * (1 - g * (1 - both))
    return float(total) if np.ndim(total) == 0 else total


def expected_gde_gap(model: FeatureModel) -> float:
    """``E[Dis] − E[Err]`` of two independent models with the same ``t``: ``(1 − 1/K) Σ w q (1 − q)`` (>= 0).

    Parameters
    ----------
    model : FeatureModel
        With scalar ``t_d`` and ``t_r``.

    Returns
    -------
    float

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> expected_gde_gap(FeatureModel(c_d=4, c_r=100, n_d=1, n_r=1, t_d=4, t_r=50, pi=0.5))  # q_r = 1/2
    0.0625
    >>> expected_gde_gap(FeatureModel(c_d=4, c_r=100, n_d=1, n_r=1, t_d=4, t_r=0, pi=0.5))  # q in {0, 1}: GDE
    0.0
    """
    if np.ndim(model.t_d) or np.ndim(model.t_r):
        raise InputError("expected_gde_gap takes one model's t_d and t_r (scalars); got arrays.")
    return float((1 - expected_agreement(model)) - (1 - expected_accuracy(model)))


def simulate(model: FeatureModel, n_models: int, n_samples: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Monte-Carlo of the framework: draw points and models, predict, measure accuracy and agreement.

    Parameters
    ----------
    model : FeatureModel
        With scalar ``t_d`` and ``t_r`` (every model learns that many).
    n_models, n_samples : int
    seed : int

    Returns
    -------
    dict
        ``'accuracy'`` ``(n_models,)``, ``'agreement'`` ``(n_models, n_models)`` and ``'predictions'``
        ``(n_models, n_samples)`` (the true class is 0 for every point).

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> fm = FeatureModel(c_d=4, c_r=100, n_d=1, n_r=1, t_d=4, t_r=50, pi=0.5)
    >>> sim = simulate(fm, n_models=20, n_samples=4000)
    >>> expected_accuracy(fm), bool(abs(sim["accuracy"].mean() - expected_accuracy(fm)) < 0.01)
    (0.875, True)
    """
    if np.ndim(model.t_d) or np.ndim(model.t_r):
        raise InputError("simulate draws models that all learn t_d and t_r features (scalars); got arrays.")
    rng = np.random.default_rng(seed)
    learned = np.concatenate(
        [_subsets(rng, n_models, model.c_d, int(model.t_d)), _subsets(rng, n_models, model.c_r, int(model.t_r))], axis=1
    )
    dominant = rng.random(n_samples) < model.pi
    carried = np.zeros((n_samples, model.c_d + model.c_r), dtype=bool)
    carried[dominant, : model.c_d] = _subsets(rng, int(dominant.sum()), model.c_d, model.n_d)
    carried[~dominant, model.c_d :] = _subsets(rng, int((~dominant).sum()), model.c_r, model.n_r)
    knows = (learned.astype(np.int64) @ carried.T.astype(np.int64)) > 0  # (n_models, n_samples)
    guesses = rng.integers(0, model.n_classes, size=knows.shape)
    predictions = np.where(knows, 0, guesses)
    onehot = predictions[..., None] == np.arange(model.n_classes)
    agreement = np.einsum("ink,jnk->ij", onehot.astype(np.float64), onehot.astype(np.float64)) / n_samples
    return {"accuracy": (predictions == 0).mean(axis=1), "agreement": agreement, "predictions": predictions}


def gde_breaking_model(n_classes: int = 2) -> FeatureModel:
    """A natural distribution under which GDE fails: half the points carry one of many rare features,
    each model learns half of them, so every rare point is learned by about half the models.

    Disagreement then exceeds error by ``(1 − 1/K)/8``: with K = 2, GDE predicts an error of 18.75%
    where it is 12.5%. :func:`gde_holding_model` is the same world where no model learns a rare feature.

    Parameters
    ----------
    n_classes : int

    Returns
    -------
    FeatureModel

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> fm = gde_breaking_model()
    >>> 1 - expected_accuracy(fm), 1 - expected_agreement(fm)  # error, disagreement
    (0.125, 0.1875)
    """
    return FeatureModel(c_d=4, c_r=100, n_d=1, n_r=1, t_d=4, t_r=50, pi=0.5, n_classes=n_classes)


def gde_holding_model(n_classes: int = 2) -> FeatureModel:
    """The world of :func:`gde_breaking_model` where models learn every dominant feature and no rare one: GDE holds exactly.

    Parameters
    ----------
    n_classes : int

    Returns
    -------
    FeatureModel

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> fm = gde_holding_model()
    >>> 1 - expected_accuracy(fm), 1 - expected_agreement(fm)
    (0.25, 0.25)
    """
    return replace(gde_breaking_model(n_classes), t_r=0)


def _subsets(rng: np.random.Generator, rows: int, pool: int, size: int) -> np.ndarray:
    """``rows`` random ``size``-subsets of ``pool`` items, as a boolean ``(rows, pool)`` mask."""
    mask = np.zeros((rows, pool), dtype=bool)
    if rows and size:
        chosen = np.argsort(rng.random((rows, pool)), axis=1)[:, :size]
        np.put_along_axis(mask, chosen, True, axis=1)
    return mask
