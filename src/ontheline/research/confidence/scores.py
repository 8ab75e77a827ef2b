"""The scores of a confidence trajectory: progressiveness, the premature / progressive label, overconfidence.

A confidence trajectory ``c`` of length ``K`` holds the probability of the final answer after
the first ``k / (K - 1)`` of the chain of thought, ``k = 0 ... K - 1``
(:func:`~ontheline.research.confidence.confidence_trajectory` measures it). These functions
need numpy only:

- :func:`progressiveness`: Spearman's rho between ``c`` and the position ``k`` (NaN for a
  constant ``c``: the ranks do not vary);
- :func:`classify`: "progressive" when ``rho >= tau`` (``tau = 0.4`` by default), otherwise
  "premature", a constant trajectory included;
- :func:`pcs_weights` and :func:`overconfidence`: ``O = <c, w>`` with
  ``w = linspace(+0.5, -0.5, K)``, positive when the answer is known early and not late; the
  weights sum to 0, so a constant trajectory scores 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The labels of :func:`classify`.
LABELS = ("progressive", "premature")

_REFERENCE = (
    'J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in '
    'Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.'
)


def _trajectories(confidence: Any, name: str = "confidence") -> np.ndarray:
    c = np.asarray(confidence, dtype=np.float64)
    if c.ndim not in (1, 2) or c.shape[-1] < 2:
        raise ValueError(
            f"{name} must have shape (points,) or (trajectories, points) with at least 2 points; got {c.shape}."
        )
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{name} must hold finite probabilities; got a NaN or an infinity.")
    return c


def pcs_weights(points: int) -> np.ndarray:
    """The weights ``w = linspace(+0.5, -0.5, points)`` of the overconfidence score; they sum to 0.

    Parameters
    ----------
    points : int
        ``K``, the number of truncation points (at least 2).

    Returns
    -------
    ndarray of shape (points,)

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> pcs_weights(6).round(2).tolist()
    [0.5, 0.3, 0.1, -0.1, -0.3, -0.5]
    >>> float(abs(pcs_weights(11).sum())) < 1e-12
    True
    """
    if not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points must be an integer of at least 2; got {points!r}.")
    w = np.linspace(0.5, -0.5, int(points))
    return (w - w[::-1]) / 2  # exactly antisymmetric (linspace is, up to rounding)


def overconfidence(confidence: Any) -> Any:
    """The premature-confidence (overconfidence) score ``O = <c, w>``, ``w`` from :func:`pcs_weights`.

    Positive when the answer is probable early and not late, negative when confidence grows
    along the chain of thought, 0 for a constant trajectory (the weights sum to 0).

    Parameters
    ----------
    confidence : array-like of shape (points,) or (trajectories, points)

    Returns
    -------
    float, or ndarray of shape (trajectories,)

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> round(overconfidence([0, 0, 0, 0.2, 0.6, 1.0]), 3)    # confidence grows: negative
    -0.7
    >>> round(overconfidence([1, 1, 1, 1, 1, 0.8]), 3)        # known from the start: positive
    0.1
    >>> overconfidence([[0.7] * 6, [0.0] * 6]).tolist()
    [0.0, 0.0]
    """
    c = _trajectories(confidence)
    w = pcs_weights(c.shape[-1])
    half = c.shape[-1] // 2  # w is antisymmetric, w[K-1-j] = -w[j]: pair the ends, so a constant c gives exactly 0
    score = (c[..., :half] - c[..., ::-1][..., :half]) @ w[:half]
    return float(score) if c.ndim == 1 else score


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank), as Spearman's rho uses them."""
    order = np.argsort(x, axis=-1, kind="stable")
    ranks = np.empty_like(x)
    for row, (values, idx) in enumerate(zip(x.reshape(-1, x.shape[-1]), order.reshape(-1, x.shape[-1]))):
        sorted_values = values[idx]
        r = np.empty(len(values))
        start = 0
        while start < len(values):
            stop = start
            while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
                stop += 1
            r[idx[start : stop + 1]] = (start + stop) / 2.0 + 1.0
            start = stop + 1
        ranks.reshape(-1, x.shape[-1])[row] = r
    return ranks


def progressiveness(confidence: Any, resolution: float | None = None) -> Any:
    """Spearman's rho between the confidence and the truncation point's index (the progressiveness score).

    Ties take their average rank. A constant trajectory has no varying rank: its rho is NaN
    (as ``scipy.stats.spearmanr`` gives it, without the warning).

    Parameters
    ----------
    confidence : array-like of shape (points,) or (trajectories, points)
    resolution : float, optional
        Round ``c`` to multiples of this first. The paper's Monte-Carlo probe has the resolution
        ``1 / M`` (0.1 with 10 samples), so a nearly flat trajectory is tied and not ranked;
        the exact probe's values are continuous, and without rounding a drift of 0.001 counts
        as much as a jump from 0 to 1.

    Returns
    -------
    float, or ndarray of shape (trajectories,), in [-1, 1] or NaN

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> round(progressiveness([0, 0, 0, 0.2, 0.6, 1.0]), 3)
    0.941
    >>> round(progressiveness([1, 1, 1, 1, 1, 0.8]), 3)
    -0.655
    >>> progressiveness([1.0] * 6)
    nan
    >>> round(progressiveness([0.97, 0.98, 0.99, 0.995, 0.999, 1.0]), 3), progressiveness([0.97, 0.98, 0.99, 1.0], 0.1)
    (1.0, nan)
    """
    c = _trajectories(confidence)
    if resolution is not None:
        if not resolution > 0:
            raise ValueError(f"resolution must be positive (or None); got {resolution!r}.")
        c = np.round(c / resolution) * resolution
    ranks = _ranks(c)
    position = np.arange(1, c.shape[-1] + 1, dtype=np.float64)
    dr = ranks - ranks.mean(axis=-1, keepdims=True)
    dp = position - position.mean()
    scale = np.sqrt((dr**2).sum(axis=-1) * (dp**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(scale > 0, (dr * dp).sum(axis=-1) / np.where(scale > 0, scale, 1.0), np.nan)
    return float(rho) if c.ndim == 1 else rho


def classify(confidence: Any, tau: float = 0.4, resolution: float | None = None) -> Any:
    """ "progressive" when the progressiveness (Spearman's rho) is at least ``tau``, otherwise "premature".

    A constant trajectory has rho NaN, which is not ``>= tau``: it is premature (confident,
    or not, from the start, and the chain of thought changes nothing).

    Parameters
    ----------
    confidence : array-like of shape (points,) or (trajectories, points)
    tau : float
        The threshold, in [-1, 1]; the paper's default is 0.4 (its results hold for 0.4 to 0.8).
    resolution : float, optional
        Round ``c`` to multiples of this before ranking (:func:`progressiveness`).

    Returns
    -------
    str, or list of str (one per trajectory)

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
       Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> classify([0, 0, 0, 0.2, 0.6, 1.0]), classify([1.0] * 6)
    ('progressive', 'premature')
    >>> classify([[0, 0.5, 1, 1, 1, 1], [1, 0.9, 0.8, 0.6, 0.3, 0]])
    ['progressive', 'premature']
    """
    if not -1.0 <= float(tau) <= 1.0:
        raise ValueError(f"tau must be in [-1, 1]; got {tau!r}.")
    rho = np.asarray(progressiveness(confidence, resolution))
    labels = np.where(rho >= tau, LABELS[0], LABELS[1])  # NaN >= tau is False
    return str(labels) if labels.ndim == 0 else [str(v) for v in labels]


__all__ = ["LABELS", "classify", "overconfidence", "pcs_weights", "progressiveness"]
