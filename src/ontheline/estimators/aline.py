"""ALine-S and ALine-D (Baek et al., NeurIPS 2022): OOD accuracy from agreement-on-the-line.

When accuracy is on the line, ``probit(acc_OOD) = a * probit(acc_ID) + b``, the pairwise
agreements lie on a line with the *same* slope and bias, and that line can be fitted without
OOD labels. ALine-S transfers the fitted line to each model's ID accuracy; ALine-D solves, in
least squares over all kept pairs (i, j),

    (w_i + w_j) / 2 = probit(agr_OOD_ij) + a * ((x_i + x_j) / 2 - probit(agr_ID_ij)),

for ``w = probit(acc_OOD)``, with ``x = probit(acc_ID)``; the bias cancels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np
from scipy.linalg import solve
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.special import ndtr

from ontheline._validation import EstimationError, ModelFallbackWarning, check_interval, check_number
from ontheline.agreement import (
    DEFAULT_KEEP,
    DEFAULT_MIN_R2,
    AgreementLine,
    agreement_counts,
    fit_agreement_line,
    probit,
    sum_blocks,
)
from ontheline.estimators._base import NO_LINE, Estimates, Estimator, Shift
from ontheline.predictions import Predictions, is_dask


def aline_s(id_accuracy: np.ndarray, n_id_samples: int, slope: float, bias: float) -> np.ndarray:
    """ALine-S: ``Phi(slope * probit(acc_ID) + bias)``, an accuracy in [0, 1].

    ID accuracies are clipped to ``[1/(2N), 1 - 1/(2N)]`` first, so a model that is right (or
    wrong) on every ID sample still gets a finite estimate.

    Examples
    --------
    >>> aline_s(np.array([0.5, 1.0]), 100, slope=1.0, bias=0.0).round(3).tolist()
    [0.5, 0.995]
    """
    return ndtr(slope * probit(id_accuracy, n_id_samples) + bias)


@dataclass(frozen=True)
class ALineDSolution:
    """The ALine-D solve: estimates where identifiable, NaN elsewhere, and why not."""

    ood_accuracy: np.ndarray
    isolated: np.ndarray
    bipartite: np.ndarray


def aline_d(
    id_accuracy: np.ndarray,
    n_id_samples: int,
    id_agreement: np.ndarray,
    ood_agreement: np.ndarray,
    mask: np.ndarray,
    slope: float,
) -> ALineDSolution:
    """ALine-D: least squares over every kept pair, solved as an n x n normal-equation system.

    With ``A`` the pair-by-model matrix with 0.5 in columns i and j of pair (i, j),
    ``A^T A = (D + W) / 4`` (D the degrees, W the 0/1 adjacency of kept pairs), so the solve is
    ``(D + W) w = 2 s`` with ``s_k`` the sum of right-hand sides of the pairs containing k.
    ``w`` is unique exactly on the connected components of the kept-pair graph that contain
    an odd cycle; models in bipartite components (an isolated model is one) get NaN.

    Parameters
    ----------
    id_accuracy : ndarray of shape (n_models,)
    n_id_samples : int
        For clipping the accuracies before the probit.
    id_agreement, ood_agreement : ndarray of shape (n_models, n_models)
    mask : ndarray of shape (n_models, n_models), bool
        Kept pairs, upper triangle.
    slope : float
        The fitted agreement-line slope.
    """
    n_models = id_accuracy.shape[0]
    adjacency = mask | mask.T
    x = probit(id_accuracy, n_id_samples)
    rhs = np.zeros((n_models, n_models))
    rhs[mask] = probit(ood_agreement[mask]) + slope * (
        0.5 * (x[:, None] + x[None, :])[mask] - probit(id_agreement[mask])
    )
    isolated, bipartite = _unidentifiable(adjacency)
    ok = ~(isolated | bipartite)
    estimates = np.full(n_models, np.nan)
    if ok.any():
        system = np.diag(adjacency.sum(axis=1).astype(float)) + adjacency
        pair_sums = (rhs + rhs.T).sum(axis=1)
        w = solve(system[np.ix_(ok, ok)], 2.0 * pair_sums[ok], assume_a="pos")
        estimates[ok] = ndtr(w)
    return ALineDSolution(estimates, isolated, bipartite)


def _unidentifiable(adjacency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Models with no kept pair, and models in bipartite components (which leave ALine-D singular)."""
    degree = adjacency.sum(axis=1)
    isolated = degree == 0
    n_comp, comp = connected_components(adjacency, directed=False)
    color = np.zeros(len(degree), dtype=np.int8)
    for c in range(n_comp):
        root = int(np.flatnonzero(comp == c)[0])
        order, parent = breadth_first_order(adjacency, root, directed=False, return_predecessors=True)
        for node in order[1:]:  # BFS order: a parent is always coloured before its children
            color[node] = 1 - color[parent[node]]
    i, j = np.nonzero(np.triu(adjacency, k=1))
    odd = np.zeros(n_comp, dtype=bool)
    odd[comp[i[color[i] == color[j]]]] = True  # an edge inside one colour class closes an odd cycle
    bipartite = ~odd[comp] & ~isolated
    return isolated, bipartite


