"""The canonical form of a zoo's predictions, built once at the public boundary.

Every estimator works on a :class:`Predictions`: hard labels ``(n_models, n_samples)`` as
indices into an explicit class order, and, when the models gave scores, probabilities
``(n_models, n_samples, n_classes)``. Arrays, nested lists and ``{name: array}`` dicts are
converted by :func:`as_predictions`; nothing inside the library guesses again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from scipy.special import softmax

from ontheline._validation import InputError, check_finite

Kind = Literal["labels", "probs", "logits"]

# Rows of a probability matrix may be off by float32 rounding; anything further is not probabilities.
# Accepted rows are clipped at 0 and renormalised, so every probability downstream is exact.
_ROW_SUM_TOLERANCE = 1e-3
# Labels without an explicit class list mean the classes 0..max; past this many, ask for the list
# (a single stray label of 10**9 must not make a billion-entry class tuple).
MAX_INFERRED_CLASSES = 1 << 20


@dataclass(frozen=True, eq=False)
class Predictions:
    """One zoo's predictions on one dataset.

    Attributes
    ----------
    labels : ndarray of shape (n_models, n_samples), unsigned int
        Hard predictions as indices into ``classes``.
    probs : ndarray of shape (n_models, n_samples, n_classes) or None
        Class probabilities (rows sum to 1); None when only labels were given.
    models : tuple of str, length n_models
        Model names, unique.
    classes : tuple, length n_classes
        The class order: ``classes[k]`` is the label of index ``k``.

    Examples
    --------
    >>> p = as_predictions([["cat", "dog", "dog"], ["cat", "cat", "dog"]], models=["a", "b"])
    >>> p.classes, p.labels.tolist(), p.probs is None
    (('cat', 'dog'), [[0, 1, 1], [0, 0, 1]], True)
    >>> p.agreement.round(2).tolist()
    [[1.0, 0.67], [0.67, 1.0]]
    >>> p.select(["b"]).labels.tolist(), p.encode(["dog", "cat"], "labels").tolist()
    ([[0, 0, 1]], [1, 0])
    """

    labels: np.ndarray
    probs: np.ndarray | None
    models: tuple[str, ...]
    classes: tuple[Any, ...]

    @property
    def n_models(self) -> int:
        return self.labels.shape[0]

    @property
    def n_samples(self) -> int:
        return self.labels.shape[1]

    @cached_property
    def agreement(self) -> np.ndarray:
        """Pairwise agreement ``(n_models, n_models)``, computed once per object."""
        from ontheline.agreement import pairwise_agreement

        return pairwise_agreement(self)

    def encode(self, values: Any, name: str) -> np.ndarray:
        """Map class labels (``(n_samples,)``, any dtype) to indices into ``classes``."""
        return _encode(np.asarray(values), self.classes, name)

    def select(self, models: Sequence[str]) -> Predictions:
        """The same predictions for ``models``, in that order."""
        index = {m: i for i, m in enumerate(self.models)}
        rows = [index[m] for m in models]
        probs = None if self.probs is None else self.probs[rows]
        return Predictions(self.labels[rows], probs, tuple(models), self.classes)


def as_predictions(
    preds: Any,
    *,
    models: Sequence[str] | None = None,
    classes: Sequence[Any] | None = None,
    kind: Kind | None = None,
    name: str = "preds",
) -> Predictions:
    """Convert a zoo's predictions to the canonical :class:`Predictions`.

    Parameters
    ----------
    preds : Predictions, array-like or mapping of str to array-like
        Hard labels ``(n_models, n_samples)``, or probabilities / logits
        ``(n_models, n_samples, n_classes)``; a ``{name: array}`` mapping stacks one array
        per model and takes the model names from its keys.
    models : sequence of str, optional
        Model names (default ``model_0``, ``model_1``, ...).
    classes : sequence, optional
        The class order. For scores it names the columns (default ``0 .. n_classes-1``); for
        labels it lists the possible labels (default ``0 .. max`` for ints, the sorted
        distinct values for strings).
    kind : {'labels', 'probs', 'logits'}, optional
        What ``preds`` holds. By default integer or string 2-D input is labels and float
        3-D input is probabilities; logits must be declared.
    name : str
        The argument's name, for error messages.

    Examples
    --------
    >>> p = as_predictions({"a": [0, 1, 1], "b": [0, 0, 1]})
    >>> p.models, p.labels.shape
    (('a', 'b'), (2, 3))
    """
    if isinstance(preds, Predictions):
        return preds
    if is_dask(preds):
        return _from_dask(preds, models, classes, kind, name)
    if isinstance(preds, Mapping):
        if models is not None:
            raise InputError(f"{name} is a mapping whose keys name the models; do not pass models= as well.")
        models = [str(k) for k in preds]
        try:
            array = np.stack([np.asarray(v) for v in preds.values()]) if preds else np.empty((0, 0))
        except ValueError:
            shapes = sorted({np.shape(v) for v in preds.values()})
            raise InputError(
                f"{name} maps models to arrays of different shapes {shapes}; every model must predict the same samples."
            ) from None
    else:
        array = np.asarray(preds)
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(
            f"{name} must have shape (n_models, n_samples) for labels or (n_models, n_samples, n_classes) "
            f"for probabilities or logits, with at least one model and one sample. Got shape {array.shape}."
        )
    if kind is None:
        kind = "labels" if array.ndim == 2 else "probs"
    if kind not in ("labels", "probs", "logits"):
        raise InputError(f"The 'kind' parameter must be one of {{'labels', 'probs', 'logits'}}. Got {kind!r} instead.")
    names = _model_names(models, array.shape[0], name)
    if kind == "labels":
        return _from_labels(array, names, classes, name)
    return _from_scores(array, names, classes, kind, name)


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a dask collection (checked without importing dask)."""
    return type(x).__module__.split(".")[0] == "dask"


