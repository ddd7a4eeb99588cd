"""A headless Debian Chromium driven by Playwright for dashboard tests; never downloads one.

``browser`` yields a launched Chromium (skips the test when ``/usr/bin/chromium`` or the
``playwright`` package is missing, which ``.ci/run`` installs); ``open_page`` makes a
page in a fresh context (its own cookies) that records every JavaScript console error
and uncaught exception, which the test then asserts are none. Regenerate the README's
screenshots with ``SCRIPTMESH_SCREENSHOTS_DIR=docs/screenshots``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SCRIPTMESH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
#: Where screenshots go: the README's ``docs/screenshots`` only when asked
#: (``SCRIPTMESH_SCREENSHOTS_DIR=docs/screenshots``), so test runs leave the tree clean.
SCREENSHOTS = Path(os.environ.get("SCRIPTMESH_SCREENSHOTS_DIR")
                   or Path(tempfile.gettempdir()) / "scriptmesh-screenshots")
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}


@dataclass
class BrowserPage:
    """A page plus the console errors and page errors it has seen."""

    page: Any
    base_url: str
    errors: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def screenshot(self, name: str, full_page: bool = True) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)

    def assert_no_errors(self) -> None:
        assert not self.errors, f"JavaScript errors: {self.errors}"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., BrowserPage]]:
    """``open_page(base_url, viewport=DESKTOP, color_scheme="light")`` -> ``BrowserPage``."""
    contexts: list[Any] = []

    def open_(base_url: str, viewport: dict[str, int] = DESKTOP,
              color_scheme: str = "light") -> BrowserPage:
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        wrapped = BrowserPage(page, base_url)
        page.on("console", lambda m: m.type == "error" and wrapped.errors.append(m.text))
        page.on("pageerror", lambda exc: wrapped.errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())  # our confirm() prompts
        return wrapped

    yield open_
    for context in contexts:
        context.close()
