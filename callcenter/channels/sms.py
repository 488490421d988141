"""The SMS channel servers: ``SmppPlugin`` (kind ``sms``, SMPP 3.4 to an SMSC) and
``HttpGatewayPlugin`` (kind ``sms-http``, a generic JSON-over-HTTP gateway).

SMPP
----
One session bound as transceiver, kept by a supervisor task: connect, ``bind_transceiver``,
then a reader and an ``enquire_link`` keepalive (sent after ``enquire_link_s`` of silence; no
answer within ``response_timeout_s`` drops the session). A lost or refused session is set up
again with exponential backoff (``reconnect_min_s`` .. ``reconnect_max_s``). The protocol itself
is the sans-IO core in ``smpp.py``; this module only moves its bytes.

``deliver`` renders the text (``data["text"]``, else the template's SMS text), splits it into
parts (UCS-2 for anything non-ASCII, concatenated with a UDH beyond 70 characters) and submits
the parts in order, at most ``window`` submits outstanding over all messages. It answers
``Delivered(SENT, {"parts": n, "smsc_ids": [...]})`` once every part has its
``submit_sm_resp``. Failures are ``DeliveryError``:

- retriable: ``ESME_RTHROTTLED``, ``ESME_RMSGQFUL``, ``ESME_RX_T_APPN``; no session (SMSC down,
  bind refused: the reason says which); no answer within ``response_timeout_s``; the session
  lost while waiting;
- not retriable: a malformed phone number (digits, optional leading ``+``, 5-20 digits), an
  empty or too long text, any other SMSC status (``ESME_RINVDSTADR``...), named in the reason.

Each part asks for a delivery receipt (``registered_delivery`` 1). The SMSC id of every part is
written to a small SQLite file (``state_db``) with the message id, so a receipt that comes after
a restart of this server is still matched; ``state_db = None`` keeps them in memory only (then a
restart loses the receipts of messages in flight: they stay SENT). When the receipts of all parts
say ``DELIVRD`` the message is reported DELIVERED; the first part that ends ``UNDELIV``,
``REJECTD``, ``EXPIRED``, ``DELETED`` or ``UNKNOWN`` reports it FAILED with that word and the
``err`` code. A ``deliver_sm`` is acknowledged after it was handled; if reporting failed it is
answered ``ESME_RX_T_APPN`` so that the SMSC delivers it again. A ``deliver_sm`` that is not a
receipt is an SMS from a customer: it is reassembled and published as an ``Inbound`` contact.

HTTP gateway
------------
``POST url`` with ``Authorization: Bearer <token>`` and the JSON body
``{"message_id", "to", "text", "source"}``. 2xx is SENT (DELIVERED if the answer's JSON says
``"status": "delivered"``), its ``id``/``message_id`` kept as ``gateway_id``; 408, 425, 429 and
5xx, timeouts and connection failures are retriable; any other status is not. The client is
httpx (``AsyncClient``, kept for the plug-in's life: connections are reused): the house rule
prefers a well-kept library, so the hand-written HTTP/1.1 client this module had is gone.
``timeout_s`` bounds each request as a whole, the answer's body is read up to 64 KiB, TLS is
verified against the system's CAs (or ``ca_file``); no proxy, ``.netrc`` or redirect is followed.
A POST is never repeated by the client itself: a retry is the channel runner's, with the same
``message_id`` for the gateway to drop a duplicate. The token travels only in the
``Authorization`` header: it is never logged, and is masked should a gateway's error echo it;
httpx's request log shows the URL without its query or user info.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import re
import sqlite3
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiosqlite
import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from callcenter.channels import smpp, templates
from callcenter.channels.messages import DeliveryState, Inbound, Outbound
from callcenter.channels.plugin import ChannelPlugin, Delivered, PublishInbound, ReportLater
from callcenter.errors import (
    CallCenterError,
    ChannelError,
    DeliveryError,
    SmppUsageError,
    StoreError,
)
from callcenter.store.db import durable_pragmas, make_private
from callcenter.store.tx import transaction

log = logging.getLogger(__name__)

PHONE = re.compile(r"^\+?[0-9]{5,20}$")
#: templates whose rendered body is short enough to be the SMS itself; the others (statement,
#: confirmations: an e-mail body about an attachment) are sent as their one-line subject
SHORT_TEMPLATES = frozenset({"fill", "fund", "price_alert", "ipo", "daily_summary"})
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_PRINTABLE_ASCII = r"^[\x20-\x7e]*$"
STATE_DIR = Path.home() / ".local" / "state" / "callcenter"


def check_phone(to: str) -> str:
    """``to`` if it is a phone number (digits, optional leading ``+``, 5-20 digits), else a
    ``DeliveryError`` that is not retriable."""
    if not PHONE.fullmatch(to):
        raise DeliveryError(f"not a phone number: {to[:40]!r}", retriable=False)
    return to


def sms_text(message: Outbound) -> str:
    """The text to send: ``data["text"]`` when given, else the template rendered for SMS."""
    text = message.data.get("text")
    if text is not None and not isinstance(text, str):
        raise DeliveryError("data['text'] must be a string", retriable=False)
    if not text:
        rendered = templates.render_text(message.template, message.lang, message.data,
                                         account=message.account, ref=message.ref)
        text = rendered.body if message.template in SHORT_TEMPLATES else rendered.subject
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if not text:
        raise DeliveryError("the SMS text is empty", retriable=False)
    return text


# -- settings ------------------------------------------------------------------------------------

class SmppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(2775, ge=1, le=65535)
    system_id: str = Field("callcenter", min_length=1, max_length=15, pattern=_PRINTABLE_ASCII)
    #: at most 8 characters (SMPP 3.4)
    password: SecretStr = SecretStr("")
    system_type: str = Field("", max_length=12, pattern=_PRINTABLE_ASCII)
    service_type: str = Field("", max_length=5, pattern=_PRINTABLE_ASCII)
    #: our sender: a service number, or empty for the SMSC's default
    source_addr: str = Field("", max_length=20, pattern=r"^[A-Za-z0-9 ]*$")
    source_addr_ton: int = Field(0, ge=0, le=6)
    source_addr_npi: int = Field(0, ge=0, le=18)
    #: TON/NPI of a number written without "+" (with "+": international, ISDN)
    dest_addr_ton: int = Field(0, ge=0, le=6)
    dest_addr_npi: int = Field(1, ge=0, le=18)
    enquire_link_s: float = Field(30.0, gt=0)
    response_timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    #: how long ``deliver`` waits for a session that is being set up before it gives up
    session_wait_s: float = Field(5.0, ge=0)
    #: submits outstanding at once (over all messages)
    window: int = Field(10, ge=1, le=1000)
    #: a text needing more parts than this is refused (not retriable)
    max_parts: int = Field(10, ge=1, le=255)
    #: SMSC id -> message id, for receipts that come late; None: in memory only
    state_db: Path | None = STATE_DIR / "sms-receipts.sqlite3"
    #: receipts older than this are no longer expected
    receipt_ttl_h: float = Field(72.0, gt=0)

    @field_validator("password")
    @classmethod
    def _password_fits(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(r"[\x20-\x7e]{0,8}", value.get_secret_value()):
            raise ValueError("SMPP passwords are at most 8 printable ASCII characters")
        return value

    @model_validator(mode="after")
    def _backoff_order(self) -> SmppSettings:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is smaller than reconnect_min_s")
        return self


# -- the receipt book: SMSC id -> message ---------------------------------------------------------

@dataclass(frozen=True)
class PartRow:
    smsc_id: str
    batch: str
    message_id: str
    part: int
    parts: int
    stat: str | None
    err: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sms_parts (
    smsc_id    TEXT PRIMARY KEY,
    batch      TEXT NOT NULL,
    message_id TEXT NOT NULL,
    part       INTEGER NOT NULL,
    parts      INTEGER NOT NULL,
    stat       TEXT,
    err        TEXT NOT NULL DEFAULT '',
    at         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sms_parts_batch ON sms_parts(batch);
CREATE INDEX IF NOT EXISTS sms_parts_at ON sms_parts(at);
"""


