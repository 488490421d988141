"""The browser phone's SIP WebSocket, relayed by the console to Asterisk (path ``/sip``).

Why a relay rather than the page talking to Asterisk's own WSS port: the page and its phone share
one origin, one certificate and one port (an agent accepts or a site installs one certificate,
a firewall opens one port for signalling); Asterisk's HTTP server stays on loopback; and only a
page that logged in to the console can reach Asterisk's SIP stack at all: the relay takes a
connection only with a token issued at that console login (``RelayTokens``), revoked when the
agent's last console session ends. Media (DTLS-SRTP over ICE) goes straight between the browser
and Asterisk; only SIP messages pass here, each a WebSocket text frame, copied as they are.

Asterisk sees the relay's loopback address as the peer; the relay logs the browser's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Final

from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

log = logging.getLogger(__name__)

SIP_PATH: Final = "/sip"
SUBPROTOCOL: Final = Subprotocol("sip")
#: a SIP message with SDP is a few kB; far more is not a phone
MAX_MESSAGE_BYTES: Final = 64 * 1024


@dataclass
class RelayTokens:
    """Console-login tokens for the relay: agent id by token, sans-IO."""

    _by_token: dict[str, str] = field(default_factory=dict)

    def issue(self, agent_id: str) -> str:
        token = secrets.token_urlsafe(24)
        self._by_token[token] = agent_id
        return token

    def agent(self, token: str) -> str | None:
        return self._by_token.get(token)

    def revoke(self, agent_id: str) -> None:
        for token in [t for t, a in self._by_token.items() if a == agent_id]:
            del self._by_token[token]


class SipRelay:
    """Copies SIP frames between a browser's WebSocket and Asterisk's ``ws://…/ws``."""

    def __init__(self, asterisk_url: str) -> None:
        self.asterisk_url = asterisk_url
        self.tokens = RelayTokens()
        #: open relays: the browser's connection -> its agent
        self._open: dict[ServerConnection, str] = {}

    def agent_for(self, token: str) -> str | None:
        return self.tokens.agent(token)

    async def end_agent(self, agent_id: str) -> None:
        """The agent's last console session ended: no new relay, and the open ones close."""
        self.tokens.revoke(agent_id)
        for conn in [c for c, agent in self._open.items() if agent == agent_id]:
            with contextlib.suppress(ConnectionClosed):
                await conn.close(1000, "console session ended")

    async def serve(self, browser: ServerConnection, agent_id: str, peer: str) -> None:
        """Relay until either side closes."""
        try:
            asterisk = await connect(self.asterisk_url, subprotocols=[SUBPROTOCOL],
                                     max_size=MAX_MESSAGE_BYTES, open_timeout=5,
                                     ping_interval=20, ping_timeout=20, compression=None)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            log.warning("SIP relay for agent %s from %s: Asterisk not reachable: %s",
                        agent_id, peer, exc)
            await browser.close(1011, "PBX not reachable")
            return
        self._open[browser] = agent_id
        log.info("SIP relay open: agent %s from %s", agent_id, peer)
        try:
            async with asterisk:
                up = asyncio.create_task(self._copy(browser, asterisk))
                down = asyncio.create_task(self._copy(asterisk, browser))
                _, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await browser.close()
        finally:
            self._open.pop(browser, None)
            log.info("SIP relay closed: agent %s from %s", agent_id, peer)

    @staticmethod
    async def _copy(src: Connection, dst: Connection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in src:
                await dst.send(message)
