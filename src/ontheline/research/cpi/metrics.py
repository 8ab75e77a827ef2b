"""Knowledge-conflict metrics: answer classes, the knowledge filter, context and parametric accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The three classes of an answer to a knowledge-conflict question.
CLASSES = ("context", "parametric", "other")


def _same_length(**arrays: Sequence[object]) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{', '.join(lengths)} must have one entry per item; got lengths {lengths}.")
    return next(iter(lengths.values()))


def classify_answers(answers: Sequence[str | None], context: Sequence[str], parametric: Sequence[str]) -> np.ndarray:
    """Each answer as ``"context"`` (the context's value), ``"parametric"`` (the model's memory) or ``"other"``.

    Parameters
    ----------
    answers : sequence of str or None, shape (n_items,)
        The model's answers (None: no answer, counted as ``"other"``); compared after
        stripping spaces.
    context : sequence of str, shape (n_items,)
        The value each context states (the counterfactual answer).
    parametric : sequence of str, shape (n_items,)
        The value the model knows without context (the world's fact).

    Returns
    -------
    numpy.ndarray of str, shape (n_items,)
        One of :data:`CLASSES` per item. Where the context and the memory agree, a matching
        answer is ``"context"``.

    Raises
    ------
    ValueError
        If the three sequences differ in length.

    Examples
    --------
    >>> classify_answers(["seaport", "ashford", None, "oakfield"], ["seaport"] * 4, ["ashford"] * 4).tolist()
    ['context', 'parametric', 'other', 'other']
    """
    _same_length(answers=answers, context=context, parametric=parametric)
    out = []
    for a, c, p in zip(answers, context, parametric):
        a = None if a is None else a.strip()
        out.append("context" if a == c.strip() else "parametric" if a == p.strip() else "other")
    return np.asarray(out, dtype=object).astype(str) if out else np.asarray([], dtype=str)


def knowledge_filter(closed_book: Sequence[str | None], truth: Sequence[str]) -> np.ndarray:
    """Which items the model knows without context: its closed-book answer equals the fact.

    Parameters
    ----------
    closed_book : sequence of str or None, shape (n_items,)
        The model's answers to the questions asked without any context.
    truth : sequence of str, shape (n_items,)
        The facts (the parametric answers).

    Returns
    -------
    numpy.ndarray of bool, shape (n_items,)
        True where the item is kept: context reliance is only measured on conflicts with
        knowledge the model has.

    Examples
    --------
    >>> knowledge_filter(["red", "blue", None], ["red", "green", "white"]).tolist()
    [True, False, False]
    """
    _same_length(closed_book=closed_book, truth=truth)
    return np.asarray([a is not None and a.strip() == t.strip() for a, t in zip(closed_book, truth)], dtype=bool)


def conflict_accuracies(
    answers: Sequence[str | None],
    context: Sequence[str],
    parametric: Sequence[str],
    known: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, float]:
    """Counterfactual (context) accuracy, parametric accuracy and the rest on a knowledge-conflict set.

    Parameters
    ----------
    answers, context, parametric : sequences, shape (n_items,)
        As in :func:`classify_answers`; every item's context must differ from its
        parametric value (a conflict).
    known : sequence of bool, shape (n_items,), optional
        The :func:`knowledge_filter` mask: only these items count (all by default).

    Returns
    -------
    dict
        ``context_accuracy`` (the share answered with the context's value: context
        reliance), ``parametric_accuracy``, ``other`` (they sum to 1) and ``n`` (items
        counted). The shares are NaN when no item is kept.

    Raises
    ------
    ValueError
        If the lengths differ, or an item's context agrees with its parametric value.

    Examples
    --------
    >>> r = conflict_accuracies(["b", "a", "z", "b"], ["b", "b", "b", "b"], ["a", "a", "a", "a"], known=[1, 1, 1, 0])
    >>> {k: round(v, 3) for k, v in r.items()}
    {'context_accuracy': 0.333, 'parametric_accuracy': 0.333, 'other': 0.333, 'n': 3}

    References
    ----------
    .. [1] S. Goyal, C. Baek, J. Z. Kolter and A. Raghunathan, "Context-Parametric Inversion: Why Instruction
       Finetuning May Not Actually Improve Context Reliance", ICLR 2025, arXiv:2410.10796.
    """
    n = _same_length(answers=answers, context=context, parametric=parametric)
    same = [i for i, (c, p) in enumerate(zip(context, parametric)) if c.strip() == p.strip()]
    if same:
        raise ValueError(f"A knowledge-conflict set needs contexts that differ from the facts; items {same[:5]} agree.")
    mask = np.ones(n, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"known must have one flag per item: expected shape ({n},), got {mask.shape}.")
    classes = classify_answers(answers, context, parametric)[mask]
    kept = int(mask.sum())
    share = lambda name: float(np.mean(classes == name)) if kept else float("nan")  # noqa: E731
    return {
        "context_accuracy": share("context"),
        "parametric_accuracy": share("parametric"),
        "other": share("other"),
        "n": kept,
    }


__all__ = ["CLASSES", "classify_answers", "conflict_accuracies", "knowledge_filter"]
