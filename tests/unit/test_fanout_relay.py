"""The fan-out relay, really started (``fanout/``): a console server with a relay process, real
websocket clients on loopback. States pushed to a role reach the consoles' second sockets and
never their ``/ws``, one-off events to a role still go over ``/ws``; a late socket gets the
latest state of each kind; tokens, origins and paths are checked; a session's end closes its
socket; a relay that dies is started again; a socket that does not read is closed as too
slow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from callcenter.config import ConsoleSettings
from callcenter.cpu_affinity import available
from callcenter.fanout import process
from callcenter.fanout.feed import Allow, Push
from callcenter.fanout.process import FanoutProcess
from callcenter.fanout.relay import Relay
from callcenter.seats.console_server import ConsoleServer
from callcenter.seats.protocol import Role
from tests.unit import test_console_server as harness
from tests.unit.test_console_server import DEADLINE, FakeBackend, event, origin_of

backend, clock, static_dir, start = harness.backend, harness.clock, harness.static_dir, \
    harness.start


@pytest.fixture
def fanout() -> FanoutProcess:
    return FanoutProcess("127.0.0.1", 0, loop_choice="asyncio", nice=3, cpus=[max(available())])


@pytest.fixture
async def server(static_dir: Path, backend: FakeBackend, clock: harness.Clock,
                 fanout: FanoutProcess) -> AsyncIterator[ConsoleServer]:
    console = ConsoleServer(ConsoleSettings(host="127.0.0.1", port=0, static_dir=static_dir),
                            backend, clock=clock, fanout=fanout)
    await console.start()
    console.close_grace_s = 0.5
    yield console
    await console.close()
    assert fanout.pid is None


@contextlib.asynccontextmanager
async def watching(server: ConsoleServer, login: dict[str, Any], origin: str | None = None
                   ) -> AsyncIterator[ClientConnection]:
    info = login["data"]["fanout"]
    async with connect(f"ws://127.0.0.1:{info['port']}{info['path']}",
                       origin=Origin(origin) if origin else origin_of(server),
                       open_timeout=DEADLINE) as ws:
        yield ws


async def texts(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(DEADLINE):
        for _ in range(n):
            out.append(json.loads(await ws.recv()))
    return out


async def login_reply(c: harness.Client, agent_id: str) -> dict[str, Any]:
    reply = await c.login(agent_id)
    assert reply["type"] == "result", reply
    return reply


async def test_role_pushes_go_through_the_relay_and_not_the_console_socket(
        server: ConsoleServer, fanout: FanoutProcess) -> None:
    async with harness.client(server) as sup_ws, harness.client(server) as agent_ws:
        sup = await login_reply(sup_ws, "9001")
        agent = await login_reply(agent_ws, "1001")
        assert sup["data"]["fanout"]["port"] == fanout.port
        assert sup["data"]["fanout"]["path"] != agent["data"]["fanout"]["path"]
        async with watching(server, sup) as sup_feed, watching(server, agent) as agent_feed:
            server.push.state_to_role(Role.SUPERVISOR, event("wallboard", n=1))
            server.push.state_to_role(Role.AGENT, event("queues", n=2))
            got = await texts(sup_feed, 2)
            assert [(e["event"], e["data"]["n"]) for e in got] == [("wallboard", 1),
                                                                   ("queues", 2)]
            assert [(e["event"], e["data"]["n"]) for e in await texts(agent_feed, 1)] == \
                [("queues", 2)]
            # the console sockets got none of it: their next frame is the ping's reply
            for c in (sup_ws, agent_ws):
                assert (await c.call("ping"))["type"] == "result"
                assert c.events == []
            server.push.to_agent("1001", event("presence", n=3))   # one agent: /ws as before
            assert (await agent_ws.event())["data"] == {"n": 3}
            server.push.to_role(Role.SUPERVISOR, event("presence", n=4))   # one-off: /ws too
            assert (await sup_ws.event())["data"] == {"n": 4}


async def test_a_late_socket_gets_the_latest_of_each_kind_its_role_may_see(
        server: ConsoleServer) -> None:
    for n, (role, name) in enumerate([(Role.SUPERVISOR, "wallboard"), (Role.AGENT, "queues"),
                                      (Role.SUPERVISOR, "wallboard")]):
        server.push.state_to_role(role, event(name, n=n))
    sup_login = await login_again_reply(server, "9001")
    agent_login = await login_again_reply(server, "1001")
    async with watching(server, sup_login) as sup_feed, \
            watching(server, agent_login) as agent_feed:
        assert [(e["event"], e["data"]["n"]) for e in await texts(sup_feed, 2)] == [
            ("queues", 1), ("wallboard", 2)]
        assert [e["data"]["n"] for e in await texts(agent_feed, 1)] == [1]
        server.push.state_to_role(Role.AGENT, event("queues", n=9))
        assert [e["data"]["n"] for e in await texts(agent_feed, 1)] == [9]


async def login_again_reply(server: ConsoleServer, agent_id: str) -> dict[str, Any]:
    """A console session of the agent, logged in, open until the test ends."""
    stack = contextlib.AsyncExitStack()
    c = await stack.enter_async_context(harness.client(server))
    _OPEN.append(stack)
    return await login_reply(c, agent_id)


_OPEN: list[contextlib.AsyncExitStack] = []


@pytest.fixture(autouse=True)
async def _close_extra_sessions() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


async def refused(url: str, origin: str) -> int:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, origin=Origin(origin), open_timeout=DEADLINE):
            pass
    return refusal.value.response.status_code


async def test_the_relay_runs_nicer_than_the_engine(server: ConsoleServer,
                                                    fanout: FanoutProcess) -> None:
    assert fanout.pid is not None
    stat = Path(f"/proc/{fanout.pid}/stat").read_text(encoding="ascii")
    nice = int(stat.rpartition(")")[2].split()[16])
    assert nice == min(19, os.nice(0) + 3)
    assert os.getsid(fanout.pid) == fanout.pid   # its own session: a Ctrl-C is the engine's
    assert os.sched_getaffinity(fanout.pid) == {max(available())}   # console.fanout_cpus


async def restarted(fanout: FanoutProcess) -> None:
    pid = fanout.pid
    assert pid is not None
    restarts = fanout.restarts
    os.kill(pid, signal.SIGKILL)
    async with asyncio.timeout(DEADLINE):
        while fanout.restarts == restarts:
            await asyncio.sleep(0.05)


async def test_tokens_origins_and_paths_are_checked(capfd: pytest.CaptureFixture[str],
                                                    server: ConsoleServer,
                                                    fanout: FanoutProcess) -> None:
    # the relay's log is its stderr: a relay started again now writes it where capfd reads
    await restarted(fanout)
    port, origin = fanout.port, origin_of(server)
    async with harness.client(server) as c:
        login = await login_reply(c, "9001")
        path = login["data"]["fanout"]["path"]
        token = path.partition("t=")[2]
        base = f"ws://127.0.0.1:{port}"
        assert await refused(f"{base}/fanout?t=not-a-token", origin) == 403
        assert await refused(f"{base}{path}", "http://evil.example") == 403
        assert await refused(f"{base}/ws?t={token}", origin) == 404
        assert await refused(f"{base}/fanout", origin) == 403
        # a session holds a few sockets at most (a reconnecting page, a second tab)
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(4):
                await stack.enter_async_context(watching(server, login))
            assert await refused(f"{base}{path}", origin) == 429
    out, err = capfd.readouterr()   # the relay's log (its stderr) said why, never the token
    assert "origin 'http://evil.example' not allowed" in err
    assert token not in out + err


async def test_a_sessions_end_closes_its_socket_and_voids_its_token(
        server: ConsoleServer, backend: FakeBackend) -> None:
    async with harness.client(server) as c:
        login = await login_reply(c, "9001")
        async with watching(server, login) as feed:
            await c.call("ping")
            await c.ws.close()
            await backend.next_closed()
            async with asyncio.timeout(DEADLINE):
                with pytest.raises(ConnectionClosed):
                    await feed.recv()
            assert feed.close_code == 4000
    info = login["data"]["fanout"]
    assert await refused(f"ws://127.0.0.1:{info['port']}{info['path']}",
                         origin_of(server)) == 403


async def test_a_message_to_the_relay_closes_that_socket(server: ConsoleServer) -> None:
    login = await login_again_reply(server, "9001")
    async with watching(server, login) as feed:
        await feed.send("hello")
        async with asyncio.timeout(DEADLINE):
            with pytest.raises(ConnectionClosed):
                await feed.recv()
        assert feed.close_code == 1008


async def test_a_relay_that_dies_is_started_again_with_what_still_holds(
        server: ConsoleServer, fanout: FanoutProcess) -> None:
    async with harness.client(server) as c:
        login = await login_reply(c, "9001")
        server.push.state_to_role(Role.SUPERVISOR, event("wallboard", n=1))
        pid, port = fanout.pid, fanout.port
        await restarted(fanout)
        assert fanout.pid != pid and fanout.port == port
        async with watching(server, login) as feed:   # the same token still works
            assert [e["data"]["n"] for e in await texts(feed, 1)] == [1]   # replayed
            server.push.state_to_role(Role.SUPERVISOR, event("wallboard", n=2))
            assert [e["data"]["n"] for e in await texts(feed, 1)] == [2]


async def test_a_relay_that_does_not_read_costs_the_engine_one_megabyte_then_gets_the_latest(
        server: ConsoleServer, fanout: FanoutProcess) -> None:
    pid = fanout.pid
    assert pid is not None
    blob = "x" * 100_000
    os.kill(pid, signal.SIGSTOP)
    try:
        for n in range(60):     # 6 MB of boards for a relay that reads nothing
            server.push.state_to_role(Role.SUPERVISOR, event("wallboard", n=n, blob=blob))
        assert fanout.held_back > 0
        assert fanout.behind_bytes <= process.BEHIND_BYTES + 200_000
    finally:
        os.kill(pid, signal.SIGCONT)
    login = await login_again_reply(server, "9001")
    async with watching(server, login) as feed:
        async with asyncio.timeout(DEADLINE):
            while fanout.behind_bytes:
                await asyncio.sleep(0.05)
        got = await texts(feed, 1)
        while got[-1]["data"]["n"] != 59:        # boards before the catch-up may come first
            got += await texts(feed, 1)
        assert fanout.pid == pid                 # caught up, not restarted


async def test_closing_while_the_relay_starts_leaves_no_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def noted(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await spawn(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(asyncio, "create_subprocess_exec", noted)
    fanout = FanoutProcess("127.0.0.1", 0, loop_choice="asyncio")
    starting = asyncio.create_task(fanout.start(["http://page"]))
    async with asyncio.timeout(DEADLINE):
        while not started:
            await asyncio.sleep(0)
    starting.cancel()      # the engine stops before the relay said it listens
    with pytest.raises(asyncio.CancelledError):
        await starting
    await fanout.close()
    assert started[0].returncode is not None and fanout.pid is None


async def test_without_the_relay_states_go_over_ws(start: harness.Start) -> None:
    console = await start()     # console.fanout = inline: no relay
    async with harness.logged_in(console, "9001") as sup:
        console.push.state_to_role(Role.SUPERVISOR, event("wallboard", n=1))
        assert (await sup.event())["data"] == {"n": 1}


async def test_a_socket_that_does_not_read_is_closed_as_too_slow(
        caplog: pytest.LogCaptureFixture) -> None:
    relay = Relay(["http://page"], max_buffer=64 * 1024)
    token = "t" * 32
    relay.apply(Allow(token, 1, "9001"))
    async with serve(relay.handle, "127.0.0.1", 0, process_request=relay.process_request,
                     compression=None) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/fanout?t={token}", origin=Origin("http://page"),
                           max_size=None, max_queue=1, close_timeout=0.5) as ws:
            ws.transport.pause_reading()      # a console that stopped reading
            blob = '"' + "x" * 200_000 + '"'
            async with asyncio.timeout(DEADLINE):
                while relay.watchers:
                    relay.apply(Push(1, "wallboard", blob))
                    await asyncio.sleep(0.01)
        assert "is too slow; closing it" in caplog.text
        await relay.close()