def _from_dask(
    array: Any, models: Sequence[str] | None, classes: Sequence[Any] | None, kind: Kind | None, name: str
) -> Predictions:
    """Lazy predictions: samples stay chunked, every block holds all models, and values are
    checked block by block as they are computed (a bad block raises the same errors as eager input)."""
    if array.ndim not in (2, 3) or 0 in array.shape[:2]:
        raise InputError(
            f"{name} must have shape (n_models, n_samples) for labels or (n_models, n_samples, n_classes) "
            f"for probabilities or logits. Got shape {array.shape}."
        )
    kind = kind or ("labels" if array.ndim == 2 else "probs")
    names = _model_names(models, array.shape[0], name)
    if kind == "labels":
        if array.ndim != 2 or array.dtype.kind not in "iu":
            raise InputError(
                f"{name}: a dask array of labels must hold class indices (n_models, n_samples) as integers, or "
                f"probabilities (n_models, n_samples, n_classes); got shape {array.shape} and dtype {array.dtype}."
            )
        n_classes = len(classes) if classes is not None else _inferred_class_count(int(array.max().compute()), name)
        if classes is not None and tuple(classes) != tuple(range(n_classes)):
            raise InputError(f"{name}: a dask array of labels must hold indices 0..K-1; pass classes=range(K).")
        labels = array.rechunk({0: -1}).map_blocks(_checked_indices, n_classes, name, dtype=_index_dtype(n_classes))
        return Predictions(labels, None, names, tuple(range(n_classes)))
    if array.ndim != 3 or array.shape[2] < 2 or array.dtype.kind != "f":
        raise InputError(
            f"{name} holds {kind}, so it must be a float array of shape (n_models, n_samples, n_classes) with "
            f"n_classes >= 2. Got shape {array.shape} and dtype {array.dtype}."
        )
    n_classes = array.shape[2]
    class_tuple = tuple(range(n_classes)) if classes is None else _class_tuple(classes)
    if len(class_tuple) != n_classes:
        raise InputError(f"{name} has {n_classes} class columns but {len(class_tuple)} classes were given.")
    scores = array.rechunk({0: -1, 2: -1})
    dtype = np.result_type(scores.dtype, np.float32)
    if kind == "logits":
        probs = scores.map_blocks(_softmax_checked, name, dtype=dtype)
    else:
        probs = scores.map_blocks(_normalised_probs, name, dtype=dtype)
    labels = probs.argmax(axis=-1).astype(_index_dtype(n_classes))
    return Predictions(labels, probs, names, class_tuple)


