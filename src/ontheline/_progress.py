"""A progress display for long work: a bar with ETA on a terminal, plain lines in logs."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

#: Called as ``progress(message, done, total)``; ``total == 0`` announces a stage without a count.
Progress = Callable[[str, int, int], None]


class ConsoleProgress:
    """A one-line progress bar with ETA on a terminal; a line per stage and per 10% elsewhere."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.shown = -1

    def __call__(self, message: str, done: int, total: int) -> None:
        if total == 0:  # a stage without a count
            self._emit(message, final=True)
            return
        if done == 0:
            self.started, self.shown = time.monotonic(), -1
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (total - done) if done else float("nan")
        bar = "#" * (20 * done // total)
        line = (
            f"[{bar:<20}] {done}/{total}  {elapsed:4.0f} s"
            + (f", about {eta:.0f} s left" if done else "")
            + f"  {message}"
        )
        tenth = 10 * done // total
        if self.tty:
            self._emit(line, final=done == total)
        elif tenth != self.shown:
            self.shown = tenth
            self._emit(line, final=True)

    def _emit(self, line: str, *, final: bool) -> None:
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + line[:width].ljust(width) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def as_progress(progress: bool | Progress | None) -> Progress:
    """A progress callable from a function's ``progress`` argument: True draws a bar, a callable is
    used as it is, False or None shows nothing."""
    if progress is True:
        return ConsoleProgress()
    if callable(progress):
        return progress
    return lambda message, done, total: None
