"""A phone order's recording, found and played by a supervisor in the console, in a real
browser: a real call places the order through the IVR on the real Asterisk (the proof recorded
by MixMonitor), the engine seals it, the supervisor searches the order's number in the
recordings tab, sees the customer masked, plays it (Chromium decodes and plays the real audio),
and the playback is in the access log under the supervisor's name; the ticket opens once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Response, expect

from callcenter.broker.seed import DEMO_TRADING_PASSWORD, ORDINARY
from callcenter.config import load_settings
from callcenter.engine import Engine
from callcenter.recordings import store
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.browser.conftest import browser  # noqa: F401 - the session's chromium
from tests.integration.acd_helpers import AGENT_PASSWORD, add_agents, agent
from tests.integration.conftest import running_engine
from tests.integration.hotline import hotline_call, sealed

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Engine]:
    settings = load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                             backoffice_path=tmp_path / "backoffice.db", console={"port": 0})
    await add_agents(settings, [agent("S1", "9001", role="supervisor"),
                                agent("A1", "1001")])
    async with running_engine(settings) as eng:
        yield eng


async def test_a_supervisor_finds_a_phone_order_by_its_number_and_plays_it(
        engine: Engine, browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    assert engine.ami is not None and engine.db is not None and engine.console is not None
    heard = await hotline_call(
        engine, SimCaller(engine.ami),
        f"2w{ORDINARY}#w{DEMO_TRADING_PASSWORD}w1w600000w10*20#w100#w1", until="zh/order_after")
    assert heard.outcomes("place_order") == ["ok"]
    async with engine.db.execute("SELECT result FROM intents WHERE kind = 'order'") as cur:
        (result,), = [tuple(r) for r in await cur.fetchall()]
    order_no = json.loads(result)["order_no"]
    (rec,) = await store.search(engine.db, {"reference": order_no})
    rec = await sealed(engine, rec)

    context = await browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(30_000)
    page = await context.new_page()
    fetched: list[Response] = []
    page.on("response", lambda r: fetched.append(r) if "/recording?t=" in r.url else None)
    try:
        await page.goto(f"http://127.0.0.1:{engine.console.port}/")
        await page.get_by_test_id("login-agent").fill("S1")
        await page.get_by_test_id("login-password").fill(AGENT_PASSWORD)
        await page.get_by_test_id("login-submit").click()
        await page.get_by_test_id("tab-recordings").click()
        await page.get_by_test_id("rec-reference").fill(order_no)
        await page.get_by_test_id("rec-search").click()
        row = page.get_by_test_id("rec-rows").locator("tr")
        await expect(row).to_have_count(1)
        await expect(row.locator("[data-col=reference]")).to_have_text(order_no)
        await expect(row.locator("[data-col=account]")).to_have_text("*" * (len(ORDINARY) - 4)
                                                                     + ORDINARY[-4:])
        await expect(row.locator("[data-col=kind]")).to_have_text("委托确认")

        await row.get_by_test_id("rec-play").click()
        await expect(page.get_by_test_id("rec-player")).to_be_visible()
        await expect(page.get_by_test_id("rec-access-none")).to_be_visible()
        audio = page.get_by_test_id("rec-audio")
        # Chromium decoded the real WAV: its length is the file's (8 kHz, 16-bit mono)
        await page.wait_for_function(
            "() => document.getElementById('rec-audio').readyState >= 1")
        duration = await audio.evaluate("a => a.duration")
        assert rec.bytes is not None  # sealed: its size is recorded
        assert duration == pytest.approx((rec.bytes - 44) / 16000, abs=0.2)
        await page.wait_for_function(
            "() => { const a = document.getElementById('rec-audio');"
            " return a.currentTime > 0.2 || a.ended; }")
        # what the page got is the recording, byte for byte, and was not to be cached
        assert len(fetched) == 1 and fetched[0].status == 200
        assert fetched[0].headers["cache-control"] == "no-store"
        assert hashlib.sha256(await fetched[0].body()).hexdigest() == rec.sha256
        await page.screenshot(path=str(tmp_path / "recordings-tab.png"))  # for a person

        log = await store.access_log(engine.db, rec.id)
        assert [(a["actor"], a["via"], a["action"]) for a in log] == [("S1", "console", "play")]
        # the ticket the page used opens nothing again; a second play is logged again
        status = await page.evaluate("async url => (await fetch(url)).status", fetched[0].url)
        assert status == 404
        await row.get_by_test_id("rec-play").click()
        await expect(page.get_by_test_id("rec-access").locator("li")).to_have_count(1)
        assert len(await store.access_log(engine.db, rec.id)) == 2
    finally:
        await context.close()
