"""The dialer with an agent in the console's browser phone (issue 14, "Done when"): a recorded
preview call placed from the Tasks tab, answered in the browser with audio, its outcome saved in
the page; and a progressive campaign shared by a browser agent and a simulated one.

Chromium's ICE ignores loopback addresses, so the calls run in a network namespace
(conftest.py ``ns_engine``: a second sandbox Asterisk, the engine, the console over HTTPS). The
simulated customers answer by number (docs/campaigns.md): 171003XXXSS says 喂 and hangs up after
SS seconds (00: stays on the line).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect
from pydantic import SecretStr

from callcenter.acd.seat import SeatState
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.store.agents import save_agent
from callcenter.tasks.state import TaskState
from callcenter.tasks.store import NewTask
from callcenter.telephony.pbx import Pbx
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.integration.acd_helpers import AGENT_PASSWORD, agent, hang_up_all, until
from tests.integration.browser_call import (
    AGENT,
    EXTENSION,
    MEDIA_ARGS,
    open_console,
    rtp_counts,
    softphone_stats,
)
from tests.integration.conftest import wait_no_channels
from tests.integration.netns import NetNs, inside
from tests.integration.test_dialer import Outgoing, attempts, every_day_plan, person, wait_states

pytestmark = pytest.mark.integration

#: the outcome form of a new account's verification call
FIELDS: list[dict[str, Any]] = [
    {"name": "outcome", "label": "结果 / Outcome", "kind": "choice", "required": True,
     "choices": ["verified", "not_verified"], "success": ["verified"]},
    {"name": "note", "label": "备注 / Note", "kind": "text"}]


@pytest.fixture
def ns_settings(namespace: NetNs, tmp_path: Path) -> Settings:
    """conftest.py's, with a seat that is ready again as soon as a call ends (no wrap-up, no
    disposition) and time for a person to answer the browser phone."""
    return load_settings(
        state_dir=tmp_path / "state", db_path=tmp_path / "callcenter.db",
        backoffice_path=tmp_path / "backoffice.db", channels={"enabled": False},
        console={"host": namespace.a, "port": 0, "tls": True},
        sip={"cert_names": [namespace.a]},
        pbx={"instance": "webrtc", "netns": namespace.name},
        acd={"queues": [{"name": "general", "announce_every_s": 0}], "ring_timeout_s": 30,
             "wrap_up_s": 0, "require_disposition": False})


async def browser_agent_ready(engine: Engine, page: Page) -> None:
    """Logged in: the browser phone registers, the agent presses Ready."""
    assert engine.phones is not None and engine.acd is not None
    phones, acd = engine.phones, engine.acd
    await until(engine, lambda: phones.can_ring(EXTENSION), 20, "the browser phone registered")
    await page.get_by_test_id("btn-ready").click()
    await until(engine, lambda: acd.seat(AGENT).seat.state is SeatState.READY, 10, "ready")


async def heard(page: Page, within_s: float) -> dict[str, Any]:
    """Wait until the browser's phone received audio with energy and sent its microphone's."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        stats = await softphone_stats(page) or {}
        inbound, outbound = stats.get("inbound") or {}, stats.get("outbound") or {}
        if (inbound.get("totalAudioEnergy", 0) > 0.001 and inbound.get("packetsReceived", 0) > 100
                and outbound.get("packetsSent", 0) > 100) or loop.time() > deadline:
            return stats
        await asyncio.sleep(0.2)


async def no_channels_left(engine: Engine) -> None:
    assert engine.ami is not None
    await hang_up_all(engine)
    left = await wait_no_channels(engine.ami)
    assert left == [], left


