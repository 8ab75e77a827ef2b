"""What the interaction tensor shows: how often each feature occurs, who learns it, dominant against rare.

The paper's observations, measured: feature frequency over the data is long-tailed; models of
different seeds learn different subsets of the features; frequent ("dominant") features are
learned by most models and infrequent ("rare") ones by few.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontheline._validation import check_number
from ontheline.research.interaction.tensor import InteractionTensor, _presence, cluster_features, principal_features

#: The default frequency (share of data points) at or above which a feature counts as dominant.
DOMINANT_FREQUENCY = 0.1


@dataclass(frozen=True)
class TensorStatistics:
    """The statistics of an interaction tensor that the paper reports.

    Attributes
    ----------
    feature_frequency : numpy.ndarray of shape (n_features,)
        The share of data points in which the feature is present, averaged over the models that learned it.
    models_per_feature : numpy.ndarray of shape (n_features,)
        How many models learned each feature.
    features_per_model : numpy.ndarray of shape (n_models,)
    features_per_point : numpy.ndarray of shape (n_models, n_samples)
        How many of model m's features are present in point n.
    dominant : numpy.ndarray of shape (n_features,), bool
        ``feature_frequency >= dominant_threshold``.
    dominant_threshold : float

    Examples
    --------
    >>> t = np.zeros((2, 2, 4), bool)
    >>> t[0, :, :3] = True  # feature 0: both models, 3 of 4 points
    >>> t[1, 0, 0] = True  # feature 1: model 0 only, 1 point
    >>> it = InteractionTensor(t, np.array([[True, True], [True, False]]), np.zeros((2, 2), int), 0.5, 0.5)
    >>> s = tensor_statistics(it, dominant_threshold=0.5)
    >>> s.feature_frequency.tolist(), s.models_per_feature.tolist(), s.dominant.tolist()
    ([0.75, 0.25], [2, 1], [True, False])
    """

    feature_frequency: np.ndarray
    models_per_feature: np.ndarray
    features_per_model: np.ndarray
    features_per_point: np.ndarray = field(repr=False)
    dominant: np.ndarray = field(repr=False)
    dominant_threshold: float = DOMINANT_FREQUENCY

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary: the frequencies (descending), counts, and dominant against rare."""
        order = np.argsort(-self.feature_frequency, kind="stable")
        n_models = len(self.features_per_model)
        dominant, rare = self.dominant, ~self.dominant
        share = self.models_per_feature / n_models
        return {
            "n_features": int(len(self.feature_frequency)),
            "feature_frequency": [float(f) for f in self.feature_frequency[order]],
            "models_per_feature": [int(m) for m in self.models_per_feature[order]],
            "features_per_model": {
                "mean": float(self.features_per_model.mean()),
                "min": int(self.features_per_model.min()),
                "max": int(self.features_per_model.max()),
            },  # fmt: skip
            "features_per_point": float(self.features_per_point.mean()),
            "dominant_threshold": self.dominant_threshold,
            "n_dominant": int(dominant.sum()),
            "n_rare": int(rare.sum()),
            "dominant_learned_by": float(share[dominant].mean()) if dominant.any() else None,
            "rare_learned_by": float(share[rare].mean()) if rare.any() else None,
            "frequency_vs_models_correlation": _correlation(self.feature_frequency, self.models_per_feature),
            "frequency_quantiles": {
                str(q): float(np.quantile(self.feature_frequency, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)
            },
        }


def tensor_statistics(tensor: InteractionTensor, *, dominant_threshold: float = DOMINANT_FREQUENCY) -> TensorStatistics:
    """Feature frequencies, features per model and per point, and the dominant/rare split of a tensor.

    Parameters
    ----------
    tensor : InteractionTensor
    dominant_threshold : float
        A feature present in at least this share of the data points is dominant; the others are rare.

    Returns
    -------
    TensorStatistics

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> from ontheline.research.interaction import build_interaction_tensor
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(300, 4)) * [4.0, 2.0, 1.0, 0.5]
    >>> acts = [latent @ np.linalg.qr(rng.normal(size=(6, 6)))[0][:4] for _ in range(3)]
    >>> s = tensor_statistics(build_interaction_tensor(acts, corr_threshold=0.9, variance=0.999))
    >>> bool(np.all(np.diff(s.feature_frequency) < 0))  # the larger a feature's scale, the more points show it
    True
    """
    check_number("tensor_statistics", "dominant_threshold", dominant_threshold, low=0.0, high=1.0)
    t, learned = tensor.tensor, tensor.learned
    counts = learned.sum(axis=1)
    present = t.mean(axis=2).sum(axis=1)  # summed over models: each learner's share of points
    frequency = np.where(counts > 0, present / np.maximum(counts, 1), 0.0)
    return TensorStatistics(
        frequency,
        counts,
        learned.sum(axis=0),
        t.sum(axis=0),
        frequency >= dominant_threshold,
        float(dominant_threshold),
    )


def threshold_sweep(
    activations: Sequence[Any],
    corr_thresholds: Sequence[float],
    data_thresholds: Sequence[float],
    *,
    variance: float = 0.9,
    max_components: int = 64,
    dominant_threshold: float = DOMINANT_FREQUENCY,
    evaluate: Callable[[InteractionTensor, TensorStatistics], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """How the tensor's statistics depend on γ_corr and γ_data: one row per pair of thresholds.

    The principal components are computed once; the clusters once per γ_corr. ``evaluate``, when
    given, adds its own columns to each row, from that row's tensor and statistics.

    Parameters
    ----------
    activations : sequence of array-like of shape (n_samples, n_units_m)
    corr_thresholds, data_thresholds : sequence of float
    variance, max_components, dominant_threshold :
        As in :func:`build_interaction_tensor` and :func:`tensor_statistics`.
    evaluate : callable, optional

    Returns
    -------
    list of dict
        ``corr_threshold``, ``data_threshold``, ``n_features``, ``features_per_model``,
        ``features_per_point``, ``n_dominant``, ``median_frequency``, ``frequency_q90``,
        ``dominant_learned_by``, ``rare_learned_by`` (shares of the models), and
        ``frequency_vs_models_correlation``.

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(200, 4)) * [4.0, 2.0, 1.0, 0.5]
    >>> acts = [latent @ np.linalg.qr(rng.normal(size=(6, 6)))[0][:4] for _ in range(3)]
    >>> rows = threshold_sweep(acts, [0.5, 0.9], [0.5, 1.0], variance=0.999)
    >>> [(r["corr_threshold"], r["data_threshold"], r["n_features"], r["features_per_point"]) for r in rows][:2]
    [(0.5, 0.5, 4, 1.01), (0.5, 1.0, 4, 0.365)]
    """
    found = [principal_features(a, variance=variance, max_components=max_components) for a in activations]
    scores = [s for s, _ in found]
    rows = []
    for gc in corr_thresholds:
        component = cluster_features(scores, [e for _, e in found], corr_threshold=gc)
        for gd in data_thresholds:
            tensor = InteractionTensor(_presence(scores, component, gd), component >= 0, component, gc, gd)
            stats = tensor_statistics(tensor, dominant_threshold=dominant_threshold)
            s = stats.to_dict()
            rows.append({
                "corr_threshold": float(gc), "data_threshold": float(gd), "n_features": s["n_features"],
                "features_per_model": s["features_per_model"]["mean"], "features_per_point": round(s["features_per_point"], 4),
                "n_dominant": s["n_dominant"], "median_frequency": s["frequency_quantiles"]["0.5"],
                "frequency_q90": s["frequency_quantiles"]["0.9"], "dominant_learned_by": s["dominant_learned_by"],
                "rare_learned_by": s["rare_learned_by"], "frequency_vs_models_correlation": s["frequency_vs_models_correlation"],
                **(evaluate(tensor, stats) if evaluate else {}),
            })  # fmt: skip
    return rows


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
