"""Metrics for sampled outputs: unbiased pass@k, maj@k, best@k and the bias-variance split of pass@k.

For each problem, ``n`` samples were drawn and ``c`` of them are correct. Chen et al. (2021)'s
unbiased estimator of the chance that at least one of ``k`` samples is correct is

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n - c + 1}^{n} (1 - k / i),

and 1 when ``n - c < k``. Dang, Baek, Wen, Kolter and Raghunathan (2025) split the failure
rate over problems: with rho_x the pass@1 of problem x,

    1 - pass@k = E[(1 - rho)^k] = (1 - E rho)^k + (Jensen gap),

and for k = 2 the gap is exactly Var(rho): at a fixed mean pass@1, problems that are always
or never solved (high variance, what supervised finetuning drives towards) lower pass@k.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

_EXACT_SUBSETS = 20_000  # maj@k is averaged over every k-subset up to this many; beyond, over random ones
_RESAMPLES = 2_000


def pass_at_k(n: Any, c: Any, k: int) -> np.ndarray:
    """Unbiased pass@k per problem, vectorised over problems.

    Parameters
    ----------
    n, c : int or array-like of int
        Samples drawn and correct samples, per problem (broadcast together).
    k : int
        At most ``min(n)``.

    Returns
    -------
    ndarray of float, one per problem (a 0-d array for scalar input).

    Notes
    -----
    The product is summed in log space, ``log C(n-c, k)/C(n, k) = T[n] - T[n-c]`` with
    ``T[m] = sum_{i=k+1}^{m} log1p(-k/i)``, one cumulative table for all problems; ``-expm1``
    keeps small values accurate.

    References
    ----------
    .. [1] M. Chen, J. Tworek, H. Jun, Q. Yuan et al., "Evaluating Large Language Models Trained on
       Code", arXiv 2021, arXiv:2107.03374 (the unbiased estimator).
    .. [2] X. Dang, C. Baek, K. Wen, Z. Kolter and A. Raghunathan, "Weight Ensembling Improves Reasoning
       in Language Models", COLM 2025, arXiv:2504.10478.

    Examples
    --------
    >>> pass_at_k([10, 10, 10], [0, 3, 10], 4).round(4).tolist()
    [0.0, 0.8333, 1.0]
    """
    n, c = np.broadcast_arrays(np.asarray(n), np.asarray(c))
    if n.dtype.kind not in "iu" or c.dtype.kind not in "iu":
        raise ValueError(f"pass_at_k takes integer counts n and c; got dtypes {n.dtype} and {c.dtype}.")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"pass_at_k needs an integer k >= 1; got {k!r}.")
    if n.size and ((c < 0).any() or (c > n).any()):
        raise ValueError("pass_at_k needs 0 <= c <= n for every problem (c correct out of n samples).")
    if n.size and (n < k).any():
        raise ValueError(f"pass_at_k needs at least k={k} samples per problem; some problems have n={int(n.min())}.")
    top = int(n.max()) if n.size else k
    steps = np.log1p(-k / np.arange(k + 1, top + 1, dtype=np.float64))
    table = np.concatenate([np.zeros(k + 1), np.cumsum(steps)])  # table[m] = T[m], 0 for m <= k
    wrong = n - c
    log_ratio = table[n] - table[np.maximum(wrong, k)]
    return np.where(wrong < k, 1.0, -np.expm1(log_ratio)) + 0.0  # + 0.0: no -0.0 when c = 0


@dataclass(frozen=True)
class Decomposition:
    """``1 - pass@k = E[(1 - rho)^k] = (1 - E rho)^k + jensen_gap`` over problems, rho = pass@1 per problem.

    Examples
    --------
    At the same mean pass@1, spread across problems costs pass@k:

    >>> even, split = pass_at_k_decomposition([0.5, 0.5], 2), pass_at_k_decomposition([0.0, 1.0], 2)
    >>> even.pass_at_k, split.pass_at_k, split.failure
    (0.75, 0.5, 0.5)
    >>> even.to_dict()
    {'k': 2, 'mean_pass@1': 0.5, 'var_pass@1': 0.0, 'bias_term': 0.25, 'jensen_gap': 0.0, 'pass@k': 0.75}
    """

    k: int
    mean_pass1: float
    var_pass1: float
    bias_term: float  # (1 - E rho)^k: the failure rate if every problem had the mean pass@1
    jensen_gap: float  # E[(1 - rho)^k] - (1 - E rho)^k >= 0: what the spread across problems costs

    @property
    def failure(self) -> float:
        return self.bias_term + self.jensen_gap

    @property
    def pass_at_k(self) -> float:
        """``1 - E[(1 - rho)^k]``: pass@k if each problem's pass@1 were exactly rho."""
        return 1.0 - self.failure

    def to_dict(self) -> dict[str, float]:
        return {
            "k": self.k, "mean_pass@1": self.mean_pass1, "var_pass@1": self.var_pass1,
            "bias_term": self.bias_term, "jensen_gap": self.jensen_gap, "pass@k": self.pass_at_k,
        }  # fmt: skip


