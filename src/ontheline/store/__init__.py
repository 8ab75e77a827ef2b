"""The embedded prediction store: every model's predictions on every dataset, computed once.

One folder holds everything: ``catalog.sqlite`` (what is stored, and how it was made) and
``entries/`` (one Zarr v3 group per entry, with ``labels`` ``(n_samples,)`` and ``probs``
``(n_samples, n_classes)``). An entry is keyed by a fingerprint of the model (weights and
configuration), the dataset's content, the preprocessing and the package version. An entry
can hold a float matrix instead of predictions (:meth:`Store.put_features`: a backbone's
embeddings ``features`` ``(n_samples, n_features)``, dtype ``'features'`` in the catalog), read
back with :meth:`Store.get_features`; the prediction readers refuse it.

Writes are atomic: an entry is written into a private temporary folder, then renamed into
place (a single atomic step on one file system) and recorded in the catalog in one SQLite
transaction. A process killed at any moment leaves no partial entry visible; two processes
writing different entries (or the same one) at once are safe. The catalog keeps a SHA-256 of
each entry's arrays, checked by :meth:`Store.get`, and one of every chunk of samples, checked
as the lazy arrays of :meth:`Store.stacked_probs` read them, so a damaged entry raises
:class:`StoreError` instead of returning wrong numbers. Nothing is created until the first
write; reading works on a store the reader cannot write.

The package is split by side: :mod:`~ontheline.store.catalog` (SQLite), :mod:`~ontheline.store.arrays`
(Zarr and the checksums) and :mod:`~ontheline.store.entry` (keys, rows, the error); the
:class:`Store` here orchestrates them.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from ontheline._optional import extra
from ontheline.store import arrays, catalog
from ontheline.store.arrays import fingerprint_array
from ontheline.store.catalog import SCHEMA_VERSION as SCHEMA_VERSION
from ontheline.store.entry import Entry, EntryInfo, StoreError, damaged, entry_key, package_version

#: Samples per Zarr chunk, and per read task of the lazy arrays. Read by Store.put when it runs
#: (never bound elsewhere), so setting ontheline.store.CHUNK_SAMPLES takes effect.
CHUNK_SAMPLES = 1 << 16
#: The dtypes Store.put keeps probabilities in.
PROB_DTYPES = ("float16", "float32")
#: The catalog dtype of an entry that holds a float32 matrix (Store.put_features), not predictions.
FEATURES = "features"

for _public in (Entry, EntryInfo, StoreError, entry_key, fingerprint_array):
    _public.__module__ = __name__  # their public home, as tracebacks, reprs and pickles name it
del _public


def default_store_path() -> Path:
    """``$ONTHELINE_STORE`` when set, else ``~/.cache/ontheline``.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"ONTHELINE_STORE": "/data/predictions"}):
    ...     print(default_store_path().as_posix())
    /data/predictions
    """
    return Path(os.environ.get("ONTHELINE_STORE") or Path.home() / ".cache" / "ontheline")


class Store:
    """A prediction store in one folder (created by the first write; reading creates nothing).

    Parameters
    ----------
    path : path, optional
        The folder (default :func:`default_store_path`).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     store = Store(folder)
    ...     probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    ...     info = store.put(probs, model="m", model_fingerprint="w1", dataset="d", dataset_fingerprint="x1")
    ...     print(store.get(info.key).labels.tolist(), [row.model for row in store.ls()])
    [0, 1] ['m']
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"The store path {str(self.path)!r} is a file; pass a folder.")

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --- writing -------------------------------------------------------------------------------

    def put(
        self,
        probs: np.ndarray | None = None,
        *,
        labels: np.ndarray | None = None,
        model: str,
        model_fingerprint: str,
        dataset: str,
        dataset_fingerprint: str,
        preprocessing: str = "",
        dtype: str = "float32",
        seconds: float = 0.0,
        device: str = "cpu",
    ) -> EntryInfo:
        """Store one model's predictions on one dataset; returns the catalog row of what is stored.

        Pass ``probs`` ``(n_samples, n_classes)`` (stored as ``dtype``, labels taken as their
        argmax), or, for a model that only gives hard predictions, ``labels`` ``(n_samples,)``.
        Putting an entry that already exists and is intact keeps the stored one (the same key
        means the same model, data and code), whatever ``dtype`` or numbers come with it; a
        stored entry that is missing or damaged is replaced, arrays and catalog row together.
        """
        if (probs is None) == (labels is None):
            raise ValueError("Store.put takes either probs (n_samples, n_classes) or labels (n_samples,), not both.")
        if dtype not in PROB_DTYPES:
            raise ValueError(f"The 'dtype' parameter of Store.put must be one of {PROB_DTYPES}. Got {dtype!r} instead.")
        if probs is not None:
            probs = np.asarray(probs)
            if probs.ndim != 2 or probs.shape[1] < 2:
                raise ValueError(
                    f"probs must have shape (n_samples, n_classes) with n_classes >= 2; got {probs.shape}."
                )
            stored, n_classes = probs.astype(dtype), probs.shape[1]
            labels = stored.argmax(axis=1)  # of what is stored, so the lazy labels and probabilities agree
        else:
            labels = np.asarray(labels)
            if labels.ndim != 1 or labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
                raise ValueError(
                    f"labels must be non-negative class indices of shape (n_samples,); got {labels.shape} {labels.dtype}."
                )
            stored, n_classes, dtype = None, int(labels.max(initial=0)) + 1, "labels"
        labels = labels.astype(np.min_scalar_type(max(n_classes - 1, 0)))  # uint8 up to 256 classes
        data = {"labels": labels} if stored is None else {"labels": labels, "probs": stored}
        key = entry_key(model_fingerprint, dataset_fingerprint, preprocessing)
        names = (model, model_fingerprint, dataset, dataset_fingerprint, preprocessing)
        checksum = lambda: arrays.entry_checksum(labels, stored)  # noqa: E731 - only when the entry is written
        return self._write(key, data, names, n_classes, dtype, checksum, seconds, device)

    def put_features(
        self,
        features: np.ndarray,
        *,
        model: str,
        model_fingerprint: str,
        dataset: str,
        dataset_fingerprint: str,
        preprocessing: str = "",
        seconds: float = 0.0,
        device: str = "cpu",
    ) -> EntryInfo:
        """Store a float matrix ``features`` ``(n_samples, n_features)`` (a backbone's embeddings, say) as an entry.

        Kept as float32, any values (finite), any number of columns; keyed, written, checked and
        listed like predictions, with dtype ``'features'`` and ``n_classes`` the number of
        columns. Read it back with :meth:`get_features`. As with :meth:`put`, an intact entry
        already stored under the same key is kept.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     store = Store(folder)
        ...     info = store.put_features(np.array([[0.5, -2.0, 3.0]]), model="encoder", model_fingerprint="e1",
        ...                               dataset="texts", dataset_fingerprint="t1")
        ...     print(info.dtype, info.n_samples, info.n_classes, store.get_features(info.key).tolist())
        features 1 3 [[0.5, -2.0, 3.0]]
        """
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] < 1 or features.dtype.kind not in "fiu":
            raise ValueError(
                f"features must be a real matrix of shape (n_samples, n_features); got {features.shape} {features.dtype}."
            )
        with np.errstate(over="ignore"):  # beyond float32's range: refused just below
            stored = features.astype(np.float32)
        if not np.isfinite(stored).all():
            raise ValueError("features must be finite (in float32); they hold NaN or infinite values.")
        key = entry_key(model_fingerprint, dataset_fingerprint, preprocessing)
        names = (model, model_fingerprint, dataset, dataset_fingerprint, preprocessing)
        checksum = lambda: arrays.entry_checksum(stored, None)  # noqa: E731
        return self._write(key, {"features": stored}, names, stored.shape[1], FEATURES, checksum, seconds, device)

    def _write(
        self,
        key: str,
        data: dict[str, np.ndarray],
        names: tuple[str, str, str, str, str],
        n_classes: int,
        dtype: str,
        checksum: Callable[[], str],
        seconds: float,
        device: str,
    ) -> EntryInfo:
        """Write the arrays ``data`` of entry ``key`` and its catalog row, unless an intact one is stored.

        ``names`` are the row's ``model, model_fingerprint, dataset, dataset_fingerprint,
        preprocessing``; ``checksum()`` (of the arrays) is computed only when the entry is written.
        """
        target = self._entry_path(key)
        seen = catalog.stored(self.path, key)
        if seen is not None and (seen.dtype == FEATURES) != ("features" in data):
            raise ValueError(
                f"Entry {key} already holds {'features' if seen.dtype == FEATURES else 'predictions'}; "
                "pass another model fingerprint or preprocessing text for the other kind."
            )
        if seen is not None and self._intact(seen):
            return seen
        n_samples = len(next(iter(data.values())))
        chunk = max(1, min(n_samples, CHUNK_SAMPLES))
        sums = {name: arrays.chunk_checksums(array, chunk) for name, array in data.items()}
        info = EntryInfo(
            key, *names, package_version(), n_samples, n_classes, dtype,
            datetime.now(UTC).isoformat(timespec="seconds"), float(seconds), device, checksum(),
        )  # fmt: skip
        catalog.create(self.path)
        # A private folder under tmp/, named after this process: clean() leaves it while this process runs.
        staging = self._tmp() / f"{key}-{os.getpid()}-{secrets.token_hex(4)}"
        arrays.stage(staging, data, chunk)  # the slow part, outside the catalog's write lock
        try:
            with catalog.writing(self.path) as db:
                now = catalog.current(db, self.path, key)
                if now is not None and now != seen:
                    return now  # another writer stored it since we looked: theirs is kept
                # Under the write lock: no other writer moves this folder or its row meanwhile.
                # A folder already there (a killed writer's, or the damaged one) is replaced, never trusted.
                target.parent.mkdir(exist_ok=True)
                if target.exists():
                    self._discard(target, "damaged")
                os.rename(staging, target)
                catalog.record(db, info, sums)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return info

    def _discard(self, folder: Path, why: str) -> None:
        """Move a folder out of sight (one atomic rename into ``tmp/``), then delete it."""
        aside = self._tmp() / f"{folder.name}-{why}-{secrets.token_hex(4)}"
        os.rename(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)

    # --- reading -------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return catalog.has(self.path, key)

    def info(self, key: str) -> EntryInfo:
        """The catalog row of ``key`` (a unique prefix of at least 6 characters also works)."""
        return catalog.lookup(self.path, key)

    def get(self, key: str, *, verify: bool = True) -> Entry:
        """Read one entry; with ``verify`` its checksum is checked, and a mismatch raises :class:`StoreError`."""
        info = self.info(key)
        if info.dtype == FEATURES:
            raise StoreError(f"Store entry {info.key} ({info.model} on {info.dataset}) holds features, not "
                             "predictions; read it with Store.get_features.")  # fmt: skip
        labels, probs = arrays.read_entry(self._entry_path(info.key), info, verify=verify)
        return Entry(info, labels, probs)

    def get_features(self, key: str, *, verify: bool = True) -> np.ndarray:
        """The float32 matrix of a features entry (:meth:`put_features`); checked as :meth:`get` checks.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     store = Store(folder)
        ...     info = store.put_features(np.eye(2), model="m", model_fingerprint="w", dataset="d",
        ...                               dataset_fingerprint="x")
        ...     print(store.get_features(info.key[:8]).dtype)
        float32
        """
        info = self.info(key)
        if info.dtype != FEATURES:
            raise StoreError(f"Store entry {info.key} ({info.model} on {info.dataset}) holds predictions, not "
                             "features; read it with Store.get.")  # fmt: skip
        return arrays.read_features(self._entry_path(info.key), info, verify=verify)

    def ls(self, *, model: str | None = None, dataset: str | None = None) -> list[EntryInfo]:
        """Catalog rows, oldest first, optionally only those of one model name or dataset name."""
        return catalog.listing(self.path, model=model, dataset=dataset)

    def rm(self, key: str) -> EntryInfo:
        """Remove one entry: its catalog rows and its folder, in one transaction."""
        info = self.info(key)
        target = self._entry_path(info.key)
        with catalog.writing(self.path) as db:
            catalog.forget(db, info.key)
            if target.exists():
                self._discard(target, "removed")
        return info

    def stacked_labels(self, keys: Sequence[str]) -> Any:
        """The predicted labels of several entries as one lazy dask array ``(n_models, n_samples)``.

        Nothing is read until it is computed, chunk by chunk, so
        :func:`ontheline.pairwise_agreement` on it needs memory for one chunk of samples, not
        for the whole array. Each chunk is checked against the SHA-256 recorded for it when it
        was written, as it is read: damage raises :class:`StoreError`, as :meth:`get` does.
        Entries written before chunk checksums were kept (schema version 1) are verified whole
        (as :meth:`get` does) when the lazy array is made.
        """
        return self._stacked(keys, "labels")

    def stacked_probs(self, keys: Sequence[str]) -> Any:
        """The probabilities of several entries as one lazy dask array ``(n_models, n_samples, n_classes)``.

        What the estimators take for large OOD sets: every method then reads the store chunk
        by chunk, each chunk verified as it is read (see :meth:`stacked_labels`).
        """
        missing = [k for k in keys if self.info(k).dtype == "labels"]
        if missing:
            raise ValueError(f"Entries {[k[:12] for k in missing]} hold labels only; use stacked_labels for them.")
        return self._stacked(keys, "probs")

    def _stacked(self, keys: Sequence[str], name: str) -> Any:
        with extra("dask"):  # first: without dask, that is the answer
            import dask.array  # noqa: F401
        infos = [self.info(k) for k in keys]
        features = [i.key[:12] for i in infos if i.dtype == FEATURES]
        if features:
            raise ValueError(f"Entries {features} hold features, not predictions; read them with Store.get_features.")
        if len({i.n_samples for i in infos}) > 1:
            raise ValueError(f"stacked_{name} takes entries of one dataset; these keys have different sample counts.")
        # Arrays are opened once; each block task then reads one slice of samples from every
        # model, so the graph has one task per block instead of one per model and block.
        opened = [arrays.open_array(self._entry_path(i.key), i, name) for i in infos]
        if len({a.shape[1:] for a in opened}) > 1:
            raise ValueError(f"stacked_{name} takes entries with the same number of classes.")
        return arrays.stack_lazily(infos, opened, self._chunk_sums(infos, opened, name), name)

    def _chunk_sums(self, infos: list[EntryInfo], opened: list[Any], name: str) -> list[list[tuple[int, int, str]]]:
        """Each entry's ``(start, stop, sha256)`` of every chunk of array ``name``, from the catalog.

        An entry written without them (schema version 1) is verified whole now, and its sums are
        taken from the verified values, so its chunks are checked as they are read like any other.
        """
        sums = []
        for info, array, chunks in zip(infos, opened, catalog.chunk_sums(self.path, [i.key for i in infos], name)):
            if not chunks:
                entry, step = self.get(info.key), array.chunks[0]
                values = entry.labels if name == "labels" else entry.probs  # probs: stacked_probs checked
                chunks = arrays.chunk_checksums(values, step)  # type: ignore[arg-type]
            ends = [0] + [stop for _, stop, _ in chunks]
            if [start for start, _, _ in chunks] != ends[:-1] or ends[-1] != info.n_samples:
                raise damaged(info, f"the chunk checksums of its {name} in the catalog do not cover its samples")
            sums.append(chunks)
        return sums

    def export(self, keys: Sequence[str], path: str | os.PathLike[str], *, labels: np.ndarray | None = None) -> Path:
        """Write entries of one dataset as the NPZ that ``ontheline estimate`` reads (``probs``, ``models``)."""
        from ontheline._io import atomic_write

        entries = [self.get(k) for k in keys]
        if not entries:
            raise ValueError("export needs at least one entry key.")
        datasets = {e.info.dataset_fingerprint for e in entries}
        if len(datasets) > 1:
            raise ValueError("export takes entries of one dataset; these keys come from several datasets.")
        saved: dict[str, np.ndarray] = {"models": np.array([e.info.model for e in entries], dtype=str)}
        if all(e.probs is not None for e in entries):
            saved["probs"] = np.stack([e.probs.astype(np.float32) for e in entries])  # type: ignore[union-attr]
        else:  # some models gave hard predictions only: export everyone's labels
            saved["preds"] = np.stack([e.labels.astype(np.int64) for e in entries])
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (entries[0].info.n_samples,):
                raise ValueError(
                    f"labels must have one label per sample: expected shape ({entries[0].info.n_samples},), "
                    f"got {labels.shape}."
                )
            saved["labels"] = labels
        with atomic_write(path) as file:
            np.savez(file, **cast(dict[str, Any], saved))  # every key an array name, none an option
        return Path(path)

    def clean(self) -> int:
        """Delete what killed writers left in ``tmp/`` (never read); returns how many went.

        A staging folder is named after its writer's process id and is kept while that process
        runs on this machine, so cleaning beside a live writer is safe. A missing store has
        nothing to clean, and stays missing.
        """
        tmp = self.path / "tmp"
        if not tmp.is_dir():
            return 0
        tmp = self._tmp()  # a tmp/ that leads outside the store is damage: nothing there is ours to delete
        if not tmp.is_dir():
            return 0
        removed = 0
        for item in tmp.iterdir():
            parts = item.name.split("-")
            writer = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None  # also a draft's -wal
            if writer is not None and _alive(writer):
                continue
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:  # a draft catalog
                item.unlink(missing_ok=True)
            removed += 1
        return removed

    # --- internals -----------------------------------------------------------------------------

    def _entry_path(self, key: str) -> Path:
        """The folder of entry ``key``: only a fingerprint becomes a path, and it must stay inside the store."""
        catalog.check_key(self.path, key)
        return self._inside(self.path / "entries" / key[:2] / key, f"the folder of entry {key}")

    def _tmp(self) -> Path:
        """The staging folder ``tmp/``, checked to stay inside the store."""
        return self._inside(self.path / "tmp", "its tmp/ folder")

    def _inside(self, path: Path, what: str) -> Path:
        """``path``, refused when it resolves outside the store (a link to elsewhere, say)."""
        if not path.resolve().is_relative_to(self.path.resolve()):
            raise StoreError(
                f"The store at {str(self.path)!r} is damaged: {what} leads outside it, to "
                f"{str(path.resolve())!r}; remove the link, or the store."
            )
        return path

    def _intact(self, info: EntryInfo) -> bool:
        try:
            self.get_features(info.key) if info.dtype == FEATURES else self.get(info.key)
        except StoreError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


__all__ = [
    "FEATURES", "Entry", "EntryInfo", "Store", "StoreError", "default_store_path", "entry_key", "fingerprint_array",
]  # fmt: skip
