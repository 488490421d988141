"""The AMI edge: one supervised connection to Asterisk's manager interface.

panoramisk's ``AMIProtocol`` does the wire framing and matches responses to actions; this adapter
owns everything around it, because panoramisk's own ``Manager`` gets these wrong for us:

- every action name, header name and value is checked before anything is written
  (``ami_link.build_action``), so CR/LF can never inject a second action;
- login is challenge-response (MD5), so the secret never crosses the wire;
- a Ping every ``ping_interval``; no word from Asterisk for ``ping_timeout`` closes the link, so a
  dead or half-open connection is noticed within seconds (panoramisk never checks the reply);
- reconnect with exponential backoff; after each login ``on_ready`` runs (the controller resyncs
  from ``CoreShowChannels``);
- actions in flight when the link drops fail with ``AmiConnectionError``. Nothing is resent
  (panoramisk's Manager re-sends "awaiting" actions after reconnect: an Originate could ring twice).

Events reach ``on_event`` as typed objects (``ami_events``), synchronously and in order.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message
from pydantic import SecretStr

from callcenter.config import AmiSettings
from callcenter.errors import AmiActionError, AmiAuthError, AmiConnectionError, AmiError
from callcenter.telephony.ami_events import AmiEvent, parse_event
from callcenter.telephony.ami_link import Backoff, Liveness, build_action, md5_login_key

log = logging.getLogger(__name__)
# panoramisk logs whole messages at debug level; they may carry caller data.
logging.getLogger("panoramisk").setLevel(logging.WARNING)

EventHandler = Callable[[AmiEvent], None]
ReadyHandler = Callable[[], Awaitable[None]]
LostHandler = Callable[[], None]
#: raw headers of a plain event (``on_headers``)
HeadersHandler = Callable[[dict[str, str]], None]
#: told (action name, seconds from writing the action to its end, ``answered`` / ``lost`` /
#: ``timeout``) after every action sent (metrics: ``callcenter/ops/``); must not block
ActionObserver = Callable[[str, float, str], None]
Response = Mapping[str, str]


class _Link:
    """What panoramisk's protocol expects of its ``factory``, bound to one TCP connection."""

    forgetable_actions: tuple[str, ...] = ()

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.awaiting_actions: deque[Any] = deque()  # panoramisk parks actions here; we drop them
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.protocol: AMIProtocol | None = None

    def dispatch(self, message: Any) -> None:
        self.client._heard()
        self.client._dispatch(message)

    def dispatch_headers(self, headers: dict[str, str]) -> None:
        self.client._dispatch_headers(headers)

    def connection_lost(self, exc: object) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


_EOM: Final = "\r\n\r\n"
#: bytes read from Asterisk at a time (under malloc's mmap threshold)
READ_BUFFER: Final = 64 * 1024


def event_headers(text: str) -> dict[str, str]:
    """One AMI message's ``Name: value`` lines as a plain dict (a repeated name: the last)."""
    headers: dict[str, str] = {}
    for line in text.split("\r\n"):
        name, sep, value = line.partition(": ")
        if sep:
            headers[name] = value
    return headers


class _Protocol(AMIProtocol, asyncio.BufferedProtocol):  # type: ignore[misc]
    """panoramisk's protocol, plus: every byte from Asterisk proves the link alive, and an event
    that answers no action (most of the traffic) skips panoramisk's message objects: it is split
    into a plain dict once and handed on. Responses, and events that carry an ``ActionID`` (lists,
    ``OriginateResponse``), go through panoramisk, which matches them to their action.

    It reads into a buffer of its own (``BufferedProtocol``): for a plain protocol asyncio
    allocates 256 KiB per read (a ``recv`` on TCP, an ``SSLObject.read`` on TLS), which costs
    ~8-11 us a read on these machines against ~1 us, and AMI's events come a few hundred bytes
    at a time."""

    _buffer: bytearray | None = None
    #: one per link: a character split between two reads (a caller's CJK name) is kept whole
    _decoder: codecs.IncrementalDecoder | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._buffer is None:
            self._buffer = bytearray(READ_BUFFER)
        return memoryview(self._buffer)

    def buffer_updated(self, nbytes: int) -> None:
        assert self._buffer is not None
        self.data_received(bytes(memoryview(self._buffer)[:nbytes]))

    def data_received(self, data: bytes) -> None:
        link = self.factory
        if link is None:
            super().data_received(data)
            return
        link.client._heard()
        if self._decoder is None:
            self._decoder = codecs.getincrementaldecoder(
                getattr(self, "encoding", "utf-8"))("replace")
        text = self._decoder.decode(data)
        if getattr(self, "version", None) is None and text.startswith("Asterisk Call Manager/"):
            self.version = text.partition("\r\n")[0].partition("/")[2].strip()
        if self.queue:
            text = self.queue.popleft() + text
        parts = text.split(_EOM)
        self.queue.append(parts.pop())
        for part in parts:
            part = part.strip()
            if part.startswith("Event: ") and "\nActionID: " not in part:
                headers = event_headers(part)
                if headers.get("Event", "").lower() == "shutdown":
                    self.connection_lost(None)
                link.dispatch_headers(headers)
                continue
            message = Message.from_line(part)
            if message is not None:
                self.handle_message(message)


