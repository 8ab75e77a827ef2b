"""Open a report in headless Chromium: what the browser tests and the docs' screenshots use.

Needs Debian's ``chromium`` (or ``$ONTHELINE_CHROMIUM``) and Playwright's Python package (the
``dev`` extra); Playwright drives the installed browser and never downloads one.

    python -m ontheline.report.browser ontheline-demo/report.html docs/demo-report.png
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Without the networking flags Chromium keeps trying to reach Google's hosts on a closed network.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update")


@dataclass
class OpenPage:
    """A Playwright page on the report, and every console error, page error and dialog it raised."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def chromium_path() -> str:
    """The Chromium executable, or a clear error that says how to install it."""
    path = os.environ.get("ONTHELINE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise FileNotFoundError(
            "No Chromium found: install Debian's package (apt-get install chromium; 'make test' does it) "
            "or set ONTHELINE_CHROMIUM to the executable."
        )
    return path


@contextmanager
def open_report(html: str | Path, *, width: int = 1200, height: int = 900) -> Iterator[OpenPage]:
    """Load an HTML file in headless Chromium and yield the page with what went wrong on it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            opened = OpenPage(page)
            page.on(
                "console", lambda m: opened.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            )
            page.on("pageerror", lambda e: opened.errors.append(f"page error: {e}"))

            def dismiss(dialog: Any) -> None:
                opened.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", dismiss)
            page.goto(Path(html).resolve().as_uri(), wait_until="load")
            yield opened
        finally:
            browser.close()


def screenshot(html: str | Path, png: str | Path, *, full_page: bool = False) -> list[str]:
    """Save a screenshot of the report's first screen (or the whole page); return the errors seen."""
    with open_report(html) as opened:
        opened.page.screenshot(path=str(png), full_page=full_page)
        return opened.errors + [f"dialog: {d}" for d in opened.dialogs]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m ontheline.report.browser REPORT.html SCREENSHOT.png")
    problems = screenshot(sys.argv[1], sys.argv[2])
    print(f"Wrote {sys.argv[2]}." + (f" The page reported: {problems}" if problems else ""))
