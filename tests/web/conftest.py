"""The web page in a real browser: Debian's Chromium driven by Playwright, on the real stack.

* ``web_dist``: the built page (``web/dist``, ``make install`` with Node.js); the
  test FAILS (never skips) when it is not built.
* ``browser``: headless ``/usr/bin/chromium`` (Debian's package ``chromium``, which
  ``.ci/run`` installs when missing); FAILS when it is missing. Playwright's own
  browser downloads are never used.
* ``web_world``: execution, a strategy host and the gateway serving ``web_dist`` at
  ``/`` (:func:`tests.gateway.world.running_world`), alice, bob and an admin signed in.
* ``shots``: :class:`Shots`, a screenshot of each page into the test's folder and
  ``var/screenshots/`` (the README shows one of them).
* :func:`open_page` (a fresh browser context on a URL) and :func:`log_in` (through the
  login form).
* :func:`check_accessibility`: axe-core (axe-playwright-python) on a page; no serious
  or critical violation allowed.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.gateway.world import World, running_world

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium (package ``chromium``); Playwright drives it, never a downloaded one."""
WEB_DIST = REPO / "web" / "dist"
SCREENSHOTS = REPO / "var" / "screenshots"
"""Where the screenshots of the last run are kept (the README shows one)."""
BLOCKING_IMPACTS = ("serious", "critical")
"""axe-core impacts that fail the accessibility check."""
WAIT_MS = 20_000
"""How long a page may take to show what the stack did (ms)."""


@pytest.fixture
def web_dist() -> Path:
    """The built web page; fails when ``web/dist/index.html`` is missing."""
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail(
            f"the web page is not built ({WEB_DIST}/index.html missing): run `make install` "
            "with Node.js 20+ (or `cd web && npm ci && npm run build`)"
        )
    return WEB_DIST


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium under Playwright; fails when it is not installed."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's Chromium (`apt-get install chromium`; "
            ".ci/run does it). The browser tests never skip."
        )
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def web_world(
    nats_url: str, database_url: str, tmp_path: Path, web_dist: Path
) -> AsyncIterator[World]:
    """The services of :mod:`tests.gateway.world`, the gateway serving the page at ``/``."""
    async with running_world(nats_url, database_url, tmp_path, web_dir=str(web_dist)) as world:
        yield world


@dataclass
class Shots:
    """Full-page screenshots, named after the page, in ``folder`` and ``var/screenshots``."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    async def take(self, page: Page, name: str) -> Path:
        """Screenshot ``page`` as ``<name>.png``; the path in the test's folder."""
        path = self.folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / path.name)
        self.taken.append(path)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    """Screenshots of the test's pages (``tmp_path/screenshots`` and ``var/screenshots``)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return Shots(folder)


def blocking(violations: list[dict[str, Any]]) -> list[str]:
    """The serious and critical axe-core violations, one readable line each."""
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n.get("target")) for n in v.get("nodes", [])[:5])
        for v in violations
        if v.get("impact") in BLOCKING_IMPACTS
    ]


async def check_accessibility(page: Page, name: str) -> None:
    """Run axe-core on ``page`` as it shows now; fail on any serious or critical violation."""
    results = await Axe().run(page)
    found = blocking(results.response["violations"])
    assert not found, f"accessibility of the {name} page:\n" + "\n".join(found)


async def open_page(browser: Browser, url: str, errors: list[str]) -> Page:
    """A fresh browser context (no session) on the page at ``url``; uncaught page errors
    are appended to ``errors``."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin", locale="en-GB"
    )
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{url}/")
    return page


async def log_in(page: Page, user: str, password: str) -> None:
    """Sign ``user`` in through the login form and wait for the header to name them."""
    await expect(page.get_by_test_id("login-user")).to_be_visible(timeout=WAIT_MS)
    await page.get_by_test_id("login-user").fill(user)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("whoami")).to_contain_text(user, timeout=WAIT_MS)
