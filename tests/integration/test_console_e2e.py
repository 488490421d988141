"""The whole way, in a real browser: an agent logs in to the engine's console, goes ready; a
simulated caller passes the IVR (logs in to the account service) and asks for an agent; the
console shows the screen pop; Asterisk bridges the agent's test phone (it auto-answers); the
agent hangs up and saves the wrap-up; a supervisor sees all of it on the wallboard."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import DEMO_TRADING_PASSWORD, ORDINARY, seed_demo
from callcenter.config import load_settings
from callcenter.engine import Engine
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.browser.conftest import browser  # noqa: F401 - the session's chromium
from tests.integration.acd_helpers import (
    AGENT_PASSWORD,
    ORDINARY_PHONE,
    add_agents,
    agent,
    hang_up_all,
    queue_log,
    until,
)
from tests.integration.conftest import trading_clock, wait_no_channels

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Engine]:
    settings = load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                             backoffice_path=tmp_path / "backoffice.db",
                             console={"port": 0},
                             acd={"wrap_up_s": 120, "queues": [
                                 {"name": "general", "announce_every_s": 0}]})
    await add_agents(settings, [agent("A1", "1001"),
                                agent("S1", "9001", role="supervisor")])
    eng = Engine(settings, backoffice_clock=trading_clock)
    await eng.start()
    assert isinstance(eng.backoffice, SandboxBackOffice)
    await seed_demo(eng.backoffice)
    try:
        yield eng
    finally:
        leftovers: list[str] = []
        if eng.ami is not None:
            await hang_up_all(eng)
            leftovers = await wait_no_channels(eng.ami)
        await eng.stop()
        assert leftovers == []


async def open_console(browser: Browser, engine: Engine, agent_id: str) -> Page:  # noqa: F811
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(30_000)
    page = await context.new_page()
    assert engine.console is not None
    await page.goto(f"http://127.0.0.1:{engine.console.port}/")
    await page.get_by_test_id("login-agent").fill(agent_id)
    await page.get_by_test_id("login-password").fill(AGENT_PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("seat-state")).to_have_attribute("data-state", "not_ready")
    return page


async def test_an_agent_takes_a_call_from_the_ivr_and_wraps_up(
        engine: Engine, browser: Browser) -> None:  # noqa: F811
    agent_page = await open_console(browser, engine, "A1")
    boss = await open_console(browser, engine, "S1")
    try:
        await agent_page.get_by_test_id("btn-ready").click()
        seat = agent_page.get_by_test_id("seat-state")
        await expect(seat).to_have_attribute("data-state", "ready")
        await boss.get_by_test_id("tab-wallboard").click()
        wb_seat = boss.get_by_test_id("wb-seat-A1")
        await expect(wb_seat).to_have_attribute("data-state", "ready")

        # The caller logs in to the account service, then presses 0 for an agent.
        caller = SimCaller(engine.ami)  # type: ignore[arg-type]
        call_id = await caller.place("9500", f"3w1w{ORDINARY}#w{DEMO_TRADING_PASSWORD}ww0",
                                     hold_s=120, caller_id=ORDINARY_PHONE, gap_ms=60,
                                     tone_ms=60)

        # the IVR part takes a while (greeting, account, password): wait for the pop
        await expect(agent_page.get_by_test_id("call-card")).to_be_visible(timeout=60_000)
        await expect(agent_page.get_by_test_id("customer-name")).to_have_text("张伟")
        await expect(agent_page.get_by_test_id("customer-tier")).to_have_attribute(
            "data-tier", "ordinary")
        await expect(agent_page.get_by_test_id("account-masked")).to_have_text(
            re.compile(r"^\*+0001$"))
        # the way through the IVR in the flows' titles; the exact steps are its title
        await expect(agent_page.get_by_test_id("ivr-path")).to_have_text(
            "主菜单 › 账户查询 › 登录 › 转人工")
        await expect(agent_page.get_by_test_id("ivr-path")).to_have_attribute(
            "title", re.compile(r"account\.login"))
        # the agent's test phone answers by itself: Asterisk bridges the caller
        await expect(seat).to_have_attribute("data-state", "on_call", timeout=20_000)
        await expect(wb_seat).to_have_attribute("data-state", "on_call")
        assert engine.controller is not None
        await until(engine, lambda: engine.controller.model.channels.get(  # type: ignore[union-attr]
            f"{call_id}-b") is not None and engine.controller.model.channels[  # type: ignore[union-attr]
            f"{call_id}-b"].bridge_id != "", 20, "caller bridged")
        [connect] = await queue_log(engine, "connect")
        assert (connect["call_id"], connect["agent_id"]) == (call_id, "A1")

        # The agent hangs up and fills in the wrap-up form.
        await agent_page.get_by_test_id("btn-hangup").click()
        await expect(seat).to_have_attribute("data-state", "wrap_up")
        await expect(agent_page.get_by_test_id("wrapup-form")).to_be_visible()
        await agent_page.get_by_test_id("wrapup-disposition").select_option("resolved")
        await agent_page.get_by_test_id("wrapup-notes").fill("查询余额，已解决")
        await agent_page.get_by_test_id("wrapup-save").click()
        await expect(agent_page.get_by_test_id("wrapup-saved")).to_be_visible()
        await expect(seat).to_have_attribute("data-state", "ready")
        assert engine.db is not None
        async with engine.db.execute("SELECT call_id, agent_id, account, disposition, notes"
                                     " FROM wrapups") as cur:
            rows = [tuple(r) for r in await cur.fetchall()]
        assert rows == [(call_id, "A1", ORDINARY, "resolved", "查询余额，已解决")]

        # The supervisor's wallboard counted the call and shows the seat ready again.
        await expect(wb_seat).to_have_attribute("data-state", "ready")
        wb_queue = boss.get_by_test_id("wb-queue-general")
        await expect(wb_queue.locator("[data-col=answered]")).to_have_text("1")
        await expect(wb_queue.locator("[data-col=waiting]")).to_have_text("0")
    finally:
        await agent_page.context.close()
        await boss.context.close()
