"""Headless Chromium from Debian's package, driven by Playwright (which never downloads a
browser here: it is given the executable). Used by the HTML report tests and bench."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "Debian's chromium is not installed (scripts/tools.sh installs it as root)"
    return None


class Opened:
    """A page opened from a file, with what it logged and what it tried to fetch."""

    def __init__(self, page: Any):
        self.page = page
        self.console_errors: list[str] = []
        self.fetched: list[str] = []  # every URL requested other than the file itself


@contextmanager
def open_file(path: Path, width: int = 1400, height: int = 900) -> Iterator[Opened]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            opened = Opened(page)
            page.on("console", lambda m: opened.console_errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: opened.console_errors.append(f"uncaught: {e}"))
            url = path.resolve().as_uri()
            page.on("request", lambda r: opened.fetched.append(r.url) if r.url != url else None)
            page.goto(url, wait_until="load")
            yield opened
        finally:
            browser.close()
