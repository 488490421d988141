"""A human's call, end to end (issue 10): a SIP caller with RTP and RFC 4733 keys goes through
the hotline IVR (a quote, a phone order), asks for an agent, and the agent answers in the
console's browser phone (JsSIP over the console's /sip relay, WebRTC with DTLS-SRTP) in headless
Chromium; audio flows both ways. A supervisor listens in from their own browser phone. Then the
agent's browser goes away mid-call and the caller is queued again rather than dropped.

Chromium's ICE ignores loopback addresses, so the whole call runs in a network namespace the test
makes (tests/integration/netns.py): a second sandbox Asterisk from the same root (its own
configuration and state, ``pbx.instance``), the engine, the console over HTTPS, Chromium with
fake media devices (its microphone plays a beep), and SIPp as the carrier's caller (a 440 Hz
tone after the keys).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from callcenter.acd.seat import PHONE_GONE, SeatState
from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.store.calls import get_call
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.sipcall import place_sip_call
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.integration.acd_helpers import until, waiting_ids
from tests.integration.browser_call import (
    AGENT,
    EXTENSION,
    MEDIA_ARGS,
    SUPERVISOR,
    SUPERVISOR_EXTENSION,
    audio_both_ways,
    open_console,
    rtp_counts,
    softphone_stats,
)
from tests.integration.conftest import live_channels
from tests.integration.hotline import Heard
from tests.integration.netns import NetNs, inside

pytestmark = pytest.mark.integration

#: a quote (1, the code, 2 back), a buy order as the ordinary demo customer (2 ... 1 confirm,
#: 2 back), then 0: an agent
KEYS = "1w600519w2ww2w10000001#w135790w1w600000w10*20#w100#w1ww2ww0"
STRANGER = "13700000077"


async def test_a_sip_caller_reaches_an_agent_who_answers_in_the_browser_with_audio_both_ways(
        namespace: NetNs, ns_settings: Settings, ns_engine: Engine, tmp_path: Path) -> None:
    engine = ns_engine
    assert engine.acd is not None and engine.phones is not None and engine.console is not None
    acd, phones = engine.acd, engine.phones
    # Chromium through a launcher that notes its pid: the test kills it later like a crash
    pid_file, launcher = tmp_path / "chromium.pid", tmp_path / "chromium"
    launcher.write_text(f'#!/bin/sh\necho $$ > {pid_file}\nexec {CHROMIUM} "$@"\n')
    launcher.chmod(0o755)
    with inside(namespace):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(launcher),
                                               args=[*CHROMIUM_ARGS, *MEDIA_ARGS])
            try:
                context = await browser.new_context(ignore_https_errors=True,
                                                    permissions=["microphone"])
                page = await context.new_page()
                await open_console(page, f"https://{namespace.a}:{engine.console.port}/")
                await until(engine, lambda: phones.can_ring(EXTENSION), 20,
                            "the browser phone registered")
                await page.get_by_test_id("btn-ready").click()
                await until(engine, lambda: acd.seat(AGENT).seat.state is SeatState.READY, 10,
                            "ready")

                call = asyncio.create_task(place_sip_call(
                    "95500", KEYS, caller_id=STRANGER, audio_s=150, hold_s=240))
                incoming = page.get_by_test_id("phone-accept")
                await incoming.wait_for(state="visible", timeout=120_000)
                await incoming.click()
                await until(engine, lambda: acd.seat(AGENT).seat.state is SeatState.ON_CALL, 15,
                            "connected")

                # Audio both ways: the browser hears the caller's tone (energy), and sends its
                # microphone's beep; Asterisk counts RTP both ways on the caller's leg.
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while True:
                    stats = await softphone_stats(page)
                    if audio_both_ways(stats) or loop.time() > deadline:
                        break
                    await asyncio.sleep(0.2)
                assert audio_both_ways(stats), stats
                received, sent, table = await rtp_counts(Pbx(ns_settings), "carrier-")
                assert received > 100 and sent > 100, table

                # The supervisor listens in from their own browser phone: the wallboard's
                # "listen" rings it, it answers by itself (they asked for the call), and they
                # hear the call.
                boss = await (await browser.new_context(ignore_https_errors=True,
                                                        permissions=["microphone"])).new_page()
                await open_console(boss, f"https://{namespace.a}:{engine.console.port}/",
                                   SUPERVISOR)
                await until(engine, lambda: phones.can_ring(SUPERVISOR_EXTENSION), 20,
                            "the supervisor's browser phone registered")
                await boss.get_by_test_id("tab-wallboard").click()
                await boss.get_by_test_id(f"wb-seat-{AGENT}").get_by_test_id(
                    "spy-listen").click()
                await boss.get_by_test_id("tab-desk").click()  # where the phone panel is
                await expect(boss.get_by_test_id("phone-hangup")).to_be_visible(timeout=30_000)
                deadline = loop.time() + 30
                while True:
                    heard = await softphone_stats(boss)
                    inbound = (heard or {}).get("inbound") or {}
                    if inbound.get("totalAudioEnergy", 0) > 0.01 or loop.time() > deadline:
                        break
                    await asyncio.sleep(0.2)
                assert inbound.get("totalAudioEnergy", 0) > 0.01, heard
                await boss.get_by_test_id("phone-hangup").click()
                assert acd.seat(AGENT).seat.state is SeatState.ON_CALL  # the call goes on

                # The browser dies mid-call (a crash, a lost network: no BYE): its registration
                # ends with its WebSocket, and the caller goes back to the queue, not dropped.
                active = acd.seat(AGENT).call
                assert active is not None
                call_id = active.waiter.call_id
                os.kill(int(pid_file.read_text()), signal.SIGKILL)  # no BYE, no goodbye
                await until(engine, lambda: call_id in waiting_ids(engine), 20,
                            "the caller back in the queue")
                seat = acd.seat(AGENT).seat
                assert (seat.state, seat.reason) == (SeatState.NOT_READY, PHONE_GONE)
                assert engine.ami is not None
                carrier = [c for c in await live_channels(engine.ami)
                           if c.startswith("PJSIP/carrier-")]
                assert len(carrier) == 1, carrier  # the caller's leg lives on, waiting
                await engine.ami.action("Hangup", Channel=carrier[0])
                result = await asyncio.wait_for(call, 30)
                assert result.ok, result.detail
            finally:
                await browser.close()

    # The same call went through the IVR for real: a quote and a placed order on the way.
    assert engine.recorder is not None and engine.db is not None
    await engine.recorder.flush()
    async with engine.db.execute("SELECT id FROM calls ORDER BY started_at") as cur:
        ids = [str(r[0]) for r in await cur.fetchall()]
    records = [r for r in [await get_call(engine.db, i) for i in ids] if r is not None]
    timelines = [Heard(r) for r in records]
    prompts = [p for h in timelines for p in h.prompts()]
    assert "zh/quote_last" in prompts and "zh/order_placed" in prompts, prompts
