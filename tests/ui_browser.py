"""Driving the web UI in Debian's Chromium with Playwright: launching, signing in, watching errors.

Screenshots go to docs/ only when CLUSTER_MANAGER_SCREENSHOTS=docs.

Chromium is the system one (``apt-get install chromium``): ``playwright install`` cannot download
browsers here, so Playwright is given the executable. Override it with CLUSTER_MANAGER_CHROMIUM.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cluster_manager.settings import Settings
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    async_playwright,
    expect,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--font-render-hinting=none",
]
LAPTOP: ViewportSize = {"width": 1440, "height": 900}
NARROW: ViewportSize = {"width": 420, "height": 860}
# The sizes the layout is measured at: a small laptop and a phone.
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

# Everything that sticks out, measured in the page (see the script for what it checks).
OVERFLOW_SCRIPT = (Path(__file__).resolve().parent / "ui_overflow.js").read_text()


async def overflow(page: Page) -> list[str]:
    """What sticks out of its place on the page as it is now (empty when the layout holds)."""
    await page.evaluate("document.fonts.ready")
    return await page.evaluate(f"({OVERFLOW_SCRIPT})()")


def chromium_path() -> str:
    """The Chromium binary Playwright drives."""
    path = os.environ.get("CLUSTER_MANAGER_CHROMIUM") or shutil.which("chromium") or ""
    if not path:
        raise RuntimeError(
            "Chromium is missing: apt-get install chromium (or set CLUSTER_MANAGER_CHROMIUM)"
        )
    return path


async def launch(playwright: Playwright) -> Browser:
    """Chromium, headless, with nothing talking to the network by itself.

    Playwright starts it with a fresh temporary profile of its own (and removes it after).
    """
    return await playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
    )


def base_url(settings: Settings) -> str:
    """Where the UI of the server with ``settings`` answers."""
    return settings.management_url or f"https://127.0.0.1:{settings.management_port}"


@dataclasses.dataclass
class BrowserProblems:
    """Console errors and uncaught exceptions of a page (a CSP violation is a console error)."""

    messages: list[str] = dataclasses.field(default_factory=list)
    # The identity provider's pages have no icon; Chromium asks for /favicon.ico anyway.
    expected: list[re.Pattern[str]] = dataclasses.field(
        default_factory=lambda: [re.compile(r"status of 404 .*/favicon\.ico")]
    )

    def watch(self, page: Page) -> None:
        """Collect the page's errors from now on."""
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append(f"uncaught: {error}"))

    def allow(self, pattern: str) -> None:
        """An error the test provokes on purpose (e.g. a 400 in the console)."""
        self.expected.append(re.compile(pattern))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text} ({message.location})")

    def unexpected(self) -> list[str]:
        """Errors nobody provoked."""
        return [m for m in self.messages if not any(p.search(m) for p in self.expected)]


async def new_page(
    browser: Browser, viewport: ViewportSize | None = None
) -> tuple[BrowserContext, Page, BrowserProblems]:
    """A fresh context (no cookies) trusting the self-signed test certificates."""
    context = await browser.new_context(
        ignore_https_errors=True,
        viewport=viewport or LAPTOP,
        device_scale_factor=1,
        locale="en-GB",
        timezone_id="UTC",
    )
    context.set_default_timeout(15_000)
    page = await context.new_page()
    problems = BrowserProblems()
    problems.watch(page)
    return context, page, problems


async def sign_in(page: Page, settings: Settings, username: str, password: str) -> None:
    """Open the UI, press Sign in and fill the identity provider's own login form."""
    await page.goto(base_url(settings) + "/")
    await page.get_by_role("link", name="Sign in").click()
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base_url(settings) + "/**")


def screenshot_dir() -> Path:
    """Where screenshots go: docs/ when CLUSTER_MANAGER_SCREENSHOTS=docs, else a temporary one.

    An ordinary test run leaves the README's pictures alone.
    """
    if os.environ.get("CLUSTER_MANAGER_SCREENSHOTS") == "docs":
        return DOCS
    return Path(tempfile.gettempdir()) / "mcm-ui-screenshots"


async def screenshot(page: Page, name: str, **options: Any) -> Path:
    """Save <name>.png of the page as it is now (fonts and charts settled)."""
    directory = screenshot_dir()
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.png"
    await page.evaluate("document.fonts.ready")
    await page.screenshot(path=str(path), animations="disabled", caret="hide", **options)
    return path


__all__ = [
    "DESKTOP",
    "LAPTOP",
    "NARROW",
    "PHONE",
    "BrowserProblems",
    "base_url",
    "expect",
    "launch",
    "new_page",
    "overflow",
    "screenshot",
    "sign_in",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the test session (registered in tests/conftest.py's pytest_plugins)."""
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        yield chromium
        await chromium.close()
