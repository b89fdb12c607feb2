"""Console pages in a real browser: Playwright for Python driving Debian's ``chromium``.

Playwright's own browser download is not reachable here, so the Debian package stands in
(``scripts/install-deps.sh`` installs ``chromium`` and ``fonts-wqy-microhei``, without which
every Chinese character is an empty box in a screenshot).  Pages are served by a real
uvicorn on a free loopback port (``browser_kit.serve``), so what the browser runs is the console's
own HTML, JavaScript, cookies and SSE, not a test client.

Screenshots for docs/ are written when ``HOTLINE_SCREENSHOTS`` names a folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Debian chromium for the session (Playwright's sync API)."""
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-deps.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh browser context and page (own cookies) per test, zh-CN, 1280×800."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()
