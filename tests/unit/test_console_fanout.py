"""The console's push fan-out over many sessions (``_Push``: ``broadcast`` straight to idle
sockets, ``FAN_OUT_CHUNK`` sockets per turn of the loop): every session still gets every
event, in push order, and a reply sent after a push comes after it. The chunk is made tiny here
so that a handful of real connections go through the chunked path."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from callcenter.seats import console_server
from callcenter.seats.protocol import Role
from tests.unit import test_console_server as harness
from tests.unit.test_console_server import DEADLINE, FakeBackend, Start, event, logged_in

# the console server tests' fixtures: a server on a free port with a fake backend
backend, clock, start = harness.backend, harness.clock, harness.start
static_dir, no_passwords_logged = harness.static_dir, harness.no_passwords_logged


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_server, "FAN_OUT_CHUNK", 2)


async def test_chunked_pushes_arrive_everywhere_in_order_before_later_replies(
        start: Start) -> None:
    server = await start()
    async with contextlib.AsyncExitStack() as stack:
        sups = [await stack.enter_async_context(logged_in(server, "9001")) for _ in range(5)]
        agent = await stack.enter_async_context(logged_in(server, "1001"))
        for n in range(3):
            server.push.to_role(Role.SUPERVISOR, event("wallboard", n=n))
        server.push.to_agent("9001", event("presence", n=3))   # joins the fan-out's queue
        server.push.to_role(Role.AGENT, event("queues", n=4))
        for c in sups:
            reply = await c.call("ping")     # queued behind what was pushed before it
            assert reply["type"] == "result"
            assert [(e["event"], e["data"]["n"]) for e in c.events] == [
                ("wallboard", 0), ("wallboard", 1), ("wallboard", 2), ("presence", 3),
                ("queues", 4)]
        got = await agent.event()
        assert (got["event"], got["data"]) == ("queues", {"n": 4})


async def test_chunked_pushes_then_session_ended_then_the_close(start: Start,
                                                                backend: FakeBackend) -> None:
    server = await start()
    async with contextlib.AsyncExitStack() as stack:
        sups = [await stack.enter_async_context(logged_in(server, "9001")) for _ in range(4)]
        server.push.to_role(Role.SUPERVISOR, event("wallboard", n=0))
        server.push.end_sessions("9001", "forced out")
        for c in sups:
            assert (await c.event())["event"] == "wallboard"
            assert (await c.event())["event"] == "session_ended"
            assert await c.closed() == (4000, "session ended")


async def test_a_slow_session_is_still_dropped_on_the_chunked_path(
        start: Start, backend: FakeBackend) -> None:
    server = await start(max_pending_events=8)
    blob = "x" * 60_000
    async with logged_in(server, "9001", compression=None, max_queue=1) as slow, \
            logged_in(server, "9001") as fast, logged_in(server, "9001") as other:
        closed = asyncio.ensure_future(backend.next_closed())
        n = 0
        async with asyncio.timeout(DEADLINE):
            while not closed.done():
                n += 1
                server.push.to_role(Role.SUPERVISOR, event("wallboard", blob=blob, n=n))
                for c in (fast, other):
                    got = await c.event()
                    assert got["data"]["n"] == n
        assert closed.result() == ("9001", 2)
        slow.ws.transport.abort()
