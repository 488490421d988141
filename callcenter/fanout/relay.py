"""The fan-out relay process: it holds the consoles' second sockets and writes each push to them.

Why a process of its own: with a thousand consoles open, the engine wrote every wallboard to
every socket itself, a ``send()`` per socket, and that was most of its CPU; calls (FastAGI, AMI)
waited behind it. Now the engine writes each push once, to this process's stdin (``feed.py``),
and this process, on another CPU, writes it to the sockets. The engine keeps every console's
``/ws`` (login, commands, the pushes meant for one agent); only pushes meant for many (a role)
come from here.

Started by the engine (``process.FanoutProcess``), not by hand::

    python -m callcenter.fanout.relay --host H --port P [--origin O ...] [--cert C --key K]
        [--nice N] [--cpus LIST]

``--nice`` (``console.fanout_nice``, 10 by default) makes it yield the CPUs to calls: when they
are short, wallboards wait, not the IVR. ``--cpus`` (``console.fanout_cpus``, unset by default)
keeps it on CPUs of its own, so that it never takes one from Asterisk or the engine.

It prints ``listening <port>`` once it accepts connections, and exits when its stdin closes
(the engine is gone). A browser connects to ``/fanout?t=<token>`` with the token of its console
login (the feed's ``A`` line), from an allowed page origin; it gets the latest push of each kind
its role may see at once, then every push as it comes. It sends nothing: a message closes it
(1008). A socket that falls more than ``--max-buffer`` bytes behind is closed (1008, too slow):
the console reconnects and gets the latest state again. A session's end (``E``) closes its
sockets (4000). Tokens are never logged.

Built on the ``websockets`` server the console uses (same framing, no compression, same TLS
files), with the sans-IO feed and state of ``feed.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import logging
import os
import re
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from callcenter import heap
from callcenter.cpu_affinity import parse_cpus
from callcenter.errors import ConfigError
from callcenter.event_loop import run
from callcenter.fanout.feed import PATH, Allow, End, FeedDecoder, FeedState, Message, Push
from callcenter.telephony.host_limits import raise_fd_limit

__all__ = ["Relay", "main"]

log = logging.getLogger("callcenter.fanout.relay")

#: a console may connect before the relay has read its token from the feed (the relay runs
#: nicer than the engine: with the CPUs short, it may be a while)
JOIN_WAIT_S: Final = 5.0
#: handshakes waiting for their token at once; more are refused (503) at once
MAX_JOINING: Final = 256
#: sockets one console session may hold (a page reconnecting, a second tab of the same login)
MAX_SOCKETS_PER_TOKEN: Final = 4
#: what a token the engine issues looks like (``secrets.token_urlsafe(24)``: 32 characters)
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
CLOSE_SESSION_ENDED: Final = 4000
KEEPALIVE_S: Final = 20.0
#: bytes waiting in a socket's buffer before it is closed as too slow (~a hundred wallboards)
DEFAULT_MAX_BUFFER: Final = 1024 * 1024


def _http(status: http.HTTPStatus, body: bytes) -> Response:
    return Response(status.value, status.phrase, Headers([
        ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store")]), body)


class Relay:
    """The relay's sockets and what the feed said. ``apply`` takes feed messages; the
    ``websockets`` server calls ``process_request`` and ``handle``."""

    def __init__(self, origins: Sequence[str], max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.max_buffer = max_buffer
        self.state = FeedState()
        #: each open socket: its token and its role's rank
        self._watchers: dict[ServerConnection, tuple[str, int]] = {}
        self._per_token: dict[str, int] = {}
        #: handshakes waiting for their token to come over the feed
        self._joining: dict[str, list[asyncio.Future[None]]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    # -- the feed -----------------------------------------------------------------------------

    def apply(self, message: Message) -> None:
        """One feed message: note it, and carry it out on the sockets."""
        self.state.apply(message)
        if isinstance(message, Allow):
            for waiter in self._joining.pop(message.token, []):
                if not waiter.done():
                    waiter.set_result(None)
        elif isinstance(message, End):
            for conn, (token, _) in list(self._watchers.items()):
                if token == message.token:
                    self._close(conn, CLOSE_SESSION_ENDED, "session ended")
        elif isinstance(message, Push):
            self._push(message)

    def _push(self, push: Push) -> None:
        targets = []
        for conn, (_, rank) in list(self._watchers.items()):
            if rank < push.rank:
                continue
            if conn.transport.get_write_buffer_size() > self.max_buffer:
                log.warning("fan-out: a console socket from %s is too slow; closing it",
                            _peer(conn))
                self._close(conn, CloseCode.POLICY_VIOLATION, "too slow")
                continue
            targets.append(conn)
        if targets:
            broadcast(targets, push.text.encode(), text=True)

    def _close(self, conn: ServerConnection, code: int, reason: str) -> None:
        self._leave(conn)
        task = asyncio.get_running_loop().create_task(_close(conn, code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # -- the sockets --------------------------------------------------------------------------

    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """The handshake's checks: path, Origin, a live token (waited for a moment: the feed
        may bring it just after), and the session's socket count."""
        path, _, query = request.path.partition("?")
        if path != PATH:
            return _http(http.HTTPStatus.NOT_FOUND, b"the fan-out is at /fanout\n")
        origins = request.headers.get_all("Origin")
        if len(origins) != 1 or origins[0] not in self.origins:
            log.warning("fan-out socket from %s refused: origin %r not allowed", _peer(conn),
                        origins[0] if origins else None)
            return _http(http.HTTPStatus.FORBIDDEN, b"origin not allowed\n")
        tokens = parse_qs(query).get("t", [])
        token = tokens[0] if len(tokens) == 1 else ""
        if not _TOKEN.fullmatch(token):
            log.warning("fan-out socket from %s refused: no token", _peer(conn))
            return _http(http.HTTPStatus.FORBIDDEN, b"log in to the console first\n")
        if token not in self.state.allowed and not await self._wait_for(token):
            log.warning("fan-out socket from %s refused: no live console login", _peer(conn))
            return _http(http.HTTPStatus.FORBIDDEN, b"log in to the console first\n")
        if self._per_token.get(token, 0) >= MAX_SOCKETS_PER_TOKEN:
            log.warning("fan-out socket from %s refused: its session has %d already",
                        _peer(conn), MAX_SOCKETS_PER_TOKEN)
            return _http(http.HTTPStatus.TOO_MANY_REQUESTS, b"too many sockets\n")
        return None

    async def _wait_for(self, token: str) -> bool:
        """Until the feed allows ``token`` (True), or ``JOIN_WAIT_S`` (False). Refused at once
        when ``MAX_JOINING`` handshakes are waiting already."""
        if sum(len(w) for w in self._joining.values()) >= MAX_JOINING:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._joining.setdefault(token, []).append(waiter)
        try:
            async with asyncio.timeout(JOIN_WAIT_S):
                await waiter
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._joining.get(token, [])
            if waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._joining[token]

    async def handle(self, conn: ServerConnection) -> None:
        """One socket, from its handshake to its close: it gets pushes, it may send nothing."""
        assert conn.request is not None
        token = parse_qs(conn.request.path.partition("?")[2])["t"][0]
        allow = self.state.allowed.get(token)
        if allow is None:   # ended between the handshake and now
            await _close(conn, CLOSE_SESSION_ENDED, "session ended")
            return
        self._join(conn, allow)
        try:
            async for _ in conn:
                log.warning("fan-out socket from %s sent a message; closing it", _peer(conn))
                await _close(conn, CloseCode.POLICY_VIOLATION, "the fan-out takes no messages")
                return
        except ConnectionClosed:
            pass
        finally:
            self._leave(conn)

    def _leave(self, conn: ServerConnection) -> None:
        found = self._watchers.pop(conn, None)
        if found is not None:
            left = self._per_token[found[0]] - 1
            if left:
                self._per_token[found[0]] = left
            else:
                del self._per_token[found[0]]

    def _join(self, conn: ServerConnection, allow: Allow) -> None:
        """The latest of each push its rank may see, then every push: written here without a
        pause, so that no push can come between them."""
        for push in self.state.visible(allow.rank):
            broadcast([conn], push.text.encode(), text=True)
        self._watchers[conn] = (allow.token, allow.rank)
        self._per_token[allow.token] = self._per_token.get(allow.token, 0) + 1

    async def close(self) -> None:
        """Close every socket (1001)."""
        await asyncio.gather(*(_close(c, CloseCode.GOING_AWAY, "relay shutting down")
                               for c in list(self._watchers)))
        self._watchers.clear()
        self._per_token.clear()
        if self._closing:
            await asyncio.wait(self._closing)