class ReceiptBook:
    """Which message each SMSC id belongs to, until its receipts came in (aiosqlite: the file
    is written from aiosqlite's thread, never from the loop)."""

    def __init__(self, path: Path | None, ttl_s: float) -> None:
        self.path = path
        self.ttl_s = ttl_s
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        target = ":memory:" if self.path is None else str(self.path)
        try:
            if self.path is not None:  # 0600: receipts name customers' numbers
                await asyncio.to_thread(make_private, self.path)
            self._db = await aiosqlite.connect(target, isolation_level=None)
            if self.path is not None:
                await durable_pragmas(self._db)
            await self._db.executescript(_SCHEMA)
            await self._db.execute("DELETE FROM sms_parts WHERE at < ?",
                                   (time.time() - self.ttl_s,))
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StoreError(f"cannot open the SMS receipt book {target}: {exc}") from exc

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the SMS receipt book is not open")
        return self._db

    async def add(self, batch: str, message_id: str, smsc_ids: Sequence[str]) -> None:
        now = time.time()
        rows = [(sid, batch, message_id, i, len(smsc_ids), now)
                for i, sid in enumerate(smsc_ids, start=1)]
        try:
            async with transaction(self.db) as db:
                await db.executemany(
                    "INSERT OR REPLACE INTO sms_parts (smsc_id, batch, message_id, part, parts, at)"
                    " VALUES (?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record SMSC ids: {exc}") from exc

    async def settle(self, receipt: smpp.Receipt) -> list[PartRow] | None:
        """Record a final receipt; the rows of its message (None: an id we do not know)."""
        try:
            async with transaction(self.db) as db:
                async with db.execute("SELECT batch FROM sms_parts WHERE smsc_id = ?",
                                      (receipt.message_id,)) as cur:
                    found = await cur.fetchone()
                if found is None:
                    return None
                batch = str(found[0])
                await db.execute("UPDATE sms_parts SET stat = ?, err = ? WHERE smsc_id = ?",
                                 (receipt.stat, receipt.err, receipt.message_id))
                async with db.execute(
                        "SELECT smsc_id, batch, message_id, part, parts, stat, err FROM sms_parts"
                        " WHERE batch = ? ORDER BY part", (batch,)) as cur:
                    rows = await cur.fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record a receipt: {exc}") from exc
        return [PartRow(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]),
                        None if r[5] is None else str(r[5]), str(r[6])) for r in rows]

    async def forget(self, batch: str) -> None:
        try:
            async with transaction(self.db) as db:
                await db.execute("DELETE FROM sms_parts WHERE batch = ?", (batch,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot forget SMSC ids: {exc}") from exc


def conclusion(rows: Sequence[PartRow]) -> tuple[DeliveryState, str, dict[str, Any]] | None:
    """What the receipts so far say about a message: DELIVERED once every part is DELIVRD,
    FAILED as soon as one part failed, None while receipts are missing."""
    detail: dict[str, Any] = {"parts": rows[0].parts if rows else 0,
                              "smsc_ids": [r.smsc_id for r in rows]}
    for row in rows:
        if row.stat in smpp.FAILED_STATS:
            where = f" (part {row.part}/{row.parts})" if row.parts > 1 else ""
            detail.update(stat=row.stat, err=row.err)
            return (DeliveryState.FAILED, f"SMSC receipt {row.stat}, err {row.err or '-'}{where}",
                    detail)
    if len(rows) == rows[0].parts and all(r.stat == smpp.DELIVERED_STAT for r in rows):
        detail["stat"] = smpp.DELIVERED_STAT
        return DeliveryState.DELIVERED, "", detail
    return None


# -- one SMPP session ----------------------------------------------------------------------------

class _Link:
    """One TCP connection to the SMSC with its sans-IO session: writes what the session wants
    sent, reads and feeds it, matches responses to waiting requests by sequence number."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_request: Callable[[_Link, smpp.Pdu], None],
                 on_submitted: Callable[[str], None]) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = smpp.SmppConnection(smpp.Role.ESME)
        self.pending: dict[int, tuple[asyncio.Future[smpp.Pdu], bool]] = {}
        self.last_rx = asyncio.get_running_loop().time()
        self._on_request = on_request
        self._on_submitted = on_submitted

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def request(self, pdu: smpp.Pdu, wait_s: float) -> smpp.Pdu:
        """Send a request and wait for its response (or a generic_nack). ``TimeoutError``,
        ``OSError`` (the connection is gone), ``SmppUsageError`` (the session is not bound)."""
        seq = self.conn.next_sequence()
        future: asyncio.Future[smpp.Pdu] = asyncio.get_running_loop().create_future()
        self.pending[seq] = (future, isinstance(pdu, smpp.SubmitSm))
        try:
            self.conn.send(replace(pdu, sequence=seq))
            await self._flush()
            return await asyncio.wait_for(future, wait_s)
        finally:
            self.pending.pop(seq, None)

    async def reply(self, pdu: smpp.Pdu) -> None:
        self.conn.send(pdu)
        await self._flush()

    async def read_loop(self) -> None:
        """Until the connection ends; raises what ended it. Pending requests fail with it."""
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    self.conn.receive_eof()
                    raise ConnectionResetError("the SMSC closed the connection")
                self.last_rx = asyncio.get_running_loop().time()
                self.conn.receive_data(data)
                for pdu in self.conn.events_received():
                    self._dispatch(pdu)
                await self._flush()  # what the session answered by itself (enquire_link...)
                if self.conn.state is smpp.State.CLOSED:
                    raise ConnectionResetError("the SMPP session was unbound")
        except BaseException as exc:
            self.fail_all(exc if isinstance(exc, OSError | ChannelError)
                          else ConnectionResetError("the SMPP session ended"))
            raise

    def _dispatch(self, pdu: smpp.Pdu) -> None:
        if pdu.is_response:
            waiting = self.pending.get(pdu.sequence)
            if waiting is None or waiting[0].done():
                return  # an answer to a request we gave up on
            future, is_submit = waiting
            if is_submit and isinstance(pdu, smpp.SubmitSmResp) and pdu.status == 0:
                self._on_submitted(pdu.message_id)  # before any receipt for it can be read
            future.set_result(pdu)
        else:
            self._on_request(self, pdu)

    def fail_all(self, exc: BaseException) -> None:
        for future, _ in list(self.pending.values()):
            if not future.done():
                future.set_exception(exc)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


Phase = Literal["idle", "connecting", "bound", "down", "closed"]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if isinstance(exc, OSError) else text


class SmppPlugin(ChannelPlugin):
    kind: ClassVar[str] = "sms"
    Settings: ClassVar[type[BaseModel]] = SmppSettings

    def __init__(self, settings: BaseModel, report_later: ReportLater,
                 publish_inbound: PublishInbound) -> None:
        super().__init__(settings, report_later, publish_inbound)
        assert isinstance(settings, SmppSettings)
        self.cfg = settings
        self.book = ReceiptBook(settings.state_db, settings.receipt_ttl_h * 3600)
        self._link: _Link | None = None
        self._phase: Phase = "idle"
        self._phase_changed = asyncio.Event()
        self._last_error = "not started"
        self._window = asyncio.Semaphore(settings.window)
        self._ref = random.randrange(256)
        #: SMSC ids accepted by a deliver() still running (its book entry not written yet)
        self._unsettled: set[str] = set()
        #: receipts that came for those, handled once the entry is written
        self._parked: dict[str, list[smpp.Receipt]] = {}
        #: deliver_sm from the reader (with the link to answer on), and parked receipts
        self._inbox: asyncio.Queue[tuple[_Link, smpp.DeliverSm] | smpp.Receipt] = (
            asyncio.Queue())
        self._reassembler = smpp.Reassembler()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def last_error(self) -> str:
        return self._last_error

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.book.open()
        self._set_phase("connecting")
        self._tasks = [asyncio.create_task(self._supervise(), name="smpp-session"),
                       asyncio.create_task(self._work_inbox(), name="smpp-inbox")]

    async def close(self) -> None:
        self._closing = True
        link = self._link
        if link is not None and link.conn.state is smpp.State.BOUND:
            with contextlib.suppress(OSError, TimeoutError, ChannelError):
                await link.request(smpp.Unbind(), min(self.cfg.response_timeout_s, 2.0))
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks = []
        self._set_phase("closed")
        await self.book.close()

    async def wait_phase(self, *phases: Phase, within_s: float) -> Phase:
        """Wait until the session is in one of ``phases`` (``TimeoutError`` otherwise): for
        tests and health probes."""
        async with asyncio.timeout(within_s):
            while self._phase not in phases:
                await self._phase_changed.wait()
        return self._phase

    def _set_phase(self, phase: Phase) -> None:
        self._phase = phase
        changed, self._phase_changed = self._phase_changed, asyncio.Event()
        changed.set()

    async def _supervise(self) -> None:
        delay = self.cfg.reconnect_min_s
        while True:
            self._set_phase("connecting")
            bound = False
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.cfg.host, self.cfg.port),
                    self.cfg.connect_timeout_s)
            except (OSError, TimeoutError) as exc:
                self._last_error = (f"cannot connect to the SMSC at {self.cfg.host}:"
                                    f"{self.cfg.port}: {_describe(exc)}")
            else:
                link = _Link(reader, writer, self._on_request, self._unsettled.add)
                try:
                    bound = await self._session(link)
                except (OSError, TimeoutError, ChannelError) as exc:
                    self._last_error = f"SMPP session: {_describe(exc)}"
            if self._closing:
                return
            log.warning("SMSC unavailable (%s); next attempt in %.1fs", self._last_error,
                        self.cfg.reconnect_min_s if bound else delay)
            self._set_phase("down")
            if bound:
                delay = self.cfg.reconnect_min_s
            await asyncio.sleep(delay)
            if not bound:
                delay = min(delay * 2, self.cfg.reconnect_max_s)

    async def _session(self, link: _Link) -> bool:
        """Bind and serve one connection until it ends. Raises if the bind failed; returns
        (True) once a bound session ended, with the reason in ``_last_error``."""
        reader = asyncio.create_task(link.read_loop(), name="smpp-reader")
        keepalive: asyncio.Task[None] | None = None
        try:
            resp = await link.request(
                smpp.BindTransceiver(
                    system_id=self.cfg.system_id,
                    password=self.cfg.password.get_secret_value(),
                    system_type=self.cfg.system_type, addr_ton=self.cfg.source_addr_ton,
                    addr_npi=self.cfg.source_addr_npi),
                self.cfg.response_timeout_s)
            if resp.status != smpp.Status.ESME_ROK:
                raise ChannelError(f"the SMSC refused bind_transceiver as "
                                   f"{self.cfg.system_id!r}: {smpp.status_name(resp.status)}")
            self._link = link
            self._set_phase("bound")
            log.info("bound to the SMSC at %s:%s as %r", self.cfg.host, self.cfg.port,
                     self.cfg.system_id)
            keepalive = asyncio.create_task(self._keepalive(link), name="smpp-keepalive")
            done, _ = await asyncio.wait({reader, keepalive},
                                         return_when=asyncio.FIRST_COMPLETED)
            try:
                for task in done:
                    task.result()
            except (OSError, TimeoutError, ChannelError) as exc:
                self._last_error = f"SMPP session lost: {_describe(exc)}"
            else:
                self._last_error = "SMPP session ended"
            return True
        finally:
            self._link = None
            running = [t for t in (reader, keepalive) if t is not None]
            for each in running:
                each.cancel()
            await asyncio.wait(running)
            for each in running:  # retrieved here; what ended the session is told above
                if not each.cancelled():
                    each.exception()
            link.fail_all(ConnectionResetError("the SMPP session ended"))
            await link.close()

    async def _keepalive(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        while True:
            idle = loop.time() - link.last_rx
            if idle < self.cfg.enquire_link_s:
                await asyncio.sleep(self.cfg.enquire_link_s - idle)
                continue
            try:
                await link.request(smpp.EnquireLink(), self.cfg.response_timeout_s)
            except TimeoutError:
                raise TimeoutError(f"no enquire_link_resp within "
                                   f"{self.cfg.response_timeout_s:g}s") from None

    async def _ready_link(self) -> _Link:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.session_wait_s
        while self._link is None and self._phase == "connecting":
            changed = self._phase_changed
            try:
                await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                break
        if self._link is None:
            raise DeliveryError(f"no SMPP session: {self._last_error}", retriable=True)
        return self._link

    # -- sending ---------------------------------------------------------------------------------

    def _destination(self, to: str) -> tuple[str, int, int]:
        check_phone(to)
        if to.startswith("+"):
            return to[1:], 1, 1
        return to, self.cfg.dest_addr_ton, self.cfg.dest_addr_npi

    def _next_ref(self) -> int:
        self._ref = (self._ref + 1) % 256
        return self._ref

    async def deliver(self, message: Outbound) -> Delivered:
        number, ton, npi = self._destination(message.to)
        text = sms_text(message)
        try:
            parts = smpp.split_text(text, ref=self._next_ref(), max_parts=self.cfg.max_parts)
        except ValueError as exc:
            raise DeliveryError(f"cannot send as SMS: {exc}", retriable=False) from exc
        link = await self._ready_link()
        smsc_ids: list[str] = []
        try:
            for i, part in enumerate(parts, start=1):
                pdu = smpp.SubmitSm(
                    service_type=self.cfg.service_type,
                    source_addr_ton=self.cfg.source_addr_ton,
                    source_addr_npi=self.cfg.source_addr_npi, source_addr=self.cfg.source_addr,
                    dest_addr_ton=ton, dest_addr_npi=npi, destination_addr=number,
                    esm_class=part.esm_class, registered_delivery=1,
                    data_coding=part.data_coding, short_message=part.short_message)
                smsc_ids.append(await self._submit(link, pdu, i, len(parts)))
        except BaseException:
            for sid in smsc_ids:
                self._unsettled.discard(sid)
                if self._parked.pop(sid, None):
                    log.info("dropped a receipt for a part of %s, which will be sent again",
                             message.message_id)
            raise
        detail: dict[str, Any] = {"parts": len(parts), "smsc_ids": smsc_ids}
        # every part is with the SMSC now: whatever happens below, the message is SENT (raising
        # would have it sent twice)
        try:
            if not all(smsc_ids):
                raise StoreError("the SMSC gave no message id for a part")
            await self.book.add(uuid.uuid4().hex, message.message_id, smsc_ids)
        except StoreError as exc:
            log.error("SMS %s: its receipts cannot be matched: %s", message.message_id, exc)
            detail["receipts"] = "untracked"
        finally:
            for sid in smsc_ids:
                self._unsettled.discard(sid)
                for receipt in self._parked.pop(sid, []):
                    self._inbox.put_nowait(receipt)
        log.info("SMS %s submitted in %d part(s)", message.message_id, len(parts))
        return Delivered(DeliveryState.SENT, detail)

    async def _submit(self, link: _Link, pdu: smpp.SubmitSm, part: int, parts: int) -> str:
        where = f" (part {part}/{parts})" if parts > 1 else ""
        try:
            async with self._window:
                resp = await link.request(pdu, self.cfg.response_timeout_s)
        except TimeoutError as exc:
            raise DeliveryError(f"no submit_sm_resp within {self.cfg.response_timeout_s:g}s"
                                f"{where}", retriable=True) from exc
        except SmppUsageError as exc:
            raise DeliveryError(f"SMPP session not bound{where}: {exc}", retriable=True) from exc
        except (OSError, ChannelError) as exc:
            raise DeliveryError(f"SMPP session lost{where}: {_describe(exc)}",
                                retriable=True) from exc
        if resp.status != smpp.Status.ESME_ROK:
            raise smpp.submit_error(resp.status, part=part, parts=parts)
        if not isinstance(resp, smpp.SubmitSmResp):
            raise DeliveryError(f"SMSC answered submit_sm with {resp.name}{where}", retriable=True)
        return resp.message_id

    # -- receiving -------------------------------------------------------------------------------

    def _on_request(self, link: _Link, pdu: smpp.Pdu) -> None:
        if isinstance(pdu, smpp.DeliverSm):
            self._inbox.put_nowait((link, pdu))

    async def _work_inbox(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                if isinstance(item, smpp.Receipt):
                    await self._on_receipt(item)
                    continue
                link, pdu = item
                status = await self._handle_deliver_sm(pdu)
            except Exception:  # a bug in one receipt must not stop the others
                log.exception("cannot handle a deliver_sm")
                if isinstance(item, smpp.Receipt):
                    continue
                status = smpp.Status.ESME_RX_T_APPN
            if link is self._link:  # else the SMSC will deliver it again on the next session
                with contextlib.suppress(OSError, ChannelError):
                    await link.reply(smpp.response_to(pdu, status))

    async def _handle_deliver_sm(self, pdu: smpp.DeliverSm) -> int:
        if not smpp.is_receipt(pdu):
            return await self._inbound(pdu)
        try:
            receipt = smpp.receipt_of(pdu)
        except ValueError as exc:
            log.warning("unreadable delivery receipt: %s", exc)
            return smpp.Status.ESME_ROK
        return await self._on_receipt(receipt)

    async def _on_receipt(self, receipt: smpp.Receipt) -> int:
        if not receipt.final:
            return smpp.Status.ESME_ROK
        if receipt.message_id in self._unsettled:
            self._parked.setdefault(receipt.message_id, []).append(receipt)
            return smpp.Status.ESME_ROK
        try:
            rows = await self.book.settle(receipt)
            if rows is None:
                log.info("receipt for SMSC id %s, which we do not wait for", receipt.message_id)
                return smpp.Status.ESME_ROK
            outcome = conclusion(rows)
            if outcome is not None:
                state, reason, detail = outcome
                await self.report_later(rows[0].message_id, state, reason, detail)
                await self.book.forget(rows[0].batch)
        except CallCenterError as exc:
            log.warning("cannot process a receipt for SMSC id %s (%s): asking for it again",
                        receipt.message_id, exc)
            return smpp.Status.ESME_RX_T_APPN
        return smpp.Status.ESME_ROK

    async def _inbound(self, pdu: smpp.DeliverSm) -> int:
        try:
            assembled = self._reassembler.feed(pdu.source_addr, pdu.esm_class, pdu.data_coding,
                                               pdu.payload)
        except ValueError as exc:
            log.warning("unreadable SMS from a customer: %s", exc)
            return smpp.Status.ESME_ROK
        if assembled is None:
            return smpp.Status.ESME_ROK
        contact = Inbound(contact_id=f"sms-{uuid.uuid4().hex}", channel=self.kind,
                          sender=pdu.source_addr, text=assembled.text[:20000],
                          received_at=dt.datetime.now(dt.UTC))
        try:
            await self.publish_inbound(contact)
        except CallCenterError as exc:
            log.warning("cannot publish an SMS from a customer (%s): asking for it again", exc)
            return smpp.Status.ESME_RX_T_APPN
        return smpp.Status.ESME_ROK


# -- the HTTP gateway ----------------------------------------------------------------------------

#: the longest answer body read (a gateway's JSON is small; more is refused, retriable)
MAX_HTTP_BODY = 64 * 1024
RETRIABLE_HTTP = frozenset({408, 425, 429})


class HttpGatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: http:// or https:// URL the JSON is POSTed to
    url: str
    token: SecretStr = SecretStr("")
    #: our sender, passed on as "source" when set
    source: str = Field("", max_length=20, pattern=r"^[A-Za-z0-9 +]*$")
    timeout_s: float = Field(10.0, gt=0)
    #: CA bundle for an https gateway with a private CA (default: the system's)
    ca_file: Path | None = None
    max_chars: int = Field(1000, ge=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the gateway URL must be http:// or https:// with a host")
        if re.search(r"[\x00-\x20\x7f]", value):
            raise ValueError("the gateway URL has spaces or control characters")
        return value

    @field_validator("token")
    @classmethod
    def _token_safe(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(r"[\x21-\x7e]*", value.get_secret_value()):
            raise ValueError("the token must be printable ASCII without spaces")
        return value


class _QuietUrls(logging.Filter):
    """httpx logs every request's URL at INFO; a gateway's URL may carry a key in its query or
    a user and password: those are logged as ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, httpx.URL) else a
                                for a in record.args)
        return True


