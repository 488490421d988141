"""Ghost seats and sessions (issue 9, finding 8) through the real engine and sandbox Asterisk.

An agent closes the console (the page in Chromium, or the websocket is cut) while Ready: past
``console.presence_grace_s`` the seat is Not Ready ("console gone", by system) and a waiting
caller is not offered to it. A console closed during a call does not cut the call; the seat goes
Not Ready when the call ends. Logging out in one console ends the agent's other consoles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from callcenter.acd.seat import SeatState
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.telephony.pbx import Pbx
from tests.browser.conftest import browser  # noqa: F401 - the session's chromium
from tests.integration.acd_helpers import (
    AGENT_PASSWORD,
    add_agents,
    agent,
    channel_row,
    direct_caller,
    hang_up_all,
    queue_log,
    until,
)
from tests.integration.conftest import trading_clock, wait_no_channels

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.asyncio(loop_scope="session")]

DEADLINE = 30.0
#: small, so the tests do not wait long; what they wait for is the seat's change, not the time
GRACE_S = 1.0


@pytest_asyncio.fixture(loop_scope="session")
async def engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Engine]:
    settings = load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                             backoffice_path=tmp_path / "backoffice.db",
                             console={"port": 0, "presence_grace_s": GRACE_S},
                             acd={"wrap_up_s": 1, "ring_timeout_s": 10, "queues": [
                                 {"name": "general", "announce_every_s": 0,
                                  "manager_first_s": 0, "vip_team_s": 0}]})
    await add_agents(settings, [agent("A1", "1001"), agent("S1", "9001", role="supervisor")])
    eng = Engine(settings, backoffice_clock=trading_clock)
    await eng.start()
    try:
        yield eng
    finally:
        leftovers: list[str] = []
        if eng.ami is not None:
            await hang_up_all(eng)
            leftovers = await wait_no_channels(eng.ami)
        await eng.stop()
        assert leftovers == []


class Console:
    """A console connection to the engine (a real websocket client, as the page is)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._n = 0

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(DEADLINE):
            decoded: dict[str, Any] = json.loads(await self.ws.recv())
        return decoded

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._n += 1
        request_id = f"r{self._n}"
        await self.ws.send(json.dumps({"v": 1, "id": request_id, "type": kind, **fields}))
        while True:
            message = await self.recv()
            if message["type"] == "event":
                self.events.append(message)
            elif message.get("id") == request_id:
                return message

    async def event(self, name: str,
                    match: Callable[[dict[str, Any]], bool] = lambda _: True) -> dict[str, Any]:
        """The next ``name`` event whose data ``match``es (others are skipped)."""
        while True:
            message = self.events.pop(0) if self.events else await self.recv()
            if message["type"] == "event" and message["event"] == name \
                    and match(message["data"]):
                data: dict[str, Any] = message["data"]
                return data

    async def closed(self) -> tuple[int | None, str | None]:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.recv()
        return self.ws.close_code, self.ws.close_reason


@contextlib.asynccontextmanager
async def console(engine: Engine, agent_id: str) -> AsyncIterator[Console]:
    assert engine.console is not None
    port = engine.console.port
    async with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=DEADLINE,
                       origin=Origin(f"http://127.0.0.1:{port}")) as ws:
        c = Console(ws)
        reply = await c.call("login", agent_id=agent_id, password=AGENT_PASSWORD)
        assert reply["type"] == "result", reply
        yield c


def seat(engine: Engine, agent_id: str = "A1") -> tuple[SeatState, str]:
    assert engine.acd is not None
    rt = engine.acd.seats[agent_id]
    return rt.seat.state, rt.seat.reason


async def seat_log(engine: Engine, agent_id: str = "A1") -> list[tuple[str, str, str, str]]:
    assert engine.acd is not None and engine.db is not None
    await engine.acd.flush()
    async with engine.db.execute("SELECT input, to_state, reason, by FROM seat_log"
                                 " WHERE agent_id = ? ORDER BY id", (agent_id,)) as cur:
        return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in await cur.fetchall()]


async def test_a_closed_console_page_leaves_the_seat_not_ready_and_unoffered(
        engine: Engine, browser: Browser) -> None:  # noqa: F811
    assert engine.console is not None and engine.acd is not None
    context = await browser.new_context(locale="zh-CN")
    context.set_default_timeout(30_000)
    page = await context.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{engine.console.port}/")
        await page.get_by_test_id("login-agent").fill("A1")
        await page.get_by_test_id("login-password").fill(AGENT_PASSWORD)
        await page.get_by_test_id("login-submit").click()
        await page.get_by_test_id("btn-ready").click()
        await expect(page.get_by_test_id("seat-state")).to_have_attribute("data-state", "ready")
        assert seat(engine) == (SeatState.READY, "")
        await page.close()  # the agent closes the tab
    finally:
        await context.close()

    await until(engine, lambda: seat(engine) == (SeatState.NOT_READY, "console gone"),
                DEADLINE, "the seat not ready after the grace")
    assert (await seat_log(engine))[-1] == ("not_ready", "not_ready", "console gone", "system")

    # a caller comes: the ACD does not offer them to the seat nobody watches
    call_id, _ = await direct_caller(engine)
    assert engine.acd.find_waiter(call_id=call_id) is not None
    assert engine.acd.waiting["general"][call_id].ringing == ""
    assert seat(engine)[0] is SeatState.NOT_READY
    assert [r for r in await queue_log(engine, "ring") if r["call_id"] == call_id] == []

    # the agent comes back and says they are ready: the caller is theirs
    async with console(engine, "A1") as back:
        assert (await back.call("set_state", state="ready", reason=""))["type"] == "result"
        await until(engine, lambda: seat(engine)[0] is SeatState.ON_CALL, DEADLINE, "on call")


