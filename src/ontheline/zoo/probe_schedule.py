"""What each probe of a zoo sees: its initial weights, its training samples in order, its step count.

Every random draw is made with numpy from ``seed``, one stream per purpose and head, so a rerun
of :func:`ontheline.zoo.train_probes` gives the same weights bit for bit; the diversity source
decides which of these draws differ between heads (see :mod:`ontheline.zoo.probes`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from ontheline._validation import InputError, check_choice, check_number

#: The diversity sources of :func:`train_probes`, each the one knob varied between heads beside their step count.
DIVERSITY_SOURCES = ("random-head", "order", "subset")

Diversity = Literal["random-head", "order", "subset"]

# One independent random stream per purpose (and per head where the source varies it).
_INIT, _ORDER, _SUBSET = 0, 1, 2


def _rng(seed: int, purpose: int, head: int) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, head])


# --- what each head sees ------------------------------------------------------------------------


def _pools(n_samples: int, n_models: int, diversity: str, subset_fraction: float, seed: int) -> np.ndarray | None:
    """Each head's training indices ``(n_models, pool)`` for ``subset`` (sorted); None: every head uses all samples."""
    if diversity != "subset":
        return None
    size = _subset_size(n_samples, subset_fraction)
    return np.stack([np.sort(_rng(seed, _SUBSET, i).choice(n_samples, size, replace=False)) for i in range(n_models)])


def _subset_size(n_samples: int, subset_fraction: float) -> int:
    size = int(round(subset_fraction * n_samples))
    if size < 1:
        raise InputError(
            f"subset_fraction {subset_fraction:g} of {n_samples} training samples is less than one sample; "
            "pass a larger fraction or more training data."
        )
    return size


def _batches(
    n_samples: int, *, n_models: int, diversity: str, subset_fraction: float, batch_size: int, seed: int
) -> Iterator[np.ndarray]:
    """The minibatches, one ``(n_models, batch)`` array of sample indices per step, without end.

    Each head draws from its pool (all samples, or its subset) epoch by epoch: a permutation of
    the pool's positions, cut into full batches (the remainder is left out of that epoch). The
    permutations are one shared stream, except under ``order``, where each head has its own.
    """
    pools = _pools(n_samples, n_models, diversity, subset_fraction, seed)
    pool_size = n_samples if pools is None else pools.shape[1]
    batch = min(batch_size, pool_size)
    per_epoch = pool_size // batch
    streams = [_rng(seed, _ORDER, i) for i in range(n_models if diversity == "order" else 1)]
    rows = np.arange(n_models)[:, None]
    while True:
        positions = np.stack([s.permutation(pool_size) for s in streams])
        positions = np.broadcast_to(positions, (n_models, pool_size))[:, : per_epoch * batch]
        chosen = positions if pools is None else pools[rows, positions]
        for k in range(per_epoch):
            yield np.ascontiguousarray(chosen[:, k * batch : (k + 1) * batch])


def probe_schedule(
    n_samples: int,
    n_steps: int,
    *,
    n_models: int = 64,
    diversity: Diversity = "random-head",
    subset_fraction: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
) -> np.ndarray:
    """The sample indices each head of :func:`train_probes` trains on, step by step.

    A head stopped after ``s`` steps has seen the first ``s`` batches of its row. Under
    ``random-head`` every head sees the same batches; under ``order`` each head has its own
    shuffling of all samples; under ``subset`` each head draws only from its own random
    ``subset_fraction`` of the samples, in the same shuffling of positions as every other head.

    Parameters
    ----------
    n_samples : int
        The size of the training set.
    n_steps : int
        The number of steps to list.
    n_models, diversity, subset_fraction, batch_size, seed
        As in :func:`train_probes`.

    Returns
    -------
    numpy.ndarray of shape (n_models, n_steps, batch)
        ``batch`` is ``batch_size``, or the pool size when that is smaller.

    Examples
    --------
    >>> schedule = probe_schedule(10, 3, n_models=2, diversity="order", batch_size=4)
    >>> schedule.shape, bool((schedule[0] != schedule[1]).any())  # each head its own order
    ((2, 3, 4), True)
    >>> subsets = probe_schedule(100, 5, n_models=2, diversity="subset", subset_fraction=0.2, batch_size=4)
    >>> [len(np.unique(head)) for head in subsets]  # 5 batches of 4 cover each head's 20 samples
    [20, 20]
    """
    owner = "probe_schedule"
    check_number(owner, "n_samples", n_samples, low=1, integer=True)
    check_number(owner, "n_steps", n_steps, low=0, integer=True)
    _check_recipe(owner, n_models, diversity, subset_fraction, batch_size, seed)
    batches = _batches(
        n_samples, n_models=n_models, diversity=diversity, subset_fraction=subset_fraction,
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    width = min(batch_size, n_samples if diversity != "subset" else _subset_size(n_samples, subset_fraction))
    steps = list(itertools.islice(batches, n_steps))
    return np.stack(steps, axis=1) if steps else np.empty((n_models, 0, width), np.int64)


def _initial_weights(
    n_features: int, n_classes: int, n_models: int, diversity: str, scale: float, seed: int
) -> np.ndarray:
    """Gaussian initial weights ``(n_models, n_features, n_classes)``: one draw per head under
    ``random-head``, one shared draw otherwise."""
    heads = range(n_models) if diversity == "random-head" else [0] * n_models
    draws = [_rng(seed, _INIT, i).standard_normal((n_features, n_classes)) for i in heads]
    return (scale * np.stack(draws)).astype(np.float32)


def _head_steps(steps: Any, n_models: int) -> tuple[np.ndarray, list[int]]:
    """Each head's step count, and the steps as given (for the recipe)."""
    given = np.asarray(steps)
    bad = InputError(
        "The 'steps' parameter of train_probes must be a pair (min, max) of positive integers, or one positive "
        f"integer per head ({n_models}). Got {steps!r} instead."
    )
    if given.ndim != 1 or given.dtype.kind not in "iuf" or given.size not in (2, n_models):
        raise bad
    if not np.all(np.isfinite(given)) or not np.all(given == np.round(given)) or given.min() < 1:
        raise bad
    ints = [int(s) for s in given]
    if given.size == n_models:  # with 2 heads, a range (min, max) gives the same two counts
        return np.asarray(ints, np.int64), ints
    low, high = ints
    if low > high:
        raise InputError(f"The 'steps' parameter of train_probes must have min <= max. Got {steps!r} instead.")
    return np.rint(np.geomspace(low, high, n_models)).astype(np.int64), ints


def _check_recipe(owner: str, n_models: Any, diversity: Any, fraction: Any, batch_size: Any, seed: Any) -> None:
    check_number(owner, "n_models", n_models, low=1, integer=True)
    check_choice(owner, "diversity", diversity, DIVERSITY_SOURCES)
    check_number(owner, "subset_fraction", fraction, low=0.0, high=1.0)
    if fraction == 0:
        raise InputError(f"The 'subset_fraction' parameter of {owner} must be in (0, 1]. Got {fraction!r} instead.")
    check_number(owner, "batch_size", batch_size, low=1, integer=True)
    check_number(owner, "seed", seed, low=0, integer=True)


__all__ = ["DIVERSITY_SOURCES", "Diversity", "probe_schedule"]