def redact_url(url: httpx.URL | str) -> str:
    """``url`` without what may be a secret: its query and its user info."""
    url = httpx.URL(url)
    if url.query:
        url = url.copy_with(query=b"***")
    if url.userinfo:
        url = url.copy_with(username="***", password=None)
    return str(url)


logging.getLogger("httpx").addFilter(_QuietUrls())


def _excerpt(body: bytes) -> str:
    text = body[:200].decode("utf-8", errors="replace")
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def _root_cause(exc: BaseException) -> str:
    """What went wrong below httpx, e.g. ``ConnectionRefusedError: ...`` for a refused connect
    (httpx's own words, "All connection attempts failed", do not say)."""
    deepest: BaseException = exc
    seen: BaseException | None = exc
    for _ in range(16):  # a chain is short; this bounds a cyclic one
        if seen is None:
            break
        if isinstance(seen, OSError) and type(seen) is not OSError:
            deepest = seen
        seen = seen.__cause__ or seen.__context__
    text = str(deepest) or type(deepest).__name__
    return f"{type(deepest).__name__}: {text}"


class HttpGatewayPlugin(ChannelPlugin):
    kind: ClassVar[str] = "sms-http"
    Settings: ClassVar[type[BaseModel]] = HttpGatewaySettings

    def __init__(self, settings: BaseModel, report_later: ReportLater,
                 publish_inbound: PublishInbound) -> None:
        super().__init__(settings, report_later, publish_inbound)
        assert isinstance(settings, HttpGatewaySettings)
        self.cfg = settings
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        await self._http()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _http(self) -> httpx.AsyncClient:
        """The client, made on first use: for https with the system's CAs (or ``ca_file``),
        loaded off the loop. No proxy or ``.netrc`` from the environment, no redirects."""
        if self._client is None:
            verify: ssl.SSLContext | bool = False  # an http:// URL: TLS is never used
            if urlsplit(self.cfg.url).scheme == "https":
                cafile = str(self.cfg.ca_file) if self.cfg.ca_file else None
                try:
                    verify = await asyncio.to_thread(ssl.create_default_context, cafile=cafile)
                except (OSError, ssl.SSLError) as exc:
                    raise ChannelError(f"cannot load the gateway CA file: {exc}") from exc
            self._client = httpx.AsyncClient(
                verify=verify, timeout=httpx.Timeout(self.cfg.timeout_s), trust_env=False,
                follow_redirects=False,
                headers={"User-Agent": "callcenter-sms/1", "Accept": "application/json"})
        return self._client

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
        """One POST; its answer with at most ``MAX_HTTP_BODY`` octets of body (``ValueError``
        beyond, unless the status is 2xx: the gateway took the message, and a retry would send
        it twice, so the body is dropped and the answer stands). Within ``timeout_s`` in all
        (``TimeoutError``)."""
        client = await self._http()
        async with asyncio.timeout(self.cfg.timeout_s):
            async with client.stream("POST", self.cfg.url, content=body,
                                     headers=headers) as answer:
                taken = 200 <= answer.status_code < 300
                length = answer.headers.get("content-length", "")
                if length.isdigit() and int(length) > MAX_HTTP_BODY:
                    if taken:
                        return answer, b""
                    raise ValueError(f"HTTP answer body of {length} octets")
                data = bytearray()
                async for chunk in answer.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_HTTP_BODY:
                        if taken:
                            return answer, b""
                        raise ValueError("HTTP answer body too long")
                return answer, bytes(data)

    async def deliver(self, message: Outbound) -> Delivered:
        check_phone(message.to)
        text = sms_text(message)
        if len(text) > self.cfg.max_chars:
            raise DeliveryError(f"the SMS text has {len(text)} characters, more than "
                                f"{self.cfg.max_chars}", retriable=False)
        payload: dict[str, str] = {"message_id": message.message_id, "to": message.to,
                                   "text": text}
        if self.cfg.source:
            payload["source"] = self.cfg.source
        headers = {"Content-Type": "application/json; charset=utf-8"}
        token = self.cfg.token.get_secret_value()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            answer, body = await self._post(json.dumps(payload).encode(), headers)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DeliveryError(f"the SMS gateway did not answer within "
                                f"{self.cfg.timeout_s:g}s", retriable=True) from exc
        except (httpx.TransportError, httpx.DecodingError, OSError, ValueError) as exc:
            raise DeliveryError(self._masked(f"SMS gateway: {_root_cause(exc)}"),
                                retriable=True) from exc
        said = f"the SMS gateway answered {answer.status_code} {answer.reason_phrase}".rstrip()
        if not 200 <= answer.status_code < 300:
            excerpt = _excerpt(body)
            reason = f"{said}: {excerpt}" if excerpt else said
            retriable = answer.status_code in RETRIABLE_HTTP or answer.status_code >= 500
            raise DeliveryError(self._masked(reason)[:500], retriable=retriable)
        detail: dict[str, Any] = {"http_status": answer.status_code}
        state = DeliveryState.SENT
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            data = {}
        if isinstance(data, dict):
            gateway_id = data.get("id", data.get("message_id"))
            if isinstance(gateway_id, str | int):
                detail["gateway_id"] = str(gateway_id)[:64]
            if str(data.get("status", "")).lower() == "delivered":
                state = DeliveryState.DELIVERED
        return Delivered(state, detail)

    def _masked(self, reason: str) -> str:
        """``reason`` (logged, stored with the message) without the token, should a gateway
        echo it back."""
        token = self.cfg.token.get_secret_value()
        return reason.replace(token, "***") if token else reason
