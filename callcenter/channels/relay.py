"""The transactional outbox relay: the engine's side of the bus.

A producer writes an ``outbox`` row in the same SQLite transaction as the business record that
causes it (``store.hotline.add_request``), then calls ``Relay.kick()``. The relay publishes due
rows as ``Outbound`` messages (QoS 1), marks them ``sent`` on the broker's PUBACK, and applies
the channel servers' ``DeliveryReport``s and ``Inbound`` contacts as they arrive. Nothing is
polled: the relay sleeps until kicked, until the bus (re)connects, or until the earliest
``next_attempt_at`` (a backoff or a resend deadline) falls due.

An outbox row's life (``OutboxState``; ``docs/channels.md`` draws it)::

    queued --PUBACK--> sent --report delivered--> delivered
       |                 |--report failed-------> failed
       |                 |--report sent/retrying-> sent (the channel server owns it now)
       |                 '--no report after resend_after_s: published again (same message_id)
       |--payload cannot make an Outbound, or no server of that kind: failed (reason)
       '--publish failed: stays queued, next_attempt_at = now + backoff

``next_attempt_at`` means "publish not before" for a queued row and "resend if no report by" for
a sent one; the first delivery report clears it. The pure parts (``build_outbound``,
``on_report``, ``backoff``) do no I/O; ``Relay`` is the asyncio edge.

A report or contact the relay cannot use (malformed, out of bounds, for an unknown message,
from the wrong channel, refused by the database) is parked in ``bus_dead_letters`` with its
reason and acknowledged: it never blocks the next one, and never comes back after a restart.
Only a busy database (``sqlite3.OperationalError``) makes the broker send a message again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from pydantic import ValidationError

from callcenter.channels.bus import (
    Bus,
    Malformed,
    decode,
    encode,
    park,
    take_or_retry,
    validation_summary,
)
from callcenter.channels.messages import (
    MAX_PAYLOAD_BYTES,
    TOPIC_PREFIX,
    DeliveryReport,
    DeliveryState,
    Inbound,
    Outbound,
    outbox_topic,
)
from callcenter.channels.settings import ENGINE_USER, ChannelsSettings
from callcenter.errors import BusError
from callcenter.store.tx import transaction

log = logging.getLogger(__name__)

#: the broker makes every client id its user name (``use_username_as_clientid``), so no other
#: user can take the engine's session or kick it off
ENGINE_CLIENT_ID = ENGINE_USER
PUBLISH_FAILED = "publish failed"


class OutboxState(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


Q, S, D, F = OutboxState.QUEUED, OutboxState.SENT, OutboxState.DELIVERED, OutboxState.FAILED
R = DeliveryState

#: (row state, reported state) -> row state after the report. ``delivered`` is proof and wins
#: over everything; ``failed`` wins over anything but ``delivered``; ``sent``/``retrying`` mean
#: "the channel server has it" (and revive a row the engine itself had failed for want of a
#: report). A ``sent``/``retrying`` heard after the server's own final report changes nothing
#: (see ``on_report``).
ON_REPORT: dict[tuple[OutboxState, DeliveryState], OutboxState] = {
    (Q, R.SENT): S, (Q, R.RETRYING): S, (Q, R.DELIVERED): D, (Q, R.FAILED): F,
    (S, R.SENT): S, (S, R.RETRYING): S, (S, R.DELIVERED): D, (S, R.FAILED): F,
    (D, R.SENT): D, (D, R.RETRYING): D, (D, R.DELIVERED): D, (D, R.FAILED): D,
    (F, R.SENT): S, (F, R.RETRYING): S, (F, R.DELIVERED): D, (F, R.FAILED): F,
}
FINAL_REPORTS = frozenset({DeliveryState.DELIVERED, DeliveryState.FAILED})


def on_report(current: OutboxState, report: DeliveryState, *,
              server_final_seen: bool) -> OutboxState:
    """The row's state after ``report``; ``server_final_seen``: the channel server already
    reported ``delivered`` or ``failed`` for this message (a late ``sent`` is stale then)."""
    if report not in FINAL_REPORTS and server_final_seen:
        return current
    return ON_REPORT[(current, report)]


def backoff(failures: int, low: float, high: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures (0 -> ``low``), doubling."""
    return float(min(low * 2 ** min(max(failures, 0), 40), high))


