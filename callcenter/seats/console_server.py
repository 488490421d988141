"""The agent console's listener: the page over HTTP GET and protocol v1 at ``/ws``, on one port.

This module owns connections and their rules: static files with security headers, the Origin
check at the handshake, login (deadline, lockout per id and address, throttle per address),
every message's checks (size, JSON, version, type, role, validation, rate), the push fan-out
through a bounded outbox per connection, ending an agent's sessions, and shutdown. What a
command *does* belongs to the ``ConsoleBackend``; message shapes to ``protocol.py``; the limits'
arithmetic to ``limits.py``.

Passwords: a ``Login`` goes to ``backend.authenticate`` and nowhere else. It is never logged or
repr'd, and a validation error names the field and the rule, never the input.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import ipaddress
import json
import logging
import secrets
import ssl
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from pydantic import BaseModel, ValidationError
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse
from websockets.typing import Subprotocol

from callcenter.config import ConsoleSettings
from callcenter.errors import ConsoleError
from callcenter.fanout.feed import PATH as FANOUT_PATH
from callcenter.fanout.process import FanoutProcess
from callcenter.seats.console_api import PLAYBACK_PATH, AgentIdentity, ConsoleBackend, ConsolePush
from callcenter.seats.limits import AddressThrottle, KnownAddresses, LoginGuard, TokenBucket
from callcenter.seats.protocol import (
    ALLOWED,
    PROTOCOL_VERSION,
    REQUEST,
    Error,
    ErrorCode,
    Event,
    Login,
    Ping,
    Request,
    Result,
    Role,
)
from callcenter.seats.sip_relay import SIP_PATH, SUBPROTOCOL, SipRelay

__all__ = ["ConsoleServer", "check_message"]

log = logging.getLogger(__name__)
#: websockets' own logger. Capped at WARNING: at DEBUG it logs every frame, login frames and
#: their passwords included, and at INFO a line per static file.
_ws_log = logging.getLogger(f"{__name__}.websockets")
_ws_log.setLevel(logging.WARNING)

WS_PATH: Final = "/ws"
KEEPALIVE_S: Final = 20.0
#: how long a close waits for the peer before the socket is dropped: websockets' close() first
#: waits for the write buffer to drain, which never happens with a peer that does not read
CLOSE_GRACE_S: Final = 2.0
#: sockets written per turn of the event loop when a push goes to many sessions: the rest
#: waits for the next turn, so calls (FastAGI, AMI) are served in between
FAN_OUT_CHUNK: Final = 100
CLOSE_SESSION_ENDED: Final = 4000
CLOSE_LOGIN_TIMEOUT: Final = 4001
_MAX_ID = 64

CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
SECURITY_HEADERS: Final = (
    ("Content-Security-Policy",
     "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
     "media-src 'self' blob:; "
     "style-src 'self'; script-src 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)

_RANK: Final = {Role.AGENT: 0, Role.SUPERVISOR: 1, Role.ADMIN: 2}


def _request_types() -> frozenset[str]:
    """Every ``type`` the ``Request`` union accepts, read off the models themselves."""
    union = typing.get_args(Request)[0]
    return frozenset(
        literal
        for model in typing.get_args(union)
        for literal in typing.get_args(model.model_fields["type"].annotation)
    )


KNOWN_TYPES: Final = _request_types()


# -- checking one message (no I/O) ---------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _malformed(request_id: str, message: str) -> Error:
    return Error(id=request_id, code=ErrorCode.MALFORMED, message=message)


def _describe(exc: ValidationError, kind: str) -> str:
    """Pydantic's first error as ``where: what``; ``include_input=False`` keeps a password (or
    anything else the client sent) out of the reply."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    loc = list(first["loc"])
    if loc and loc[0] == kind:  # the discriminated union puts the tag first
        loc = loc[1:]
    where = ".".join(str(part) for part in loc) or "message"
    return f"{where}: {first['msg']}"[:200]


