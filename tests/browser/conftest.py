"""Browser tests: Debian's chromium driven by Playwright (the Python package; Playwright's own
browser download is never used) against the real stack of separate processes — api, ledger,
worker, beat and anvil, the ``stack`` fixture of the end-to-end tests.

Screenshots of every step go to ``var/test-artifacts/browser/`` (git-ignored). Without a
``chromium`` on PATH (``scripts/install-test-tools.sh`` installs it) the tests are skipped.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from qilian.kit import db
from services.api.audit import service as audit
from services.api.auth import service as auth_service
from services.api.organizations.models import Role
from tests.e2e.conftest import Stack, stack
from tests.integration.invoices.intake_helpers import Party, new_party

__all__ = ["stack"]

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "var" / "test-artifacts" / "browser"
PASSWORD = "correct horse battery staple"
CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run database setup from a synchronous test: in a thread of its own with its own loop and
    engine (Playwright's synchronous API keeps an event loop running in the test's thread)."""

    async def go() -> T:
        try:
            return await make()
        finally:
            await db.dispose_engine()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


@dataclass(frozen=True)
class Account:
    party: Party
    username: str
    password: str = PASSWORD


def account(role: Role) -> Account:
    """A new organisation of ``role`` with one person."""

    async def make() -> Account:
        party = await new_party(role)
        username = f"b{uuid.uuid4().hex[:12]}"
        async with db.transaction() as session:
            await auth_service.create_user(session, audit.SYSTEM, party.org.id, username, PASSWORD)
        return Account(party, username)

    return run(make)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Shots:
    """Numbered screenshots of one test in ``var/test-artifacts/browser/<name>/``."""

    def __init__(self, name: str) -> None:
        self.folder = ARTIFACTS / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def __call__(self, page: Any, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    return Shots(name)


# script errors and console errors (a Content-Security-Policy violation is one) of each page
PROBLEMS: dict[Any, list[str]] = {}
OPENED: list[Any] = []  # browser contexts opened by login(), closed after each test


@pytest.fixture(autouse=True)
def close_contexts() -> Iterator[None]:
    """A page left open (after a failure, say) would keep polling the stack's api."""
    yield
    while OPENED:
        context = OPENED.pop()
        try:
            context.close()
        except Exception:  # closed already
            continue
    PROBLEMS.clear()


def problems_of(*pages: Any) -> list[str]:
    return [problem for page in pages for problem in PROBLEMS.get(page, [])]


def login(browser: Any, stack: Stack, who: Account, language: str) -> Any:
    """A new browser context logged in through the login page, with the keyboard."""
    context = browser.new_context(locale="zh-CN" if language == "zh_CN" else "en-GB")
    page = context.new_page()
    problems: list[str] = []
    PROBLEMS[page] = problems
    OPENED.append(context)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    page.goto(f"{stack.api_url}/web/login?lang={language}")
    username = "用户名" if language == "zh_CN" else "Username"
    password = "密码" if language == "zh_CN" else "Password"
    page.get_by_label(username).fill(who.username)
    page.keyboard.press("Tab")
    page.get_by_label(password).fill(who.password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/web/login" not in url)
    return page


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[FAILED] = report.failed


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def pages(request: pytest.FixtureRequest, shots: Shots) -> Iterator[list[Any]]:
    """Pages the test opened: on failure each one's screenshot and HTML are kept too."""
    opened: list[Any] = []
    yield opened
    if request.node.stash.get(FAILED, False):
        for n, page in enumerate(opened):
            try:
                shots(page, f"failure-page-{n}")
                (shots.folder / f"failure-page-{n}.html").write_text(page.content())
            except Exception:
                continue