# -- building the message (pure) ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OutboxRow:
    message_id: str
    channel: str
    topic: str
    payload: str
    ref: str | None
    state: OutboxState
    attempts: int
    created_at: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """The row cannot become a message; it is failed with this reason."""

    reason: str


_PAYLOAD_KEYS = frozenset({"to", "template", "lang", "account", "data", "ref"})


def normalise_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The producers' convention ``{to, template, lang, account, data}``, also from older rows
    (``{kind, doc, account, to, lang, ref}``: ``doc`` is the template; ``kind`` is the request's
    kind and is dropped). Any other key is template data."""
    out = {k: v for k, v in payload.items() if k in _PAYLOAD_KEYS}
    data = dict(out.get("data") or {}) if isinstance(out.get("data", {}), dict) else None
    if "template" not in out and "doc" in payload:
        out["template"] = payload["doc"]
    extra = {k: v for k, v in payload.items()
             if k not in _PAYLOAD_KEYS and k not in ("doc", "kind")}
    if data is None:
        return out  # ``data`` is not an object: let validation say so
    if extra:
        data = {**extra, **data}
    out["data"] = data
    return out


def build_outbound(row: OutboxRow, kinds: Collection[str]) -> Outbound | Rejected:
    """The ``Outbound`` message for an outbox row, or why there can be none."""
    if row.channel not in kinds:
        return Rejected(f"unknown channel {row.channel!r}: no channel server of that kind is "
                        f"configured (known: {', '.join(sorted(kinds))})")
    if row.topic != outbox_topic(row.channel):
        return Rejected(f"topic {row.topic!r} does not match channel {row.channel!r}")
    try:
        payload = json.loads(row.payload)
    except ValueError as exc:
        return Rejected(f"payload is not JSON: {exc}")
    if not isinstance(payload, dict):
        return Rejected("payload is not a JSON object")
    fields = normalise_payload(payload)
    ref = row.ref if row.ref is not None else fields.get("ref", "")
    fields.update(message_id=row.message_id, channel=row.channel, ref=ref,
                  created_at=dt.datetime.fromtimestamp(row.created_at, dt.UTC))
    try:
        built = Outbound.model_validate(fields)
    except ValidationError as exc:
        return Rejected(f"payload cannot make a message: {validation_summary(exc)}")
    if len(encode(built)) > MAX_PAYLOAD_BYTES:  # the model checks it too; the broker drops it
        return Rejected(f"the message is larger than {MAX_PAYLOAD_BYTES} bytes")
    return built


# -- what the console hears -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """A row was published or failed by the relay (``report`` None), or a delivery report was
    heard for it; ``state`` is the row's state now (a stale report leaves it as it was)."""

    message_id: str
    channel: str
    account: str
    ref: str
    state: OutboxState
    #: the report that caused it (None: the relay's own doing)
    report: DeliveryState | None
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class ContactArrived:
    """A mail or fax came in (stored in ``contacts``)."""

    contact: Inbound


RelayEvent = DeliveryUpdate | ContactArrived
Listener = Callable[[RelayEvent], None]


# -- queries (CLI, console) -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DeliveryRow:
    message_id: str
    channel: str
    account: str
    ref: str
    template: str
    to: str
    state: str
    attempts: int
    last_error: str
    created_at: float
    updated_at: float
    published_at: float | None
    #: the latest delivery report, if any
    report_state: str
    report_reason: str
    report_at: float | None


