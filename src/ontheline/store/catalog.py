"""The SQLite side of the store: ``catalog.sqlite``, one row per entry and one per chunk checksum.

Here are the tables and the schema version (a version 1 catalog is read as it is and migrated
by its first write), the making of a new store's folders and catalog (built under a private
name and linked into place, so no one sees it half made), opening the catalog read-only (even
where the reader cannot write) or for writing in one transaction holding the write lock, the
mapping between rows and :class:`~ontheline.store.EntryInfo`, every query and write the store
makes of the catalog, and the validation of keys: only 32 lowercase hex characters are an entry
key, so an edited catalog never names a path. The functions take the store's folder, ``root``.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ontheline.store.entry import COLUMNS, EntryInfo, StoreError

SCHEMA_VERSION = 2  # 2 added the chunks table; a version 1 catalog is migrated on its first write
CATALOG = "catalog.sqlite"
SELECT = f"SELECT {', '.join(COLUMNS)} FROM entries"  # every column of entries, in EntryInfo's order
_KEY = re.compile(r"[0-9a-f]{32}")  # what entry_key makes; anything else never becomes a path
_PREFIX = re.compile(r"[0-9a-f]{6,32}")  # what a user may pass to look an entry up
_CHUNKS_TABLE = (  # the SHA-256 of samples [start, stop) of one array of one entry
    "CREATE TABLE chunks (key TEXT NOT NULL, array TEXT NOT NULL, start INTEGER NOT NULL, stop INTEGER NOT NULL, "
    "checksum TEXT NOT NULL, PRIMARY KEY (key, array, start))"
)
_TABLES = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE entries ("
    + ", ".join(f"{c} {'REAL' if c in ('n_samples', 'n_classes', 'seconds') else 'TEXT'}" for c in COLUMNS)
    + ", PRIMARY KEY (key))",
    _CHUNKS_TABLE,
)

# --- keys and rows -------------------------------------------------------------------------------


def check_key(root: Path, key: str) -> None:
    """Raise :class:`StoreError` unless ``key`` (read from the catalog of the store at ``root``) is a fingerprint."""
    if not _KEY.fullmatch(key):
        raise StoreError(
            f"The store catalog {str(root / CATALOG)!r} is damaged: it has an entry key {key!r}, expected "
            "32 lowercase hex characters; point ONTHELINE_STORE at another folder, or remove this one."
        )


def check_prefix(key: Any) -> None:
    """Raise :class:`StoreError` unless ``key``, given to look an entry up, is a key or a prefix of 6+ characters."""
    if not isinstance(key, str) or not _PREFIX.fullmatch(key):
        raise StoreError(
            f"{key!r} is not an entry key: expected 6 to 32 lowercase hex characters, a key or a unique "
            "prefix of one; 'ontheline store ls' lists them."
        )


def to_row(info: EntryInfo) -> tuple[Any, ...]:
    return tuple(getattr(info, c) for c in COLUMNS)


def to_info(root: Path, row: Sequence[Any]) -> EntryInfo:
    """The :class:`EntryInfo` of a row of ``entries``; a row whose key is no fingerprint is damage, never a path."""
    values = dict(zip(COLUMNS, row))
    values["n_samples"], values["n_classes"] = int(values["n_samples"]), int(values["n_classes"])
    info = EntryInfo(**values)
    check_key(root, info.key)
    return info


# --- queries -----------------------------------------------------------------------------------


def lookup(root: Path, key: str) -> EntryInfo:
    """The row of entry ``key`` (a unique prefix of at least 6 characters also works)."""
    check_prefix(key)
    rows = select(root, f"{SELECT} WHERE substr(key, 1, ?) = ?", (len(key), key))
    if not rows:
        raise StoreError(f"No entry {key!r} in the store at {str(root)!r}; 'ontheline store ls' lists them.")
    if len(rows) > 1:
        raise StoreError(f"{key!r} matches {len(rows)} entries; give more characters of the key.")
    return to_info(root, rows[0])


def stored(root: Path, key: str) -> EntryInfo | None:
    """The row of entry ``key`` (the whole key), or None."""
    rows = select(root, f"{SELECT} WHERE key = ?", (key,))
    return to_info(root, rows[0]) if rows else None


def has(root: Path, key: str) -> bool:
    return bool(select(root, "SELECT 1 FROM entries WHERE key = ?", (key,)))


def listing(root: Path, *, model: str | None = None, dataset: str | None = None) -> list[EntryInfo]:
    """Rows, oldest first, optionally only those of one model name or dataset name."""
    query, args = f"{SELECT} WHERE 1", []
    for column, value in (("model", model), ("dataset", dataset)):
        if value is not None:
            query += f" AND {column} = ?"
            args.append(value)
    return [to_info(root, row) for row in select(root, query + " ORDER BY rowid", args)]


def chunk_sums(root: Path, keys: Sequence[str], name: str) -> list[list[tuple[int, int, str]]]:
    """Each entry's recorded ``(start, stop, sha256)`` of every chunk of array ``name``, in order.

    An entry written without them (schema version 1, or a store without a catalog) has none.
    """
    with reading(root) as db:
        kept = db is not None and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks'").fetchone()
        query = "SELECT start, stop, checksum FROM chunks WHERE key = ? AND array = ? ORDER BY start"
        return [db.execute(query, (key, name)).fetchall() if kept else [] for key in keys]  # type: ignore[union-attr]


def current(db: sqlite3.Connection, root: Path, key: str) -> EntryInfo | None:
    """The row of entry ``key`` as an open transaction sees it, or None."""
    row = db.execute(f"{SELECT} WHERE key = ?", (key,)).fetchone()
    return None if row is None else to_info(root, row)


def record(db: sqlite3.Connection, info: EntryInfo, chunks: dict[str, list[tuple[int, int, str]]]) -> None:
    """Write (or replace) the row of an entry and the checksums of its chunks, array by array."""
    db.execute(f"INSERT OR REPLACE INTO entries VALUES ({', '.join('?' * len(COLUMNS))})", to_row(info))
    db.execute("DELETE FROM chunks WHERE key = ?", (info.key,))
    sums = [(info.key, name, *chunk) for name, found in chunks.items() for chunk in found]
    db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?)", sums)


def forget(db: sqlite3.Connection, key: str) -> None:
    """Delete the row of an entry and the checksums of its chunks."""
    db.execute("DELETE FROM entries WHERE key = ?", (key,))
    db.execute("DELETE FROM chunks WHERE key = ?", (key,))


# --- making and opening --------------------------------------------------------------------------


def create(root: Path) -> None:
    """Make the folders and the catalog of a new store at ``root``; what exists is left as it is."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "entries").mkdir(exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    catalog = root / CATALOG
    if catalog.exists():
        return
    if not (root / "tmp").resolve().is_relative_to(root.resolve()):  # a draft is never written elsewhere
        raise StoreError(f"The store at {str(root)!r} is damaged: its tmp/ folder leads outside it; remove the link.")
    # Built under a private name and linked into place only if still absent (a link never
    # replaces a file), so no opener ever sees a half-made catalog and a concurrent first
    # writer's catalog is never overwritten.
    draft = root / "tmp" / f"catalog-{os.getpid()}-{secrets.token_hex(4)}"
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