def pass_at_k_decomposition(rho: Any, k: int) -> Decomposition:
    """The bias-variance split of pass@k from per-problem pass@1 values ``rho`` (e.g. ``c / n``).

    Parameters
    ----------
    rho : array-like of shape (n_problems,)
        Each problem's pass@1, in [0, 1].
    k : int

    Returns
    -------
    Decomposition

    References
    ----------
    .. [1] X. Dang, C. Baek, K. Wen, Z. Kolter and A. Raghunathan, "Weight Ensembling Improves Reasoning
       in Language Models", COLM 2025, arXiv:2504.10478.

    Examples
    --------
    >>> d = pass_at_k_decomposition([0.0, 1.0], 2)   # mean 0.5, every problem always or never solved
    >>> d.bias_term, d.jensen_gap, d.var_pass1
    (0.25, 0.25, 0.25)
    """
    rho = np.asarray(rho, dtype=np.float64)
    if rho.ndim != 1 or rho.size == 0 or not np.all((rho >= 0) & (rho <= 1)):
        raise ValueError("rho must be a non-empty 1-D array of per-problem pass@1 values in [0, 1].")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"pass_at_k_decomposition needs an integer k >= 1; got {k!r}.")
    mean = float(rho.mean())
    bias = (1.0 - mean) ** k
    return Decomposition(int(k), mean, float(rho.var()), bias, float(np.mean((1.0 - rho) ** k)) - bias)


def best_at_k(scores: Sequence[Any], correct: Sequence[Any], k: int) -> np.ndarray:
    """Expected correctness of the highest-scoring of ``k`` samples drawn without replacement, per problem.

    Exact: with the samples sorted by score, the best of a random k-subset lies in a tie group
    ``g`` with probability ``(C(n - above_g, k) - C(n - above_g - size_g, k)) / C(n, k)``, and
    ties are broken at random (the group's mean correctness).

    Parameters
    ----------
    scores, correct : sequences of per-problem arrays
        One score and one correctness flag per sample; problems may have different ``n``.
    k : int
        At most each problem's ``n``.

    Returns
    -------
    ndarray of shape (n_problems,)

    References
    ----------
    .. [1] X. Dang, C. Baek, K. Wen, Z. Kolter and A. Raghunathan, "Weight Ensembling Improves Reasoning
       in Language Models", COLM 2025, arXiv:2504.10478 (Best@k).

    Examples
    --------
    The best-scored of 2 of these 3 samples is correct only when the 0.9 one is left out:

    >>> best_at_k([[0.9, 0.1, 0.5]], [[False, True, True]], 2).round(4).tolist()
    [0.3333]
    """
    out = []
    for s, ok in _per_problem(scores, correct, "best_at_k"):
        n = len(s)
        _check_k(k, n, "best_at_k")
        values, inverse = np.unique(-np.asarray(s, dtype=np.float64), return_inverse=True)  # best first
        sizes = np.bincount(inverse, minlength=len(values))
        mean_ok = np.bincount(inverse, weights=ok, minlength=len(values)) / sizes
        above = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        total = math.comb(n, k)
        chance = [(math.comb(n - a, k) - math.comb(n - a - z, k)) / total for a, z in zip(above, sizes)]
        out.append(float(np.dot(chance, mean_ok)))
    return np.array(out)


def maj_at_k(answers: Sequence[Any], correct: Sequence[Any], k: int, *, seed: int = 0) -> np.ndarray:
    """Expected correctness of the majority answer among ``k`` samples drawn without replacement, per problem.

    Ties between answers are broken at random. The expectation is exact (every k-subset) when a
    problem has at most 20,000 of them, and otherwise a mean over 2,000 random subsets drawn
    with ``seed``.

    Parameters
    ----------
    answers : sequence of per-problem arrays
        Each sample's final answer (any hashable values).
    correct : sequence of per-problem arrays of bool
        Whether each sample's answer is correct.
    k : int
        At most each problem's ``n``.
    seed : int
        Seeds the random subsets of a problem with more than 20,000 of them.

    Returns
    -------
    ndarray of shape (n_problems,)

    References
    ----------
    .. [1] X. Dang, C. Baek, K. Wen, Z. Kolter and A. Raghunathan, "Weight Ensembling Improves Reasoning
       in Language Models", COLM 2025, arXiv:2504.10478 (maj@k, majority voting).

    Examples
    --------
    Two of three samples answer 42, the right answer; a 1-1 tie is broken at random:

    >>> maj_at_k([["42", "41", "42"]], [[True, False, True]], 2).round(4).tolist()
    [0.6667]
    """
    rng = np.random.default_rng(seed)
    out = []
    for a, ok in _per_problem(answers, correct, "maj_at_k"):
        n = len(a)
        _check_k(k, n, "maj_at_k")
        codes = np.unique(np.asarray(a), return_inverse=True)[1].ravel()
        right = np.zeros(codes.max() + 1)
        right[codes[ok.astype(bool)]] = 1.0  # an answer is correct or not, whichever sample gave it
        if math.comb(n, k) <= _EXACT_SUBSETS:
            subsets = np.array(list(combinations(range(n), k)))
        else:
            subsets = np.argsort(rng.random((_RESAMPLES, n)), axis=1)[:, :k]
        votes = np.zeros((len(subsets), len(right)))
        np.add.at(votes, (np.arange(len(subsets))[:, None], codes[subsets]), 1.0)
        top = votes == votes.max(axis=1, keepdims=True)
        out.append(float(((top * right).sum(axis=1) / top.sum(axis=1)).mean()))
    return np.array(out)


