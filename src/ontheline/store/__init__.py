"""The embedded prediction store: every model's predictions on every dataset, computed once.

One folder holds everything: ``catalog.sqlite`` (what is stored, and how it was made) and
``entries/`` (one Zarr v3 group per entry, with ``labels`` ``(n_samples,)`` and ``probs``
``(n_samples, n_classes)``). An entry is keyed by a fingerprint of the model (weights and
configuration), the dataset's content, the preprocessing and the package version.

Writes are atomic: an entry is written into a private temporary folder, then renamed into
place (a single atomic step on one file system) and recorded in the catalog in one SQLite
transaction. A process killed at any moment leaves no partial entry visible; two processes
writing different entries (or the same one) at once are safe. The catalog keeps a SHA-256 of
each entry's arrays, checked by :meth:`Store.get`, and one of every chunk of samples, checked
as the lazy arrays of :meth:`Store.stacked_probs` read them, so a damaged entry raises
:class:`StoreError` instead of returning wrong numbers. Nothing is created until the first
write; reading works on a store the reader cannot write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ontheline._optional import extra

SCHEMA_VERSION = 2  # 2 added the chunks table; a version 1 catalog is migrated on its first write
CHUNK_SAMPLES = 1 << 16  # samples per Zarr chunk, and per read task of the lazy arrays
_COLUMNS = (
    "key", "model", "model_fingerprint", "dataset", "dataset_fingerprint", "preprocessing", "version",
    "n_samples", "n_classes", "dtype", "created", "seconds", "device", "checksum",
)  # fmt: skip
PROB_DTYPES = ("float16", "float32")
_CATALOG = "catalog.sqlite"
_KEY = re.compile(r"[0-9a-f]{32}")  # what entry_key makes; anything else never becomes a path
_PREFIX = re.compile(r"[0-9a-f]{6,32}")  # what a user may pass to look an entry up
_CHUNKS_TABLE = (  # the SHA-256 of samples [start, stop) of one array of one entry
    "CREATE TABLE chunks (key TEXT NOT NULL, array TEXT NOT NULL, start INTEGER NOT NULL, stop INTEGER NOT NULL, "
    "checksum TEXT NOT NULL, PRIMARY KEY (key, array, start))"
)
_TABLES = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE entries ("
    + ", ".join(f"{c} {'REAL' if c in ('n_samples', 'n_classes', 'seconds') else 'TEXT'}" for c in _COLUMNS)
    + ", PRIMARY KEY (key))",
    _CHUNKS_TABLE,
)


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
    """A prediction store in one folder (created by the first write; reading creates nothing).

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
        target = self._entry_path(key)
        seen = self._stored(key)
        if seen is not None and self._intact(seen):
            return seen
        arrays = {"labels": labels} if stored is None else {"labels": labels, "probs": stored}
        chunk = max(1, min(len(labels), CHUNK_SAMPLES))
        sums = [
            (key, name, start, min(start + chunk, len(array)), fingerprint_array(array[start : start + chunk]))
            for name, array in arrays.items()
            for start in range(0, len(array), chunk)
        ]
        info = EntryInfo(
            key, model, model_fingerprint, dataset, dataset_fingerprint, preprocessing, _version(),
            len(labels), n_classes, dtype, datetime.now(UTC).isoformat(timespec="seconds"),
            float(seconds), device, _checksum(labels, stored),
        )  # fmt: skip
        self._create()
        staging = self._stage(key, arrays, chunk)  # the slow part, outside the catalog's write lock
        try:
            with self._open(write=True) as db:
                now = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE key = ?", (key,)).fetchone()
                if now is not None and (seen is None or self._info(now) != seen):
                    return self._info(now)  # another writer stored it since we looked: theirs is kept
                # Under the write lock: no other writer moves this folder or its row meanwhile.
                # A folder already there (a killed writer's, or the damaged one) is replaced, never trusted.
                target.parent.mkdir(exist_ok=True)
                if target.exists():
                    self._discard(target, "damaged")
                os.rename(staging, target)
                db.execute(f"INSERT OR REPLACE INTO entries VALUES ({', '.join('?' * len(_COLUMNS))})", _row(info))
                db.execute("DELETE FROM chunks WHERE key = ?", (key,))
                db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?)", sums)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return info

    def _stage(self, key: str, arrays: dict[str, np.ndarray], chunk: int) -> Path:
        """Write the arrays into a private folder under ``tmp/`` (named after this process) and sync them."""
        staging = self.path / "tmp" / f"{key}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            group = _zarr().open_group(str(staging), mode="w")
            for name, array in arrays.items():
                group.create_array(name, data=array, chunks=(chunk, *array.shape[1:]))
            _fsync_tree(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _discard(self, folder: Path, why: str) -> None:
        """Move a folder out of sight (one atomic rename into ``tmp/``), then delete it."""
        aside = self.path / "tmp" / f"{folder.name}-{why}-{secrets.token_hex(4)}"
        os.rename(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)

    def _create(self) -> None:
        """Make the folders and the catalog of a new store; what exists is left as it is."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "entries").mkdir(exist_ok=True)
        (self.path / "tmp").mkdir(exist_ok=True)
        catalog = self.path / _CATALOG
        if catalog.exists():
            return
        # Built under a private name and linked into place only if still absent (a link never
        # replaces a file), so no opener ever sees a half-made catalog and a concurrent first
        # writer's catalog is never overwritten.
        draft = self.path / "tmp" / f"catalog-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            db = sqlite3.connect(draft, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # kept in the file: readers never block the one writer
                db.execute("BEGIN")
                for table in _TABLES:
                    db.execute(table)
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.execute("COMMIT")
            finally:
                db.close()
            with suppress(FileExistsError):  # another writer made it first; theirs is used
                os.link(draft, catalog)
        finally:
            draft.unlink(missing_ok=True)

    # --- reading -------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return bool(self._select("SELECT 1 FROM entries WHERE key = ?", (key,)))

    def info(self, key: str) -> EntryInfo:
        """The catalog row of ``key`` (a unique prefix of at least 6 characters also works)."""
        if not isinstance(key, str) or not _PREFIX.fullmatch(key):
            raise StoreError(
                f"{key!r} is not an entry key: expected 6 to 32 lowercase hex characters, a key or a unique "
                "prefix of one; 'ontheline store ls' lists them."
            )
        query = f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE substr(key, 1, ?) = ?"
        rows = self._select(query, (len(key), key))
        if not rows:
            raise StoreError(f"No entry {key!r} in the store at {str(self.path)!r}; 'ontheline store ls' lists them.")
        if len(rows) > 1:
            raise StoreError(f"{key!r} matches {len(rows)} entries; give more characters of the key.")
        return self._info(rows[0])

    def get(self, key: str, *, verify: bool = True) -> Entry:
        """Read one entry; with ``verify`` its checksum is checked, and a mismatch raises :class:`StoreError`."""
        info = self.info(key)
        path = self._entry_path(info.key)
        try:
            labels, probs = _read_arrays(path)
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
        return [self._info(row) for row in self._select(query + " ORDER BY rowid", args)]

    def rm(self, key: str) -> EntryInfo:
        """Remove one entry: its catalog rows and its folder, in one transaction."""
        info = self.info(key)
        target = self._entry_path(info.key)
        with self._open(write=True) as db:
            db.execute("DELETE FROM entries WHERE key = ?", (info.key,))
            db.execute("DELETE FROM chunks WHERE key = ?", (info.key,))
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
        with extra("dask"):
            import dask
            import dask.array as da
        infos = [self.info(k) for k in keys]
        if len({i.n_samples for i in infos}) > 1:
            raise ValueError(f"stacked_{name} takes entries of one dataset; these keys have different sample counts.")
        # Arrays are opened once; each block task then reads one slice of samples from every
        # model, so the graph has one task per block instead of one per model and block.
        arrays = [self._open_array(i, name) for i in infos]
        if len({a.shape[1:] for a in arrays}) > 1:
            raise ValueError(f"stacked_{name} takes entries with the same number of classes.")
        sums = self._chunk_sums(infos, arrays, name)
        rest = arrays[0].shape[1:]
        dtype = np.result_type(*(a.dtype for a in arrays))

        def read(start: int, stop: int) -> np.ndarray:
            rows = []
            for info, array, chunks in zip(infos, arrays, sums):
                # The recorded chunks that hold [start, stop): one when every entry has the same
                # chunks (the usual case, as blocks follow the first entry's chunks).
                held = [c for c in chunks if c[0] < stop and c[1] > start]
                pieces = [self._read_chunk(info, name, array, *c) for c in held]
                values = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
                rows.append(values[start - held[0][0] : stop - held[0][0]])
            return np.stack(rows).astype(dtype, copy=False)

        blocks = [
            da.from_delayed(dask.delayed(read)(start, stop), (len(arrays), stop - start, *rest), dtype)
            for start, stop, _ in sums[0]
        ]
        return da.concatenate(blocks, axis=1)

    def _open_array(self, info: EntryInfo, name: str) -> Any:
        path = self._entry_path(info.key) / name
        try:
            array = _zarr().open_array(str(path), mode="r")
        except Exception as exc:
            raise self._damaged(info, f"its {name} cannot be read ({type(exc).__name__}: {exc})") from None
        if array.shape != ((info.n_samples,) if name == "labels" else (info.n_samples, info.n_classes)):
            raise self._damaged(info, "its arrays do not have the shapes recorded when it was written")
        return array

    def _chunk_sums(self, infos: list[EntryInfo], arrays: list[Any], name: str) -> list[list[tuple[int, int, str]]]:
        """Each entry's ``(start, stop, sha256)`` of every chunk of array ``name``, from the catalog.

        An entry written without them (schema version 1) is verified whole now, and its sums are
        taken from the verified values, so its chunks are checked as they are read like any other.
        """
        with self._open() as db:
            kept = db is not None and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks'").fetchone()
            query = "SELECT start, stop, checksum FROM chunks WHERE key = ? AND array = ? ORDER BY start"
            found = [db.execute(query, (i.key, name)).fetchall() if kept else [] for i in infos]  # type: ignore[union-attr]
        sums = []
        for info, array, chunks in zip(infos, arrays, found):
            if not chunks:
                entry, step = self.get(info.key), array.chunks[0]
                values = entry.labels if name == "labels" else entry.probs
                chunks = [
                    (s, min(s + step, info.n_samples), fingerprint_array(values[s : s + step]))  # type: ignore[index]
                    for s in range(0, info.n_samples, step)
                ]
            ends = [0] + [stop for _, stop, _ in chunks]
            if [start for start, _, _ in chunks] != ends[:-1] or ends[-1] != info.n_samples:
                raise self._damaged(info, f"the chunk checksums of its {name} in the catalog do not cover its samples")
            sums.append(chunks)
        return sums

    def _read_chunk(self, info: EntryInfo, name: str, array: Any, start: int, stop: int, checksum: str) -> np.ndarray:
        where = f"its {name} of samples {start} to {stop}"
        try:
            values = np.asarray(array[start:stop])
        except Exception as exc:
            raise self._damaged(info, f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
        if fingerprint_array(values) != checksum:  # a lost chunk reads as fill values; a swapped one as others'
            raise self._damaged(info, f"{where} do not match the checksum recorded when they were written")
        return values

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
        """Delete what killed writers left in ``tmp/`` (never read); returns how many went.

        A staging folder is named after its writer's process id and is kept while that process
        runs on this machine, so cleaning beside a live writer is safe. A missing store has
        nothing to clean, and stays missing.
        """
        tmp = self.path / "tmp"
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
        self._check_key(key)
        path = self.path / "entries" / key[:2] / key
        if not path.resolve().is_relative_to(self.path.resolve()):  # e.g. entries/ab linked elsewhere
            raise StoreError(
                f"The store at {str(self.path)!r} is damaged: the folder of entry {key} leads outside it, to "
                f"{str(path.resolve())!r}; remove the link, or the store."
            )
        return path

    def _damaged(self, info: EntryInfo, why: str) -> StoreError:
        return StoreError(
            f"Store entry {info.key} ({info.model} on {info.dataset}) is damaged: {why}. Remove it with "
            f"'ontheline store rm {info.key}' and run again to recompute it."
        )

    def _check_key(self, key: str) -> None:
        if not _KEY.fullmatch(key):
            raise StoreError(
                f"The store catalog {str(self.path / _CATALOG)!r} is damaged: it has an entry key {key!r}, expected "
                "32 lowercase hex characters; point ONTHELINE_STORE at another folder, or remove this one."
            )

    def _info(self, row: Sequence[Any]) -> EntryInfo:
        info = _info(row)
        self._check_key(info.key)  # a row whose key is no fingerprint is damage, never a path
        return info

    def _stored(self, key: str) -> EntryInfo | None:
        rows = self._select(f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE key = ?", (key,))
        return self._info(rows[0]) if rows else None

    def _intact(self, info: EntryInfo) -> bool:
        try:
            self.get(info.key)
        except StoreError:
            return False
        return True

    def _select(self, query: str, args: Sequence[Any] = ()) -> list[Any]:
        """The rows of a read-only query; none from a store without a catalog."""
        with self._open() as db:
            return [] if db is None else db.execute(query, args).fetchall()

    @contextmanager
    def _open(self, *, write: bool = False) -> Iterator[sqlite3.Connection | None]:
        """The catalog, read-only, or with ``write`` in one transaction holding the write lock.

        Reading a store that has no catalog gives None and creates nothing; writing creates the
        store first, and migrates a version 1 catalog in the same transaction.
        """
        catalog = self.path / _CATALOG
        if write:
            self._create()
        elif not catalog.exists():
            yield None
            return
        try:
            db = self._connect(catalog, write)
            try:
                if write:
                    db.execute("BEGIN IMMEDIATE")
                self._check_schema(db, write)
                yield db
                if write:
                    db.execute("COMMIT")
            finally:
                db.close()  # without COMMIT, closing rolls the transaction back
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"The store catalog {str(catalog)!r} cannot be read{' or written' if write else ''} ({exc}); "
                f"{'check that its folder is writable, or ' if write else ''}point ONTHELINE_STORE at another "
                "folder, or remove this one to start afresh."
            ) from None

    def _connect(self, catalog: Path, write: bool) -> sqlite3.Connection:
        uri = catalog.absolute().as_uri()
        if write:
            return sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=60, isolation_level=None)
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60, isolation_level=None)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # WAL mode: needs the -shm side file
        except sqlite3.OperationalError:
            db.close()
            if os.access(self.path, os.W_OK):
                raise
            # A folder this reader cannot write, so WAL's side files cannot be made: read the file
            # as it stands, without locks (a store its readers cannot write is taken to be idle).
            db = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
        return db

    def _check_schema(self, db: sqlite3.Connection, write: bool) -> None:
        row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if row is None:
            raise sqlite3.DatabaseError("it records no schema version")
        if write and row[0] == "1":  # version 2 adds the chunk checksums; older entries have none
            db.execute(_CHUNKS_TABLE)
            db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))
        elif row[0] not in ((str(SCHEMA_VERSION),) if write else ("1", str(SCHEMA_VERSION))):
            raise StoreError(
                f"The store at {str(self.path)!r} has schema version {row[0]}, but this ontheline reads version "
                f"{SCHEMA_VERSION}; upgrade ontheline, or point it at another folder (ONTHELINE_STORE)."
            )


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


def _zarr() -> Any:
    with extra("store"):
        import zarr
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