async def test_a_recorded_preview_call_from_the_console_with_its_outcome(
        namespace: NetNs, ns_settings: Settings, ns_engine: Engine) -> None:
    """The agent claims a verification task in the Tasks tab and presses Call; their browser
    phone rings, they answer, the simulated customer answers and speaks: the browser hears it.
    The outcome form shows only once the customer was reached; saved, the task is done with its
    outcome, its one attempt answered with talk time and a recording on disk, linked."""
    engine = ns_engine
    assert engine.dialer is not None and engine.tasks is not None and engine.db is not None
    assert engine.console is not None and engine.acd is not None
    acd, watch = engine.acd, Outgoing(engine)
    number = person(31, 0)  # stays on the line: the agent hangs up
    task_id = await engine.tasks.create(NewTask(
        "开户回访 / new account verification", "test", account="880001", phone=number,
        agent_id=AGENT, priority=10, script="您好，这里是客服中心的开户回访。", fields=FIELDS,
        reason="新开户 / a new account",
        dial=every_day_plan(mode="preview", record=True, ring_s=20)))
    assert task_id is not None
    try:
        with inside(namespace):
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                                   args=[*CHROMIUM_ARGS, *MEDIA_ARGS])
                try:
                    context = await browser.new_context(ignore_https_errors=True,
                                                        permissions=["microphone"])
                    page = await context.new_page()
                    await open_console(page, f"https://{namespace.a}:{engine.console.port}/")
                    await browser_agent_ready(engine, page)

                    await page.get_by_test_id("tab-tasks").click()
                    row = page.get_by_test_id(f"task-{task_id}")
                    await expect(row).to_be_visible(timeout=20_000)
                    await row.get_by_test_id("task-claim").click()
                    detail = page.get_by_test_id("tk-detail")
                    await expect(detail).to_be_visible(timeout=10_000)
                    await expect(page.get_by_test_id("tk-script")).to_contain_text("开户回访")
                    await expect(row).to_have_attribute("data-state", "claimed", timeout=10_000)
                    # a recorded task: no outcome before the customer was reached
                    await expect(page.get_by_test_id("tk-outcome-form")).to_be_hidden()
                    await expect(page.get_by_test_id("tk-outcome-wait")).to_be_visible()
                    await page.get_by_test_id("tk-call").click()

                    # the agent's own phone rings first (the phone panel is on the desk)
                    await page.get_by_test_id("tab-desk").click()
                    accept = page.get_by_test_id("phone-accept")
                    await accept.wait_for(state="visible", timeout=60_000)
                    await accept.click()
                    await wait_states(engine, {task_id: TaskState.REACHED}, 60,
                                      "the customer answered", settled=False)
                    await until(engine, lambda: acd.seat(AGENT).seat.state
                                is SeatState.ON_CALL, 15, "on the call")
                    stats = await heard(page, 30)
                    inbound = stats.get("inbound") or {}
                    assert inbound.get("totalAudioEnergy", 0) > 0.001, stats
                    assert inbound.get("packetsReceived", 0) > 100, stats
                    assert (stats.get("outbound") or {}).get("packetsSent", 0) > 100, stats
                    received, sent, table = await rtp_counts(Pbx(ns_settings), f"{EXTENSION}-")
                    assert received > 100 and sent > 100, table
                    print(f"the browser's audio: {stats}; Asterisk's RTP {received}/{sent}")

                    await page.get_by_test_id("phone-hangup").click()
                    await wait_states(engine, {task_id: TaskState.REACHED}, 30, "the call over")

                    # the outcome, in the page
                    await page.get_by_test_id("tab-tasks").click()
                    form = page.get_by_test_id("tk-outcome-form")
                    await expect(form).to_be_visible(timeout=20_000)
                    await page.get_by_test_id("tk-field-outcome").select_option("verified")
                    await page.get_by_test_id("tk-field-note").fill("本人确认 / confirmed")
                    await page.get_by_test_id("tk-outcome-save").click()
                    await wait_states(engine, {task_id: TaskState.DONE}, 20, "the outcome saved")
                    # done: it leaves the agent's list
                    await expect(row).to_be_hidden(timeout=10_000)
                finally:
                    await browser.close()

        task = await engine.tasks.get(task_id)
        assert task.outcome == "verified"
        assert task.outcome_fields == {"outcome": "verified", "note": "本人确认 / confirmed"}
        [attempt] = await attempts(engine, task_id)
        assert (attempt["result"], attempt["mode"], attempt["agent_id"]) == \
            ("answered", "preview", AGENT)
        assert attempt["talk_s"] is not None and attempt["talk_s"] > 0
        assert attempt["recording"]
        assert engine.acd is not None
        await engine.acd.flush()
        async with engine.db.execute("SELECT path, account FROM recordings WHERE call_id = ?",
                                     (attempt["call_id"],)) as cur:
            rows = [tuple(r) for r in await cur.fetchall()]
        assert rows == [(attempt["recording"], "880001")]
        pbx = Pbx(ns_settings)
        recording = pbx.root / attempt["recording"].lstrip("/") if pbx.sandbox \
            else Path(attempt["recording"])
        assert recording.is_file() and recording.stat().st_size > 44  # more than a header
        assert watch.numbers == [number]
        await no_channels_left(engine)
    finally:
        watch.close()


SIM_AGENT = "A1"
CAMPAIGN = 4