class AmiClient:
    def __init__(
        self,
        settings: AmiSettings,
        secret: SecretStr,
        on_event: EventHandler | None = None,
        on_ready: ReadyHandler | None = None,
        tls: ssl.SSLContext | None = None,
        on_headers: HeadersHandler | None = None,
        on_lost: LostHandler | None = None,
    ) -> None:
        """``on_headers`` (benchmarks, diagnostics) gets every plain event's raw headers, before
        and besides the typed ``on_event`` handlers. ``on_lost`` is called (not awaited) as a
        link is dropped; ``on_ready`` runs again after the next login."""
        self.settings = settings
        self._on_headers = on_headers
        self._tls = tls
        self._secret = secret
        self._handlers: list[EventHandler] = [on_event] if on_event else []
        self._on_ready = on_ready
        self._on_lost = on_lost
        self._link: _Link | None = None
        self._liveness = Liveness(settings.ping_timeout)
        self._backoff = Backoff(settings.reconnect_min, settings.reconnect_max)
        self._supervisor: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()  # set while the link is down (after a first login)
        self.connections = 0  # how many times a login succeeded (tests and status read it)
        self.last_error: str | None = None
        #: told of every action's round trip (``ActionObserver``)
        self.action_observers: list[ActionObserver] = []

    def add_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def remove_handler(self, handler: EventHandler) -> None:
        self._handlers.remove(handler)

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and log in once; raise ``AmiConnectionError``/``AmiAuthError`` on failure."""
        await self._open()

    async def start(self) -> None:
        """Connect (raising on a first failure), then keep the link up in the background."""
        await self._open()
        self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        self._drop_link()

    async def _supervise(self) -> None:
        while True:
            link = self._link
            if link is not None:
                await self._watch(link)
            self.connected.clear()
            delay = self._backoff.next_delay()
            log.warning("AMI link down (%s); reconnecting in %.1fs", self.last_error, delay)
            await asyncio.sleep(delay)
            try:
                await self._open()
            except AmiAuthError as exc:
                self.last_error = str(exc)
                log.error("%s", exc)
            except AmiError as exc:
                self.last_error = str(exc)
            except Exception as exc:
                # A bug in a resync must not end reconnection for good.
                self.last_error = f"{type(exc).__name__} after login"
                log.exception("AMI link set-up failed")

    async def _watch(self, link: _Link) -> None:
        """Ping until the link is lost or Asterisk stays silent past ``ping_timeout``."""
        loop = asyncio.get_running_loop()
        # Checking at a fraction of the timeout bounds detection to ~1.25 x ping_timeout.
        tick = min(self.settings.ping_interval, self.settings.ping_timeout / 4)
        next_ping = loop.time()
        while not link.lost.done():
            now = loop.time()
            if self._liveness.is_dead(now):
                self.last_error = f"no answer from Asterisk for {self.settings.ping_timeout:g}s"
                log.warning("AMI %s; closing the link", self.last_error)
                break
            if now >= next_ping:
                self._liveness.ping_sent(now)
                self._write(link, build_action("Ping", {}))
                next_ping = now + self.settings.ping_interval
            await asyncio.wait({link.lost}, timeout=tick)
        if link.lost.done() and self.last_error is None:
            self.last_error = "connection lost"
        self._drop_link()

    def _drop_link(self) -> None:
        link, self._link = self._link, None
        self.connected.clear()
        if link is None:
            return
        self.disconnected.set()
        if link.protocol is not None and link.protocol.transport is not None:
            # abort(): a half-open peer would never acknowledge a graceful close
            link.protocol.transport.abort()
        if not link.lost.done():
            link.lost.set_result(None)
        if self._on_lost is not None:
            try:
                self._on_lost()
            except Exception:
                log.exception("AMI: the link-lost handler failed")

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        link = _Link(self)
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(_Protocol, s.host, s.port, ssl=self._tls),
                s.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise AmiConnectionError(
                f"cannot reach Asterisk AMI at {s.host}:{s.port}: {exc or 'timed out'}"
            ) from exc
        protocol.factory = link
        protocol.log = logging.getLogger("panoramisk.ami_protocol")
        protocol.encoding = "utf-8"
        link.protocol = protocol
        self._link = link
        self._liveness.heard_from_peer()
        try:
            await self._login(link)
        except BaseException:
            self._drop_link()
            raise
        try:
            if self._on_ready is not None:
                await self._on_ready()  # the controller resyncs before anyone sees "connected"
        except BaseException:
            self._drop_link()
            raise
        self.connections += 1
        self._backoff.reset()
        self.last_error = None
        self.disconnected.clear()
        self.connected.set()
        log.info("AMI connected to %s:%s", s.host, s.port)

    async def _login(self, link: _Link) -> None:
        reply = await self._send(link, build_action("Challenge", {"AuthType": "MD5"}))
        challenge = reply.get("Challenge", "")
        if not challenge:
            raise AmiAuthError("Asterisk refused the AMI challenge")
        key = md5_login_key(challenge, self._secret.get_secret_value())
        action = build_action(
            "Login",
            {"AuthType": "MD5", "Username": self.settings.username, "Key": key, "Events": "on"},
        )
        try:
            await self._send(link, action)
        except AmiActionError as exc:
            raise AmiAuthError(
                f"Asterisk refused the AMI login of user {self.settings.username!r}: {exc.message}"
            ) from exc

    # -- actions -----------------------------------------------------------------------------

    async def action(self, action: str, **headers: str | list[str]) -> Response:
        """Send one action and return its response; raise ``AmiActionError`` on ``Error``."""
        message = build_action(action, headers)
        return await self._send(self._require_link(), message)

    async def action_list(self, action: str, **headers: str | list[str]) -> list[Response]:
        """Send an action whose answer is an event list; return the events (no completion).

        An ``Error`` answer (Asterisk sends one instead of an empty list for some actions, e.g.
        ``PJSIPShowContacts`` with no contact) raises ``AmiActionError``."""
        message = build_action(action, headers)
        replies = await self._send_raw(self._require_link(), message, as_list=None)
        if not isinstance(replies, list):
            if replies.get("Response", "").lower() == "error":
                raise AmiActionError(action, replies.get("Message", "error"))
            return []
        return [r for r in replies[1:] if not r.get("Event", "").endswith("Complete")]

    async def originate(self, wait_s: float | None = None,
                        **headers: str | list[str]) -> tuple[Response, Response]:
        """Async Originate; return (the queued response, the OriginateResponse event).

        ``wait_s``: how long to wait for the OriginateResponse (default: the action timeout);
        give more than the originate's own ``Timeout`` when ringing a person.

        Never retried: if the link drops in between, the caller gets ``AmiConnectionError`` and
        must look at the live model to learn whether the call exists.
        """
        headers = {**headers, "Async": "true"}
        message = build_action("Originate", headers)
        replies = await self._send_raw(self._require_link(), message, as_list=None,
                                       wait_s=wait_s)
        if not isinstance(replies, list) or len(replies) < 2:
            raise AmiActionError("Originate", "no OriginateResponse")
        final = replies[-1]
        if final.get("Response", "").lower() != "success":
            raise AmiActionError("Originate", f"{final.get('Reason', '?')} (call not placed)")
        return replies[0], final

    def _require_link(self) -> _Link:
        link = self._link
        if link is None or link.lost.done():
            raise AmiConnectionError("AMI is not connected; action not sent")
        return link

    async def _send(self, link: _Link, message: dict[str, str | list[str]]) -> Response:
        reply = await self._send_raw(link, message, as_list=False)
        if reply.get("Response", "").lower() == "error":
            raise AmiActionError(str(message["Action"]), reply.get("Message", "error"))
        return dict(reply)

    async def _send_raw(
        self, link: _Link, message: dict[str, str | list[str]], *, as_list: bool | None,
        wait_s: float | None = None,
    ) -> Any:
        future = self._write(link, message, as_list=as_list)
        started = time.perf_counter()
        timeout = wait_s or self.settings.action_timeout
        done, _ = await asyncio.wait({future, link.lost}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        name = str(message["Action"])
        if future in done:
            self._observe(name, started, "answered")
            return _plain(future.result())
        future.cancel()
        self._observe(name, started, "lost" if link.lost in done else "timeout")
        if link.lost in done:
            raise AmiConnectionError(f"AMI link lost before {name} was answered; not resent")
        raise AmiConnectionError(f"AMI {name} not answered within {timeout:.0f}s")

    def _observe(self, action: str, started: float, result: str) -> None:
        for observer in self.action_observers:
            try:
                observer(action, time.perf_counter() - started, result)
            except Exception:
                log.exception("AMI action observer failed on %s", action)

    def _write(
        self, link: _Link, message: dict[str, str | list[str]], *, as_list: bool | None = False
    ) -> asyncio.Future[Any]:
        if link.protocol is None or link.lost.done():
            raise AmiConnectionError("AMI link lost; action not sent")
        future: asyncio.Future[Any] = link.protocol.send(message, as_list=as_list)
        return future

    # -- events ------------------------------------------------------------------------------

    def _heard(self) -> None:
        self._liveness.heard_from_peer()

    def _dispatch(self, message: Any) -> None:
        self._dispatch_headers(_plain(message))

    def _dispatch_headers(self, headers: dict[str, str]) -> None:
        if self._on_headers is not None:
            try:
                self._on_headers(dict(headers))
            except Exception:
                log.exception("AMI headers hook failed on %s", headers.get("Event", "?"))
        if not self._handlers:
            return
        event = parse_event(headers)
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("AMI event handler failed on %s", type(event).__name__)


def _plain(message: Any) -> Any:
    """panoramisk Message (case-insensitive dict) -> plain dict, or a list of them."""
    if isinstance(message, list):
        return [_plain(m) for m in message]
    return {str(k): str(v) for k, v in dict(message).items()}
