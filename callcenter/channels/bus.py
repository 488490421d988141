"""The bus edge: one MQTT connection (aiomqtt) as one broker user, and payload decoding.

``Bus`` connects as a user with the password from ``<state_dir>/mqtt-users.json``, subscribes
(QoS 1, persistent session under a fixed client id, so what is published while we are away
waits for us), hands every message to a handler and acknowledges it only after the handler
returned: a handler that fails, or a process killed before its handler committed, means the
broker sends the message again. ``publish`` is QoS 1 and returns once the broker's PUBACK came.
A lost connection is re-made with exponential backoff; a refused login or subscription is
fatal (``BusError`` from ``run``), since waiting will not fix it. Library errors become
``BusError`` here and nowhere else.

``decode`` turns a received payload into its pydantic model or a ``Malformed`` (with the
message id when one could be read, so the receiver can report the failure instead of dropping
it silently). It never raises: too large, not UTF-8, not JSON, nested too deeply, outside a
model's bounds are all ``Malformed``.

Poison messages never block the next one. A receiver parks what it cannot use as a dead letter
(``park``: the table ``bus_dead_letters`` in its own database, with the reason) and returns, so
the message is acknowledged. A handler that raises ``Retry`` means "not now" (the database is
busy): the connection is re-made and the broker sends the message again. A handler that raises
anything else for the same message ``POISON_AFTER`` times in a row gets it parked by
``on_poison`` instead of another round, so not even an unforeseen bug loops for ever.

aiomqtt does not expose manual acknowledgement yet (empicano/aiomqtt#345); paho's
``manual_ack_set``/``ack`` on the underlying client are used, in ``_new_client`` and
``_handle`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import aiosqlite
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ValidationError

from callcenter.channels.messages import (
    MAX_PAYLOAD_BYTES,
    TOPIC_PREFIX,
    DeliveryReport,
    Inbound,
    Outbound,
)
from callcenter.channels.mosquitto import user_password
from callcenter.channels.settings import ChannelsSettings
from callcenter.errors import BusError
from callcenter.store.spool import unavailable
from callcenter.store.tx import transaction

log = logging.getLogger(__name__)

#: (topic, payload) of one received message; returning means "taken" (it is acknowledged)
Handler = Callable[[str, bytes], Awaitable[None]]
OnConnect = Callable[[], Awaitable[None]]
#: (topic, payload, reason): park a message its handler kept failing on
OnPoison = Callable[[str, bytes, str], Awaitable[None]]

#: a message whose handler failed this many times in a row (not ``Retry``) is parked
POISON_AFTER = 3

_MODELS: dict[str, type[Outbound] | type[DeliveryReport] | type[Inbound]] = {
    "outbox": Outbound, "delivery": DeliveryReport, "inbound": Inbound}
_ID = re.compile(r"^[A-Za-z0-9_.-]{8,64}$")
#: CONNACK reason codes a retry cannot fix (v3: 4, 5; v5: 134, 135)
_REFUSED = {4, 5, 134, 135}


# -- decoding (pure) ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Malformed:
    """A payload that does not fit its topic's model; ``message_id`` if one could be read."""

    topic: str
    reason: str
    message_id: str | None = None


Decoded = Outbound | DeliveryReport | Inbound | Malformed


def decode(topic: str, payload: bytes) -> Decoded:
    """The model of ``payload`` on ``topic`` (``callcenter/<outbox|delivery|inbound>/<kind>``),
    checked against the topic's kind, or ``Malformed`` saying why not."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != TOPIC_PREFIX or parts[1] not in _MODELS:
        return Malformed(topic, "not a callcenter topic")
    model = _MODELS[parts[1]]
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Malformed(topic, f"payload of {len(payload)} bytes, more than "
                                f"{MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        return Malformed(topic, "payload is not UTF-8")
    except RecursionError:
        return Malformed(topic, "payload is not JSON: nested too deeply")
    except ValueError as exc:
        return Malformed(topic, f"payload is not JSON: {str(exc)[:200]}")
    id_field = "contact_id" if model is Inbound else "message_id"
    raw_id = data.get(id_field) if isinstance(data, dict) else None
    message_id = raw_id if isinstance(raw_id, str) and _ID.match(raw_id) else None
    try:
        item = model.model_validate(data)
    except ValidationError as exc:
        return Malformed(topic, f"invalid {model.__name__}: {validation_summary(exc)}",
                         message_id)
    except RecursionError:
        return Malformed(topic, f"invalid {model.__name__}: nested too deeply", message_id)
    if item.channel != parts[2]:
        return Malformed(topic, f"channel {item.channel!r} on the topic of {parts[2]!r}",
                         message_id)
    return item


def validation_summary(exc: ValidationError, limit: int = 400) -> str:
    """Where and what, without echoing the input values."""
    text = "; ".join(f"{'.'.join(_printable(str(p)[:64]) for p in e['loc']) or 'payload'}: "
                     f"{e['msg']}" for e in exc.errors()[:5])
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _printable(text: str) -> str:
    """A field name from a payload, safe for a log line or a terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