@dataclass(frozen=True)
class _GroupCounts:
    """Per-group sufficient statistics for the bootstrap: ``(n_groups, ...)`` counts and sizes."""

    sizes: np.ndarray  # (n_groups,)
    agree: np.ndarray  # (n_groups, n_models, n_models)
    correct: np.ndarray | None  # (n_groups, n_models), ID only

    @staticmethod
    def of(labels: Any, truth: np.ndarray | None, n_groups: int, rng: np.random.Generator) -> _GroupCounts:
        """Split the samples at random into ``n_groups`` groups and count within each (dask: chunk by chunk)."""
        n_samples = labels.shape[1]
        n_groups = min(n_groups, n_samples)
        group = np.empty(n_samples, np.int32)
        for g, members in enumerate(np.array_split(rng.permutation(n_samples), n_groups)):
            group[members] = g
        with_correct = truth is not None
        count = partial(_count_by_group, n_groups=n_groups, with_correct=with_correct)
        others = (group, truth) if with_correct else (group,)
        # A dask array: one single-threaded task per block of samples, summed.
        counts = sum_blocks(labels, partial(count, n_threads=1), *others) if is_dask(labels) else count(labels, *others)
        n_models = labels.shape[0]
        sizes = np.bincount(group, minlength=n_groups)
        correct = counts[:, :, n_models] if with_correct else None
        return _GroupCounts(sizes, counts[:, :, :n_models].astype(np.int32), correct)

    def resample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """Agreement (and accuracy) of one bootstrap resample of the groups."""
        weights = rng.multinomial(len(self.sizes), np.full(len(self.sizes), 1.0 / len(self.sizes)))
        total = weights @ self.sizes
        agree = np.tensordot(weights, self.agree, axes=1) / total
        acc = None if self.correct is None else (weights @ self.correct) / total
        return agree, acc


def _count_by_group(
    labels: np.ndarray,
    group: np.ndarray,
    truth: np.ndarray | None = None,
    *,
    n_groups: int,
    with_correct: bool = False,
    n_threads: int | None = None,
) -> np.ndarray:
    """Per group: pair agreement counts ``(n_groups, n_models, n_models)``, with each model's correct
    count appended as a last column when ``with_correct`` (one array, so blocks sum in one tree)."""
    n_models = labels.shape[0]
    out = np.zeros((n_groups, n_models, n_models + with_correct), np.int64)
    for g in range(n_groups):
        members = group == g
        out[g, :, :n_models] = agreement_counts(labels[:, members], n_threads=n_threads)
        if truth is not None:
            out[g, :, n_models] = (labels[:, members] == truth[members]).sum(axis=1)
    return out