def select(root: Path, query: str, args: Sequence[Any] = ()) -> list[Any]:
    """The rows of a read-only query; none from a store without a catalog."""
    with reading(root) as db:
        return [] if db is None else db.execute(query, args).fetchall()


@contextmanager
def reading(root: Path) -> Iterator[sqlite3.Connection | None]:
    """The catalog of the store at ``root``, read-only; None, creating nothing, where it has none."""
    if not (root / CATALOG).exists():
        yield None
        return
    with _opened(root, write=False) as db:
        yield db


@contextmanager
def writing(root: Path) -> Iterator[sqlite3.Connection]:
    """The catalog in one transaction holding the write lock, committed when the block ends without error.

    Creates the store first, and migrates a version 1 catalog in the same transaction.
    """
    create(root)
    with _opened(root, write=True) as db:
        yield db


@contextmanager
def _opened(root: Path, *, write: bool) -> Iterator[sqlite3.Connection]:
    catalog = root / CATALOG
    try:
        db = _connect(root, catalog, write)
        try:
            if write:
                db.execute("BEGIN IMMEDIATE")
            _check_schema(root, db, write)
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


def _connect(root: Path, catalog: Path, write: bool) -> sqlite3.Connection:
    uri = catalog.absolute().as_uri()
    if write:
        return sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=60, isolation_level=None)
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60, isolation_level=None)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # WAL mode: needs the -shm side file
    except sqlite3.OperationalError:
        db.close()
        if os.access(root, os.W_OK):
            raise
        # A folder this reader cannot write, so WAL's side files cannot be made: read the file
        # as it stands, without locks (a store its readers cannot write is taken to be idle).
        db = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
    return db


def _check_schema(root: Path, db: sqlite3.Connection, write: bool) -> None:
    row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is None:
        raise sqlite3.DatabaseError("it records no schema version")
    if write and row[0] == "1":  # version 2 adds the chunk checksums; older entries have none
        db.execute(_CHUNKS_TABLE)
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))
    elif row[0] not in ((str(SCHEMA_VERSION),) if write else ("1", str(SCHEMA_VERSION))):
        raise StoreError(
            f"The store at {str(root)!r} has schema version {row[0]}, but this ontheline reads version "
            f"{SCHEMA_VERSION}; upgrade ontheline, or point it at another folder (ONTHELINE_STORE)."
        )