@dataclass(frozen=True)
class Samples:
    """Samples grouped by problem: ``answers[p]``, ``correct[p]`` and ``scores[p]`` (None without scores).

    ``n`` and ``c`` are the samples and the correct samples per problem, as :func:`pass_at_k` takes them.

    Examples
    --------
    >>> samples = group_samples({"problem": ["p1", "p1", "p2"], "answer": ["4", "5", "7"], "correct": [1, 0, 1]})
    >>> samples.problems, samples.n.tolist(), samples.c.tolist(), samples.scores
    (('p1', 'p2'), [2, 1], [1, 1], None)
    >>> pass_at_k(samples.n, samples.c, 1).tolist()
    [0.5, 1.0]
    """

    problems: tuple[Any, ...]
    answers: tuple[np.ndarray, ...]
    correct: tuple[np.ndarray, ...]
    scores: tuple[np.ndarray, ...] | None

    @property
    def n(self) -> np.ndarray:
        return np.array([len(c) for c in self.correct])

    @property
    def c(self) -> np.ndarray:
        return np.array([int(np.sum(c)) for c in self.correct])


def group_samples(rows: Iterable[Mapping[str, Any]] | Any) -> Samples:
    """Group a tidy table of samples by problem.

    ``rows`` is an iterable of mappings, a mapping of columns, or a pandas DataFrame, with
    columns ``problem`` and ``correct`` (bool or 0/1), optionally ``answer`` (for maj@k),
    ``score`` (for best@k) and ``sample`` (ignored: order does not matter).

    Examples
    --------
    >>> samples = group_samples([{"problem": "p1", "correct": 1}, {"problem": "p1", "correct": 0}])
    >>> samples.n.tolist(), samples.c.tolist()
    ([2], [1])
    """
    if hasattr(rows, "to_dict"):  # a DataFrame
        rows = rows.to_dict("list")
    if isinstance(rows, Mapping):
        columns = {k: list(v) for k, v in rows.items()}
    else:
        records = list(rows)
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise ValueError(
                    f"Sample {i + 1} is a {type(record).__name__}, not a record; each sample must be one object "
                    'with problem and correct, e.g. {"problem": "p1", "answer": "42", "correct": true}.'
                )
        keys = list(dict.fromkeys(k for r in records for k in r))
        columns = {k: [r.get(k) for r in records] for k in keys}
    for needed in ("problem", "correct"):
        if needed not in columns:
            raise ValueError(
                f"The samples need a {needed!r} column; found columns {sorted(columns)}. "
                "Each row is one sample: problem, sample, answer, correct, score."
            )
    correct = [_as_bool(v) for v in columns["correct"]]
    groups: dict[Any, list[int]] = {}
    for i, problem in enumerate(columns["problem"]):
        if not isinstance(problem, (str, int, float)) or isinstance(problem, bool):
            raise ValueError(f"Sample {i + 1} has problem {problem!r:.40}; a problem must be a string or a number.")
        groups.setdefault(problem, []).append(i)
    answers = columns.get("answer") or [None] * len(correct)
    scores = None if columns.get("score") is None else [_as_score(v, i) for i, v in enumerate(columns["score"])]
    return Samples(
        tuple(groups),
        tuple(np.array([str(answers[i]) for i in idx]) for idx in groups.values()),
        tuple(np.array([correct[i] for i in idx]) for idx in groups.values()),
        None if scores is None else tuple(np.array([scores[i] for i in idx]) for idx in groups.values()),
    )


def _as_score(value: Any, row: int) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = float("nan")
    if isinstance(value, bool) or not math.isfinite(score):
        raise ValueError(
            f"Sample {row + 1} has score {value!r:.40}; a score must be a finite number (or leave out the column)."
        )
    return score


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "y", "t"):
            return True
        if text in ("0", "false", "no", "n", "f", ""):
            return False
    elif isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, float, np.number)) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"correct must be true/false or 1/0; got {value!r:.40}.")


def _per_problem(values: Sequence[Any], correct: Sequence[Any], owner: str) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    if len(values) != len(correct):
        raise ValueError(f"{owner}: {len(values)} problems of values but {len(correct)} of correctness flags.")
    for v, ok in zip(values, correct):
        v, ok = np.asarray(v), np.asarray(ok, dtype=np.float64)
        if v.shape != ok.shape or v.ndim != 1:
            raise ValueError(f"{owner}: each problem needs one value and one correctness flag per sample.")
        yield v, ok


def _check_k(k: int, n: int, owner: str) -> None:
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"{owner} needs an integer k in [1, n]; got k={k!r} with n={n} samples.")


__all__ = ["Decomposition", "Samples", "best_at_k", "group_samples", "maj_at_k", "pass_at_k", "pass_at_k_decomposition"]
