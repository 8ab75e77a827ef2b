"""The Zarr side of the store: an entry's ``labels`` and ``probs`` arrays (or its ``features``), and their checksums.

Here an entry's arrays are staged into a private folder and synced (the store then renames the
folder into place), read back whole and checked against the SHA-256 recorded for the entry, or
opened for the lazy path, whose dask arrays read them chunk by chunk, each chunk checked against
its own SHA-256 as it is read. The checksums are computed here and kept in the catalog, not
beside the arrays, so a lost chunk file (which Zarr would read as zeros), a chunk swapped in
from another entry, or any altered byte is caught: damage raises
:class:`~ontheline.store.StoreError`, never a wrong number. These functions hold no store
state; they take the folders and the catalog rows they work on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline.store.entry import EntryInfo, damaged

# --- checksums -----------------------------------------------------------------------------------


def fingerprint_array(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes: equal content, equal fingerprint.

    Examples
    --------
    >>> fingerprint_array(np.zeros(3)) == fingerprint_array(np.zeros(3))
    True
    >>> fingerprint_array(np.zeros(3)) == fingerprint_array(np.zeros(3, np.float32))  # another dtype
    False
    >>> len(fingerprint_array(np.arange(4)))
    64
    """
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.data.cast("B"))
    return digest.hexdigest()


def entry_checksum(labels: np.ndarray, probs: np.ndarray | None) -> str:
    """The SHA-256 of an entry's arrays, recorded in its catalog row."""
    parts = fingerprint_array(labels) + ("" if probs is None else fingerprint_array(probs))
    return hashlib.sha256(parts.encode()).hexdigest()


def chunk_checksums(values: np.ndarray, step: int) -> list[tuple[int, int, str]]:
    """``(start, stop, sha256)`` of every chunk of ``step`` samples of ``values``."""
    return [
        (start, min(start + step, len(values)), fingerprint_array(values[start : start + step]))
        for start in range(0, len(values), step)
    ]


# --- writing and reading -------------------------------------------------------------------------


def _zarr() -> Any:
    with extra("store"):
        import zarr
    return zarr


def stage(staging: Path, arrays: dict[str, np.ndarray], chunk: int) -> None:
    """Write the arrays into the private folder ``staging``, in chunks of ``chunk`` samples, and sync them.

    On any failure the folder is removed before the error goes on.
    """
    try:
        group = _zarr().open_group(str(staging), mode="w")
        for name, array in arrays.items():
            group.create_array(name, data=array, chunks=(chunk, *array.shape[1:]))
        _fsync_tree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as file:
                os.fsync(file.fileno())


def read_entry(path: Path, info: EntryInfo, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``labels`` and ``probs`` (None if labels only) of entry ``info`` in folder ``path``.

    Arrays that cannot be read or do not have the recorded shapes, or, with ``verify``, do not
    match the recorded checksum, raise :class:`~ontheline.store.StoreError`.
    """
    try:
        group = _zarr().open_group(str(path), mode="r")
        probs = np.asarray(group["probs"][:]) if "probs" in group else None
        labels = np.asarray(group["labels"][:])
    except Exception as exc:  # any failure to decode the arrays is damage, reported the same way
        raise damaged(info, f"its arrays cannot be read ({type(exc).__name__}: {exc})") from None
    expected = None if info.dtype == "labels" else (info.n_samples, info.n_classes)
    if labels.shape != (info.n_samples,) or (None if probs is None else probs.shape) != expected:
        raise damaged(info, "its arrays do not have the shapes recorded when it was written")
    if verify and entry_checksum(labels, probs) != info.checksum:
        raise damaged(info, "its arrays do not match the checksum recorded when it was written")
    return labels, probs


def read_features(path: Path, info: EntryInfo, *, verify: bool = True) -> np.ndarray:
    """The ``features`` ``(n_samples, n_features)`` of a features entry ``info`` in folder ``path``.

    An array that cannot be read or does not have the recorded shape, or, with ``verify``, does
    not match the recorded checksum, raises :class:`~ontheline.store.StoreError`.
    """
    try:
        features = np.asarray(_zarr().open_group(str(path), mode="r")["features"][:])
    except Exception as exc:  # as read_entry: any failure to decode is damage
        raise damaged(info, f"its features cannot be read ({type(exc).__name__}: {exc})") from None
    if features.shape != (info.n_samples, info.n_classes):
        raise damaged(info, "its features do not have the shape recorded when it was written")
    if verify and entry_checksum(features, None) != info.checksum:
        raise damaged(info, "its features do not match the checksum recorded when it was written")
    return features


# --- the lazy path -------------------------------------------------------------------------------


def open_array(path: Path, info: EntryInfo, name: str) -> Any:
    """Array ``name`` of entry ``info`` in folder ``path``, opened without reading it; its shape is checked."""
    try:
        array = _zarr().open_array(str(path / name), mode="r")
    except Exception as exc:
        raise damaged(info, f"its {name} cannot be read ({type(exc).__name__}: {exc})") from None
    if array.shape != ((info.n_samples,) if name == "labels" else (info.n_samples, info.n_classes)):
        raise damaged(info, "its arrays do not have the shapes recorded when it was written")
    return array


def read_chunk(info: EntryInfo, name: str, array: Any, start: int, stop: int, checksum: str) -> np.ndarray:
    """Samples ``[start, stop)`` of an opened array, checked against the ``checksum`` recorded for them."""
    where = f"its {name} of samples {start} to {stop}"
    try:
        values = np.asarray(array[start:stop])
    except Exception as exc:
        raise damaged(info, f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
    if fingerprint_array(values) != checksum:  # a lost chunk reads as fill values; a swapped one as others'
        raise damaged(info, f"{where} do not match the checksum recorded when they were written")
    return values


def stack_lazily(infos: list[EntryInfo], arrays: list[Any], sums: list[list[tuple[int, int, str]]], name: str) -> Any:
    """One lazy dask array of the opened ``arrays`` stacked, one block per chunk of the first.

    ``sums`` holds each entry's ``(start, stop, sha256)`` of every chunk, covering its samples;
    each block task reads and checks the chunks that hold its samples, from every entry.
    """
    with extra("dask"):
        import dask
        import dask.array as da
    rest = arrays[0].shape[1:]
    dtype = np.result_type(*(a.dtype for a in arrays))

    def read(start: int, stop: int) -> np.ndarray:
        rows = []
        for info, array, chunks in zip(infos, arrays, sums):
            # The recorded chunks that hold [start, stop): one when every entry has the same
            # chunks (the usual case, as blocks follow the first entry's chunks).
            held = [c for c in chunks if c[0] < stop and c[1] > start]
            pieces = [read_chunk(info, name, array, *c) for c in held]
            values = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
            rows.append(values[start - held[0][0] : stop - held[0][0]])
        return np.stack(rows).astype(dtype, copy=False)

    blocks = [
        da.from_delayed(dask.delayed(read)(start, stop), (len(arrays), stop - start, *rest), dtype)
        for start, stop, _ in sums[0]
    ]
    return da.concatenate(blocks, axis=1)