class _ALine(Estimator):
    """Shared machinery of ALine-S and ALine-D: the line, the fallback and the bootstrap interval.

    Parameters
    ----------
    n_bootstrap : int, default 200
        Bootstrap resamples for the per-model interval (0 for none). Samples are split at
        random into ``n_groups`` groups, once for ID and once for OOD, and the groups are
        resampled with replacement: a cheap, faithful stand-in for resampling samples.
    confidence : float, default 0.95
        Coverage of the percentile interval.
    n_groups : int, default 32
    random_state : int, default 0
    keep, min_r2 :
        See :class:`Estimator`.
    """

    min_models = 3
    #: More than this share of bootstrap resamples without a line flags the result: the
    #: interval then describes only the resamples that happened to keep enough pairs.
    max_failed_share = 0.1
    #: The point estimate from sufficient statistics (ALine-S or ALine-D), see :func:`aline_s_point`.
    point: ClassVar[Callable[..., tuple[np.ndarray, str | None]]]

    def __init__(
        self,
        *,
        n_bootstrap: int = 200,
        confidence: float = 0.95,
        n_groups: int = 32,
        random_state: int = 0,
        keep: tuple[float, float] = DEFAULT_KEEP,
        min_r2: float = DEFAULT_MIN_R2,
    ) -> None:
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.n_groups = n_groups
        self.random_state = random_state
        super().__init__(keep=keep, min_r2=min_r2)

    def _check_params(self) -> None:
        super()._check_params()
        owner = type(self).__name__
        check_number(owner, "n_bootstrap", self.n_bootstrap, low=0, integer=True)
        check_number(owner, "confidence", self.confidence, low=0.0, high=1.0)
        check_number(owner, "n_groups", self.n_groups, low=2, integer=True)
        check_number(owner, "random_state", self.random_state, low=0, integer=True)

    def _fit(self, preds: Predictions, labels: np.ndarray) -> None:
        rng = np.random.default_rng(self.random_state)
        self.id_groups_ = _GroupCounts.of(preds.labels, labels, self.n_groups, rng) if self.n_bootstrap else None

    def _estimate(self, shift: Shift) -> Estimates:
        keep = check_interval(type(self).__name__, "keep", self.keep)
        line, mask = shift.line, shift.mask
        if line is None or mask is None:  # ALine needs the line; the fit said why there is none
            raise shift.no_line or EstimationError(NO_LINE)
        point = type(self).point
        estimates, note = point(
            self.id_accuracy_, self.id_agreement_, shift.agreement, line, mask, self.n_id_samples_, self.models_, keep
        )
        notes = [] if note is None else [note]
        if note is not None:
            warnings.warn(ModelFallbackWarning(note), stacklevel=4)
        if not self.n_bootstrap:
            return Estimates(estimates, None, tuple(notes))
        draws = self._bootstrap(shift.preds, keep)
        failed = int(np.isnan(draws).all(axis=1).sum())
        flags = []
        if failed:
            notes.append(
                f"{failed} of {self.n_bootstrap} bootstrap resamples kept too few pairs for an agreement line; "
                "the interval comes from the others"
            )
            if failed > self.max_failed_share * self.n_bootstrap:
                flags.append(
                    f"{failed} of {self.n_bootstrap} bootstrap resamples could not fit an agreement line, so the "
                    "line is fragile and the intervals are unreliable"
                )
        return Estimates(estimates, _percentile_interval(draws, estimates, self.confidence), tuple(notes), tuple(flags))

    def _bootstrap(self, ood: Predictions, keep: tuple[float, float]) -> np.ndarray:
        """``(n_bootstrap, n_models)`` estimates from resampled groups; a row of NaN where no line could be fitted."""
        assert self.id_groups_ is not None
        rng = np.random.default_rng([self.random_state, 1])
        ood_groups = _GroupCounts.of(ood.labels, None, self.n_groups, rng)
        draws = np.full((self.n_bootstrap, ood.n_models), np.nan)
        point = type(self).point
        for b in range(self.n_bootstrap):
            id_agree, id_acc = self.id_groups_.resample(rng)
            ood_agree, _ = ood_groups.resample(rng)
            try:
                line, mask = fit_agreement_line(id_agree, ood_agree, keep)
                draws[b], _ = point(id_acc, id_agree, ood_agree, line, mask, self.n_id_samples_, self.models_, keep)
            except EstimationError:
                continue  # this resample kept too few pairs for a line; its row stays NaN
        return draws


def _percentile_interval(draws: np.ndarray, estimates: np.ndarray, confidence: float) -> np.ndarray:
    """The percentile interval of the draws, widened where needed to contain the point estimate;
    ``[0, 1]`` for a model no resample could estimate (nothing is known)."""
    tail = 50.0 * (1.0 - confidence)
    usable = ~np.isnan(draws).all(axis=1)
    if not usable.any():
        return np.tile([0.0, 1.0], (len(estimates), 1))
    low, high = np.percentile(draws[usable], [tail, 100.0 - tail], axis=0)
    return np.stack([np.minimum(low, estimates), np.maximum(high, estimates)], axis=1)


def aline_s_point(
    id_accuracy: np.ndarray,
    id_agreement: np.ndarray,
    ood_agreement: np.ndarray,
    line: AgreementLine,
    mask: np.ndarray,
    n_id_samples: int,
    models: tuple[str, ...],
    keep: tuple[float, float],
) -> tuple[np.ndarray, str | None]:
    """ALine-S from the sufficient statistics: ``(estimates, None)``."""
    return aline_s(id_accuracy, n_id_samples, line.slope, line.bias), None