def check_message(message: str | bytes, role: Role | None) -> Request | Error:
    """One incoming frame, checked in the order clients are told: the request, or the reply
    that refuses it. ``role`` is None before login."""
    if isinstance(message, bytes):
        return _malformed("", "binary frames are not accepted: send JSON text")
    try:
        raw = json.loads(message, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
        return _malformed("", "not JSON")
    if not isinstance(raw, dict):
        return _malformed("", "a message is a JSON object")
    request_id = raw.get("id", "")
    if not isinstance(request_id, str) or len(request_id) > _MAX_ID:
        request_id = ""
    version = raw.get("v", PROTOCOL_VERSION)
    # type() rather than isinstance: JSON true is a Python bool, which equals 1
    if type(version) is not int or version != PROTOCOL_VERSION:
        return Error(id=request_id, code=ErrorCode.UNSUPPORTED_VERSION,
                     message=f"this server speaks protocol v {PROTOCOL_VERSION}")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        return Error(id=request_id, code=ErrorCode.UNKNOWN_COMMAND, message="unknown type")
    if role is None and kind not in ("login", "ping"):
        return Error(id=request_id, code=ErrorCode.LOGIN_REQUIRED, message="log in first")
    if role is not None and kind == "login":
        return Error(id=request_id, code=ErrorCode.ALREADY_LOGGED_IN,
                     message="this connection is already logged in")
    if role is not None and kind != "ping" and kind not in ALLOWED[role]:
        return Error(id=request_id, code=ErrorCode.FORBIDDEN,
                     message=f"the {role.value} role may not use {kind}")
    try:
        return REQUEST.validate_python(raw)
    except ValidationError as exc:
        return _malformed(request_id, _describe(exc, kind))


def _peek_id(message: str | bytes) -> str:
    """The request id of a frame that will not be handled, so the refusal can name it."""
    if isinstance(message, bytes):
        return ""
    try:
        raw = json.loads(message)
    except (ValueError, RecursionError):
        return ""
    request_id = raw.get("id") if isinstance(raw, dict) else None
    return request_id if isinstance(request_id, str) and len(request_id) <= _MAX_ID else ""


# -- static files --------------------------------------------------------------------------------


def _http(status: http.HTTPStatus, body: bytes,
          content_type: str = "text/plain; charset=utf-8",
          cache: str = "no-cache") -> HttpResponse:
    headers = Headers([
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
        ("Content-Type", content_type),
        ("Cache-Control", cache),
        *SECURITY_HEADERS,
    ])
    return HttpResponse(status.value, status.phrase, headers, body)


def read_static(root: Path, url_path: str) -> tuple[bytes, str] | None:
    """The body and content type for ``url_path`` under ``root`` (resolved), or None.

    Only regular files of a known type inside ``root``: no ``..`` (encoded or not), no hidden
    files, no directories, no symlink leading outside. Blocking: run it in a thread.
    """
    try:
        path = unquote(url_path, errors="strict")
    except UnicodeDecodeError:
        return None
    if path == "/":
        path = "/index.html"
    if not path.startswith("/") or "\\" in path or "\x00" in path:
        return None
    parts = path[1:].split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    content_type = CONTENT_TYPES.get(Path(parts[-1]).suffix.lower())
    if content_type is None:
        return None
    try:
        real = root.joinpath(*parts).resolve(strict=True)
        if not real.is_relative_to(root) or not real.is_file():
            return None
        return real.read_bytes(), content_type
    except OSError:
        return None


# -- sessions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class _Outbox:
    """Frames waiting for the connection's writer. Bounded: a client that does not read must not
    grow the server's memory. A close is always accepted (it ends the queue)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: collections.deque[str | _Close] = collections.deque()
        self._ready = asyncio.Event()

    def put(self, text: str) -> bool:
        if len(self._items) >= self._limit:
            return False
        self._items.append(text)
        self._ready.set()
        return True

    def __len__(self) -> int:
        return len(self._items)

    def put_close(self, close: _Close) -> None:
        self._items.append(close)
        self._ready.set()

    async def get(self) -> str | _Close:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


def _peer(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
    except (TypeError, ValueError, OSError):
        return "?"
    return f"{host}:{port}"


def _address(conn: ServerConnection) -> str:
    """What login throttling counts by: the peer's address without its port; for IPv6, its /64
    (one host may hold a whole /64 and pick a new address for every try)."""
    try:
        host = str(conn.remote_address[0])
    except (TypeError, ValueError, OSError, IndexError):
        return "?"
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network((ip, 64), strict=False))
    return str(ip)


class _Session:
    """One websocket connection: its login, limits and outbox."""

    def __init__(self, conn: ServerConnection, settings: ConsoleSettings, now: float) -> None:
        self.conn = conn
        self.peer = _peer(conn)
        self.address = _address(conn)
        self.limit = settings.max_pending_events
        self.bucket = TokenBucket(settings.rate_per_s, settings.rate_burst, now)
        self.outbox = _Outbox(settings.max_pending_events)
        self.agent: AgentIdentity | None = None
        #: events pushed while the login reply is being composed; sent right after it, so the
        #: client applies them on top of the snapshot rather than losing or preceding it
        self.held: list[str] | None = None
        #: closing: no more frames are queued for it, and no more requests are carried out
        self.ending = False
        #: dropped as too slow (its writer cancelled)
        self.dropped = False
        #: a request of this session is being handled
        self.answering = False
        #: the ``session_ended`` frame for a session ended while it was answering a request
        #: (say, the logout that ends it): sent right after that reply, then the close
        self.end_after: str | None = None
        self.writer: asyncio.Task[None] | None = None
        #: the writer is in the middle of a frame (waiting for the socket to drain) or closing
        self.writing = False
        #: pushed frames of this session still in the push's fan-out (``_Push._drain``): the
        #: writer waits for them before it sends anything queued after them
        self.pipelined = 0
        self._pipeline_done: asyncio.Future[None] | None = None
        #: the token of this session's socket to the fan-out relay (``fanout/``), if any
        self.fanout_token: str | None = None
        self.handler: asyncio.Task[Any] | None = asyncio.current_task()

    def send(self, text: str) -> bool:
        """Queue a frame; False if the client is too far behind."""
        if self.ending:
            return True
        if self.held is not None:
            if len(self.held) >= self.limit:
                return False
            self.held.append(text)
            return True
        return self.outbox.put(text)

    def writable_now(self) -> bool:
        """Whether a pushed frame may go straight to the socket, as the writer would send it:
        nothing queued before it (replies, held frames, a close), the writer idle, and the
        socket's write buffer under its high-water mark (else the frame waits in the bounded
        outbox, so a client that does not read is still dropped as too slow)."""
        # frames of this session still in the push's fan-out do not stop it: the fan-out keeps
        # the order of pushes
        if self.held is not None or self.ending or self.writing or len(self.outbox):
            return False
        transport = self.conn.transport
        return transport.get_write_buffer_size() < transport.get_write_buffer_limits()[1]

    def leave_pipeline(self) -> None:
        self.pipelined -= 1
        done = self._pipeline_done
        if not self.pipelined and done is not None:
            self._pipeline_done = None
            if not done.done():
                done.set_result(None)

    async def pipeline_clear(self) -> None:
        """Until none of this session's frames is left in the push's fan-out."""
        if self.pipelined:
            if self._pipeline_done is None:
                self._pipeline_done = asyncio.get_running_loop().create_future()
            await self._pipeline_done

    def release_held(self) -> bool:
        held, self.held = self.held or [], None
        return all(self.send(text) for text in held)


class _Push:
    """``ConsolePush`` over the live sessions: each event is serialised and encoded once, and
    written without waiting: straight to the sockets of the sessions with nothing queued
    (``broadcast``: no task switch per session), else queued in the session's outbox; a
    session that cannot take it is dropped as too slow. A push to more than ``FAN_OUT_CHUNK``
    sessions is written that many sockets per turn of the loop (``_drain``), in push order;
    a session's writer waits for its frames still there. With 1000 supervisors, a task per
    session, or all sockets in one turn, held the event loop (and every call on it) for tens
    of milliseconds per wallboard."""

    def __init__(self, sessions: set[_Session], too_slow: Callable[[_Session], None],
                 fanout: FanoutProcess | None = None) -> None:
        self._sessions = sessions
        self._too_slow = too_slow
        #: pushes to a role go to the fan-out relay, once, instead of to every session
        self._fanout = fanout
        #: pushes not written to every socket yet: (frame, sessions, how many are done)
        self._pending: collections.deque[tuple[bytes, list[_Session], int]] = \
            collections.deque()
        #: agent id -> the sessions logged in as that agent: a push to one agent looks there,
        #: not through every session (a thousand wallboards open made each one cost a scan)
        self._of_agent: dict[str, set[_Session]] = {}

    def logged_in(self, session: _Session) -> None:
        assert session.agent is not None
        self._of_agent.setdefault(session.agent.agent_id, set()).add(session)

    def logged_out(self, session: _Session) -> None:
        if session.agent is None:
            return
        sessions = self._of_agent.get(session.agent.agent_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._of_agent[session.agent.agent_id]

    def sessions_of(self, agent_id: str) -> list[_Session]:
        """The agent's live sessions (not ending)."""
        return [s for s in self._of_agent.get(agent_id, ()) if not s.ending]

    def to_agent(self, agent_id: str, event: Event) -> None:
        self._send(event, self.sessions_of(agent_id))

    def to_role(self, role: Role, event: Event) -> None:
        rank = _RANK[role]
        self._fan_out(event, lambda agent: _RANK[agent.role] >= rank)

    def state_to_role(self, role: Role, event: Event) -> None:
        if self._fanout is None:
            self.to_role(role, event)
            return
        self._fanout.push(_RANK[role], event.event, event.model_dump_json())

    def end_sessions(self, agent_id: str, reason: str) -> None:
        """Every live session of the agent: ``session_ended``, then close 4000. A session in
        the middle of a request (it may be the one that asked to log out) gets that request's
        reply first; it carries out nothing it sends after this."""
        text = Event(event="session_ended", data={"reason": reason}).model_dump_json()
        for session in self.sessions_of(agent_id):
            # past any held frames: the session is over, the login reply no longer matters
            session.held = None
            session.ending = True
            log.info("console session of agent %s from %s ended: %r",
                     agent_id, session.peer, reason)
            if session.answering:
                session.end_after = text
            else:
                self.finish_ending(session, text)

    def finish_ending(self, session: _Session, text: str) -> None:
        if session.outbox.put(text):
            session.outbox.put_close(_Close(CLOSE_SESSION_ENDED, "session ended"))
        else:
            self._too_slow(session)

    def _targets(self, wanted: Callable[[AgentIdentity], bool]) -> list[_Session]:
        return [s for s in self._sessions
                if s.agent is not None and not s.ending and wanted(s.agent)]

    def _fan_out(self, event: Event, wanted: Callable[[AgentIdentity], bool]) -> None:
        self._send(event, self._targets(wanted))

    def _send(self, event: Event, targets: list[_Session]) -> None:
        if not targets:
            return
        text = event.model_dump_json()
        now: list[_Session] = []
        for session in targets:
            if session.writable_now():
                now.append(session)
            elif not session.send(text):
                self._too_slow(session)
        if not now:
            return
        if not self._pending and len(now) <= FAN_OUT_CHUNK:
            broadcast([s.conn for s in now], text.encode(), text=True)
            return
        for session in now:
            session.pipelined += 1
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._drain)
        self._pending.append((text.encode(), now, 0))

    def _drain(self) -> None:
        """Write the oldest pushes to ``FAN_OUT_CHUNK`` more sockets; again next turn if any
        are left. A session ended meanwhile still gets what was pushed before its end (its
        ``session_ended`` waits behind it); one dropped as too slow gets nothing more."""
        budget = FAN_OUT_CHUNK
        while self._pending and budget > 0:
            data, sessions, done = self._pending[0]
            chunk = sessions[done:done + budget]
            budget -= len(chunk)
            if done + len(chunk) < len(sessions):
                self._pending[0] = (data, sessions, done + len(chunk))
            else:
                self._pending.popleft()
            broadcast([s.conn for s in chunk if not s.dropped], data, text=True)
            for session in chunk:
                session.leave_pipeline()
        if self._pending:
            asyncio.get_running_loop().call_soon(self._drain)