async def list_deliveries(db: aiosqlite.Connection, *, account: str | None = None,
                          state: str | None = None, limit: int = 100) -> list[DeliveryRow]:
    """Outbox rows (newest first) with their latest delivery report."""
    sql = ("SELECT o.*, d.state AS r_state, d.reason AS r_reason, d.at AS r_at FROM outbox o"
           " LEFT JOIN deliveries d ON d.id = (SELECT id FROM deliveries x WHERE"
           " x.message_id = o.message_id ORDER BY x.at DESC, x.id DESC LIMIT 1)"
           " WHERE (:account IS NULL OR json_extract(o.payload, '$.account') = :account)"
           " AND (:state IS NULL OR o.state = :state) ORDER BY o.id DESC LIMIT :limit")
    params = {"account": account or None, "state": state or None, "limit": limit}
    async with db.execute(sql, params) as cur:
        rows = await cur.fetchall()
    out = []
    for r in rows:
        try:
            payload = json.loads(r["payload"])
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        out.append(DeliveryRow(
            r["message_id"], r["channel"], str(payload.get("account") or ""), r["ref"] or "",
            str(payload.get("template") or payload.get("doc") or ""),
            str(payload.get("to") or ""), r["state"], r["attempts"], r["last_error"],
            r["created_at"], r["updated_at"], r["published_at"], r["r_state"] or "",
            r["r_reason"] or "", r["r_at"]))
    return out


# -- the relay ------------------------------------------------------------------------------------

