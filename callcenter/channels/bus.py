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
it silently).

aiomqtt does not expose manual acknowledgement yet (empicano/aiomqtt#345); paho's
``manual_ack_set``/``ack`` on the underlying client are used, in ``_new_client`` and
``_handle`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ValidationError

from callcenter.channels.messages import TOPIC_PREFIX, DeliveryReport, Inbound, Outbound
from callcenter.channels.mosquitto import user_password
from callcenter.channels.settings import ChannelsSettings
from callcenter.errors import BusError

log = logging.getLogger(__name__)

#: (topic, payload) of one received message; returning means "taken" (it is acknowledged)
Handler = Callable[[str, bytes], Awaitable[None]]
OnConnect = Callable[[], Awaitable[None]]

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
    try:
        data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        return Malformed(topic, "payload is not UTF-8")
    except ValueError as exc:
        return Malformed(topic, f"payload is not JSON: {exc}")
    id_field = "contact_id" if model is Inbound else "message_id"
    raw_id = data.get(id_field) if isinstance(data, dict) else None
    message_id = raw_id if isinstance(raw_id, str) and _ID.match(raw_id) else None
    try:
        item = model.model_validate(data)
    except ValidationError as exc:
        return Malformed(topic, f"invalid {model.__name__}: {validation_summary(exc)}",
                         message_id)
    if item.channel != parts[2]:
        return Malformed(topic, f"channel {item.channel!r} on the topic of {parts[2]!r}",
                         message_id)
    return item


def validation_summary(exc: ValidationError, limit: int = 400) -> str:
    """Where and what, without echoing the input values."""
    text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                     for e in exc.errors()[:5])
    return text if len(text) <= limit else text[:limit - 3] + "..."


def encode(item: BaseModel) -> bytes:
    return item.model_dump_json().encode("utf-8")


# -- the connection -------------------------------------------------------------------------------

class _HandlerFailed(Exception):
    """The handler raised: drop the connection so the broker redelivers."""


class Bus:
    """One broker connection for ``user``; ``run`` it (a task), ``publish`` on it."""

    def __init__(self, channels: ChannelsSettings, state_dir: Path, user: str, *,
                 client_id: str, subscriptions: Sequence[str] = (),
                 handler: Handler | None = None, on_connect: OnConnect | None = None,
                 persistent: bool = True) -> None:
        self.channels = channels
        self.state_dir = state_dir
        self.user = user
        self.client_id = client_id
        self.subscriptions = tuple(subscriptions)
        self.handler = handler
        self.on_connect = on_connect
        self.persistent = persistent
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
                    failures = 0
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
            try:
                await self.handler(str(message.topic), raw)
            except Exception as exc:
                log.exception("bus: %s: handling a message on %s failed; reconnecting so "
                              "the broker sends it again", self.client_id, message.topic)
                raise _HandlerFailed from exc
        client._client.ack(message.mid, message.qos)

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
