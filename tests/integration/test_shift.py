"""A shift, as an agent and a supervisor work it (issue 11), through the real parts: the engine,
a sandbox Asterisk, SIP callers with RTP and RFC 4733 keys, and the console with its browser
phone in headless Chromium (in a network namespace: tests/integration/conftest.py).

The agent logs in and goes ready; an investor who logged in to the IVR (account and password)
asks for an agent; the screen pop shows who it is before the call is answered in the page; the
agent holds and resumes; the supervisor listens in and both pages show it until the supervisor
stops; the agent consults an outside number and completes the transfer (a warm transfer from
the same dialog); the wrap-up's disposition is required before Ready; then the agent closes the
tab: its browser phone goes with it (Not Ready, "phone unregistered") and, past the presence
grace, the console counts as gone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from callcenter.acd.calls import CallState
from callcenter.acd.seat import PHONE_GONE, SeatState
from callcenter.broker.seed import ORDINARY
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.telephony.sipcall import place_sip_call
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.integration.acd_helpers import until
from tests.integration.browser_call import (
    AGENT,
    EXTENSION,
    MEDIA_ARGS,
    SUPERVISOR,
    SUPERVISOR_EXTENSION,
    open_console,
)
from tests.integration.conftest import live_channels
from tests.integration.netns import NetNs, inside

pytestmark = pytest.mark.integration

#: account queries (3 1), the ordinary demo customer's account and trading password, then 0
#: in the account menu: an agent
KEYS = f"3w1w{ORDINARY}#w135790ww0"
CALLER = "13700000088"
#: an outside number for the warm transfer (the sandbox's [outbound] answers it)
OUTSIDE = "13912345678"
GRACE_S = 3.0


@pytest.fixture
def ns_settings(namespace: NetNs, tmp_path: Path) -> Settings:
    """The browser-phone world's settings (conftest.py), with a wrap-up that needs its form and
    a short presence grace."""
    return load_settings(
        state_dir=tmp_path / "state", db_path=tmp_path / "callcenter.db",
        backoffice_path=tmp_path / "backoffice.db", channels={"enabled": False},
        console={"host": namespace.a, "port": 0, "tls": True, "presence_grace_s": GRACE_S},
        sip={"cert_names": [namespace.a]},
        pbx={"instance": "webrtc", "netns": namespace.name},
        acd={"wrap_up_s": 120, "require_disposition": True,
             "queues": [{"name": "general", "announce_every_s": 0}]})


async def _page(browser: Browser, engine: Engine, namespace: NetNs, agent_id: str) -> Page:
    context = await browser.new_context(
        ignore_https_errors=True, permissions=["microphone"])
    page: Page = await context.new_page()
    assert engine.console is not None
    await open_console(page, f"https://{namespace.a}:{engine.console.port}/", agent_id)
    return page


async def test_a_shift_from_login_to_closing_the_tab(namespace: NetNs, ns_engine: Engine) -> None:
    engine = ns_engine
    assert engine.acd is not None and engine.phones is not None and engine.ami is not None
    assert engine.backoffice is not None
    acd, phones = engine.acd, engine.phones
    customer = await engine.backoffice.customer(ORDINARY)
    with inside(namespace):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                               args=[*CHROMIUM_ARGS, *MEDIA_ARGS])
            try:
                # -- login, ready ---------------------------------------------------------------
                desk = await _page(browser, engine, namespace, AGENT)
                boss = await _page(browser, engine, namespace, SUPERVISOR)
                await until(engine, lambda: phones.can_ring(EXTENSION)
                            and phones.can_ring(SUPERVISOR_EXTENSION), 20,
                            "both browser phones registered")
                await desk.get_by_test_id("btn-ready").click()
                await expect(desk.get_by_test_id("seat-state")).to_have_text("就绪")

                # -- an identified caller: the pop, then the answer ----------------------------
                call = asyncio.create_task(place_sip_call(
                    "95500", KEYS, caller_id=CALLER, audio_s=120, hold_s=180))
                accept = desk.get_by_test_id("phone-accept")
                await accept.wait_for(state="visible", timeout=120_000)
                await expect(desk.get_by_test_id("customer-name")).to_have_text(customer.name)
                await accept.click()
                await expect(desk.get_by_test_id("call-status")).to_have_text("通话中",
                                                                              timeout=15_000)
                rt = acd.seat(AGENT)
                assert rt.call is not None and rt.call.waiter.account == ORDINARY
                await until(engine, lambda: rt.call is not None
                            and rt.call.life.state is CallState.CONNECTED, 10, "bridged")

                # -- hold and resume -----------------------------------------------------------
                await desk.get_by_test_id("btn-hold").click()
                await expect(desk.get_by_test_id("call-status")).to_have_text("保持中")
                assert rt.seat.state is SeatState.ON_HOLD
                await desk.get_by_test_id("btn-resume").click()
                await expect(desk.get_by_test_id("call-status")).to_have_text("通话中")
                # afresh: mypy would keep rt.seat.state narrowed to ON_HOLD across the clicks
                assert acd.seat(AGENT).seat.state is SeatState.ON_CALL

                # -- the supervisor listens; both pages show it; the supervisor stops ----------
                await boss.get_by_test_id("tab-wallboard").click()
                await boss.get_by_test_id(f"wb-seat-{AGENT}").get_by_test_id(
                    "spy-listen").click()
                await expect(desk.get_by_test_id("monitor-bar")).to_be_visible(timeout=30_000)
                await expect(desk.get_by_test_id("monitor-text")).to_contain_text(SUPERVISOR)
                await expect(boss.get_by_test_id("monitor-text")).to_contain_text(AGENT)
                await boss.get_by_test_id("monitor-stop").click()
                await expect(desk.get_by_test_id("monitor-bar")).to_be_hidden(timeout=15_000)
                await expect(boss.get_by_test_id("monitor-bar")).to_be_hidden()
                assert acd.monitors == {}

                # -- a warm transfer: talk first, then complete --------------------------------
                await desk.get_by_test_id("btn-transfer").click()
                await desk.get_by_test_id("target-kind").select_option("number")
                await desk.get_by_test_id("target-value").fill(OUTSIDE)
                await desk.get_by_test_id("target-alt").click()  # talk first
                await expect(desk.get_by_test_id("btn-consult-complete")).to_be_visible(
                    timeout=30_000)
                await until(engine, lambda: rt.call is not None and rt.call.consult_talking,
                            30, "the outside number answered")
                await desk.get_by_test_id("btn-consult-complete").click()

                # -- wrap-up: the disposition before Ready -------------------------------------
                await expect(desk.get_by_test_id("wrapup-form")).to_be_visible(timeout=15_000)
                await expect(desk.get_by_test_id("seat-state")).to_have_text("话后处理")
                await expect(desk.get_by_test_id("btn-ready")).to_be_disabled()
                await desk.get_by_test_id("wrapup-disposition").select_option("resolved")
                await desk.get_by_test_id("wrapup-notes").fill("转至外部专线")
                await desk.get_by_test_id("wrapup-save").click()
                await expect(desk.get_by_test_id("wrapup-saved")).to_be_visible()
                await expect(desk.get_by_test_id("seat-state")).to_have_text("就绪")
                assert engine.db is not None
                async with engine.db.execute(
                        "SELECT disposition, account FROM wrapups WHERE agent_id = ?",
                        (AGENT,)) as cur:
                    assert [tuple(r) for r in await cur.fetchall()] == [("resolved", ORDINARY)]

                # -- the agent closes the tab: its browser phone goes with it (Not Ready at
                # once, "phone unregistered"), and past the grace the console counts as gone --
                await desk.context.close()
                await until(engine, lambda: rt.seat.state is SeatState.NOT_READY, 15,
                            "not ready once the tab is closed")
                assert rt.seat.reason == PHONE_GONE
                row = boss.get_by_test_id(f"wb-seat-{AGENT}")
                await expect(row).to_contain_text("未就绪")
                backend = engine.console_backend
                assert backend is not None
                loop = asyncio.get_running_loop()
                deadline = loop.time() + GRACE_S + 10
                while backend.presence.gone_since(AGENT) is None:
                    assert loop.time() < deadline, "the console was not counted as gone"
                    await asyncio.sleep(0.2)
            finally:
                await browser.close()
    # the caller now talks with the outside party: end it
    for channel in await live_channels(engine.ami):
        if channel.startswith("PJSIP/carrier-"):
            await engine.ami.action("Hangup", Channel=channel)
    result = await asyncio.wait_for(call, 60)
    assert result.ok, result.detail