class Relay:
    """Publishes the outbox, applies delivery reports, stores inbound contacts."""

    def __init__(self, db: aiosqlite.Connection, channels: ChannelsSettings, state_dir: Path,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.channels = channels
        self.clock = clock
        self.bus = Bus(channels, state_dir, ENGINE_USER, client_id=ENGINE_CLIENT_ID,
                       subscriptions=(f"{TOPIC_PREFIX}/delivery/#", f"{TOPIC_PREFIX}/inbound/#"),
                       handler=self._on_message, on_connect=self._on_connected,
                       on_poison=self.park)
        self._kicked = asyncio.Event()
        self._listeners: list[Listener] = []
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    # -- life cycle and hooks -----------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """``listener(event)`` is called (synchronously, after the commit) for every
        ``DeliveryUpdate`` and ``ContactArrived``; it must not block."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def kick(self) -> None:
        """Something was written to the outbox: publish it now (safe to call any time)."""
        self._kicked.set()

    async def start(self) -> None:
        await self.bus.start()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.close()

    async def _run(self) -> None:
        errors = 0
        while True:
            try:
                await self.bus.wait_connected()
                self._kicked.clear()
                await self.pump()
                delay = await self._next_due_in()
                errors = 0
            except BusError as exc:  # the bus gave up (login or subscription refused)
                log.error("outbox relay stopped: %s", exc)
                return
            except Exception:
                # the database, most likely: try again later rather than stop relaying
                delay = backoff(errors, self.channels.backoff_min_s, self.channels.backoff_max_s)
                errors += 1
                log.exception("outbox relay: a round failed; again in %.0fs", delay)
            if delay is not None and delay <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), delay)

    async def _on_connected(self) -> None:
        # The broker is back: what failed to publish need not wait out its backoff.
        now = self.clock()
        async with transaction(self.db):
            await self.db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE state IN ('queued', 'sent')"
                " AND next_attempt_at > ? AND last_error LIKE ?",
                (now, now, PUBLISH_FAILED + "%"))
        self._failures = 0
        self.kick()

    # -- publishing ---------------------------------------------------------------------------

    async def _due(self, now: float) -> list[OutboxRow]:
        async with self.db.execute(
                "SELECT message_id, channel, topic, payload, ref, state, attempts, created_at"
                " FROM outbox WHERE (state = 'queued' AND (next_attempt_at IS NULL OR"
                " next_attempt_at <= ?)) OR (state = 'sent' AND next_attempt_at <= ?)"
                " ORDER BY id LIMIT ?", (now, now, self.channels.relay_batch)) as cur:
            rows = await cur.fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], r[4], OutboxState(r[5]), r[6], r[7])
                for r in rows]

    async def _next_due_in(self) -> float | None:
        async with self.db.execute(
                "SELECT MIN(t) FROM (SELECT COALESCE(next_attempt_at, 0) AS t FROM outbox"
                " WHERE state = 'queued' UNION ALL SELECT next_attempt_at FROM outbox"
                " WHERE state = 'sent' AND next_attempt_at IS NOT NULL)") as cur:
            row = await cur.fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - self.clock())

    async def pump(self) -> int:
        """Publish every due row now (in batches); return how many were published."""
        total = 0
        while True:
            now = self.clock()
            rows = await self._due(now)
            if not rows:
                return total
            published: list[OutboxRow] = []
            failed: list[tuple[OutboxRow, str]] = []
            retry: tuple[OutboxRow, str] | None = None
            for row in rows:
                if row.state is OutboxState.SENT and row.attempts >= self.channels.max_publishes:
                    failed.append((row, f"no delivery report after {row.attempts} publishes; "
                                        f"is the {row.channel!r} channel server running?"))
                    continue
                built = build_outbound(row, self.channels.kinds)
                if isinstance(built, Rejected):
                    failed.append((row, built.reason))
                    continue
                try:
                    await self.bus.publish(outbox_topic(built.channel), encode(built))
                except BusError as exc:
                    retry = (row, f"{PUBLISH_FAILED}: {exc}")
                    break
                published.append(row)
            await self._record(published, failed, retry)
            total += len(published)
            if retry is not None:
                return total

    async def _record(self, published: list[OutboxRow], failed: list[tuple[OutboxRow, str]],
                      retry: tuple[OutboxRow, str] | None) -> None:
        now = self.clock()
        resend_at = now + self.channels.resend_after_s
        if retry is not None:
            delay = backoff(self._failures, self.channels.backoff_min_s,
                            self.channels.backoff_max_s)
            self._failures += 1
            log.warning("outbox: %s %s; again in %.1fs", retry[0].message_id, retry[1], delay)
        else:
            self._failures = 0
        async with transaction(self.db):
            for row in published:
                await self.db.execute(
                    "UPDATE outbox SET"
                    " state = CASE WHEN state IN ('queued', 'sent') THEN 'sent' ELSE state END,"
                    " next_attempt_at = CASE WHEN state IN ('queued', 'sent') AND NOT EXISTS"
                    "  (SELECT 1 FROM deliveries d WHERE d.message_id = outbox.message_id)"
                    "  THEN ? ELSE NULL END,"
                    " attempts = attempts + 1, published_at = ?, updated_at = ?, last_error = ''"
                    " WHERE message_id = ?", (resend_at, now, now, row.message_id))
            for row, reason in failed:
                await self.db.execute(
                    "UPDATE outbox SET state = 'failed', last_error = ?, next_attempt_at = NULL,"
                    " updated_at = ? WHERE message_id = ? AND state IN ('queued', 'sent')",
                    (reason, now, row.message_id))
            if retry is not None:
                await self.db.execute(
                    "UPDATE outbox SET next_attempt_at = ?, last_error = ?, updated_at = ?"
                    " WHERE message_id = ? AND state IN ('queued', 'sent')",
                    (now + delay, retry[1][:500], now, retry[0].message_id))
        for row, reason in failed:
            log.error("outbox: %s (%s) failed: %s", row.message_id, row.channel, reason)
            self._notify(self._update(row, OutboxState.FAILED, None, reason, now))
        for row in published:
            if row.state is OutboxState.QUEUED:
                self._notify(self._update(row, OutboxState.SENT, None, "", now))

    @staticmethod
    def _update(row: OutboxRow, state: OutboxState, report: DeliveryState | None, reason: str,
                at: float) -> DeliveryUpdate:
        try:
            payload = json.loads(row.payload)
        except ValueError:
            payload = {}
        account = str(payload.get("account") or "") if isinstance(payload, dict) else ""
        return DeliveryUpdate(row.message_id, row.channel, account, row.ref or "", state,
                              report, reason, at)

    def _notify(self, event: RelayEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("outbox: a listener failed on %s", type(event).__name__)

    # -- what comes back ----------------------------------------------------------------------

    async def _on_message(self, topic: str, payload: bytes) -> None:
        await take_or_retry(self._take, topic, payload)

    async def _take(self, topic: str, payload: bytes) -> None:
        """Apply a report or store a contact; park anything else, or what cannot be."""
        item = decode(topic, payload)
        if isinstance(item, Malformed):
            # we cannot trust what it says: kept for people, with the reason
            await self.park(topic, payload, item.reason, item.message_id)
            return
        message_id = item.contact_id if isinstance(item, Inbound) else item.message_id
        refused: str | None = None
        try:
            if isinstance(item, DeliveryReport):
                refused = await self.apply_report(item)
            elif isinstance(item, Inbound):
                await self.store_contact(item)
            else:
                refused = "an outbox message on the engine's subscription"
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            log.exception("bus: a %s on %s cannot be applied", type(item).__name__, topic)
            refused = f"cannot be applied: {type(exc).__name__}: {str(exc)[:300]}"
        if refused is not None:
            await self.park(topic, payload, refused, message_id)

    async def park(self, topic: str, payload: bytes, reason: str,
                   message_id: str | None = None) -> None:
        """Keep a message the relay cannot use as a dead letter (``callcenter bus
        dead-letters`` lists them)."""
        await park(self.db, topic, payload, reason, message_id, self.clock())

    async def apply_report(self, report: DeliveryReport) -> str | None:
        """Record a delivery report (once) and move its outbox row accordingly; None, or why
        the report was not applied (unknown message, another channel's)."""
        now = self.clock()
        at = report.at.timestamp()
        async with transaction(self.db):
            async with self.db.execute(
                    "SELECT message_id, channel, topic, payload, ref, state, attempts,"
                    " created_at FROM outbox WHERE message_id = ?", (report.message_id,)) as cur:
                r = await cur.fetchone()
            if r is None:
                return f"a {report.state} report for an unknown message"
            row = OutboxRow(r[0], r[1], r[2], r[3], r[4], OutboxState(r[5]), r[6], r[7])
            if row.channel != report.channel:
                return f"{report.channel} reported a message of channel {row.channel}"
            async with self.db.execute(
                    "SELECT 1 FROM deliveries WHERE message_id = ? AND state IN"
                    " ('delivered', 'failed') LIMIT 1", (row.message_id,)) as cur:
                final_seen = await cur.fetchone() is not None
            cur2 = await self.db.execute(
                "INSERT OR IGNORE INTO deliveries (message_id, state, reason, attempt, detail,"
                " at) VALUES (?, ?, ?, ?, ?, ?)",
                (row.message_id, report.state.value, report.reason, report.attempt,
                 json.dumps(report.detail, default=str, ensure_ascii=False), at))
            fresh = cur2.rowcount == 1
            new = (on_report(row.state, report.state, server_final_seen=final_seen)
                   if fresh else row.state)
            # did this report decide the row's state (and so its reason)?
            decisive = fresh and row.state is not OutboxState.DELIVERED and not (
                report.state not in FINAL_REPORTS and final_seen)
            await self.db.execute(
                "UPDATE outbox SET state = ?, next_attempt_at = NULL, updated_at = ?,"
                " last_error = CASE WHEN ? THEN ? ELSE last_error END WHERE message_id = ?",
                (new.value, now, decisive, report.reason, row.message_id))
        if fresh:
            log.info("outbox: %s (%s) reported %s -> %s%s", row.message_id, row.channel,
                     report.state, new, f": {report.reason}" if report.reason else "")
            self._notify(self._update(row, new, report.state, report.reason, at))
        return None

    async def store_contact(self, contact: Inbound) -> None:
        """Store an inbound contact once (de-duplicated on ``contact_id``)."""
        async with transaction(self.db):
            cur = await self.db.execute(
                "INSERT OR IGNORE INTO contacts (contact_id, channel, sender, subject, text,"
                " attachment, pages, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (contact.contact_id, contact.channel, contact.sender, contact.subject,
                 contact.text, contact.attachment, contact.pages,
                 contact.received_at.timestamp()))
            fresh = cur.rowcount == 1
        if fresh:
            log.info("inbound: %s contact %s from %s", contact.channel, contact.contact_id,
                     contact.sender)
            self._notify(ContactArrived(contact))
