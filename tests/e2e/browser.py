"""Shared pieces of the browser tests: where chromium is, where screenshots go, logging in as a person does."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian's chromium is not installed at {CHROMIUM}"),
]


def screenshot(page, name: str, *, directory: Path = ARTIFACTS) -> Path:
    """A full-page screenshot; `directory` is the docs' screenshots for the pictures the documentation shows.

    The pictures in docs/ are committed: a test run writes them only with GESTIMA_DOCS_SCREENSHOTS=1 (to renew
    them on purpose), else beside the other artifacts, so running the tests leaves the checkout clean."""
    if directory == DOCS_SCREENSHOTS and os.environ.get("GESTIMA_DOCS_SCREENSHOTS") != "1":
        directory = ARTIFACTS
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_out(page) -> None:
    """Leave the page first, then drop the cookies: a request the old page still has in flight (the review page's
    prefetch, a live poll) would otherwise set a fresh CSRF cookie after the clear, and the next login's form
    would post a token that no longer matches it ("CSRF token from POST incorrect")."""
    page.goto("about:blank")
    page.context.clear_cookies()


def login(page, live_server, username: str, password: str, *, next_url: str = "/admin/") -> None:
    """Through the admin's own login form."""
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state()
