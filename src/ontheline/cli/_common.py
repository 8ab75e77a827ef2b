"""What every command shares: the parser class and argparse types, the JSON writer, table cells,
and the error contract.

The contract: what the user can fix (their files, paths and values, a zoo that defeats every
method, a damaged store entry, an optional package not installed) exits with status 2 and one
line that names the problem and the fix; an interrupt exits with 130; anything else is a bug in
ontheline and exits with 1, one line that says so (``--debug`` or ``ONTHELINE_DEBUG=1`` shows
the traceback instead).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from ontheline._io import check_output, printable
from ontheline._optional import EXTRAS
from ontheline._validation import EstimationError, InputError
from ontheline.store import StoreError

#: Exceptions about the user's input, zoo or store: exit status 2.
USER_ERRORS = (InputError, EstimationError, StoreError)
INTERRUPTED = 130


# --- the parser ---------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """A bad command line is one line and status 2, no usage dump: the contract of every other bad input."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The command as typed ("ontheline", "ontheline estimate", "ontheline store ls"); the
        # deepest subcommand's default wins, so a parsed namespace knows whose --help to point at.
        self.set_defaults(help_prog=self.prog)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"ontheline: error: {message}; see '{self.prog} --help'.\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        # argparse reports leftover arguments from the top parser; point at the subcommand's help instead.
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.exit(
                2, f"ontheline: error: unrecognized arguments: {' '.join(extras)}; see '{parsed.help_prog} --help'.\n"
            )
        return parsed


def _number(text: str, convert: Callable[[str], Any], ok: Callable[[Any], bool], expected: str) -> Any:
    """An argparse type: ``convert(text)`` if ``ok`` of it, else a one-line error naming what was expected."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a non-negative integer")


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "a positive integer")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a positive number")


def open_unit_float(text: str) -> float:
    return _number(text, float, lambda v: 0.0 < v < 1.0, "a number strictly between 0 and 1")


def unit_float(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


# --- output -------------------------------------------------------------------------------------


def to_json(obj: Any) -> str:
    """Indented JSON with floats rounded to 6 significant digits: exact enough, and half the size."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.6g}") if math.isfinite(value) else None  # JSON has no NaN
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return value

    return json.dumps(rounded(obj), indent=1, allow_nan=False) + "\n"


def pct(value: float) -> str:
    return f"{100 * float(value):.1f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Aligned plain-text columns (the benchmark's tables, imported only when a table is printed)."""
    from ontheline.bench.tables import text

    return text(list(header), [list(r) for r in rows])


def check_folder(flag: str, path: str | None) -> None:
    if path:
        check_output(path, flag, folder=True)


# --- blaming the right party --------------------------------------------------------------------


@contextmanager
def data_errors(what: str | None = None) -> Iterator[None]:
    """A ValueError from a library call on the user's data becomes an :class:`InputError`, prefixed with ``what``.

    Only around calls whose every ValueError is about the data passed in: elsewhere a
    ValueError is a bug.
    """
    try:
        yield
    except (EstimationError, StoreError):
        raise
    except ValueError as exc:  # an InputError too: the prefix says which file or flag it is about
        raise InputError(f"{what}: {exc}" if what else str(exc)) from exc


@contextmanager
def writing(flag: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """An OSError while writing the output ``path`` (disk full, no permission) is the user's
    environment, not a bug: it becomes an :class:`InputError` naming ``flag`` and ``path``."""
    try:
        yield
    except OSError as exc:
        if not is_about(exc, path):
            raise
        reason = exc.strerror or one_line(exc)
        raise InputError(
            f"{flag} {str(path)!r} could not be written ({reason}); free some space, fix the permissions "
            "or choose another path."
        ) from exc


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def is_about(exc: OSError, path: str | os.PathLike[str]) -> bool:
    """Whether ``exc`` concerns ``path``: ``path`` itself, something under it, one of its folders
    (made on the way) or beside it (an atomic write's temporary file); or no file named and a
    failure that only writing meets (a full disk, a read-only file system, a refused permission)."""
    if exc.filename is None or isinstance(exc.filename, int):
        return exc.errno in _WRITE_ERRNOS
    name, target = Path(os.fsdecode(exc.filename)).absolute(), Path(path).absolute()
    return name == target or target in name.parents or name in target.parents or name.parent == target.parent


# --- the error contract -------------------------------------------------------------------------


def missing_extra(exc: BaseException) -> str | None:
    """The fix when ``exc`` is an optional package that is not installed (an environment to fix, not a bug)."""
    if isinstance(exc, ModuleNotFoundError) and exc.name in EXTRAS:
        wanted = EXTRAS[exc.name]
        return f"This needs {exc.name}, which comes with the '{wanted}' extra: pip install 'ontheline[{wanted}]'."
    named = "pip install 'ontheline[" in str(exc)  # ontheline._optional.extra named the extra already
    if isinstance(exc, ImportError) and isinstance(exc.__cause__, ModuleNotFoundError) and named:
        return str(exc)
    return None


def exit_status(exc: BaseException) -> int:
    """2 for what the user can fix, 130 for an interrupt, 1 for a bug in ontheline."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, USER_ERRORS) or missing_extra(exc):
        return 2
    return 1


def error_line(exc: BaseException, status: int) -> str:
    """The one line printed on stderr for ``exc`` ending a command with ``status``."""
    if status == INTERRUPTED:
        return "ontheline: interrupted."
    if status == 2:
        return f"ontheline: error: {one_line(missing_extra(exc) or exc)}"
    described = f"{type(exc).__name__}: {one_line(exc)}" if str(exc).strip() else type(exc).__name__
    return (
        f"ontheline: bug: {described}. This is a bug in ontheline, not in your input; rerun as "
        "'ontheline --debug ...' (or with ONTHELINE_DEBUG=1) to see the traceback, and please report it."
    )


def debug_requested(flag: bool, environ: Mapping[str, str]) -> bool:
    """``--debug`` or ``ONTHELINE_DEBUG`` set to anything but empty or 0."""
    return flag or environ.get("ONTHELINE_DEBUG", "").strip() not in ("", "0")


def one_line(message: object) -> str:
    return printable(" ".join(str(message).split()))