async def test_a_progressive_campaign_shared_by_a_browser_agent_and_a_simulated_one(
        namespace: NetNs, ns_settings: Settings, ns_engine: Engine) -> None:
    """Four team tasks, two agents taking progressive calls: the browser agent (the Tasks tab's
    toggle, answering each ring in the page) and a Local-channel agent. Every customer is called
    and reached once, no agent ever has two calls at once, the browser agent talked to one."""
    engine = ns_engine
    assert engine.dialer is not None and engine.tasks is not None and engine.db is not None
    assert engine.console is not None and engine.acd is not None
    acd, dialer, watch = engine.acd, engine.dialer, Outgoing(engine)
    sim = agent(SIM_AGENT, "7001")
    await save_agent(engine.db, sim, SecretStr(AGENT_PASSWORD))
    acd.add_agent(sim)
    plan = every_day_plan(mode="progressive", max_attempts=2, ring_s=20,
                          retry={"busy": 1, "no_answer": 1, "machine": 1, "failed": 1})
    numbers = [person(40 + n, 3) for n in range(CAMPAIGN)]
    ids = []
    for n, number in enumerate(numbers):
        task_id = await engine.tasks.create(NewTask(
            f"关怀回访 {n} / care call {n}", "test", account=f"C{number}", phone=number,
            team="general", priority=10 + n, dial=plan))
        assert task_id is not None
        ids.append(task_id)
    answered = 0
    try:
        with inside(namespace):
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                                   args=[*CHROMIUM_ARGS, *MEDIA_ARGS])
                try:
                    context = await browser.new_context(ignore_https_errors=True,
                                                        permissions=["microphone"])
                    page = await context.new_page()
                    await open_console(page, f"https://{namespace.a}:{engine.console.port}/")
                    await browser_agent_ready(engine, page)
                    await page.get_by_test_id("tab-tasks").click()
                    await page.get_by_test_id("tk-view").select_option("team")
                    for task_id in ids:  # the team's tasks, as the agent sees them
                        await expect(page.get_by_test_id(f"task-{task_id}")).to_be_visible(
                            timeout=20_000)
                    await page.get_by_test_id("tk-progressive").check()
                    await page.get_by_test_id("tab-desk").click()
                    accept = page.get_by_test_id("phone-accept")
                    # the browser agent's first call rings before the other agent joins
                    await accept.wait_for(state="visible", timeout=60_000)
                    acd.set_state(SIM_AGENT, "ready")
                    dialer.join(SIM_AGENT)

                    async def answer_every_ring() -> None:
                        nonlocal answered
                        while True:
                            await accept.wait_for(state="visible", timeout=600_000)
                            with contextlib.suppress(Exception):
                                await accept.click(timeout=5_000)
                                answered += 1
                            await accept.wait_for(state="hidden", timeout=60_000)

                    answering = asyncio.create_task(answer_every_ring())
                    try:
                        await wait_states(engine, dict.fromkeys(ids, TaskState.REACHED), 240,
                                          "every customer reached")
                    finally:
                        answering.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await answering
                    await page.get_by_test_id("tab-tasks").click()
                    await page.get_by_test_id("tk-progressive").uncheck()
                    await until(engine, lambda: AGENT not in dialer.pacer.joined, 10,
                                "the browser agent left the dialer")
                finally:
                    await browser.close()
        dialer.leave(SIM_AGENT)

        rows = []
        for task_id in ids:
            [reached] = await attempts(engine, task_id)  # exactly one attempt each
            assert (reached["result"], reached["mode"]) == ("answered", "progressive"), reached
            assert reached["talk_s"] is not None and reached["talk_s"] > 0
            rows.append(reached)
        assert sorted(watch.numbers) == sorted(numbers)  # each customer dialled once
        by_agent = {a: [r for r in rows if r["agent_id"] == a] for a in (AGENT, SIM_AGENT)}
        assert set(by_agent) == {r["agent_id"] for r in rows}
        print({a: [r["call_id"] for r in mine] for a, mine in by_agent.items()})
        assert by_agent[AGENT], rows  # the browser agent talked to a customer
        assert answered >= len(by_agent[AGENT])
        # one line per agent: an agent's calls never overlap
        async with engine.db.execute("SELECT agent_id, placed_at, ended_at FROM task_attempts"
                                     " ORDER BY agent_id, placed_at") as cur:
            spans = [tuple(r) for r in await cur.fetchall()]
        assert len(spans) == CAMPAIGN
        for before, after in itertools.pairwise(spans):
            if before[0] == after[0]:
                assert after[1] >= before[2], (before, after)
        await no_channels_left(engine)
    finally:
        watch.close()
