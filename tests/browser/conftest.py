"""Browser fixtures: Debian's headless chromium driven by Playwright's async API.

One chromium per test session (starting it is the slow part); a fresh context and page per test,
so cookies and localStorage (the remembered language) never leak between tests. The page fixture
collects what would mean a broken page (console errors, uncaught exceptions, CSP violations,
failed or 4xx/5xx requests) and fails the test at teardown if there was any.

Everything here runs on the session's event loop: a Playwright browser belongs to the loop it
was started on. Test modules say so with ``pytest.mark.asyncio(loop_scope="session")``.

We never run ``playwright install``: the browser is Debian's ``chromium`` package (``./dev``
installs it, with ``fonts-noto-cjk`` so Chinese renders).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, Request, Response, async_playwright

from callcenter.config import ConsoleSettings
from callcenter.seats.console_server import ConsoleServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: reported by the page for every CSP violation; Chromium also logs one console error per
#: violation, but this one names the directive and the blocked thing
_CSP_PROBE = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the agent console in headless chromium (/usr/bin/chromium)",
    )


@dataclass
class PageProblems:
    """What went wrong in the page during a test. ``allow`` a pattern a test expects (say, the
    failed reconnects after it stopped the server on purpose)."""

    seen: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.seen if not any(a.search(p) for a in self.allowed)]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium fonts-noto-cjk` "
                    "(./dev does it)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page_problems() -> PageProblems:
    return PageProblems()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, page_problems: PageProblems) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    seen = page_problems.seen

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            seen.append(f"console error: {msg.text}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            seen.append(f"HTTP {response.status}: {response.url}")

    def on_request_failed(request: Request) -> None:
        seen.append(f"request failed: {request.url} ({request.failure})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.append(f"uncaught: {exc}"))
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    await page.add_init_script(_CSP_PROBE)
    try:
        yield page
    finally:
        await context.close()
    problems = page_problems.unexpected()
    assert not problems, "the page reported problems:\n" + "\n".join(problems)


#: the console's page, as the engine serves it
STATIC_DIR = Path(__file__).resolve().parents[2] / "agent_console"


@pytest_asyncio.fixture(loop_scope="session")
async def server(backend: Any) -> AsyncIterator[ConsoleServer]:
    """The console server on a free port, serving the page, over the test module's ``backend``
    (a scripted one; it gets the server's ``push``)."""
    server = ConsoleServer(ConsoleSettings(host="127.0.0.1", port=0, static_dir=STATIC_DIR),
                           backend)
    await server.start()
    backend.push = server.push
    try:
        yield server
    finally:
        await server.close()
