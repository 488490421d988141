"""The console page with the fan-out relay (``callcenter/fanout/``): real Chromium, the real
console server and relay process, a scripted backend. The wallboard and the queue figures come
over the page's second socket; when the relay dies the header says the figures may be stale,
and once the engine has started it again the page reconnects by itself and is live again."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from callcenter.config import ConsoleSettings
from callcenter.fanout.process import FanoutProcess
from callcenter.seats import protocol as p
from callcenter.seats.console_server import ConsoleServer
from tests.browser.conftest import STATIC_DIR, PageProblems
from tests.browser.test_console_page import SUPERVISOR_PW, FakeBackend, log_in, queue_figures

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest_asyncio.fixture(loop_scope="session")
async def fanout() -> FanoutProcess:
    return FanoutProcess("127.0.0.1", 0, loop_choice="asyncio")


@pytest_asyncio.fixture(loop_scope="session")
async def server(backend: FakeBackend, fanout: FanoutProcess) -> AsyncIterator[ConsoleServer]:
    server = ConsoleServer(ConsoleSettings(host="127.0.0.1", port=0, static_dir=STATIC_DIR),
                           backend, fanout=fanout)
    await server.start()
    backend.push = server.push
    try:
        yield server
    finally:
        await server.close()


def board(backend: FakeBackend, state: str) -> p.Event:
    backend.seats["A1001"]["state"] = state
    data: dict[str, Any] = backend.wallboard()
    return p.Event(event="wallboard", data=data)


async def test_the_wallboard_comes_through_the_relay_and_survives_its_restart(
        server: ConsoleServer, fanout: FanoutProcess, backend: FakeBackend, page: Page,
        page_problems: PageProblems) -> None:
    # the relay's restart refuses the page's reconnects for a moment: Chromium logs them
    page_problems.allow(r"/fanout\?t=")
    await page.goto(f"http://127.0.0.1:{server.port}/")
    await log_in(page, "S9001", SUPERVISOR_PW)
    await page.get_by_test_id("tab-wallboard").click()
    seat = page.get_by_test_id("wb-seat-A1001")
    await expect(seat).to_have_attribute("data-state", "logged_out")
    status = page.get_by_test_id("fanout-status")
    await expect(status).to_be_hidden()

    server.push.state_to_role(p.Role.SUPERVISOR, board(backend, "ready"))
    await expect(seat).to_have_attribute("data-state", "ready")
    # it went to the relay (this server writes no state to a role itself)
    assert fanout.state.latest[(1, "wallboard")].text.count('"state":"ready"') == 1

    assert fanout.pid is not None
    os.kill(fanout.pid, signal.SIGKILL)
    await expect(status).to_be_visible()
    await expect(status).to_have_text("看板数据重连中…")
    await page.get_by_test_id("lang-switch").select_option("en")
    await expect(status).to_have_text("Live figures reconnecting…")

    # what was pushed while the relay was down is what the page gets once it is back
    backend.queues = [queue_figures("general", waiting=7), queue_figures("vip", waiting=0)]
    server.push.state_to_role(p.Role.SUPERVISOR, board(backend, "not_ready"))
    await expect(status).to_be_hidden(timeout=20_000)
    await expect(seat).to_have_attribute("data-state", "not_ready")
    await expect(page.get_by_test_id("wb-queue-general").locator("[data-col=waiting]")) \
        .to_have_text("7")