def aline_d_point(
    id_accuracy: np.ndarray,
    id_agreement: np.ndarray,
    ood_agreement: np.ndarray,
    line: AgreementLine,
    mask: np.ndarray,
    n_id_samples: int,
    models: tuple[str, ...],
    keep: tuple[float, float],
) -> tuple[np.ndarray, str | None]:
    """ALine-D from the sufficient statistics: ``(estimates, note)``; models ALine-D cannot identify
    take ALine-S's estimate, and the note says which and why (None when there are none)."""
    solution = aline_d(id_accuracy, n_id_samples, id_agreement, ood_agreement, mask, line.slope)
    estimates = solution.ood_accuracy
    missing = np.isnan(estimates)
    if not missing.any():
        return estimates, None
    names = np.asarray(models)
    if missing.all():
        raise EstimationError(
            f"ALineD needs at least 3 models whose pairwise agreements form a connected, non-bipartite graph; "
            f"{_why(names, solution, keep)}. Add models, or widen the agreement filter "
            "(keep= in Python, --keep in the command line)."
        )
    estimates = np.where(missing, aline_s(id_accuracy, n_id_samples, line.slope, line.bias), estimates)
    return (
        estimates,
        f"ALine-S used for {int(missing.sum())} models ALine-D cannot identify: {_why(names, solution, keep)}",
    )


class ALineS(_ALine):
    """ALine-S: transfer the agreement line's slope and bias to each model's ID accuracy.

    ``acc_OOD_hat = Phi(a * probit(acc_ID) + b)``, with ``a, b`` the probit ID-vs-OOD agreement
    line of the zoo. Unlike the official notebook, the result is an accuracy (Phi is applied)
    and ID accuracies of exactly 0 or 1 are clipped to stay finite.

    Parameters
    ----------
    n_bootstrap : int, default 200
        Bootstrap resamples for each model's interval (0 for none).
    confidence : float, default 0.95
        Coverage of the percentile interval.
    n_groups : int, default 32
        Samples are split at random into this many groups, which the bootstrap resamples.
    random_state : int, default 0
    keep, min_r2 :
        See :class:`Estimator`.

    References
    ----------
    .. [1] C. Baek, Y. Jiang, A. Raghunathan and J. Z. Kolter, "Agreement-on-the-Line: Predicting the
       Performance of Neural Networks under Distribution Shift", NeurIPS 2022, arXiv:2206.13089.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=8, random_state=0)
    >>> res = otl.ALineS(n_bootstrap=0).fit(id_preds, id_labels).estimate(ood_preds)
    >>> res.ood_accuracy.shape
    (8,)
    """

    names = {None: "aline-s"}
    point = staticmethod(aline_s_point)


class ALineD(_ALine):
    """ALine-D: solve for every model's OOD accuracy from all kept pairs' agreements.

    Uses the slope of the agreement line and each pair's OOD agreement (see the module
    docstring). Models that ALine-D cannot identify (no kept pair, or a bipartite component of
    the kept-pair graph) fall back to ALine-S, with a :class:`ModelFallbackWarning` naming them.

    Parameters
    ----------
    n_bootstrap, confidence, n_groups, random_state, keep, min_r2 :
        As for :class:`ALineS`.

    References
    ----------
    .. [1] C. Baek, Y. Jiang, A. Raghunathan and J. Z. Kolter, "Agreement-on-the-Line: Predicting the
       Performance of Neural Networks under Distribution Shift", NeurIPS 2022, arXiv:2206.13089.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, ood_labels = otl.make_line_zoo(n_models=8, random_state=0)
    >>> res = otl.ALineD(n_bootstrap=0).fit(id_preds, id_labels).estimate(ood_preds)
    >>> truth = otl.accuracy(ood_preds, ood_labels)
    >>> bool(abs(res.ood_accuracy - truth).mean() < 0.03)
    True
    """

    names = {None: "aline-d"}
    point = staticmethod(aline_d_point)


def _why(names: np.ndarray, solution: ALineDSolution, keep: tuple[float, float]) -> str:
    reasons = []
    if solution.isolated.any():
        reasons.append(f"models {names[solution.isolated].tolist()[:10]} agree with no other model inside {list(keep)}")
    if solution.bipartite.any():
        reasons.append(
            f"models {names[solution.bipartite].tolist()[:10]} form a bipartite pair graph (no triangle of kept pairs)"
        )
    return "; ".join(reasons)