def _checked_indices(block: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    if block.size and (block.min() < 0 or block.max() >= n_classes):
        raise InputError(f"{name} has labels outside 0..{n_classes - 1}; pass classes=range(K) with every class.")
    return block.astype(_index_dtype(n_classes), copy=False)


def _softmax_checked(block: np.ndarray, name: str) -> np.ndarray:
    check_finite(name, block)
    return np.asarray(softmax(block.astype(np.result_type(block.dtype, np.float32), copy=False), axis=-1))


def _normalised_probs(array: np.ndarray, name: str) -> np.ndarray:
    """A new array (float32 at least) of ``array``'s rows clipped at 0 and renormalised; rows further
    than the tolerance from probabilities are refused with a hint (they are usually logits)."""
    check_finite(name, array)
    # Values stored in a low precision (float16) are each off by at most half an epsilon of
    # themselves, so a row's sum is off by at most half an epsilon in all: allow a few.
    tolerance = max(_ROW_SUM_TOLERANCE, 4 * float(np.finfo(np.result_type(array.dtype, np.float16)).eps))
    array = array.astype(np.result_type(array.dtype, np.float32), copy=False)
    if array.size == 0:
        return array.copy()
    deviation = float(np.abs(array.sum(axis=-1) - 1.0).max())
    lowest = float(array.min())
    if deviation > tolerance or lowest < -tolerance:
        raise InputError(
            f"{name} rows must be probabilities that sum to 1 (max deviation {deviation:.3g}, min value "
            f"{lowest:.3g}); these look like logits: pass them as logits, or apply softmax."
        )
    probs = np.clip(array, 0.0, None)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs


def _model_names(models: Sequence[str] | None, n_models: int, name: str) -> tuple[str, ...]:
    if models is None:
        return tuple(f"model_{i}" for i in range(n_models))
    if isinstance(models, (str, bytes)) or not isinstance(models, Iterable):
        raise InputError(
            f"models must be a sequence of model names, one per model; got {type(models).__name__} {models!r:.60}. "
            "Pass a list, e.g. models=['a', 'b']."
        )
    names = tuple(str(m) for m in models)
    if len(names) != n_models:
        raise InputError(
            f"{name} has {n_models} models but {len(names)} model names were given; pass one name per model."
        )
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dupes = sorted({m for m in names if m in seen or seen.add(m)})  # type: ignore[func-returns-value]
        raise InputError(f"model names must be unique; {dupes} appear more than once.")
    return names


def _from_labels(array: np.ndarray, models: tuple[str, ...], classes: Sequence[Any] | None, name: str) -> Predictions:
    if array.ndim != 2:
        raise InputError(f"{name} holds labels, so it must have shape (n_models, n_samples). Got shape {array.shape}.")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.all(array == np.round(array)):
            raise InputError(
                f"{name} holds labels but has non-integer values; pass class labels, or probabilities with shape "
                "(n_models, n_samples, n_classes)."
            )
        array = array.astype(np.int64)
    if classes is None:
        if array.dtype.kind in "iu":
            if array.min() < 0:
                raise InputError(f"{name} has negative labels; pass classes= to say which labels exist.")
            class_tuple: tuple[Any, ...] = tuple(range(_inferred_class_count(int(array.max()), name)))
        else:
            class_tuple = tuple(np.unique(array).tolist())
    else:
        class_tuple = _class_tuple(classes)
    return Predictions(_encode(array, class_tuple, name), None, models, class_tuple)


def _inferred_class_count(max_label: int, name: str) -> int:
    """``max_label + 1``: the classes 0..max that integer labels imply, within a sane bound."""
    if max_label >= MAX_INFERRED_CLASSES:
        raise InputError(
            f"{name} has the label {max_label}, so without classes= it would mean {max_label + 1:,} classes "
            f"(0..{max_label}); pass classes= with the labels that exist."
        )
    return max_label + 1


def _class_tuple(classes: Any) -> tuple[Any, ...]:
    """``classes`` as a tuple of distinct, hashable, scalar labels (numpy scalars become Python ones)."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise InputError(
            f"classes must be a sequence of class labels; got {type(classes).__name__} {classes!r:.60}. "
            "Pass a list, e.g. classes=['cat', 'dog']."
        )
    values = tuple(c.item() if isinstance(c, np.generic) else c for c in classes)
    nested = [c for c in values if isinstance(c, (list, tuple, set, dict, np.ndarray))]
    if nested:
        raise InputError(
            f"classes must be a flat sequence of class labels (strings or numbers); it holds {nested[0]!r:.40}. "
            "Pass one label per class, e.g. classes=[0, 1]."
        )
    try:
        distinct = len(set(values))
    except TypeError as exc:
        raise InputError(f"classes must hold hashable labels (strings or numbers); {exc}.") from None
    if distinct != len(values):
        raise InputError(f"classes must be distinct; got {list(values)[:20]}.")
    return values


def _from_scores(
    array: np.ndarray, models: tuple[str, ...], classes: Sequence[Any] | None, kind: Kind, name: str
) -> Predictions:
    if array.ndim != 3 or array.shape[2] < 2:
        raise InputError(
            f"{name} holds {kind}, so it must have shape (n_models, n_samples, n_classes) with n_classes >= 2. "
            f"Got shape {array.shape}."
        )
    if array.dtype.kind not in "fiu":
        raise InputError(f"{name} holds {kind} but has dtype {array.dtype}; pass a float array.")
    probs = _softmax_checked(array, name) if kind == "logits" else _normalised_probs(array, name)
    n_classes = array.shape[2]
    class_tuple = tuple(range(n_classes)) if classes is None else _class_tuple(classes)
    if len(class_tuple) != n_classes:
        raise InputError(
            f"{name} has {n_classes} class columns but {len(class_tuple)} classes were given; pass one per column."
        )
    labels = probs.argmax(axis=-1).astype(_index_dtype(n_classes))
    return Predictions(labels, probs, models, class_tuple)


def _index_dtype(n_classes: int) -> np.dtype:
    return np.dtype(np.uint8 if n_classes <= 256 else np.uint16 if n_classes <= 65536 else np.uint32)


def _encode(values: np.ndarray, classes: tuple[Any, ...], name: str) -> np.ndarray:
    """Indices of ``values`` in ``classes``; any value not in ``classes`` is an error."""
    classes = _class_tuple(classes)
    if (
        values.dtype.kind in "iu"
        and all(isinstance(c, int) for c in classes)
        and _span(values, classes) <= len(classes) + MAX_INFERRED_CLASSES
    ):
        return _encode_ints(values, classes, name)
    lookup = np.asarray(classes)
    order = np.argsort(lookup, kind="stable")
    try:
        pos = np.searchsorted(lookup, values, sorter=order)
    except TypeError:
        raise InputError(
            f"{name} has labels of type {values.dtype} that cannot be compared with classes {list(classes)[:5]}."
        ) from None
    index = order[np.minimum(pos, len(order) - 1)]
    unknown = lookup[index] != values
    if np.any(unknown):
        shown = sorted({str(v) for v in np.asarray(values)[unknown].ravel()[:1000]})[:5]
        raise InputError(
            f"{name} has labels {shown} that are not among classes {list(classes)[:20]}; pass the full class order as classes=."
        )
    return index.astype(_index_dtype(len(classes)))


def _span(values: np.ndarray, classes: tuple[Any, ...]) -> int:
    """How many integers lie between the smallest and the largest of ``values`` and ``classes``."""
    ends = [min(classes), max(classes)] + ([int(values.min()), int(values.max())] if values.size else [])
    return max(ends) - min(ends) + 1


def _encode_ints(values: np.ndarray, classes: tuple[Any, ...], name: str) -> np.ndarray:
    """The fast path for integer labels: a table lookup, or a plain cast when classes are 0..K-1."""
    dtype = _index_dtype(len(classes))
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if classes == tuple(range(len(classes))) and low >= 0 and high < len(classes):
        return values.astype(dtype, copy=False)
    class_array = np.asarray(classes, dtype=np.int64)
    base = min(low, int(class_array.min()))
    table = np.full(max(high, int(class_array.max())) - base + 1, -1, np.int64)
    table[class_array - base] = np.arange(len(classes))
    index = table[values.astype(np.int64) - base]
    if np.any(index < 0):
        shown = np.unique(values[index < 0])[:5].tolist()
        raise InputError(
            f"{name} has labels {shown} that are not among classes {list(classes)[:20]}; pass the full class order as classes=."
        )
    return index.astype(dtype)


__all__ = ["Predictions", "as_predictions"]
