"""The embedded prediction store: every model's predictions on every dataset, computed once.

One folder holds everything: ``catalog.sqlite`` (what is stored, and how it was made) and
``entries/`` (one Zarr v3 group per entry, with ``labels`` ``(n_samples,)`` and ``probs``
``(n_samples, n_classes)``). An entry is keyed by a fingerprint of the model (weights and
configuration), the dataset's content, the preprocessing and the package version.

Writes are atomic: an entry is written into a private temporary folder, renamed into place
(a single atomic step on one file system), and only then recorded in the catalog, in one
SQLite transaction. A process killed at any moment leaves no partial entry visible; two
processes writing different entries (or the same one) at once are safe. Every entry carries
a SHA-256 of its arrays, checked on reading, so a damaged entry raises :class:`StoreError`
instead of returning wrong numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
_COLUMNS = (
    "key", "model", "model_fingerprint", "dataset", "dataset_fingerprint", "preprocessing", "version",
    "n_samples", "n_classes", "dtype", "created", "seconds", "device", "checksum",
)  # fmt: skip
PROB_DTYPES = ("float16", "float32")


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
        return {name: getattr(self, name) for name in _COLUMNS}


@dataclass(frozen=True)
class Entry:
    """One stored entry: predicted ``labels`` ``(n_samples,)`` and ``probs`` ``(n_samples, n_classes)``.

    ``probs`` is None for a model stored with hard predictions only.
    """

    info: EntryInfo
    labels: np.ndarray
    probs: np.ndarray | None


def default_store_path() -> Path:
    """``$ONTHELINE_STORE`` when set, else ``~/.cache/ontheline``."""
    return Path(os.environ.get("ONTHELINE_STORE") or Path.home() / ".cache" / "ontheline")


def fingerprint_array(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes: equal content, equal fingerprint."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def entry_key(
    model_fingerprint: str, dataset_fingerprint: str, preprocessing: str = "", version: str | None = None
) -> str:
    """The key of the predictions of one model on one dataset."""
    if version is None:
        from ontheline import __version__ as version
    parts = [model_fingerprint, dataset_fingerprint, preprocessing, version]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


class Store:
    """A prediction store in one folder (created when missing).

    Parameters
    ----------
    path : path, optional
        The folder (default :func:`default_store_path`).

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> info = store.put(probs, model="m", model_fingerprint="w1", dataset="d", dataset_fingerprint="x1")
    >>> store.get(info.key).labels.tolist()
    [0, 1]
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"The store path {str(self.path)!r} is a file; pass a folder.")
        (self.path / "entries").mkdir(parents=True, exist_ok=True)
        (self.path / "tmp").mkdir(exist_ok=True)
        with self._catalog() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            found = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
            if found != str(SCHEMA_VERSION):
                raise StoreError(
                    f"The store at {str(self.path)!r} has schema version {found}, but this ontheline reads version "
                    f"{SCHEMA_VERSION}; upgrade ontheline, or point it at another folder (ONTHELINE_STORE)."
                )
            columns = ", ".join(
                f"{c} {'TEXT' if c not in ('n_samples', 'n_classes', 'seconds') else 'REAL'}" for c in _COLUMNS
            )
            db.execute(f"CREATE TABLE IF NOT EXISTS entries ({columns}, PRIMARY KEY (key))")

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
        """Store one model's predictions on one dataset; returns its catalog row.

        Pass ``probs`` ``(n_samples, n_classes)`` (stored as ``dtype``, labels taken as their
        argmax), or, for a model that only gives hard predictions, ``labels`` ``(n_samples,)``.
        Putting an entry that already exists keeps the stored one (the same key means the same
        model, data and code, hence the same numbers).
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
            labels, stored, n_classes = probs.argmax(axis=1), probs.astype(dtype), probs.shape[1]
        else:
            labels = np.asarray(labels)
            if labels.ndim != 1 or labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
                raise ValueError(
                    f"labels must be non-negative class indices of shape (n_samples,); got {labels.shape} {labels.dtype}."
                )
            stored, n_classes, dtype = None, int(labels.max(initial=0)) + 1, "labels"
        labels = labels.astype(np.min_scalar_type(max(n_classes - 1, 0)))  # uint8 up to 256 classes
        key = entry_key(model_fingerprint, dataset_fingerprint, preprocessing)
        info = EntryInfo(
            key, model, model_fingerprint, dataset, dataset_fingerprint, preprocessing, _version(),
            len(labels), n_classes, dtype, datetime.now(UTC).isoformat(timespec="seconds"),
            float(seconds), device, _checksum(labels, stored),
        )  # fmt: skip
        target = self._entry_path(key)
        if not target.exists():
            self._write_entry(target, labels, stored)
        elif _stored_checksum(target) != info.checksum:
            # A folder left by a writer killed after its rename but before the catalog insert is
            # complete by construction; one that does not match is replaced, never trusted.
            self._replace_entry(target, labels, stored)
        with self._catalog() as db:
            db.execute(f"INSERT OR IGNORE INTO entries VALUES ({', '.join('?' * len(_COLUMNS))})", _row(info))
        return self.info(key)

    def _write_entry(self, target: Path, labels: np.ndarray, probs: np.ndarray | None) -> None:
        zarr = _zarr()
        staging = self.path / "tmp" / f"{target.name}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            group = zarr.open_group(str(staging), mode="w")
            chunk = max(1, min(len(labels), 1 << 16))
            group.create_array("labels", data=labels, chunks=(chunk,))
            if probs is not None:
                group.create_array("probs", data=probs, chunks=(chunk, probs.shape[1]))
            _fsync_tree(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, target)  # atomic; fails if another writer got there first
            except OSError:
                if not target.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _replace_entry(self, target: Path, labels: np.ndarray, probs: np.ndarray | None) -> None:
        aside = self.path / "tmp" / f"{target.name}-damaged-{secrets.token_hex(4)}"
        os.rename(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
        self._write_entry(target, labels, probs)

    # --- reading -------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        with self._catalog() as db:
            return db.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None

    def info(self, key: str) -> EntryInfo:
        """The catalog row of ``key`` (a unique prefix of at least 6 characters also works)."""
        rows = []
        if len(key) >= 6:
            with self._catalog() as db:
                query = f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE substr(key, 1, ?) = ?"
                rows = db.execute(query, (len(key), key)).fetchall()
        if not rows:
            raise StoreError(f"No entry {key!r} in the store at {str(self.path)!r}; 'ontheline store ls' lists them.")
        if len(rows) > 1:
            raise StoreError(f"{key!r} matches {len(rows)} entries; give more characters of the key.")
        return _info(rows[0])

    def get(self, key: str, *, verify: bool = True) -> Entry:
        """Read one entry; with ``verify`` its checksum is checked, and a mismatch raises :class:`StoreError`."""
        info = self.info(key)
        try:
            labels, probs = _read_arrays(self._entry_path(info.key))
        except Exception as exc:  # any failure to decode the arrays is damage, reported the same way
            raise self._damaged(info, f"its arrays cannot be read ({type(exc).__name__}: {exc})") from None
        expected = None if info.dtype == "labels" else (info.n_samples, info.n_classes)
        if labels.shape != (info.n_samples,) or (None if probs is None else probs.shape) != expected:
            raise self._damaged(info, "its arrays do not have the shapes recorded when it was written")
        if verify and _checksum(labels, probs) != info.checksum:
            raise self._damaged(info, "its arrays do not match the checksum recorded when it was written")
        return Entry(info, labels, probs)

    def ls(self, *, model: str | None = None, dataset: str | None = None) -> list[EntryInfo]:
        """Catalog rows, oldest first, optionally only those of one model name or dataset name."""
        query, args = f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE 1", []
        for column, value in (("model", model), ("dataset", dataset)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        with self._catalog() as db:
            return [_info(row) for row in db.execute(query + " ORDER BY rowid", args)]

    def rm(self, key: str) -> EntryInfo:
        """Remove one entry: the catalog row first, so it stops being visible at once."""
        info = self.info(key)
        with self._catalog() as db:
            db.execute("DELETE FROM entries WHERE key = ?", (info.key,))
        target = self._entry_path(info.key)
        if target.exists():
            aside = self.path / "tmp" / f"{info.key}-removed-{secrets.token_hex(4)}"
            os.rename(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        return info

    def stacked_labels(self, keys: Sequence[str]) -> Any:
        """The predicted labels of several entries as one lazy dask array ``(n_models, n_samples)``.

        Nothing is read until it is computed, chunk by chunk, so
        :func:`ontheline.pairwise_agreement` on it needs memory for one chunk of samples, not
        for the whole array. Checksums are not verified on this path; :meth:`get` verifies them.
        """
        return self._stacked(keys, "labels")

    def stacked_probs(self, keys: Sequence[str]) -> Any:
        """The probabilities of several entries as one lazy dask array ``(n_models, n_samples, n_classes)``.

        What the estimators take for large OOD sets: every method then reads the store chunk
        by chunk (see :meth:`stacked_labels`).
        """
        missing = [k for k in keys if self.info(k).dtype == "labels"]
        if missing:
            raise ValueError(f"Entries {[k[:12] for k in missing]} hold labels only; use stacked_labels for them.")
        return self._stacked(keys, "probs")

    def _stacked(self, keys: Sequence[str], name: str) -> Any:
        try:
            import dask
            import dask.array as da
        except ImportError:
            raise ImportError("Lazy reading of the store uses dask: pip install 'ontheline[dask]'.") from None
        infos = [self.info(k) for k in keys]
        if len({i.n_samples for i in infos}) > 1:
            raise ValueError(f"stacked_{name} takes entries of one dataset; these keys have different sample counts.")
        # Arrays are opened once; each block task then reads one slice of samples from every
        # model, so the graph has one task per block instead of one per model and block.
        zarr = _zarr()
        arrays = [zarr.open_array(str(self._entry_path(i.key) / name), mode="r") for i in infos]
        if len({a.shape[1:] for a in arrays}) > 1:
            raise ValueError(f"stacked_{name} takes entries with the same number of classes.")
        n_samples, chunk, rest = infos[0].n_samples, arrays[0].chunks[0], arrays[0].shape[1:]
        dtype = np.result_type(*(a.dtype for a in arrays))

        def read(start: int, stop: int) -> np.ndarray:
            return np.stack([a[start:stop] for a in arrays]).astype(dtype, copy=False)

        blocks = [
            da.from_delayed(
                dask.delayed(read)(s, min(s + chunk, n_samples)), (len(arrays), min(chunk, n_samples - s), *rest), dtype
            )
            for s in range(0, n_samples, chunk)
        ]
        return da.concatenate(blocks, axis=1)

    def export(self, keys: Sequence[str], path: str | os.PathLike[str], *, labels: np.ndarray | None = None) -> Path:
        """Write entries of one dataset as the NPZ that ``ontheline estimate`` reads (``probs``, ``models``)."""
        from ontheline._io import atomic_write

        entries = [self.get(k) for k in keys]
        if not entries:
            raise ValueError("export needs at least one entry key.")
        datasets = {e.info.dataset_fingerprint for e in entries}
        if len(datasets) > 1:
            raise ValueError("export takes entries of one dataset; these keys come from several datasets.")
        arrays: dict[str, np.ndarray] = {"models": np.array([e.info.model for e in entries], dtype=str)}
        if all(e.probs is not None for e in entries):
            arrays["probs"] = np.stack([e.probs.astype(np.float32) for e in entries])  # type: ignore[union-attr]
        else:  # some models gave hard predictions only: export everyone's labels
            arrays["preds"] = np.stack([e.labels.astype(np.int64) for e in entries])
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (entries[0].info.n_samples,):
                raise ValueError(
                    f"labels must have one label per sample: expected shape ({entries[0].info.n_samples},), "
                    f"got {labels.shape}."
                )
            arrays["labels"] = labels
        with atomic_write(path) as file:
            np.savez(file, **arrays)
        return Path(path)

    def clean(self) -> int:
        """Delete what killed writers left in ``tmp/`` (never read); returns how many folders went.

        A staging folder is named after its writer's process id and is kept while that process
        runs on this machine, so cleaning beside a live writer is safe.
        """
        removed = 0
        for folder in (self.path / "tmp").iterdir():
            parts = folder.name.split("-")
            writer = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            if writer is not None and _alive(writer):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        return removed

    # --- internals -----------------------------------------------------------------------------

    def _entry_path(self, key: str) -> Path:
        return self.path / "entries" / key[:2] / key

    def _damaged(self, info: EntryInfo, why: str) -> StoreError:
        return StoreError(
            f"Store entry {info.key} ({info.model} on {info.dataset}) is damaged: {why}. Remove it with "
            f"'ontheline store rm {info.key}' and run again to recompute it."
        )

    @contextmanager
    def _catalog(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path / "catalog.sqlite", timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"The store catalog {str(self.path / 'catalog.sqlite')!r} cannot be read ({exc}); "
                "point ONTHELINE_STORE at another folder, or remove this one to start afresh."
            ) from None
        finally:
            db.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _version() -> str:
    from ontheline import __version__

    return __version__


def _checksum(labels: np.ndarray, probs: np.ndarray | None) -> str:
    parts = fingerprint_array(labels) + ("" if probs is None else fingerprint_array(probs))
    return hashlib.sha256(parts.encode()).hexdigest()


def _stored_checksum(path: Path) -> str | None:
    try:
        return _checksum(*_read_arrays(path))
    except Exception:  # unreadable counts as different: the caller rewrites the entry
        return None


def _zarr() -> Any:
    try:
        import zarr
    except ImportError:
        raise ImportError("The prediction store keeps its arrays in Zarr: pip install 'ontheline[store]'.") from None
    return zarr


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    zarr = _zarr()
    group = zarr.open_group(str(path), mode="r")
    probs = np.asarray(group["probs"][:]) if "probs" in group else None
    return np.asarray(group["labels"][:]), probs


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as file:
                os.fsync(file.fileno())


def _row(info: EntryInfo) -> tuple[Any, ...]:
    return tuple(getattr(info, c) for c in _COLUMNS)


def _info(row: Sequence[Any]) -> EntryInfo:
    values = dict(zip(_COLUMNS, row))
    values["n_samples"], values["n_classes"] = int(values["n_samples"]), int(values["n_classes"])
    return EntryInfo(**values)


__all__ = ["Entry", "EntryInfo", "Store", "StoreError", "default_store_path", "entry_key", "fingerprint_array"]
