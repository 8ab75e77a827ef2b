"""The interaction tensor (Jiang, Baek, Kolter, ICLR 2024): which model learned which feature, present in which point.

Built from each model's penultimate activations on one dataset, in three steps:

1. **Features of a model**: the principal components of its activations, as many as explain
   ``variance`` of their variance; each component's scores (projections) over the data.
2. **Features across models**: components of different models are the same feature when their
   scores over the data correlate (in absolute value) at least ``corr_threshold`` (γ_corr).
   Greedily, largest explained variance first: a component joins the cluster whose first member
   it correlates with most, if that clears the threshold and the cluster has no component of its
   model yet; otherwise it starts a cluster. Each cluster is one feature.
3. **Features in a point**: model m's feature t is present in point n when the point's
   projection on m's component of t is, in absolute value, at least ``data_threshold`` (γ_data)
   times the standard deviation of m's leading component. Projections are not standardised: a
   high-variance component is present in many points, a low-variance one in few (standardised,
   every component would be about equally frequent); a point near the centre of a model's
   representation has no feature of that model.

``tensor[t, m, n]`` is 1 when model m learned feature t and t is present in point n.

What is the paper's and what is ours: the tensor's shape and meaning, PCA of penultimate
activations, matching components across models by correlation with a threshold, and a threshold
for presence in a point are the paper's (its text as summarised in reviews; "Algorithm 1: Cluster
Features"). The greedy order and the scale of γ_data are our reconstruction: the paper's full text was not available to check them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontheline._validation import InputError, check_number


@dataclass(frozen=True)
class InteractionTensor:
    """A binary tensor of features x models x data points, with the clustering that made it.

    Attributes
    ----------
    tensor : numpy.ndarray of shape (n_features, n_models, n_samples), bool
        ``tensor[t, m, n]``: model m learned feature t, and t is present in point n.
    learned : numpy.ndarray of shape (n_features, n_models), bool
        Model m has a component in feature t's cluster.
    component : numpy.ndarray of shape (n_features, n_models), int
        That component's index among model m's kept components (-1 where not learned).
    corr_threshold, data_threshold : float
        γ_corr and γ_data.
    models : tuple of str

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    Four models that each rotate the same three latent features (of distinct scales) into 8 units:

    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(200, 3)) * [3.0, 2.0, 1.0]
    >>> rotations = [np.linalg.qr(rng.normal(size=(8, 8)))[0][:3] for _ in range(4)]
    >>> it = build_interaction_tensor([latent @ r for r in rotations], corr_threshold=0.9, variance=0.99)
    >>> it.tensor.shape, bool(it.learned.all())  # 3 features, every model learned every one
    ((3, 4, 200), True)
    """

    tensor: np.ndarray = field(repr=False)
    learned: np.ndarray = field(repr=False)
    component: np.ndarray = field(repr=False)
    corr_threshold: float
    data_threshold: float
    models: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        return int(self.tensor.shape[0])

    @property
    def n_models(self) -> int:
        return int(self.tensor.shape[1])

    @property
    def n_samples(self) -> int:
        return int(self.tensor.shape[2])

    def with_data_threshold(self, scores: Sequence[np.ndarray], data_threshold: float) -> InteractionTensor:
        """The same clusters with another γ_data (``scores`` from :func:`principal_features`)."""
        tensor = _presence(scores, self.component, data_threshold)
        return InteractionTensor(tensor, self.learned, self.component, self.corr_threshold, data_threshold, self.models)


def principal_features(
    activations: Any, *, variance: float = 0.9, max_components: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """One model's features: its activations' principal components, each one's standardised scores.

    Parameters
    ----------
    activations : array-like of shape (n_samples, n_units)
        The model's penultimate activations on the dataset.
    variance : float
        Keep the fewest components that explain this share of the variance.
    max_components : int
        And at most this many.

    Returns
    -------
    scores : numpy.ndarray of shape (n_samples, n_components)
        Each component's scores (the centred activations' projections on it) over the data.
    explained : numpy.ndarray of shape (n_components,)
        Each component's share of the variance.

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> acts = rng.normal(size=(100, 2)) @ rng.normal(size=(2, 5))  # rank 2
    >>> scores, explained = principal_features(acts)
    >>> scores.shape, round(float(explained.sum()), 6), bool(scores.std(axis=0)[0] > scores.std(axis=0)[1])
    ((100, 2), 1.0, True)
    """
    check_number("principal_features", "variance", variance, low=0.0, high=1.0)
    x = np.asarray(activations, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError(f"activations must be (n_samples >= 2, n_units); got shape {x.shape}.")
    x = x - x.mean(axis=0)
    power, vectors = np.linalg.eigh(x.T @ x)  # ascending; the covariance's eigenvectors: cheaper than an SVD
    power, vectors = np.clip(power[::-1], 0, None), vectors[:, ::-1]
    if power.sum() <= 0:
        raise InputError("The activations are constant over the data: the model has no feature to analyse.")
    share = power / power.sum()
    positive = int((share > 1e-12).sum())
    keep = min(int(np.searchsorted(np.cumsum(share), variance - 1e-12)) + 1, max_components, positive)
    return x @ vectors[:, :keep], share[:keep]


def cluster_features(
    scores: Sequence[np.ndarray], explained: Sequence[np.ndarray], *, corr_threshold: float
) -> np.ndarray:
    """Match components across models by the correlation of their scores: ``(n_features, n_models)`` indices.

    Parameters
    ----------
    scores : sequence of arrays of shape (n_samples, n_components_m)
        Each model's component scores (:func:`principal_features`).
    explained : sequence of arrays of shape (n_components_m,)
        Each component's share of its model's variance: the greedy order.
    corr_threshold : float
        γ_corr: the least absolute correlation of two components of the same feature.

    Returns
    -------
    numpy.ndarray of shape (n_features, n_models), int
        Each feature's component in each model (-1: the model did not learn it).

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(2, 300))
    >>> scores = [np.stack([a, b], 1), np.stack([-2 * b, rng.normal(size=300)], 1)]
    >>> cluster_features(scores, [np.array([0.6, 0.4]), np.array([0.7, 0.3])], corr_threshold=0.8).tolist()  # b = -b
    [[1, 0], [0, -1], [-1, 1]]
    """
    check_number("cluster_features", "corr_threshold", corr_threshold, low=0.0, high=1.0)
    owner = np.concatenate([np.full(s.shape[1], m) for m, s in enumerate(scores)])
    local = np.concatenate([np.arange(s.shape[1]) for s in scores])
    weight = np.concatenate([np.asarray(e, float) for e in explained])
    stacked = np.concatenate(list(scores), axis=1)
    stacked = (stacked - stacked.mean(axis=0)) / np.maximum(stacked.std(axis=0), 1e-300)
    corr = np.abs(stacked.T @ stacked) / stacked.shape[0]
    heads: list[int] = []  # each cluster's first component
    members: list[dict[int, int]] = []
    for c in np.argsort(-weight, kind="stable"):
        best = -1
        if heads:
            ranked = corr[c, heads]
            for k in np.argsort(-ranked, kind="stable"):
                if ranked[k] < corr_threshold:
                    break
                if owner[c] not in members[k]:
                    best = int(k)
                    break
        if best < 0:
            heads.append(int(c))
            members.append({})
            best = len(heads) - 1
        members[best][int(owner[c])] = int(local[c])
    out = np.full((len(heads), len(scores)), -1, dtype=np.int64)
    for t, found in enumerate(members):
        for m, comp in found.items():
            out[t, m] = comp
    return out


def build_interaction_tensor(
    activations: Sequence[Any],
    *,
    corr_threshold: float = 0.7,
    data_threshold: float = 0.75,
    variance: float = 0.9,
    max_components: int = 64,
    models: Sequence[str] | None = None,
) -> InteractionTensor:
    """The interaction tensor of a zoo on a dataset, from each model's penultimate activations.

    Parameters
    ----------
    activations : sequence of array-like of shape (n_samples, n_units_m)
        One matrix per model, the same samples in the same order (the widths may differ).
    corr_threshold : float
        γ_corr: components correlating at least this much (absolute) are one feature.
    data_threshold : float
        γ_data: a feature is present in a point when the absolute projection there is at least this
        many standard deviations of the model's leading component.
    variance, max_components :
        See :func:`principal_features`.
    models : sequence of str, optional

    Returns
    -------
    InteractionTensor

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    Latent features 0-3 of distinct scales; model A learned 0-2, model B 1-3 (each rotated into 6 units):

    >>> rng = np.random.default_rng(1)
    >>> latent = rng.normal(size=(500, 4)) * [4.0, 3.0, 2.0, 1.0]
    >>> rotate = lambda k: np.linalg.qr(rng.normal(size=(6, 6)))[0][:k]
    >>> acts = [latent[:, :3] @ rotate(3), latent[:, 1:] @ rotate(3)]
    >>> it = build_interaction_tensor(acts, corr_threshold=0.95, variance=0.99)
    >>> it.learned.sum(axis=1).tolist()  # largest first: latent 1 (shared), 0, 2 (shared), 3
    [2, 1, 2, 1]
    >>> round(float(it.tensor[:, 0].any(axis=0).mean()), 2)  # the share of points with a feature of model A
    0.68
    """
    check_number("build_interaction_tensor", "data_threshold", data_threshold, low=0.0)
    if len(activations) < 1:
        raise InputError("build_interaction_tensor needs the activations of at least one model.")
    found = [principal_features(a, variance=variance, max_components=max_components) for a in activations]
    n = {s.shape[0] for s, _ in found}
    if len(n) != 1:
        raise InputError(f"Every model's activations must cover the same samples; got sample counts {sorted(n)}.")
    scores = [s for s, _ in found]
    component = cluster_features(scores, [e for _, e in found], corr_threshold=corr_threshold)
    names = tuple(models) if models is not None else tuple(f"model_{i}" for i in range(len(scores)))
    tensor = _presence(scores, component, data_threshold)
    return InteractionTensor(tensor, component >= 0, component, float(corr_threshold), float(data_threshold), names)


def _presence(scores: Sequence[np.ndarray], component: np.ndarray, data_threshold: float) -> np.ndarray:
    n_features, n_models = component.shape
    tensor = np.zeros((n_features, n_models, scores[0].shape[0]), dtype=bool)
    for m, s in enumerate(scores):
        present = np.abs(s) >= data_threshold * s[:, 0].std()  # in units of the leading component's spread
        has = component[:, m] >= 0
        tensor[has, m] = present[:, component[has, m]].T
    return tensor
