"""The framework fitted to a measured tensor, and its predictions against a zoo's measured accuracy and agreement.

From an :class:`~ontheline.research.interaction.InteractionTensor` and its dominant/rare split:
``c_d`` and ``c_r`` are the numbers of dominant and rare features; each model's ``t_d`` and
``t_r`` the numbers of each it learned; a point's features are those present for at least half
of the models that learned them (:func:`point_features`), a point is dominant when one of its
features is, and ``n_d``, ``n_r`` are the mean numbers of dominant features of a dominant point and of
rare features of a rare one (rounded), ``π`` the share of dominant points. Two predictions follow:
the closed form of this fitted :class:`FeatureModel` (random feature subsets), and the tensor's own
(each model right on a point exactly when it learned one of the point's features).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontheline._validation import InputError
from ontheline.research.interaction.framework import FeatureModel, expected_accuracy, expected_agreement
from ontheline.research.interaction.statistics import TensorStatistics
from ontheline.research.interaction.tensor import InteractionTensor


def point_features(tensor: InteractionTensor, *, majority: float = 0.5) -> np.ndarray:
    """Each point's features, ``(n_features, n_samples)``: present for at least ``majority`` of their learners.

    A point with none keeps the feature present for the largest share of its learners.

    Parameters
    ----------
    tensor : InteractionTensor
    majority : float

    Returns
    -------
    numpy.ndarray of shape (n_features, n_samples), bool

    Examples
    --------
    >>> t = np.zeros((2, 3, 2), bool)
    >>> t[0, :2, 0] = True  # feature 0 in point 0 for 2 of its 3 learners
    >>> t[1, 0, 1] = True  # feature 1 in point 1 for 1 of its 3
    >>> it = InteractionTensor(t, np.ones((2, 3), bool), np.zeros((2, 3), int), 0.5, 0.5)
    >>> point_features(it).tolist()
    [[True, False], [False, True]]
    """
    learners = np.maximum(tensor.learned.sum(axis=1), 1)[:, None]
    rate = tensor.tensor.sum(axis=1) / learners  # (n_features, n_samples)
    features = rate >= majority
    empty = ~features.any(axis=0)
    if empty.any():
        features[rate[:, empty].argmax(axis=0), np.flatnonzero(empty)] = True
    return features


@dataclass(frozen=True)
class FittedFramework:
    """The framework fitted to a tensor: the closed form's and the tensor's own predictions.

    Attributes
    ----------
    model : FeatureModel
        With one ``t_d`` and ``t_r`` per model.
    coverage : numpy.ndarray of shape (n_models, n_samples), bool
        Model m learned one of point n's features.

    Examples
    --------
    >>> fm = FeatureModel(c_d=2, c_r=2, n_d=1, n_r=1, t_d=np.array([2, 1]), t_r=np.array([0, 2]), pi=0.5)
    >>> fitted = FittedFramework(fm, np.array([[True, False], [True, True]]))
    >>> fitted.accuracy().tolist(), fitted.tensor_accuracy().tolist()
    ([0.75, 0.875], [0.75, 1.0])
    """

    model: FeatureModel
    coverage: np.ndarray = field(repr=False)

    def accuracy(self) -> np.ndarray:
        """The closed form's expected accuracy of each model ``(n_models,)``."""
        return np.asarray(expected_accuracy(self.model), dtype=np.float64)

    def agreement(self) -> np.ndarray:
        """The closed form's expected agreement of each pair ``(n_models, n_models)``."""
        return np.asarray(expected_agreement(self.model), dtype=np.float64)

    def tensor_accuracy(self) -> np.ndarray:
        """Each model's accuracy if it were right exactly where it learned a feature of the point (else a guess)."""
        k = self.model.n_classes
        return (self.coverage + (1 - self.coverage) / k).mean(axis=1)

    def tensor_agreement(self) -> np.ndarray:
        """Each pair's agreement under the same rule ``(n_models, n_models)``."""
        c = self.coverage.astype(np.float64)
        both = c @ c.T / c.shape[1]
        return both + (1 - both) / self.model.n_classes

    def compare(self, predictions: Any, labels: Any) -> dict[str, Any]:
        """Both predictions against the zoo's measured accuracy and agreement, beside the naive GDE estimate.

        Parameters
        ----------
        predictions : array-like of shape (n_models, n_samples)
            The models' predicted classes on the tensor's data points.
        labels : array-like of shape (n_samples,)

        Returns
        -------
        dict
            Mean absolute errors (in accuracy, not points) over models (accuracy) and over pairs
            (agreement): ``closed_form``, ``tensor`` and ``gde`` (accuracy: each model's mean agreement
            with the others; agreement: GDE's E[Agr] = E[Acc], the pair's mean accuracy), and the
            measured and predicted means.
        """
        preds, y = np.asarray(predictions), np.asarray(labels)
        if preds.shape != self.coverage.shape or y.shape != (preds.shape[1],):
            raise InputError(f"Expected predictions {self.coverage.shape} and labels ({self.coverage.shape[1]},).")
        acc = (preds == y).mean(axis=1)
        agr = np.mean(preds[:, None, :] == preds[None, :, :], axis=2)
        m = len(acc)
        upper = np.triu_indices(m, k=1)
        gde_acc = (agr.sum(axis=1) - 1) / (m - 1)
        pair_acc = (acc[:, None] + acc[None, :]) / 2

        def mae(a: np.ndarray, b: np.ndarray, pairs: bool = False) -> float:
            return float(np.abs(a[upper] - b[upper]).mean() if pairs else np.abs(a - b).mean())

        return {
            "closed_form": {"accuracy_mae": mae(self.accuracy(), acc), "agreement_mae": mae(self.agreement(), agr, True)},
            "tensor": {"accuracy_mae": mae(self.tensor_accuracy(), acc), "agreement_mae": mae(self.tensor_agreement(), agr, True)},
            "gde": {"accuracy_mae": mae(gde_acc, acc), "agreement_mae": mae(pair_acc, agr, True)},
            "measured": {"accuracy": float(acc.mean()), "agreement": float(agr[upper].mean())},
            "predicted": {
                "closed_form": {"accuracy": float(self.accuracy().mean()), "agreement": float(self.agreement()[upper].mean())},
                "tensor": {"accuracy": float(self.tensor_accuracy().mean()), "agreement": float(self.tensor_agreement()[upper].mean())},
                "gde": {"accuracy": float(gde_acc.mean())},
            },
        }  # fmt: skip


