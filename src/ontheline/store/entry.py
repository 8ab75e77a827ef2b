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
    """The store cannot give a correct answer: a damaged entry, an unknown schema, a missing key."""


@dataclass(frozen=True)
class EntryInfo:
    """The catalog row of one entry: what was predicted, from what, when, how long, where."""

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
    """

    info: EntryInfo
    labels: np.ndarray
    probs: np.ndarray | None


def entry_key(
    model_fingerprint: str, dataset_fingerprint: str, preprocessing: str = "", version: str | None = None
) -> str:
    """The key of the predictions of one model on one dataset."""
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
