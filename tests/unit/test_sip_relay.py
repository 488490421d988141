"""The browser phone's SIP relay on the console's port (``/sip``), on real loopback sockets: only
a page that logged in gets through, with the ``sip`` subprotocol, frames copied both ways, and
the relay closes with the agent's last console session. Asterisk is a websockets echo server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from callcenter.config import ConsoleSettings
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.console_server import ConsoleServer
from callcenter.seats.sip_relay import SipRelay
from tests.unit.test_console_server import DEADLINE, Client, Clock, FakeBackend

SIP = [Subprotocol("sip")]


class PhoneBackend(FakeBackend):
    """Agent 1001 has a browser phone: its snapshot carries ``phone``."""

    async def snapshot(self, agent: AgentIdentity) -> dict[str, Any]:
        data = await super().snapshot(agent)
        if agent.agent_id == "1001":
            data["phone"] = {"kind": "browser", "extension": "1001", "password": "x"}
        return data


@pytest.fixture
async def asterisk() -> AsyncIterator[str]:
    """Asterisk's SIP WebSocket, played by an echo server that insists on ``sip``."""

    async def echo(conn: ServerConnection) -> None:
        async for message in conn:
            text = message if isinstance(message, str) else message.decode()
            await conn.send(f"echo:{text}")

    async with serve(echo, "127.0.0.1", 0, subprotocols=SIP) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"


@pytest.fixture
async def console(tmp_path: Path, asterisk: str) -> AsyncIterator[ConsoleServer]:
    (tmp_path / "index.html").write_text("<!doctype html>")
    server = ConsoleServer(ConsoleSettings(host="127.0.0.1", port=0, static_dir=tmp_path),
                           PhoneBackend(), clock=Clock(), relay=SipRelay(asterisk))
    await server.start()
    server.close_grace_s = 0.5
    yield server
    await server.close()


def _origin(server: ConsoleServer) -> Origin:
    return Origin(f"http://127.0.0.1:{server.port}")


async def _login(server: ConsoleServer, agent_id: str) -> tuple[Client, dict[str, Any]]:
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws", origin=_origin(server),
                       open_timeout=DEADLINE)
    client = Client(ws)
    reply = await client.login(agent_id)
    assert reply["type"] == "result", reply
    return client, reply["data"]


async def test_a_logged_in_page_reaches_asterisk_through_the_relay(
        console: ConsoleServer) -> None:
    client, data = await _login(console, "1001")
    path = data["phone"]["ws_path"]
    assert path.startswith("/sip?t=")
    async with connect(f"ws://127.0.0.1:{console.port}{path}", origin=_origin(console),
                       subprotocols=SIP, open_timeout=DEADLINE) as phone:
        assert phone.subprotocol == "sip"
        await phone.send("REGISTER sip:callcenter SIP/2.0\r\n\r\n")
        async with asyncio.timeout(DEADLINE):
            assert await phone.recv() == "echo:REGISTER sip:callcenter SIP/2.0\r\n\r\n"
        # The agent's last console session ends: the relay closes too, the token is dead.
        await client.ws.close()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(DEADLINE):
                await phone.recv()
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{console.port}{path}", origin=_origin(console),
                           subprotocols=SIP, open_timeout=DEADLINE):
            pass
    assert refused.value.response.status_code == 403


async def test_no_token_a_forged_one_or_a_foreign_origin_get_nothing(
        console: ConsoleServer) -> None:
    client, data = await _login(console, "1001")
    good = data["phone"]["ws_path"]
    for path, origin in (("/sip", _origin(console)), ("/sip?t=forged", _origin(console)),
                         (good, Origin("http://evil.example")),
                         (good + "&t=second", _origin(console))):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{console.port}{path}", origin=origin,
                               subprotocols=SIP, open_timeout=DEADLINE):
                pass
        assert refused.value.response.status_code == 403, path
    await client.ws.close()


async def test_an_agent_without_a_browser_phone_gets_no_relay_path(
        console: ConsoleServer) -> None:
    client, data = await _login(console, "1002")
    assert "phone" not in data or data["phone"] is None
    await client.ws.close()


async def test_the_console_websocket_never_speaks_sip(console: ConsoleServer) -> None:
    async with connect(f"ws://127.0.0.1:{console.port}/ws", origin=_origin(console),
                       subprotocols=SIP, open_timeout=DEADLINE) as ws:
        assert ws.subprotocol is None