async def test_a_console_lost_during_a_call_does_not_cut_it(engine: Engine) -> None:
    assert engine.acd is not None and engine.ami is not None
    async with console(engine, "S1") as boss:
        async with console(engine, "A1") as a1:
            assert (await a1.call("set_state", state="ready", reason=""))["type"] == "result"
            await direct_caller(engine)
            await until(engine, lambda: seat(engine)[0] is SeatState.ON_CALL, DEADLINE,
                        "on call")
            a1.ws.transport.abort()  # the network goes; no close handshake
        gone = await boss.event("presence", lambda d: d["agent_id"] == "A1")
        assert (gone["console"], gone["seat"]) == ("gone", "after_call")
        # past the grace, the call goes on
        call = engine.acd.seats["A1"].call
        assert call is not None and seat(engine)[0] is SeatState.ON_CALL
        assert (await channel_row(engine, call.agent_uniqueid)) != {}

        await engine.ami.action("Hangup", Channel=call.agent_uniqueid)
        await until(engine, lambda: seat(engine) == (SeatState.NOT_READY, "console gone"),
                    DEADLINE, "not ready after the call")
    after_call = [row[1] for row in await seat_log(engine)]
    on_call = len(after_call) - 1 - after_call[::-1].index("on_call")
    # wrap-up, if the call's end went through it, but never ready again
    assert after_call[on_call + 1:] in (["wrap_up", "not_ready"], ["not_ready"])


async def test_logging_out_ends_the_agents_other_consoles(engine: Engine) -> None:
    async with console(engine, "A1") as first, console(engine, "A1") as second:
        reply = await first.call("set_state", state="logged_out", reason="")
        assert reply["type"] == "result" and reply["data"]["seat"]["state"] == "logged_out"
        ended = await second.event("session_ended")
        assert ended == {"reason": "logged out in another session"}
        assert await second.closed() == (4000, "session ended")
        assert await first.closed() == (4000, "session ended")
    assert seat(engine)[0] is SeatState.LOGGED_OUT


async def left_not_ready(tmp_path: Path, reason: str) -> Settings:
    """Settings of an engine that ran once and stopped with seat A1 logged in, not ready
    (``reason``), its console gone with it."""
    settings = load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                             backoffice_path=tmp_path / "backoffice.db",
                             console={"port": 0, "presence_grace_s": GRACE_S,
                                      "absent_logout_s": 3600})
    await add_agents(settings, [agent("A1", "1001")])
    first = Engine(settings, backoffice_clock=trading_clock)
    await first.start()
    try:
        assert first.acd is not None
        first.acd.set_state("A1", "not_ready", reason)
    finally:
        await first.stop()
    return settings


async def test_after_a_night_down_a_seat_left_logged_in_is_logged_out_after_the_grace(
        pbx: Pbx, tmp_path: Path) -> None:
    """A seat left logged in when the engine stopped (its console went with it), the engine
    started again four hours later (the previous run's heartbeat says when it was last alive):
    the seat is logged out once its agent has had the grace to log in again, by system, not
    an hour into the new run with "just logged in" for the whole night on the wallboard."""
    settings = await left_not_ready(tmp_path, "login")
    assert settings.db_path is not None
    heartbeat = settings.db_path.with_name(settings.db_path.name + ".alive")
    night = heartbeat.stat().st_mtime - 4 * 3600
    os.utime(heartbeat, (night, night))
    second = Engine(settings, backoffice_clock=trading_clock)
    await second.start()
    try:
        assert seat(second) == (SeatState.NOT_READY, "login")   # restored, for the grace
        await until(second, lambda: seat(second)[0] is SeatState.LOGGED_OUT, DEADLINE,
                    "the seat logged out after the grace")
        assert (await seat_log(second))[-1][1:] == ("logged_out", "", "system")
    finally:
        await second.stop()


async def test_an_agent_who_logs_in_while_the_engine_starts_is_not_counted_gone(
        pbx: Pbx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A seat left logged in over a restart, its agent logging in again while the console
    server is still starting (the login lands before the engine's start returns): the console
    counts as back, no grace or logout runs against it."""
    from callcenter.seats import console_server
    from callcenter.seats.console_api import AgentIdentity
    from callcenter.seats.protocol import Role

    settings = await left_not_ready(tmp_path, "break")
    second = Engine(settings, backoffice_clock=trading_clock)
    started = console_server.ConsoleServer.start

    async def start_with_a_login(server: console_server.ConsoleServer) -> None:
        await started(server)
        assert second.console_backend is not None
        await second.console_backend.snapshot(AgentIdentity("A1", "A1", Role.AGENT))

    monkeypatch.setattr(console_server.ConsoleServer, "start", start_with_a_login)
    await second.start()
    try:
        assert second.console_backend is not None
        assert not second.console_backend.presence.absent("A1")
        await asyncio.sleep(GRACE_S + 1)
        assert seat(second) == (SeatState.NOT_READY, "break")
        assert second.console_backend.presence.gone_since("A1") is None
    finally:
        await second.stop()
