"""Atomic file writes: a reader sees the old file or the complete new one, never a partial write."""

from __future__ import annotations

import math
import os
import secrets
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from ontheline._validation import InputError


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` for binary writing; on success it replaces ``path``.

    On any error the temporary file is removed, so are the folders made for it, and ``path``
    is left as it was.
    """
    target = Path(path)
    made = make_folders(target.parent)
    # A unique hidden name beside the target (same file system, so the rename is atomic); created
    # with open() rather than mkstemp so the final file gets the usual umask permissions.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        remove_folders(made)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8, atomically (a lone surrogate, which UTF-8 cannot hold, is written as ``\\udXXX``)."""
    with atomic_write(path) as file:
        file.write(text.encode("utf-8", "backslashreplace"))


def make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones made, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    for p in missing:
        p.mkdir(exist_ok=True)
    return missing


def remove_folders(made: list[Path]) -> None:
    """Undo :func:`make_folders` as far as the folders are still empty."""
    for p in reversed(made):
        try:
            p.rmdir()
        except OSError:
            return


def check_output(path: str | os.PathLike[str], flag: str, *, folder: bool = False) -> None:
    """Refuse, before any work is done, an output path that cannot be written.

    ``path`` is a file to write (or, with ``folder``, a folder to write files into). Its
    nearest existing folder must accept a new file (checked by creating and removing one),
    nothing on the way may be a file, and no name may be longer than the file system allows.
    Problems raise :class:`InputError` naming ``flag``.
    """
    target = Path(path)
    shown = f"{flag} {str(path)!r}"
    longest = _name_max(Path(target.anchor or "."))  # first: a name too long makes every other check fail
    too_long = [part for part in target.parts if len(os.fsencode(part)) > longest]
    if too_long:
        raise InputError(
            f"{shown}: the name {too_long[0][:40]!r}... is longer than {longest} bytes; choose a shorter name."
        )
    if folder and target.exists() and not target.is_dir():
        raise InputError(f"{shown} is a file; pass a folder.")
    if not folder and target.is_dir():
        raise InputError(f"{shown} is a folder; pass the path of the file to write.")
    existing = next(p for p in (target if folder else target.parent, *target.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise InputError(
            f"{shown}: {str(existing)!r} is a file, so nothing can be written under it; pass another path."
        )
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".ontheline-check-"):
            pass
    except OSError as exc:
        raise InputError(f"{shown} cannot be written: {str(existing)!r} refuses new files ({exc.strerror}).") from None


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def read_npz(
    path: str | os.PathLike[str], flag: str, *, fix: str = "save it with numpy.savez"
) -> dict[str, np.ndarray]:
    """Every array of an NPZ file, checked before anything is allocated.

    Each member must be a ``.npy`` array of plain (non-object) dtype whose header agrees with
    the bytes the member holds, and all of them together must fit in this machine's memory:
    a tiny file that claims a huge shape, or a zip bomb, is refused at once instead of
    exhausting memory. Problems raise :class:`InputError` naming ``flag`` and the fix.
    """
    name = f"{flag} file {str(path)!r}"
    if not os.path.isfile(path):
        raise InputError(f"{name} does not exist; pass the path of an NPZ file.")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{name} is not a readable NPZ file; {fix}.")
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(_checked_member(archive, info, name, fix) for info in archive.infolist())
        if declared > _memory_bytes():
            raise InputError(
                f"{name} holds {declared / 2**30:.1f} GiB of arrays, more than this machine's memory; "
                "split it, or keep the predictions in the store and read them lazily (Store.stacked_probs)."
            )
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name} could not be read ({_one_line(exc)}); {fix}.") from None


def read_npy(path: str | os.PathLike[str], flag: str) -> np.ndarray:
    """One ``.npy`` array, its header checked against the file's size before anything is allocated."""
    name = f"{flag} file {str(path)!r}"
    if not os.path.isfile(path):
        raise InputError(f"{name} does not exist; pass a .npy file saved with numpy.save.")
    try:
        with open(path, "rb") as file:
            shape, dtype, header_bytes = _npy_header(file, name, "save it with numpy.save")
            size = os.fstat(file.fileno()).st_size
            _check_claim(shape, dtype, size - header_bytes, name, "the array", "save it with numpy.save")
            file.seek(0)
            return np.load(file, allow_pickle=False)
    except (OSError, EOFError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name} could not be read ({_one_line(exc)}); save it with numpy.save.") from None


def _npy_header(file: IO[bytes], name: str, fix: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, header length)`` of the ``.npy`` data at the start of ``file``; object arrays are refused."""
    try:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(file)
    except ValueError as exc:
        raise InputError(f"{name} has an unreadable array header ({_one_line(exc)}); {fix}.") from None
    if dtype.hasobject:
        raise InputError(
            f"{name} holds Python objects, which could run code when loaded; save names and classes as string "
            "arrays (numpy.array(names, dtype=str))."
        )
    return shape, dtype, file.tell()


def _check_claim(shape: tuple[int, ...], dtype: np.dtype, available: int, name: str, what: str, fix: str) -> int:
    """The bytes a header claims, refused when the file holds fewer."""
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > available:
        raise InputError(
            f"{name}: {what} claims shape {shape} of {dtype} ({claimed:,} bytes) but holds {available:,} bytes; "
            f"the file is damaged or forged: {fix}."
        )
    return claimed


def _checked_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, fix: str) -> int:
    """The bytes the member ``info`` declares, after checking its ``.npy`` header against them."""
    if not info.filename.endswith(".npy"):
        raise InputError(f"{name} has a member {info.filename!r} that is not a numpy array (.npy); {fix}.")
    key = info.filename[:-4]
    with archive.open(info) as member:
        shape, dtype, header_bytes = _npy_header(member, f"{name}: the array {key!r}", fix)
    return _check_claim(shape, dtype, info.file_size - header_bytes, name, f"the array {key!r}", fix)


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux: no cheap way to know, so no limit
        return 1 << 62


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control and format characters (ANSI and OSC escape
    sequences, newlines, bidirectional overrides), line separators and lone surrogates are
    shown as Python escapes (``\\x1b``, ``\\n``, ``\\u202e``, ``\\ud800``); the rest is unchanged.

    Examples
    --------
    >>> printable("\\x1b[31mred\\nmodel")
    '\\\\x1b[31mred\\\\nmodel'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
