"""Accuracy, pairwise agreement and the probit line: the core maths (numpy and scipy only).

Agreement between two models is the fraction of samples on which their hard predictions
are the same class. The kernel packs each model's class indices into bit planes (bit ``b``
of the class index of 64 samples per word), so two models disagree on a sample exactly when
some plane differs there; one XOR per plane, an OR across planes and a popcount compare 64
samples at once. Samples are processed in chunks, so memory stays bounded by
``n_models x chunk``, and rows are shared among threads (numpy releases the GIL).

The line is fitted over the pairs inside :data:`DEFAULT_KEEP` and trusted from
:data:`DEFAULT_MIN_R2`, :data:`MIN_DISTINCT_PAIRS` and :data:`MIN_SPREAD` on:

>>> DEFAULT_KEEP, DEFAULT_MIN_R2, MIN_DISTINCT_PAIRS, MIN_SPREAD
((0.05, 0.98), 0.95, 6, 1.0)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from scipy.special import ndtri

from ontheline._optional import extra
from ontheline._validation import EstimationError, InputError
from ontheline.predictions import Predictions, as_predictions, is_dask

# 256 words of 64 samples: one row's planes stay in L1/L2 while every other row streams past.
_CHUNK_WORDS = 256
_CHUNK_SAMPLES = 64 * _CHUNK_WORDS


def accuracy(preds: Any, labels: Any) -> np.ndarray:
    """Each model's accuracy.

    Parameters
    ----------
    preds : Predictions or array-like
        Labels ``(n_models, n_samples)`` or probabilities ``(n_models, n_samples, n_classes)``.
    labels : array-like of shape (n_samples,)
        True class labels, in the class order of ``preds``.

    Returns
    -------
    ndarray of shape (n_models,)
        Fractions in [0, 1].

    Examples
    --------
    >>> accuracy([[0, 1, 1, 0], [0, 0, 0, 0]], [0, 1, 0, 0]).tolist()
    [0.75, 0.75]
    """
    p = as_predictions(preds)
    y = encode_labels(p, labels, "labels")
    return np.asarray((p.labels == y).mean(axis=1))  # a dask array is reduced chunk by chunk


def encode_labels(preds: Predictions, labels: Any, name: str) -> np.ndarray:
    """Check that ``labels`` has one entry per sample of ``preds`` and map it to class indices."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != preds.n_samples:
        raise InputError(f"{name} must have one label per sample: expected shape ({preds.n_samples},), got {y.shape}.")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise InputError(f"{name} must hold class labels; it has non-integer or non-finite values.")
        y = y.astype(np.int64)
    default_classes = preds.classes == tuple(range(len(preds.classes)))
    if preds.probs is None and default_classes and y.dtype.kind in "iu" and y.size and y.min() >= 0:
        # Hard labels with the default classes 0..max(pred): a true class that no model predicts is
        # still a valid label (every prediction of it is wrong), not an unknown class.
        return y.astype(np.int64)
    return preds.encode(y, name)


def pairwise_agreement(preds: Any, *, n_threads: int | None = None) -> np.ndarray:
    """Fraction of samples on which each pair of models predicts the same class.

    Parameters
    ----------
    preds : Predictions, array-like or dask array
        Labels ``(n_models, n_samples)`` or probabilities ``(n_models, n_samples, n_classes)``.
        A dask array (class indices or probabilities, chunked along samples) is reduced
        chunk by chunk, so memory stays bounded by the chunk size whatever the number of samples.
    n_threads : int, optional
        Threads to use (default: the CPUs available to this process).

    Returns
    -------
    ndarray of shape (n_models, n_models)
        Symmetric, with ones on the diagonal.

    Examples
    --------
    >>> pairwise_agreement([[0, 1, 2, 2], [0, 1, 2, 0], [1, 1, 1, 1]]).tolist()
    [[1.0, 0.75, 0.25], [0.75, 1.0, 0.25], [0.25, 0.25, 1.0]]
    """
    p = as_predictions(preds)
    return agreement_counts(p.labels, n_threads=n_threads) / p.n_samples


