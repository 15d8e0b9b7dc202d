"""Web pages driven in a real browser: Debian's Chromium, through Playwright's sync API.

Playwright's own browser downloads are not used (this machine's network is closed): the tests
launch the `chromium` on PATH, or /usr/bin/chromium. CI installs Debian's package when it is
missing (.ci/run); without a binary every test here skips, saying so. Each test here is marked
`browser`, so `-m 'not browser'` leaves them out.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
DEFAULT_TIMEOUT_MS = 10_000
CHROMIUM_ARGS = [
    # Containers and CI run as root, where Chromium's sandbox cannot start.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these three, Chromium's own calls home (variations, component updates, sync)
    # meet the closed network and its connections are refused; pages then load erratically.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # First, so that `-m 'not browser'` (deselected by pytest's own hook) sees the mark.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


# Package scope, not session: between its sync calls Playwright leaves its event loop marked
# as running in this thread, so `asyncio.run()` in any later test of the same process (an
# xdist worker runs other folders' files after these) fails until Playwright stops. Pytest
# stops it as soon as the next test is outside tests/browser/; with `-n 0` or when a worker
# takes these files in a row, Chromium still starts once. The same reason forbids
# `asyncio.run()` in the browser tests' own thread: serve apps from another thread.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """A headless Chromium for the tests of this folder, run one after another."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package "
                    "(CI does), or leave these tests out with -m 'not browser'")
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own context (no cookies or storage from another test)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save the page as var/screenshots/<name>.png (git-ignored) and return the file's path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
