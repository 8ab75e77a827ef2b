"""When GDE is justified: the ensemble's calibration (CACE) and Theorem 4.2's bound, on labelled data.

GDE (Jiang, Nagarajan, Baek, Kolter, ICLR 2022) reads a model's error off its disagreement with
other runs of its recipe. Its *ensemble* is ``h̃_k(x) = E_h[1[h(x) = k]]``, the share of the
models voting for class k (one-hot votes, not softmaxes). Theorem 4.2:

    |E_{h,h'}[Dis(h, h')] − E_h[Err(h)]| <= CACE = ∫ |Σ_k p(Y=k, h̃_k=q) − q Σ_k p(h̃_k=q)| dq   (Def. 4.4)

with ``h, h'`` independent draws: on a zoo of M models, drawn with replacement, so
``E[Dis] = (M-1)/M x`` the mean disagreement of distinct pairs, and on N labelled points
``E[Err] = 1 − mean h̃_y(x)``, ``E[Dis] = 1 − mean Σ_k h̃_k(x)²`` (the paper's Appendix B.1).
Applied to the empirical distribution of the N points, the theorem holds *exactly* when the
level sets are the ensemble's exact values, the M+1 values j/M (``bins=None``, binning-free).
Since the integrand without the absolute value integrates to 0, the gap is even at most
**half** of CACE (our derivation, checked in the tests). The paper's estimator uses 15 equal-width
bins; a bin that mixes level sets breaks the exact bound, whose finite-sample form for B bins
is ``|gap| <= CACE_B / 2 + E[Err] / B`` (ours); with fewer models than bins the two CACEs agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ontheline._validation import InputError

#: The number of equal-width confidence bins of the paper's CACE estimate (Kirsch & Gal, 2022, §4).
PAPER_BINS = 15


@dataclass(frozen=True)
class CalibrationCurve:
    """The class-aggregated reliability curve: one point per level set (or bin) of the ensemble's values.

    Attributes
    ----------
    confidence : numpy.ndarray of shape (n_levels,)
        ``q``: the level's value (a bin's mean value).
    frequency : numpy.ndarray of shape (n_levels,)
        ``Σ_k p(Y=k, h̃_k ∈ level) / Σ_k p(h̃_k ∈ level)``: how often the class given confidence ``q`` is the true one.
    weight : numpy.ndarray of shape (n_levels,)
        ``Σ_k p(h̃_k ∈ level)``; the weights sum to the number of classes.
    count : numpy.ndarray of shape (n_levels,)
        The (sample, class) entries in the level.

    Examples
    --------
    >>> curve = calibration_curve(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0, 1]))
    >>> curve.confidence.tolist(), curve.frequency.tolist(), curve.weight.tolist()
    ([0.0, 0.5, 1.0], [0.0, 0.5, 1.0], [0.5, 1.0, 0.5])
    """

    confidence: np.ndarray
    frequency: np.ndarray
    weight: np.ndarray
    count: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        """The curve as JSON lists."""
        return {k: [float(v) for v in getattr(self, k)] for k in ("confidence", "frequency", "weight")}


def vote_ensemble(labels: Any, n_classes: int | None = None) -> np.ndarray:
    """GDE's ensemble ``h̃``: each class's share of the models' votes, ``(n_samples, n_classes)``.

    Parameters
    ----------
    labels : array-like of shape (n_models, n_samples)
        Each model's predicted class index.
    n_classes : int, optional
        Default: the largest index plus one.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_classes)
        Multiples of ``1 / n_models``; rows sum to 1.

    References
    ----------
    .. [1] Y. Jiang, V. Nagarajan, C. Baek and J. Z. Kolter, "Assessing Generalization of SGD via
       Disagreement", ICLR 2022, arXiv:2106.13799.

    Examples
    --------
    >>> vote_ensemble([[0, 1], [0, 0], [2, 1], [0, 1]]).tolist()
    [[0.75, 0.0, 0.25], [0.25, 0.75, 0.0]]
    """
    counts = _vote_counts(np.asarray(labels), n_classes)
    return counts / np.asarray(labels).shape[0]


def calibration_curve(ensemble: Any, labels: Any, *, bins: int | None = None) -> CalibrationCurve:
    """The class-aggregated reliability curve of a probabilistic classifier on labelled data (Def. 4.3).

    Every (sample, class) entry ``h̃_k(x)`` falls in a level set: its exact value
    (``bins=None``, for an ensemble of votes, whose values are multiples of ``1 / n_models``),
    or one of ``bins`` equal-width bins on [0, 1] (the last one closed).

    Parameters
    ----------
    ensemble : array-like of shape (n_samples, n_classes)
        Probabilities; rows sum to 1 (:func:`vote_ensemble`, or a mean softmax).
    labels : array-like of shape (n_samples,)
        True class indices (an index past the last column is a class with confidence 0).
    bins : int, optional

    Returns
    -------
    CalibrationCurve

    References
    ----------
    .. [1] Y. Jiang, V. Nagarajan, C. Baek and J. Z. Kolter, "Assessing Generalization of SGD via
       Disagreement", ICLR 2022, arXiv:2106.13799.

    Examples
    --------
    >>> ensemble = np.array([[0.75, 0.25], [0.75, 0.25], [0.25, 0.75], [0.25, 0.75]])
    >>> calibration_curve(ensemble, [0, 1, 1, 1]).frequency.tolist()
    [0.25, 0.75]
    """
    values, truth = _checked(ensemble, labels)
    level, _ = _levels(values, bins)
    count = np.bincount(level.ravel())
    keep = count > 0
    q = np.unique(values) if bins is None else np.bincount(level.ravel(), weights=values.ravel())[keep] / count[keep]
    hits = np.bincount(level.ravel(), weights=truth.ravel(), minlength=len(count))[keep]
    n = values.shape[0]
    return CalibrationCurve(q, hits / count[keep], count[keep] / n, count[keep])


def class_aggregated_calibration_error(ensemble: Any, labels: Any, *, bins: int | None = None) -> float:
    """CACE (Def. 4.4): ``Σ_levels |Σ_k p(Y=k, h̃_k ∈ level) − q Σ_k p(h̃_k ∈ level)|``, in [0, 2].

    With ``bins=None`` the level sets are the ensemble's exact values (binning-free; exact
    for a vote ensemble); with ``bins`` they are equal-width bins and ``q`` a bin's mean value,
    as in ECE (the paper: 15 bins). The paper states the range [0, K]; Kirsch & Gal note it is at most 2.

    Parameters
    ----------
    ensemble : array-like of shape (n_samples, n_classes)
    labels : array-like of shape (n_samples,)
    bins : int, optional

    Returns
    -------
    float

    References
    ----------
    .. [1] Y. Jiang, V. Nagarajan, C. Baek and J. Z. Kolter, "Assessing Generalization of SGD via
       Disagreement", ICLR 2022, arXiv:2106.13799.
    .. [2] A. Kirsch and Y. Gal, "A Note on 'Assessing Generalization of SGD via Disagreement'",
       TMLR 2022, arXiv:2202.01851.

    Examples
    --------
    A calibrated ensemble: of the points where the models split 3 to 1, the majority is right 3 times in 4.

    >>> ensemble = np.array([[0.75, 0.25]] * 4)
    >>> class_aggregated_calibration_error(ensemble, [0, 0, 0, 1])
    0.0
    >>> class_aggregated_calibration_error(ensemble, [1, 1, 1, 1])  # the majority always wrong: |0 - 0.75| + |1 - 0.25|
    1.5
    """
    values, truth = _checked(ensemble, labels)
    level, _ = _levels(values, bins)
    residual = np.bincount(level.ravel(), weights=(truth - values).ravel())
    return float(np.abs(residual).sum() / values.shape[0])


def class_wise_calibration_error(ensemble: Any, labels: Any, *, bins: int | None = None) -> float:
    """CWCE: the class-wise calibration error (Def. 4.2 measured as Kirsch & Gal's Def. 4.6), ``>= CACE``.

    ``Σ_k Σ_levels |p(Y=k, h̃_k ∈ level) − q p(h̃_k ∈ level)|``: the level sets of each class apart.

    Parameters
    ----------
    ensemble : array-like of shape (n_samples, n_classes)
    labels : array-like of shape (n_samples,)
    bins : int, optional
        As in :func:`class_aggregated_calibration_error`.

    Returns
    -------
    float

    References
    ----------
    .. [1] Y. Jiang, V. Nagarajan, C. Baek and J. Z. Kolter, "Assessing Generalization of SGD via
       Disagreement", ICLR 2022, arXiv:2106.13799.
    .. [2] A. Kirsch and Y. Gal, "A Note on 'Assessing Generalization of SGD via Disagreement'",
       TMLR 2022, arXiv:2202.01851.

    Examples
    --------
    Calibrated in aggregate but not class by class:

    >>> ensemble = np.array([[0.5, 0.5]] * 4)
    >>> class_wise_calibration_error(ensemble, [0, 0, 0, 0]), class_aggregated_calibration_error(ensemble, [0, 0, 0, 0])
    (1.0, 0.0)
    """
    values, truth = _checked(ensemble, labels)
    level, n_levels = _levels(values, bins)
    by_class = level + n_levels * np.arange(values.shape[1])[None, :]
    residual = np.bincount(by_class.ravel(), weights=(truth - values).ravel())
    return float(np.abs(residual).sum() / values.shape[0])


def gde_gap(ensemble: Any, labels: Any) -> float:
    """``E[Dis] − E[Err]`` of a probabilistic classifier: ``mean_x [h̃_y(x) − Σ_k h̃_k(x)²]``.

    For a vote ensemble, this is the zoo's expected disagreement (independent draws) minus its
    mean error. For any other classifier (a mean softmax) it compares two independently sampled
    predictions' disagreement with a sampled prediction's error (the paper's remark after Theorem 4.2).

    Parameters
    ----------
    ensemble : array-like of shape (n_samples, n_classes)
    labels : array-like of shape (n_samples,)

    Returns
    -------
    float
        Signed; Theorem 4.2 bounds its size by CACE.

    References
    ----------
    .. [1] Y. Jiang, V. Nagarajan, C. Baek and J. Z. Kolter, "Assessing Generalization of SGD via
       Disagreement", ICLR 2022, arXiv:2106.13799.

    Examples
    --------
    >>> gde_gap(vote_ensemble([[0, 1], [1, 1]]), [0, 1])  # E[Dis] 0.25, E[Err] 0.25
    0.0
    """
    values, truth = _checked(ensemble, labels)
    return float(((truth * values).sum(axis=1) - (values**2).sum(axis=1)).mean())


def _vote_counts(labels: np.ndarray, n_classes: int | None) -> np.ndarray:
    if labels.ndim != 2 or labels.size == 0 or labels.dtype.kind not in "iu" or labels.min() < 0:
        raise InputError(
            f"labels must be non-negative class indices of shape (n_models, n_samples); got {labels.shape}."
        )
    k = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if labels.max() >= k:
        raise InputError(f"A predicted class index is {int(labels.max())}, past n_classes={k}.")
    n = labels.shape[1]
    flat = (np.arange(n)[None, :] * k + labels).ravel()
    return np.bincount(flat, minlength=n * k).reshape(n, k).astype(np.float64)


def _checked(ensemble: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """The ensemble ``(n, K)`` (widened for a label past its last column) and the one-hot labels ``(n, K)``."""
    values = np.asarray(ensemble, dtype=np.float64)
    y = np.asarray(labels)
    if values.ndim != 2 or values.shape[0] == 0 or y.shape != (values.shape[0],):
        raise InputError(
            f"Expected an ensemble (n_samples, n_classes) and labels (n_samples,); got {values.shape}, {y.shape}."
        )
    if not np.isfinite(values).all() or values.min() < 0 or not np.allclose(values.sum(axis=1), 1, atol=1e-6):
        raise InputError("The ensemble's rows must be probabilities: finite, non-negative, summing to 1.")
    if y.dtype.kind not in "iu" or y.min() < 0:
        raise InputError("labels must be non-negative class indices.")
    values = _pad(values, int(y.max()) + 1)
    truth = np.zeros_like(values)
    truth[np.arange(len(y)), y] = 1.0
    return values, truth


def _pad(values: np.ndarray, n_classes: int) -> np.ndarray:
    extra = n_classes - values.shape[1]
    return np.pad(values, ((0, 0), (0, extra))) if extra > 0 else values


def _levels(values: np.ndarray, bins: int | None) -> tuple[np.ndarray, int]:
    """Each entry's level set: its exact value's index, or its bin; and the number of levels."""
    if bins is None:
        distinct, index = np.unique(values, return_inverse=True)
        return index.reshape(values.shape), len(distinct)
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise InputError(f"bins must be a positive integer or None; got {bins!r}.")
    return np.minimum((values * bins).astype(np.int64), bins - 1), int(bins)


__all__ = [
    "PAPER_BINS",
    "CalibrationCurve",
    "calibration_curve",
    "class_aggregated_calibration_error",
    "class_wise_calibration_error",
    "gde_gap",
    "vote_ensemble",
]