def agreement_counts(labels: np.ndarray, *, n_threads: int | None = None) -> np.ndarray:
    """Number of samples on which each pair agrees, ``(n_models, n_models)`` int64.

    ``labels`` is ``(n_models, n_samples)`` of non-negative integer class indices.
    """
    if is_dask(labels):
        return sum_blocks(labels, partial(agreement_counts, n_threads=1))
    n_models, n_samples = labels.shape
    n_planes = max(1, int(labels.max()).bit_length()) if labels.size else 1
    disagree = np.zeros((n_models, n_models), np.int64)
    threads = max(1, min(n_threads or _available_cpus(), n_models - 1))
    with ThreadPoolExecutor(threads) if threads > 1 else _Inline() as pool:
        for start in range(0, n_samples, _CHUNK_SAMPLES):
            planes = _bit_planes(labels[:, start : start + _CHUNK_SAMPLES], n_planes)
            rows = [range(t, n_models - 1, threads) for t in range(threads)]
            list(pool.map(partial(_count_disagreements, planes, out=disagree), rows))
    disagree += disagree.T
    return n_samples - disagree


def sum_blocks(array: Any, reduce: Callable[..., np.ndarray], *others: np.ndarray) -> np.ndarray:
    """``reduce`` applied to each block of samples of a dask ``(n_models, n_samples)`` array, with
    the matching slices of ``others`` (in-memory arrays along samples), summed in a pairwise tree
    so that only a few partial results are alive at once."""
    with extra("dask"):
        import dask

    bounds = np.cumsum((0, *array.chunks[1]))
    call = dask.delayed(reduce, pure=True)
    parts = [
        call(block, *(other[start:stop] for other in others))
        for block, start, stop in zip(array.to_delayed().ravel(), bounds[:-1], bounds[1:])
    ]
    while len(parts) > 1:
        parts = [
            dask.delayed(np.add)(*parts[i : i + 2]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)
        ]
    return np.asarray(dask.compute(parts[0])[0])