async def _close(conn: ServerConnection, code: int, reason: str) -> None:
    try:
        async with asyncio.timeout(2.0):
            await conn.close(code, reason)
    except TimeoutError:
        conn.transport.abort()


def _peer(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
    except (TypeError, ValueError, OSError):
        return "?"
    return f"{host}:{port}"


class _FeedReader(asyncio.Protocol):
    """stdin: feed lines to the relay; its end ends the relay."""

    def __init__(self, relay: Relay, done: asyncio.Future[None]) -> None:
        self.relay = relay
        self.done = done
        self.decoder = FeedDecoder()

    def data_received(self, data: bytes) -> None:
        for message in self.decoder.feed(data):
            self.relay.apply(message)
        for error in self.decoder.errors:
            log.error("fan-out: %s; line skipped", error)
        self.decoder.errors.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def serve_relay(args: argparse.Namespace) -> int:
    """Listen, read the feed from stdin until it ends, then close every socket."""
    relay = Relay(args.origin, args.max_buffer)
    server: Server = await serve(
        relay.handle, args.host, args.port, process_request=relay.process_request,
        ssl=_tls(args.cert, args.key), compression=None, max_size=1024,
        ping_interval=KEEPALIVE_S, ping_timeout=KEEPALIVE_S, server_header=None,
        logger=logging.getLogger("websockets"))
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    await loop.connect_read_pipe(lambda: _FeedReader(relay, done), sys.stdin)
    heap.settle()   # its sockets' pushes never wait for a walk of what lives from start-up on
    print(f"listening {port}", flush=True)
    log.info("fan-out relay listening on %s:%d", args.host, port)
    await done
    server.close()
    await relay.close()
    await server.wait_closed()
    return 0


def main(argv: list[str] | None = None) -> int:
    """The relay process (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="python -m callcenter.fanout.relay",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--origin", action="append", default=[],
                        help="a page origin allowed to connect (repeat)")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--max-buffer", type=int, default=DEFAULT_MAX_BUFFER)
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    parser.add_argument("--nice", type=int, default=0,
                        help="run this much nicer than the engine (calls go first)")
    parser.add_argument("--cpus", default="",
                        help="the CPUs to run on, as the kernel lists them (1, 2-3)")
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cpus:
        try:
            os.sched_setaffinity(0, parse_cpus(args.cpus))
        except (OSError, ConfigError) as exc:   # a container's cpuset may refuse them
            log.error("fan-out relay: cannot keep to CPU %s (%s): it runs on the engine's CPUs",
                      args.cpus, exc)
    logging.getLogger("websockets").setLevel(logging.WARNING)   # a line per handshake else
    raise_fd_limit()   # a socket per console
    try:
        return run(serve_relay(args), args.loop)
    except (OSError, ssl.SSLError) as exc:
        log.error("fan-out relay cannot start: %s", exc)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