def encode(item: BaseModel) -> bytes:
    return item.model_dump_json().encode("utf-8")


# -- dead letters ---------------------------------------------------------------------------------

#: the table, in the engine's database (migration 7) and in each channel server's own
DEAD_LETTERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_dead_letters (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    digest     TEXT NOT NULL UNIQUE,       -- sha256 of topic and payload: a copy is counted
    topic      TEXT NOT NULL,
    sender     TEXT NOT NULL DEFAULT '',   -- the channel kind of the topic (the ACL vouches)
    message_id TEXT NOT NULL DEFAULT '',   -- message or contact id, if one could be read
    reason     TEXT NOT NULL,
    payload    TEXT NOT NULL,              -- at most the first KEEP_BYTES, as text
    size       INTEGER NOT NULL,           -- the whole payload's size in bytes
    seen       INTEGER NOT NULL DEFAULT 1, -- how many copies came
    first_at   REAL NOT NULL,
    last_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_dead_letters_last ON bus_dead_letters(last_at);
"""
#: at most this much of a dead letter's payload is kept (for people to look at)
KEEP_BYTES = 4096
#: dead letters kept at most (the oldest are forgotten first)
MAX_DEAD_LETTERS = 10_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    topic: str
    sender: str
    message_id: str
    reason: str
    payload: str
    size: int
    seen: int
    first_at: float
    last_at: float


def _digest(topic: str, payload: bytes) -> str:
    return hashlib.sha256(topic.encode("utf-8", "replace") + b"\0" + payload).hexdigest()


async def park(db: aiosqlite.Connection, topic: str, payload: bytes, reason: str,
               message_id: str | None, at: float) -> bool:
    """Keep a message nobody can use, with why; True if it is new (a copy is only counted)."""
    parts = topic.split("/")
    sender = parts[2][:32] if len(parts) == 3 and parts[0] == TOPIC_PREFIX else ""
    mid = message_id if message_id and _ID.match(message_id) else ""
    async with transaction(db), db.execute(
            "INSERT INTO bus_dead_letters (digest, topic, sender, message_id, reason, payload,"
            " size, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (digest) DO UPDATE SET seen = seen + 1, last_at = excluded.last_at"
            " RETURNING seen",
            (_digest(topic, payload), topic[:256], sender, mid, reason[:1000],
             payload[:KEEP_BYTES].decode("utf-8", "replace"), len(payload), at, at)) as cur:
        row = await cur.fetchone()
        # Bounded: past MAX_DEAD_LETTERS the oldest go (a misbehaving sender cannot fill
        # the database; the log keeps a line for each).
        await db.execute(
            "DELETE FROM bus_dead_letters WHERE id IN (SELECT id FROM bus_dead_letters"
            " ORDER BY last_at, id LIMIT max(0, (SELECT count(*) FROM bus_dead_letters) - ?))",
            (MAX_DEAD_LETTERS,))
    fresh = row is not None and row[0] == 1
    log.error("bus: %s message on %s parked as a dead letter (message id %s): %s",
              "a" if fresh else "another copy of a", topic, mid or "unreadable", reason)
    return fresh


async def list_dead_letters(db: aiosqlite.Connection, limit: int = 100) -> list[DeadLetter]:
    """The latest dead letters first."""
    async with db.execute(
            "SELECT id, topic, sender, message_id, reason, payload, size, seen, first_at,"
            " last_at FROM bus_dead_letters ORDER BY last_at DESC, id DESC LIMIT ?",
            (limit,)) as cur:
        return [DeadLetter(*r) for r in await cur.fetchall()]


# -- the connection -------------------------------------------------------------------------------

class Retry(Exception):
    """Raised by a handler: not now (a busy database...); the broker sends the message again.
    Never makes a message a dead letter."""


async def take_or_retry(take: Callable[[str, bytes], Awaitable[None]], topic: str,
                        payload: bytes) -> None:
    """Run a handler's ``take``; a database that cannot take writes now (busy, locked, I/O)
    asks for the message again (``Retry``). Any other database error is the message's own
    (it fails every time): it propagates, and the bus parks the message after a few tries."""
    try:
        await take(topic, payload)
    except sqlite3.Error as exc:
        if not unavailable(exc):
            raise
        raise Retry(f"the database: {exc}") from exc


class _HandlerFailed(Exception):
    """The handler raised: drop the connection so the broker redelivers."""


class Bus:
    """One broker connection for ``user``; ``run`` it (a task), ``publish`` on it."""

    def __init__(self, channels: ChannelsSettings, state_dir: Path, user: str, *,
                 client_id: str, subscriptions: Sequence[str] = (),
                 handler: Handler | None = None, on_connect: OnConnect | None = None,
                 on_poison: OnPoison | None = None, persistent: bool = True) -> None:
        self.channels = channels
        self.state_dir = state_dir
        self.user = user
        #: the broker replaces it with the user name (``use_username_as_clientid``): pass that
        self.client_id = client_id
        self.subscriptions = tuple(subscriptions)
        self.handler = handler
        self.on_connect = on_connect
        self.on_poison = on_poison
        self.persistent = persistent
        #: successful connects so far (more than one: the connection was lost or taken)
        self.connections = 0
        #: digest of a message whose handler failed -> failures in a row (a few, bounded)
        self._failing: OrderedDict[str, int] = OrderedDict()
        #: handler failures in a row, whatever the message (reconnects back off on them)
        self._streak = 0
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the connection in a task of its own (``close`` ends it)."""
        user_password(self.state_dir, self.user)  # ConfigError now rather than in the task
        self._task = asyncio.create_task(self.run(), name=f"bus-{self.client_id}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BusError):
                await task

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task ``start`` made; it ends only by ``close`` or a fatal ``BusError``."""
        return self._task

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, wait_s: float | None = None) -> None:
        """Return once connected and subscribed; ``BusError`` if the bus gave up (or on
        after ``wait_s`` seconds)."""
        waiter = asyncio.ensure_future(self._connected.wait())
        waits: set[asyncio.Future[Any]] = {waiter}
        if self._task is not None:
            waits.add(self._task)
        try:
            done, _ = await asyncio.wait(waits, timeout=wait_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if waiter in done:
            return
        if self._task is not None and self._task.done():
            exc = None if self._task.cancelled() else self._task.exception()
            raise BusError(f"bus {self.client_id} stopped: {exc or 'closed'}")
        raise BusError(f"bus {self.client_id}: not connected to "
                       f"{self.channels.mqtt_host}:{self.channels.mqtt_port} after {wait_s}s")

    async def run(self) -> None:
        """Connect, subscribe and dispatch until cancelled, reconnecting with backoff.

        Raises ``BusError`` when the broker refuses the login or a subscription."""
        password = user_password(self.state_dir, self.user).get_secret_value()
        failures = 0
        while True:
            client = self._new_client(password)
            try:
                async with client:
                    failures = self._streak
                    self.connections += 1
                    self._client, self._lost = client, asyncio.Event()
                    await self._subscribe(client)
                    self._connected.set()
                    log.info("bus: %s connected to %s:%d", self.client_id,
                             self.channels.mqtt_host, self.channels.mqtt_port)
                    if self.on_connect is not None:
                        await self._on_connect()
                    async for message in client.messages:
                        await self._handle(client, message)
            except MqttConnectError as exc:
                code = getattr(exc.rc, "value", exc.rc)
                if code in _REFUSED:
                    raise BusError(f"the broker refused user {self.user!r}: {exc}") from exc
                log.warning("bus: %s: connect refused: %s", self.client_id, exc)
            except aiomqtt.MqttError as exc:
                level = logging.WARNING if failures == 0 else logging.DEBUG
                log.log(level, "bus: %s: %s", self.client_id, exc)
            except _HandlerFailed:
                pass  # logged where it happened
            finally:
                if self._client is client:
                    self._client = None
                self._connected.clear()
                self._lost.set()
            delay = min(self.channels.reconnect_min * 2 ** min(failures, 30),
                        self.channels.reconnect_max)
            failures += 1
            await asyncio.sleep(delay)

    def _new_client(self, password: str) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.channels.mqtt_host, self.channels.mqtt_port, username=self.user,
            password=password, identifier=self.client_id, clean_session=not self.persistent,
            keepalive=self.channels.keepalive, timeout=self.channels.io_timeout)
        # Acknowledge after the handler, not on arrival (aiomqtt#345: no public API yet).
        client._client.manual_ack_set(True)
        return client

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        if not self.subscriptions:
            return
        codes = await client.subscribe([(t, 1) for t in self.subscriptions])
        for topic, code in zip(self.subscriptions, codes, strict=False):
            value = (code.value if isinstance(code, ReasonCode)
                     else code if isinstance(code, int) else 0x80)
            if value >= 0x80:
                raise BusError(f"the broker refused user {self.user!r} a subscription to "
                               f"{topic} (check the ACL file)")

    async def _on_connect(self) -> None:
        assert self.on_connect is not None
        try:
            await self.on_connect()
        except Exception:
            log.exception("bus: %s: on-connect hook failed", self.client_id)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload
        if isinstance(payload, bytes | bytearray):
            raw = bytes(payload)
        else:
            raw = str(payload if payload is not None else "").encode()
        if self.handler is not None:
            topic = str(message.topic)
            try:
                await self.handler(topic, raw)
            except Retry as exc:
                self._streak += 1
                log.warning("bus: %s: a message on %s must wait (%s); reconnecting so the "
                            "broker sends it again", self.client_id, topic, exc)
                raise _HandlerFailed from exc
            except Exception as exc:
                self._streak += 1
                if not await self._poisoned(topic, raw, exc):
                    log.exception("bus: %s: handling a message on %s failed; reconnecting so "
                                  "the broker sends it again", self.client_id, topic)
                    raise _HandlerFailed from exc
            else:
                if self._failing:
                    self._failing.pop(_digest(topic, raw), None)
            self._streak = 0
        client._client.ack(message.mid, message.qos)

    async def _poisoned(self, topic: str, raw: bytes, exc: Exception) -> bool:
        """Count a handler failure on this message; park it (True) after ``POISON_AFTER``."""
        key = _digest(topic, raw)
        count = self._failing.pop(key, 0) + 1
        if count < POISON_AFTER or self.on_poison is None:
            self._failing[key] = count
            while len(self._failing) > 64:
                self._failing.popitem(last=False)
            return False
        log.error("bus: %s: handling a message on %s failed %d times in a row; parking it",
                  self.client_id, topic, count, exc_info=exc)
        try:
            await self.on_poison(topic, raw, f"the receiver failed {count} times on it: "
                                             f"{type(exc).__name__}: {str(exc)[:300]}")
        except Exception as exc2:
            self._failing[key] = count
            raise _HandlerFailed from exc2
        return True

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1; return once the broker acknowledged it.

        ``BusError`` when not connected, on timeout, or when the connection is lost first (the
        broker may or may not have it: publish again; receivers de-duplicate)."""
        client, lost = self._client, self._lost
        if client is None or not self._connected.is_set():
            raise BusError("not connected to the broker")
        pub = asyncio.ensure_future(
            client.publish(topic, payload, qos=1, timeout=self.channels.io_timeout))
        gone = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({pub, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not pub.done():
                pub.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await pub
        if pub.cancelled():
            raise BusError(f"connection lost before the broker acknowledged {topic}")
        exc = pub.exception()
        if isinstance(exc, aiomqtt.MqttError):
            raise BusError(f"publish to {topic} failed: {exc}") from exc
        if exc is not None:
            raise exc
