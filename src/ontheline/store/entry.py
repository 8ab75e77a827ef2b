"""What the store holds, shared by its catalog and its arrays: an entry's key, its catalog row and its error.

:func:`entry_key` makes the key of one model's predictions on one dataset; :class:`EntryInfo` is
the catalog row of an entry (its fields, in :data:`COLUMNS` order, are the catalog's columns);
:class:`Entry` is an entry read back with its arrays; :class:`StoreError` is what the store raises
when it cannot give a correct answer, and :func:`damaged` words it for one damaged entry. All are
re-exported by :mod:`ontheline.store`, their public home.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

COLUMNS = (
    "key", "model", "model_fingerprint", "dataset", "dataset_fingerprint", "preprocessing", "version",
    "n_samples", "n_classes", "dtype", "created", "seconds", "device", "checksum",
)  # fmt: skip


class StoreError(ValueError):
    """The store cannot give a correct answer: a damaged entry, an unknown schema, a missing key.

    Examples
    --------
    >>> import tempfile
    >>> from ontheline.store import Store, StoreError
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     try:
    ...         Store(folder).get("abcdef12")
    ...     except StoreError as exc:
    ...         print(str(exc).replace(folder, "STORE"))
    No entry 'abcdef12' in the store at 'STORE'; 'ontheline store ls' lists them.
    """


@dataclass(frozen=True)
class EntryInfo:
    """The catalog row of one entry: what was predicted, from what, when, how long, where.

    Its fields, in :data:`COLUMNS` order, are the catalog's columns: the entry's ``key``, the
    ``model`` and ``dataset`` names with their fingerprints, the ``preprocessing`` text, the
    package ``version``, ``n_samples``, ``n_classes``, the stored ``dtype`` (``'labels'`` for hard
    predictions only; ``'features'`` for a float matrix, whose ``n_classes`` is its number of
    columns), when it was ``created``, the ``seconds`` it took, the ``device`` and the
    ``checksum`` of its arrays.

    Examples
    --------
    >>> import tempfile
    >>> from ontheline.store import Store
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     info = Store(folder).put(
    ...         np.array([[0.9, 0.1], [0.2, 0.8]]), model="m", model_fingerprint="w1", dataset="d",
    ...         dataset_fingerprint="x1", dtype="float16",
    ...     )
    >>> info.model, info.n_samples, info.n_classes, info.dtype, len(info.key)
    ('m', 2, 2, 'float16', 32)
    >>> list(info.to_dict())[:4]
    ['key', 'model', 'model_fingerprint', 'dataset']
    """

    key: str
    model: str
    model_fingerprint: str
    dataset: str
    dataset_fingerprint: str
    preprocessing: str
    version: str
    n_samples: int
    n_classes: int
    dtype: str
    created: str
    seconds: float
    device: str
    checksum: str

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


@dataclass(frozen=True)
class Entry:
    """One stored entry: predicted ``labels`` ``(n_samples,)`` and ``probs`` ``(n_samples, n_classes)``.

    ``probs`` is None for a model stored with hard predictions only.

    Examples
    --------
    >>> import tempfile
    >>> from ontheline.store import Store
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     store = Store(folder)
    ...     info = store.put(labels=np.array([2, 0, 1]), model="m", model_fingerprint="w1", dataset="d",
    ...                      dataset_fingerprint="x1")
    ...     entry = store.get(info.key)
    >>> entry.info.model, entry.labels.tolist(), entry.probs is None
    ('m', [2, 0, 1], True)
    """

    info: EntryInfo
    labels: np.ndarray
    probs: np.ndarray | None


def entry_key(
    model_fingerprint: str, dataset_fingerprint: str, preprocessing: str = "", version: str | None = None
) -> str:
    """The key of the predictions of one model on one dataset.

    A SHA-256 (its first 32 hex digits) of the model's and the dataset's fingerprints, the
    preprocessing text and the package version (default: this one's): the same key means the
    same model, data and code.

    Examples
    --------
    >>> entry_key("weights-1", "data-1", version="0.1.0")
    'f258ea1c4f04e8702c1a2125aecc5113'
    >>> entry_key("weights-1", "data-1", "resized to 8x8", version="0.1.0")  # other preprocessing, other key
    '3e4fd54a3ab5e9ba782f1009e809d7d5'
    """
    if version is None:
        from ontheline import __version__ as version
    parts = [model_fingerprint, dataset_fingerprint, preprocessing, version]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def package_version() -> str:
    """The version of ontheline, recorded in every entry it writes."""
    from ontheline import __version__

    return __version__


def damaged(info: EntryInfo, why: str) -> StoreError:
    """The error for entry ``info``, damaged as ``why`` says, naming the fix."""
    return StoreError(
        f"Store entry {info.key} ({info.model} on {info.dataset}) is damaged: {why}. Remove it with "
        f"'ontheline store rm {info.key}' and run again to recompute it."
    )