def _bit_planes(labels: np.ndarray, n_planes: int) -> np.ndarray:
    """``(n_planes, n_models, n_words)`` uint64: bit ``b`` of each class index, 64 samples a word.

    Padding bits are 0 for every model, so they never count as a disagreement.
    """
    n_models, n_samples = labels.shape
    n_words = -(-n_samples // 64)
    planes = np.zeros((n_planes, n_models, n_words * 8), np.uint8)
    for b in range(n_planes):
        bits = np.bitwise_and(np.right_shift(labels, b), 1).astype(bool)
        planes[b, :, : -(-n_samples // 8)] = np.packbits(bits, axis=1, bitorder="little")
    return planes.view(np.uint64)


def _count_disagreements(planes: np.ndarray, rows: range, out: np.ndarray) -> None:
    """Add, for each row i in ``rows`` and each j > i, the disagreements of models i and j to ``out[i, j]``."""
    n_planes, n_models, n_words = planes.shape
    differ = np.empty((n_models, n_words), np.uint64)
    scratch = np.empty((n_models, n_words), np.uint64)
    for i in rows:
        d = differ[: n_models - i - 1]
        s = scratch[: n_models - i - 1]
        np.bitwise_xor(planes[0, i], planes[0, i + 1 :], out=d)
        for b in range(1, n_planes):
            np.bitwise_xor(planes[b, i], planes[b, i + 1 :], out=s)
            np.bitwise_or(d, s, out=d)
        out[i, i + 1 :] += np.bitwise_count(d).sum(axis=1, dtype=np.int64)


class _Inline:
    """A stand-in for a one-thread pool: runs ``map`` in the caller's thread."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Any, items: Any) -> Any:
        return map(fn, items)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def probit(p: Any, n_samples: int | None = None) -> np.ndarray:
    """Inverse standard-normal CDF, Phi^-1(p).

    With ``n_samples`` given, ``p`` is first clipped to ``[1/(2N), 1 - 1/(2N)]``: an accuracy
    of exactly 0 or 1 measured on N samples then maps to a finite value instead of -inf / inf.

    Examples
    --------
    >>> float(probit(0.5))
    0.0
    >>> bool(np.isfinite(probit(1.0, n_samples=100)))
    True
    """
    p = np.asarray(p, dtype=np.float64)
    if n_samples is not None:
        eps = 0.5 / n_samples
        p = np.clip(p, eps, 1.0 - eps)
    return ndtri(p)


#: The agreement filter of the official code: a pair enters the line when both its ID and OOD
#: agreement lie in this range, which keeps the probits finite and stable.
DEFAULT_KEEP = (0.05, 0.98)
#: Below this R² of the agreement line, agreement-on-the-line is not trusted (Saxena et al., 2024).
DEFAULT_MIN_R2 = 0.95
#: Trust needs at least this many distinct (ID, OOD) agreement points on the line. For n points
#: that are in fact unrelated, R² follows Beta(1/2, (n - 2)/2): with 6 points the chance of
#: R² >= 0.95 is below 0.1%; with 3 (two of them one point, as near-identical models give) a
#: line through 2 points has R² = 1.
MIN_DISTINCT_PAIRS = 6
#: ... and the kept pairs' probit ID agreements must spread over at least this many of their
#: sampling standard errors, so that the line is drawn by differences between models, not by noise.
MIN_SPREAD = 1.0


@dataclass(frozen=True)
class AgreementLine:
    """The least-squares line ``probit(OOD agreement) = slope * probit(ID agreement) + bias``.

    Attributes
    ----------
    slope, bias : float
        Fitted over the kept model pairs.
    r2 : float
        Coefficient of determination of the fit; the label-free trust diagnostic.
    n_pairs : int
        Number of pairs kept by the agreement filter.
    n_distinct : int
        Number of distinct (ID, OOD) agreement points among them.
    spread : float
        Standard deviation of the kept pairs' probit ID agreement, in units of its sampling
        standard error (NaN when the number of ID samples is unknown).

    Examples
    --------
    >>> line = AgreementLine(slope=0.9, bias=-0.2, r2=0.99, n_pairs=28, n_distinct=28, spread=12.0)
    >>> line.trust_issues(min_r2=0.95)  # linear, through enough distinct, spread-out pairs
    ()
    >>> line.to_dict()["slope"]
    0.9
    """

    slope: float
    bias: float
    r2: float
    n_pairs: int
    n_distinct: int
    spread: float

    def trust_issues(self, min_r2: float) -> tuple[str, ...]:
        """Why agreement-on-the-line cannot be trusted here (empty when it can).

        Examples
        --------
        >>> AgreementLine(1.0, 0.0, r2=1.0, n_pairs=3, n_distinct=2, spread=0.4).trust_issues(0.95)[0]
        'only 2 distinct pair agreements (of 3 kept pairs) define the line; trust needs at least 6'
        """
        issues = []
        if self.r2 < min_r2:
            issues.append(
                f"ID-vs-OOD agreement is weakly linear (R²={self.r2:.3f} after probit, below min_r2={min_r2})"
            )
        if self.n_distinct < MIN_DISTINCT_PAIRS:
            issues.append(
                f"only {self.n_distinct} distinct pair agreements (of {self.n_pairs} kept pairs) define the line; "
                f"trust needs at least {MIN_DISTINCT_PAIRS}"
            )
        if np.isnan(self.spread):
            issues.append("the pairs' spread against their sampling noise is unknown (fit with n_id_samples=)")
        elif self.spread < MIN_SPREAD:
            issues.append(
                f"the pairs' ID agreements spread over {self.spread:.2f} sampling standard errors, so the line is "
                f"drawn by noise; trust needs at least {MIN_SPREAD:g}"
            )
        if not self.slope > 0:
            issues.append(
                f"the agreement line falls (slope {self.slope:.2f}): pairs that agree more on ID agree less on OOD, "
                "which no shift shared by the zoo produces"
            )
        return tuple(issues)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "slope": self.slope, "bias": self.bias, "r2": self.r2, "n_pairs": self.n_pairs,
            "n_distinct": self.n_distinct, "spread": self.spread,
        }  # fmt: skip


def kept_pairs(id_agreement: np.ndarray, ood_agreement: np.ndarray, keep: tuple[float, float]) -> np.ndarray:
    """Boolean ``(n_models, n_models)`` mask of pairs i < j whose ID and OOD agreement both lie in ``keep``.

    Parameters
    ----------
    id_agreement, ood_agreement : ndarray of shape (n_models, n_models)
        Pairwise agreement on the ID and the OOD data.
    keep : (float, float)
        The agreement filter, e.g. :data:`DEFAULT_KEEP`.

    Returns
    -------
    ndarray of shape (n_models, n_models), bool
        True at ``[i, j]``, ``i < j``, for each kept pair (the upper triangle only).

    Examples
    --------
    >>> agreement = np.array([[1.0, 0.9, 0.99], [0.9, 1.0, 0.5], [0.99, 0.5, 1.0]])
    >>> kept_pairs(agreement, agreement, DEFAULT_KEEP).astype(int).tolist()  # 0.99 is above 0.98
    [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    """
    low, high = keep
    inside = (id_agreement >= low) & (id_agreement <= high) & (ood_agreement >= low) & (ood_agreement <= high)
    return np.triu(inside, k=1)


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Ordinary least squares ``y = slope * x + bias``; returns ``(slope, bias, r2)``.

    Examples
    --------
    >>> fit_line(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
    (2.0, 1.0, 1.0)
    """
    x_mean, y_mean = x.mean(), y.mean()
    sxx = float(((x - x_mean) ** 2).sum())
    slope = float(((x - x_mean) * (y - y_mean)).sum()) / sxx
    bias = float(y_mean - slope * x_mean)
    ss_res = float(((y - slope * x - bias) ** 2).sum())
    ss_tot = float(((y - y_mean) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0.0)
    return slope, bias, r2


def fit_agreement_line(
    id_agreement: np.ndarray,
    ood_agreement: np.ndarray,
    keep: tuple[float, float] = DEFAULT_KEEP,
    *,
    n_id_samples: int | None = None,
) -> tuple[AgreementLine, np.ndarray]:
    """Fit the probit agreement line over the pairs kept by the filter.

    Returns the line and the ``(n_models, n_models)`` mask of kept pairs (upper triangle).
    ``n_id_samples`` (the ID set's size) gives the line's ``spread``. Raises
    :class:`~ontheline.EstimationError` when fewer than 2 pairs are kept or their ID
    agreements are all equal.

    Parameters
    ----------
    id_agreement, ood_agreement : ndarray of shape (n_models, n_models)
        Pairwise agreement on the ID and the OOD data (:func:`pairwise_agreement`).
    keep : (float, float), default (0.05, 0.98)
        The agreement filter (:func:`kept_pairs`).
    n_id_samples : int, optional
        The number of ID samples; without it the line's ``spread`` is NaN.

    Returns
    -------
    line : AgreementLine
    mask : ndarray of shape (n_models, n_models), bool

    Examples
    --------
    >>> from ontheline.synthetic import make_line_zoo
    >>> id_probs, _, ood_probs, _ = make_line_zoo(n_models=8)
    >>> line, mask = fit_agreement_line(pairwise_agreement(id_probs), pairwise_agreement(ood_probs), n_id_samples=4000)
    >>> line.n_pairs, round(line.slope, 2), round(line.r2, 3)
    (28, 0.68, 0.978)
    """
    mask = kept_pairs(id_agreement, ood_agreement, keep)
    n_pairs = int(mask.sum())
    id_kept, ood_kept = id_agreement[mask], ood_agreement[mask]
    x = probit(id_kept)
    if n_pairs < 2 or np.ptp(x) == 0:
        raise EstimationError(
            f"The agreement line needs at least 2 model pairs with distinct ID agreement inside {list(keep)}; "
            f"{n_pairs} pairs were kept. Add more diverse models, or widen the agreement filter "
            "(keep= in Python, --keep in the command line)."
        )
    slope, bias, r2 = fit_line(x, probit(ood_kept))
    n_distinct = len(np.unique(np.stack([id_kept, ood_kept], axis=1), axis=0))
    spread = float("nan") if n_id_samples is None else float(x.std() / np.median(probit_se(id_kept, n_id_samples)))
    return AgreementLine(slope, bias, r2, n_pairs, n_distinct, spread), mask


def probit_se(p: np.ndarray, n_samples: int) -> np.ndarray:
    """Sampling standard error of ``probit(p)`` for a fraction ``p`` measured on ``n_samples`` (delta method).

    Examples
    --------
    >>> float(probit_se(np.array([0.5]), 100)[0].round(4))
    0.1253
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 0.5 / n_samples, 1.0 - 0.5 / n_samples)
    density = np.exp(-0.5 * ndtri(p) ** 2) / np.sqrt(2.0 * np.pi)  # the normal pdf at probit(p)
    return np.sqrt(p * (1.0 - p) / n_samples) / density


__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_MIN_R2",
    "MIN_DISTINCT_PAIRS",
    "MIN_SPREAD",
    "AgreementLine",
    "accuracy",
    "fit_agreement_line",
    "kept_pairs",
    "pairwise_agreement",
    "probit",
    "probit_se",
]