# -- the server ----------------------------------------------------------------------------------


class ConsoleServer:
    """The console listener. ``start()``, then ``port`` and ``push``; ``close()`` at the end."""

    def __init__(self, settings: ConsoleSettings, backend: ConsoleBackend, *,
                 clock: Callable[[], float] = time.monotonic, relay: SipRelay | None = None,
                 tls: ssl.SSLContext | None = None, fanout: FanoutProcess | None = None
                 ) -> None:
        self._settings = settings
        #: browser phones' SIP to Asterisk (``/sip``), when agents may have browser phones
        self._relay = relay
        self._tls = tls
        self._backend = backend
        #: drives the rate limit and the login lockout (tests step it instead of sleeping)
        self._clock = clock
        #: wrong passwords per (agent id, address); failed logins per address
        self._guard = LoginGuard(settings.max_login_failures, settings.lockout_s)
        self._throttle = AddressThrottle(settings.max_address_failures,
                                         settings.address_window_s)
        self._account_throttle = AddressThrottle(settings.max_account_failures,
                                                 settings.account_window_s)
        self._known = KnownAddresses()
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Server | None = None
        self._origins: frozenset[str] = frozenset()
        self._static_root = settings.static_dir
        self.close_grace_s = CLOSE_GRACE_S
        #: the process that writes pushes to a role (wallboards, queue figures) to the consoles'
        #: second sockets; None: this server writes them to every session itself
        self._fanout = fanout
        self._push = _Push(self._sessions, self._drop_slow, fanout)
        self.push: ConsolePush = self._push

    @property
    def fanout(self) -> FanoutProcess | None:
        """The relay that writes this server's pushes to a role, if there is one."""
        return self._fanout

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the console server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        settings = self._settings
        self._static_root = await asyncio.to_thread(settings.static_dir.resolve)
        self._server = await serve(
            self._handle, settings.host, settings.port,
            process_request=self._process_request,
            select_subprotocol=self._subprotocol,
            ssl=self._tls,
            # no permessage-deflate: compressing each push once per connection was most of the
            # engine's CPU with hundreds of consoles, and compression next to secrets invites
            # CRIME/BREACH-style guessing; one serialised text goes to every session as is
            compression=None,
            max_size=settings.max_message_bytes,
            ping_interval=KEEPALIVE_S, ping_timeout=KEEPALIVE_S,
            server_header=None,
            logger=_ws_log,
            # the allowed origins name the bound port: know them before the first handshake
            start_serving=False,
        )
        self._origins = self._allowed_origins()
        if self._fanout is not None:
            try:
                await self._fanout.start(self._origins)
            except BaseException:
                self._server.close()
                raise
        await self._server.start_serving()
        log.info("agent console listening on %s://%s:%d/", "https" if self._tls else "http",
                 settings.host, self.port)

    async def close(self) -> None:
        """Stop listening, close every connection (1001), wait for every handler."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        sessions = list(self._sessions)
        # websockets' own close of a connection that does not read would wait forever
        await asyncio.gather(*(
            self._close_conn(s.conn, CloseCode.GOING_AWAY, "server shutting down")
            for s in sessions
        ))
        # a handler still inside a backend call that does not return must not hold up shutdown
        handlers = {s.handler for s in sessions if s.handler is not None}
        if handlers:
            _, stuck = await asyncio.wait(handlers, timeout=self.close_grace_s)
            for task in stuck:
                task.cancel()
        await server.wait_closed()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._fanout is not None:
            await self._fanout.close()

    def _allowed_origins(self) -> frozenset[str]:
        if self._settings.allowed_origins:
            return frozenset(o.rstrip("/") for o in self._settings.allowed_origins)
        port, host = self.port, self._settings.host
        scheme = "https" if self._tls else "http"
        origins = {f"{scheme}://127.0.0.1:{port}", f"{scheme}://localhost:{port}"}
        if host not in ("", "0.0.0.0", "::"):  # noqa: S104 - compared, not bound
            origins.add(f"{scheme}://[{host}]:{port}" if ":" in host
                        else f"{scheme}://{host}:{port}")
        return frozenset(origins)

    def _subprotocol(self, conn: ServerConnection,
                     offered: typing.Sequence[Subprotocol]) -> Subprotocol | None:
        """``sip`` on the phone's relay (JsSIP insists on it); none on the console's ``/ws``."""
        if conn.request is not None and conn.request.path.startswith(SIP_PATH + "?") \
                and SUBPROTOCOL in offered:
            return SUBPROTOCOL
        return None

    def _relay_agent(self, request: HttpRequest) -> str | None:
        """The agent a ``/sip?t=<token>`` request was issued to at console login, if any."""
        if self._relay is None:
            return None
        tokens = parse_qs(request.path.partition("?")[2]).get("t", [])
        return self._relay.agent_for(tokens[0]) if len(tokens) == 1 else None

    # -- HTTP ------------------------------------------------------------------------------------

    async def _process_request(self, conn: ServerConnection,
                               request: HttpRequest) -> HttpResponse | None:
        path = request.path.partition("?")[0]
        if request.method != "GET":
            return _http(http.HTTPStatus.METHOD_NOT_ALLOWED, b"GET only\n")
        if path in (WS_PATH, SIP_PATH):
            origins = request.headers.get_all("Origin")
            if len(origins) != 1 or origins[0] not in self._origins:
                log.warning("console websocket from %s refused: origin %r not allowed",
                            _peer(conn), origins[0] if origins else None)
                return _http(http.HTTPStatus.FORBIDDEN, b"origin not allowed\n")
            if path == SIP_PATH and self._relay_agent(request) is None:
                log.warning("SIP relay from %s refused: no valid console-login token",
                            _peer(conn))
                return _http(http.HTTPStatus.FORBIDDEN, b"log in to the console first\n")
            return None  # websockets completes the handshake (426 for a plain GET)
        if request.headers.get_all("Upgrade"):
            return _http(http.HTTPStatus.NOT_FOUND, b"the websocket is at /ws\n")
        if path == PLAYBACK_PATH:
            return await self._recording(conn, request)
        found = await asyncio.to_thread(read_static, self._static_root, path)
        if found is None:
            return _http(http.HTTPStatus.NOT_FOUND, b"not found\n")
        body, content_type = found
        return _http(http.HTTPStatus.OK, body, content_type)

    async def _recording(self, conn: ServerConnection, request: HttpRequest) -> HttpResponse:
        """A part of a recording's audio for a one-time ticket (``seats/playback.py``); never
        cached. Refusals are logged at INFO only: anyone may knock without logging in."""
        query = parse_qs(request.path.partition("?")[2])
        tickets, parts = query.get("t", []), query.get("p", ["0"])
        found = None
        if len(tickets) == 1 and tickets[0] and len(parts) == 1 and parts[0].isdecimal() \
                and len(parts[0]) <= 6:
            found = await self._backend.recording_audio(tickets[0], int(parts[0]),
                                                        _address(conn))
        if found is None:
            log.info("recording fetch from %s refused: no valid ticket for it", _peer(conn))
            return _http(http.HTTPStatus.NOT_FOUND, b"no such ticket or part (used or"
                         b" expired)\n", cache="no-store")
        return _http(http.HTTPStatus.OK, found, "application/octet-stream", cache="no-store")

    # -- one connection --------------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        if conn.request is not None and conn.request.path.partition("?")[0] == SIP_PATH:
            agent_id = self._relay_agent(conn.request)
            if self._relay is not None and agent_id is not None:
                await self._relay.serve(conn, agent_id, _peer(conn))
            return
        session = _Session(conn, self._settings, self._clock())
        self._sessions.add(session)
        session.writer = asyncio.create_task(self._write_loop(session))
        try:
            await self._read_loop(session)
            # the read loop ended by queueing a close for the writer to deliver. Keep reading
            # (and dropping) meanwhile: unread frames pause the socket (flow control), and the
            # peer's answer to our close would never be seen.
            while True:
                await conn.recv()
        except ConnectionClosed:
            pass
        finally:
            await self._finish(session)

    async def _read_loop(self, session: _Session) -> None:
        loop = asyncio.get_running_loop()
        login_deadline = loop.time() + self._settings.login_timeout
        while True:
            if session.agent is None:
                try:
                    async with asyncio.timeout_at(login_deadline):
                        message = await session.conn.recv()
                except TimeoutError:
                    log.warning("console connection from %s: no login in time", session.peer)
                    self._reply(session, Error(code=ErrorCode.LOGIN_TIMEOUT,
                                               message="no login in time"))
                    session.outbox.put_close(_Close(CLOSE_LOGIN_TIMEOUT, "login timeout"))
                    return
            else:
                message = await session.conn.recv()
            if session.ending:
                return  # ended (logged out, forced out, too slow): nothing more is carried out
            if not session.bucket.take(self._clock()):
                if session.bucket.flooding:
                    log.warning("console connection from %s (agent %s) closed: flooding",
                                session.peer, session.agent.agent_id if session.agent else "-")
                    session.outbox.put_close(_Close(CloseCode.POLICY_VIOLATION, "flooding"))
                    return
                self._reply(session, Error(id=_peek_id(message), code=ErrorCode.RATE_LIMITED,
                                           message="too many messages: this one was dropped"))
                continue
            await self._on_message(session, message)

    async def _on_message(self, session: _Session, message: str | bytes) -> None:
        session.answering = True
        try:
            await self._answer(session, message)
        finally:
            session.answering = False
        text, session.end_after = session.end_after, None
        if text is not None:
            self._push.finish_ending(session, text)

    async def _answer(self, session: _Session, message: str | bytes) -> None:
        agent = session.agent
        checked = check_message(message, agent.role if agent else None)
        if isinstance(checked, Error):
            self._reply(session, checked)
        elif isinstance(checked, Login):
            await self._login(session, checked)
        elif isinstance(checked, Ping):
            self._reply(session, Result(id=checked.id, data={"time": time.time()}))
        else:
            assert agent is not None  # check_message refuses commands before login
            self._reply(session, await self._command(agent, checked))

    def _login_pause(self, agent_id: str, address: str) -> tuple[str, str] | None:
        """Why logins for ``agent_id`` from ``address`` are paused (for the log, for the
        client), or ``None``. Unknown ids are paused like known ones."""
        now = self._clock()
        by_id = "too many failed logins: logins for this id are paused, try later"
        if self._throttle.paused(address, now):
            return ("logins from that address are paused", "too many failed logins from this"
                    " address: logins from it are paused, try later")
        if self._account_throttle.paused(agent_id, now) \
                and (agent_id, address) not in self._known:
            return "logins for it are paused (except from the agent's known addresses)", by_id
        if self._guard.locked((agent_id, address), now):
            return "logins for it from that address are paused", by_id
        return None

    async def _login(self, session: _Session, login: Login) -> None:
        agent_id, address = login.agent_id, session.address
        # The guards count unknown ids exactly like known ones, so ``login_paused`` (like
        # ``bad_credentials``) never tells whether the id exists; the password is not checked.
        paused = self._login_pause(agent_id, address)
        if paused is not None:
            log.warning("console login for agent %s from %s refused: %s", agent_id,
                        session.peer, paused[0])
            self._reply(session, Error(id=login.id, code=ErrorCode.LOGIN_PAUSED,
                                       message=paused[1]))
            return
        try:
            agent = await self._backend.authenticate(agent_id, login.password)
        except Exception:
            log.exception("console backend failed to authenticate agent %s", agent_id)
            self._reply(session, Error(id=login.id, code=ErrorCode.INTERNAL,
                                       message="login failed: internal error"))
            return
        if agent is None:
            log.warning("console login for agent %s from %s refused: bad credentials",
                        agent_id, session.peer)
            if self._guard.failed((agent_id, address), self._clock()):
                log.warning("console logins for agent %s from %s paused for %.0f s after %d"
                            " failures", agent_id, address, self._settings.lockout_s,
                            self._settings.max_login_failures)
            if self._account_throttle.failed(agent_id, self._clock()):
                log.warning("console logins for agent %s paused for new addresses: %d failed"
                            " logins within %.0f s", agent_id,
                            self._settings.max_account_failures, self._settings.account_window_s)
            if self._throttle.failed(address, self._clock()):
                log.warning("console logins from %s paused: %d failed logins within %.0f s",
                            address, self._settings.max_address_failures,
                            self._settings.address_window_s)
            self._reply(session, Error(id=login.id, code=ErrorCode.BAD_CREDENTIALS,
                                       message="wrong agent id or password"))
            return
        self._guard.succeeded((agent_id, address))
        self._known.add(agent_id, address)
        session.agent, session.held = agent, []
        self._push.logged_in(session)
        try:
            data = await self._backend.snapshot(agent)
        except Exception as exc:
            self._push.logged_out(session)
            session.agent, session.held = None, None
            self._reply(session, self._refusal(login.id, exc, f"snapshot for {agent_id}"))
            await self._closed(agent, session)
            return
        phone = data.get("phone")
        if isinstance(phone, dict) and self._relay is not None:
            phone["ws_path"] = f"{SIP_PATH}?t={self._relay.tokens.issue(agent.agent_id)}"
        if self._fanout is not None:
            # told to the relay before the reply leaves: the console connects right after it
            session.fanout_token = secrets.token_urlsafe(24)
            self._fanout.allow(session.fanout_token, _RANK[agent.role], agent.agent_id)
            data["fanout"] = {"port": self._fanout.port,
                              "path": f"{FANOUT_PATH}?t={session.fanout_token}"}
        log.info("console login: agent %s (%s) from %s", agent.agent_id, agent.role.value,
                 session.peer)
        self._reply(session, Result(id=login.id, data=data))
        if not session.release_held():
            self._drop_slow(session)

    async def _command(self, agent: AgentIdentity, request: Request) -> Result | Error:
        try:
            return Result(id=request.id, data=await self._backend.command(agent, request))
        except Exception as exc:
            return self._refusal(request.id, exc, f"{request.type} for {agent.agent_id}")

    @staticmethod
    def _refusal(request_id: str, exc: Exception, what: str) -> Error:
        """The reply for a backend failure: its ``ConsoleError`` code, else ``internal``."""
        if isinstance(exc, ConsoleError):
            try:
                return Error(id=request_id, code=ErrorCode(exc.code), message=exc.message)
            except ValueError:
                log.error("console backend: %s refused with unknown code %r", what, exc.code)
        else:
            log.error("console backend failed: %s", what, exc_info=exc)
        return Error(id=request_id, code=ErrorCode.INTERNAL,
                     message="internal error: the request may not have been carried out")

    def _reply(self, session: _Session, reply: BaseModel) -> None:
        # a reply is never held back behind a login in progress: it answers this connection.
        # A session ended during the request it is answering still gets that reply.
        if session.ending and session.end_after is None:
            return
        if not session.outbox.put(reply.model_dump_json()):
            self._drop_slow(session)

    async def _write_loop(self, session: _Session) -> None:
        while True:
            item = await session.outbox.get()
            session.writing = True
            await session.pipeline_clear()  # what was pushed before this item
            if isinstance(item, _Close):
                await self._close_conn(session.conn, item.code, item.reason)
                return
            try:
                await session.conn.send(item)
            except ConnectionClosed:
                return
            session.writing = False

    async def _close_conn(self, conn: ServerConnection, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self.close_grace_s):
                await conn.close(code, reason)
        except TimeoutError:
            conn.transport.abort()

    def _drop_slow(self, session: _Session) -> None:
        if session.dropped:
            return
        session.dropped = session.ending = True
        session.end_after = None
        log.warning("console client %s (agent %s) too slow: %d frames waiting; disconnecting",
                    session.peer, session.agent.agent_id if session.agent else "-",
                    session.limit)
        task = asyncio.get_running_loop().create_task(self._abandon(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _abandon(self, session: _Session) -> None:
        if session.writer is not None:
            session.writer.cancel()  # it may be stuck writing to the client that does not read
        await self._close_conn(session.conn, CloseCode.POLICY_VIOLATION, "too slow")

    async def _finish(self, session: _Session) -> None:
        self._sessions.discard(session)
        self._push.logged_out(session)
        session.ending = True
        if session.fanout_token is not None and self._fanout is not None:
            self._fanout.end(session.fanout_token)
            session.fanout_token = None
        if session.writer is not None:
            session.writer.cancel()
            await asyncio.wait([session.writer])
        if session.agent is not None:
            log.info("console logout: agent %s (%s) from %s", session.agent.agent_id,
                     session.agent.role.value, session.peer)
            await self._closed(session.agent, session)

    async def _closed(self, agent: AgentIdentity, session: _Session) -> None:
        left = sum(1 for s in self._push.sessions_of(agent.agent_id) if s is not session)
        if left == 0 and self._relay is not None:
            await self._relay.end_agent(agent.agent_id)
        try:
            await self._backend.session_closed(agent, left)
        except Exception:
            log.exception("console backend failed on the close of a session of %s",
                          agent.agent_id)