def fit_feature_model(tensor: InteractionTensor, statistics: TensorStatistics, *, n_classes: int) -> FittedFramework:
    """Fit the framework's parameters to a measured tensor (see the module's text).

    Parameters
    ----------
    tensor : InteractionTensor
    statistics : TensorStatistics
        Its statistics, for the dominant/rare split.
    n_classes : int
        K, the classes a model guesses among.

    Returns
    -------
    FittedFramework

    References
    ----------
    .. [1] Y. Jiang, C. Baek and J. Z. Kolter, "On the Joint Interaction of Models, Data, and Features",
       ICLR 2024, arXiv:2306.04793.

    Examples
    --------
    >>> from ontheline.research.interaction import build_interaction_tensor, tensor_statistics
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(300, 4)) * [4.0, 2.0, 1.0, 0.5]
    >>> acts = [latent[:, :3] @ np.linalg.qr(rng.normal(size=(6, 6)))[0][:3] for _ in range(3)]
    >>> it = build_interaction_tensor(acts, corr_threshold=0.9, variance=0.999)
    >>> fitted = fit_feature_model(it, tensor_statistics(it), n_classes=10)
    >>> fitted.model.c_d, fitted.model.c_r, fitted.model.t_d.tolist()  # two frequent features, one rare
    (2, 1, [2, 2, 2])
    """
    dominant = statistics.dominant
    features = point_features(tensor)
    dominant_points = features[dominant].any(axis=0)
    n_d = _mean_count(features[dominant][:, dominant_points])
    n_r = _mean_count(features[~dominant][:, ~dominant_points])
    model = FeatureModel(
        c_d=int(dominant.sum()), c_r=int((~dominant).sum()), n_d=n_d, n_r=n_r,
        t_d=tensor.learned[dominant].sum(axis=0), t_r=tensor.learned[~dominant].sum(axis=0),
        pi=float(dominant_points.mean()), n_classes=n_classes,
    )  # fmt: skip
    coverage = (tensor.learned.T.astype(np.int64) @ features.astype(np.int64)) > 0
    return FittedFramework(model, coverage)


def _mean_count(features: np.ndarray) -> int:
    """The mean number of features per point (columns), rounded, at least 1 (0 without points)."""
    if features.shape[1] == 0 or features.shape[0] == 0:
        return 0
    return max(1, int(round(float(features.sum(axis=0).mean()))))
