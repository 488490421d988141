"""The financial secretary's asyncio edge: read the back office, write notices and the outbox.

``Secretary.scan`` is one round: fills and transfers since the positions it bookmarked, the
quotes of codes with price alerts (during trading sessions), IPO allotments, and the daily
summary once the configured time of a trading day has passed. It turns them into notices with
the sans-IO core (``secretary.notices_for`` / ``observe_price``) and writes each new notice's
``notices`` row and its ``outbox`` row in one transaction, together with the bookmarks that
say how far it got. So:

- **never sent twice**: ``INSERT OR IGNORE`` on ``notices (subscription_id, event_key)``; an
  outbox row is written only when its notice row is new, with a message id derived from the
  two (receivers de-duplicate on it);
- **never lost**: a bookmark moves only in the transaction that wrote the notices of what it
  passed; a back office that fails mid-round leaves it where it was, to be read again;
- **late rather than at night**: a notice made in the subscription's quiet hours gets
  ``outbox.next_attempt_at`` at their end; the relay publishes nothing before that time;
- **never silently dropped**: a notice with no address (no e-mail on file...) is recorded with
  a ``failed`` outbox row saying why, and a ``deliveries`` row, for agents to see.

The back office pushes nothing, so the secretary polls: every ``interval_s`` seconds, or at once
after ``kick()`` (the engine may kick it after a transfer or an order, for a prompt notice).
Fills and transfers come from its ``ActivityFeed`` and allotments from its ``IpoSource``; a back
office without them gets no such notices (logged once).

Subscriptions (``subscribe``, ``unsubscribe``, ``list_subscriptions``) and the delivery history
of a customer (``deliveries_for``, every outbox message to that account, secretary's or not)
are plain functions on the database, for the IVR action, the console and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiosqlite

from callcenter.broker.interface import (
    ActivityFeed,
    BackOffice,
    Customer,
    IpoSource,
    RefusalCode,
)
from callcenter.broker.rules import (
    DEFAULT_RULES,
    SHANGHAI,
    Rules,
    is_trading_day,
    is_trading_time,
)
from callcenter.channels.secretary import (
    AccountEvent,
    Channel,
    FillEvent,
    FundEvent,
    IpoEvent,
    Kind,
    Lang,
    Notice,
    PriceArm,
    PriceObservation,
    QuietHours,
    Subscription,
    canonical_params,
    language_of,
    notices_for,
    observe_price,
    resolve_address,
    summarize,
)
from callcenter.errors import BrokerError, BrokerRefusal, StoreError
from callcenter.store.tx import transaction

log = logging.getLogger(__name__)

#: journal entries read per query
PAGE: Final = 500
DEFAULT_INTERVAL_S: Final = 30.0
DEFAULT_SUMMARY_AT: Final = dt.time(15, 30)
_ACCOUNT = re.compile(r"^[0-9]{1,16}$")
_FILLS, _TRANSFERS, _SUMMARY = "fills", "transfers", "daily_summary"


@dataclass
class ScanReport:
    """What one round wrote: new notices, of which ``failed`` had no address."""

    notices: int = 0
    failed: int = 0
    #: parts skipped this round because the back office failed (read again next round)
    skipped: tuple[str, ...] = ()

    def add(self, other: tuple[int, int]) -> None:
        self.notices += other[0]
        self.failed += other[1]


class Secretary:
    """Runs in the engine: ``await start()`` ... ``await close()``, or drive ``scan`` yourself.

    ``clock`` returns an aware datetime: the back office's clock in the engine (the sandbox's
    may be pinned or set to another day), so "today", trading sessions and quiet hours agree
    with it; the notices' own rows are dated on it. Outbox and delivery rows are dated on
    ``outbox_clock`` (the relay's, which sends them; default ``clock``'s), a notice's earliest
    sending keeping its distance from the scan there.
    """

    def __init__(self, db: aiosqlite.Connection, backoffice: BackOffice,
                 clock: Callable[[], dt.datetime] | None = None, tz: dt.tzinfo = SHANGHAI,
                 interval_s: float = DEFAULT_INTERVAL_S, *, rules: Rules = DEFAULT_RULES,
                 summary_at: dt.time = DEFAULT_SUMMARY_AT,
                 outbox_clock: Callable[[], float] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError("the scan interval must be positive")
        self.db = db
        self.bo = backoffice
        self.clock = clock or (lambda: dt.datetime.now(tz))
        self.outbox_clock = outbox_clock
        self.tz = tz
        self.interval_s = interval_s
        self.rules = rules
        self.summary_at = summary_at
        self.last: ScanReport | None = None
        self._kicked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        #: called after a round wrote outbox rows (the engine: the relay's kick)
        self.on_outbox: Callable[[], None] | None = None

    # --- running ----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="secretary")

    async def close(self) -> None:
        """Stop the loop; a round in progress is cancelled (its transaction rolls back, its
        notices are made again next time)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def kick(self) -> None:
        """Scan now rather than at the next interval (call on the engine's loop)."""
        self._kicked.set()

    async def run(self) -> None:
        """Scan, wait ``interval_s`` (or a kick), scan again... until cancelled. A failed round
        is logged and the next one tries again: bookmarks only move on success."""
        while True:
            self._kicked.clear()
            try:
                self.last = await self.scan()
                if self.on_outbox is not None and self.last.notices:
                    self.on_outbox()
            except Exception:
                log.exception("financial secretary: scan failed; trying again in %ss",
                              self.interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self.interval_s)

    # --- one round --------------------------------------------------------------------------------

    async def scan(self) -> ScanReport:
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the secretary's clock must return an aware datetime")
        subs = await _active_subscriptions(self.db)
        report = ScanReport()
        customers: dict[str, Customer | None] = {}
        skipped: list[str] = []
        for name, part in (("fills", self._fills), ("transfers", self._transfers),
                           ("prices", self._prices), ("ipo", self._ipos),
                           ("daily_summary", self._summaries)):
            try:
                report.add(await part(subs, now, customers))
            except BrokerError as exc:
                # unreachable or inconsistent: nothing was bookmarked past it
                log.warning("financial secretary: %s skipped this round: %s", name, exc)
                skipped.append(name)
        report.skipped = tuple(skipped)
        if report.notices:
            log.info("financial secretary: %d notices (%d without an address)",
                     report.notices, report.failed)
        return report

    async def _fills(self, subs: list[Subscription], now: dt.datetime,
                     customers: dict[str, Customer | None]) -> tuple[int, int]:
        bo = self.bo
        if not isinstance(bo, ActivityFeed):
            return self._unsupported("fills", subs, Kind.FILL)
        wanted = _by_account(subs, Kind.FILL)
        position = await self._cursor(_FILLS) or ""
        written = (0, 0)
        while True:
            entries = await bo.fills_since(position, PAGE)
            if not entries:
                return written
            events = [FillEvent(e.account, e.fill_id, e.fill) for e in entries
                      if e.account in wanted]
            notices = await self._notices(events, wanted, now, customers)
            position = entries[-1].position
            written = _plus(written, await self._write(notices, customers,
                                                       {_FILLS: position}, now))
            if len(entries) < PAGE:
                return written

    async def _transfers(self, subs: list[Subscription], now: dt.datetime,
                         customers: dict[str, Customer | None]) -> tuple[int, int]:
        bo = self.bo
        if not isinstance(bo, ActivityFeed):
            return self._unsupported("transfers", subs, Kind.FUND)
        wanted = _by_account(subs, Kind.FUND)
        position = await self._cursor(_TRANSFERS) or ""
        written = (0, 0)
        while True:
            entries = await bo.transfers_since(position, PAGE)
            if not entries:
                return written
            events = [FundEvent(t.account, t.transfer_no, t.direction, t.amount,
                                t.balance_after, t.at)
                      for t in (e.transfer for e in entries) if t.account in wanted]
            notices = await self._notices(events, wanted, now, customers)
            position = entries[-1].position
            written = _plus(written, await self._write(notices, customers,
                                                       {_TRANSFERS: position}, now))
            if len(entries) < PAGE:
                return written

    async def _prices(self, subs: list[Subscription], now: dt.datetime,
                      customers: dict[str, Customer | None]) -> tuple[int, int]:
        alerts = [s for s in subs if s.kind.is_price and s.code]
        if not alerts or not is_trading_time(now, self.rules):
            return 0, 0  # prices move in sessions only; a closed market has nothing new
        arms = await self._arms(alerts)
        written = (0, 0)
        for code in sorted({s.code for s in alerts if s.code}):
            on_code = [s for s in alerts if s.code == code]
            try:
                quote = await self.bo.quote(code)
            except BrokerRefusal as refusal:
                log.warning("financial secretary: no quote for %s (%s); its %d alerts wait",
                            code, refusal.code, len(on_code))
                continue
            sec = quote.security
            obs = PriceObservation(code, sec.name, sec.name_en, quote.last, quote.at)
            langs = await self._langs({s.account for s in on_code}, customers)
            notices, changed = observe_price(obs, on_code, arms, now, langs=langs, tz=self.tz)
            cursors = {f"price:{sid}": arm.encode() for sid, arm in changed.items()}
            if notices or cursors:
                written = _plus(written, await self._write(notices, customers, cursors, now))
        return written

    async def _ipos(self, subs: list[Subscription], now: dt.datetime,
                    customers: dict[str, Customer | None]) -> tuple[int, int]:
        bo = self.bo
        wanted = _by_account(subs, Kind.IPO)
        if not wanted:
            return 0, 0
        if not isinstance(bo, IpoSource):
            return self._unsupported("ipo", subs, Kind.IPO)
        events: list[IpoEvent] = []
        for account in sorted(wanted):
            try:
                allotments = await bo.ipo_allotments(account)
            except BrokerRefusal as refusal:
                log.warning("financial secretary: IPO allotments of an account refused (%s)",
                            refusal.code)
                continue
            events.extend(IpoEvent(a.account, a.allotment_no, a.code, a.name, a.name_en,
                                   a.quantity, a.price, a.pay_date) for a in allotments)
        notices = await self._notices(events, wanted, now, customers)
        return await self._write(notices, customers, {}, now)

    async def _summaries(self, subs: list[Subscription], now: dt.datetime,
                         customers: dict[str, Customer | None]) -> tuple[int, int]:
        local = now.astimezone(self.tz)
        day = local.date()
        if not is_trading_day(day, self.rules) or local.time() < self.summary_at:
            return 0, 0
        if await self._cursor(_SUMMARY) == day.isoformat():
            return 0, 0
        wanted = _by_account(subs, Kind.DAILY_SUMMARY)
        notices: list[Notice] = []
        for account in sorted(wanted):
            try:
                cash = await self.bo.cash(account)
                positions = await self.bo.positions(account)
                fills = await self.bo.fills_today(account)
                codes = {p.security.code for p in positions} | {f.security.code for f in fills}
                prev = {code: (await self.bo.quote(code)).prev_close for code in sorted(codes)}
            except BrokerRefusal as refusal:
                # this account's summary cannot be made (closed account...): the others go on
                log.warning("financial secretary: no daily summary for an account (%s)",
                            refusal.code)
                continue
            event = summarize(account, day, now, cash, positions, fills, prev)
            notices.extend(await self._notices([event], wanted, now, customers))
        return await self._write(notices, customers, {_SUMMARY: day.isoformat()}, now)

    # --- helpers ----------------------------------------------------------------------------------

    def _unsupported(self, what: str, subs: list[Subscription], kind: Kind) -> tuple[int, int]:
        if what not in self._warned and any(s.kind is kind for s in subs):
            self._warned.add(what)
            log.warning("financial secretary: the back office offers no %s journal; %s "
                        "notices cannot be made", what, kind.value)
        return 0, 0

    async def _notices(self, events: Sequence[AccountEvent],
                       wanted: Mapping[str, list[Subscription]], now: dt.datetime,
                       customers: dict[str, Customer | None]) -> list[Notice]:
        langs = await self._langs({e.account for e in events}, customers)
        out: list[Notice] = []
        for event in events:
            out.extend(notices_for(event, wanted.get(event.account, ()), now, langs=langs,
                                   tz=self.tz))
        return out

    async def _langs(self, accounts: Iterable[str],
                     customers: dict[str, Customer | None]) -> dict[str, Lang]:
        for account in sorted(set(accounts) - customers.keys()):
            try:
                customers[account] = await self.bo.customer(account)
            except BrokerRefusal as refusal:
                if refusal.code != RefusalCode.UNKNOWN_ACCOUNT.value:
                    raise
                customers[account] = None  # its notices fail with the reason
        return {a: language_of(customers[a]) for a in accounts}

    async def _cursor(self, name: str) -> str | None:
        async with self.db.execute("SELECT value FROM secretary_cursors WHERE name = ?",
                                   (name,)) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def _arms(self, alerts: Sequence[Subscription]) -> dict[int, PriceArm]:
        names = {f"price:{s.id}": s.id for s in alerts}
        arms: dict[int, PriceArm] = {}
        async with self.db.execute(
                "SELECT name, value FROM secretary_cursors WHERE name LIKE 'price:%'") as cur:
            for name, value in await cur.fetchall():
                sid = names.get(str(name))
                arm = PriceArm.decode(str(value)) if sid is not None else None
                if sid is not None and arm is not None:
                    arms[sid] = arm
        return arms

    async def _write(self, notices: Sequence[Notice], customers: Mapping[str, Customer | None],
                     cursors: Mapping[str, str], now: dt.datetime) -> tuple[int, int]:
        """New notices with their outbox rows, and the bookmarks, in one transaction."""
        if not notices and not cursors:
            return 0, 0
        stamp = now.timestamp()
        # the relay's time for the same instant: the outbox rows are dated on it
        sent = stamp if self.outbox_clock is None else self.outbox_clock()
        written = failed = 0
        try:
            async with transaction(self.db):
                for n in notices:
                    sub = n.subscription
                    not_before = None if n.not_before is None else n.not_before.timestamp()
                    cur = await self.db.execute(
                        "INSERT OR IGNORE INTO notices (subscription_id, event_key, created_at,"
                        " not_before, message_id) VALUES (?, ?, ?, ?, ?)",
                        (sub.id, n.event_key, stamp, not_before, n.message_id))
                    if cur.rowcount != 1:
                        continue  # told before: exactly what the unique rule is for
                    to, problem = resolve_address(sub, customers.get(sub.account))
                    payload = {"to": to, "template": n.template, "lang": n.lang,
                               "account": sub.account, "data": n.data}
                    await self.db.execute(
                        "INSERT INTO outbox (message_id, channel, topic, payload, state,"
                        " last_error, created_at, updated_at, next_attempt_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (n.message_id, sub.channel.value, f"callcenter/outbox/{sub.channel}",
                         json.dumps(payload, ensure_ascii=False, sort_keys=True),
                         "failed" if problem else "queued", problem, sent, sent,
                         None if not_before is None else not_before - stamp + sent))
                    if problem:
                        await self.db.execute(
                            "INSERT OR IGNORE INTO deliveries (message_id, state, reason,"
                            " attempt, detail, at) VALUES (?, 'failed', ?, 1, '{}', ?)",
                            (n.message_id, problem, sent))
                        failed += 1
                    written += 1
                for name, value in cursors.items():
                    await self.db.execute(
                        "INSERT INTO secretary_cursors (name, value) VALUES (?, ?)"
                        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        (name, value))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record notices: {exc}") from exc
        return written, failed


def _plus(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] + b[0], a[1] + b[1]


def _by_account(subs: Iterable[Subscription], kind: Kind) -> dict[str, list[Subscription]]:
    out: dict[str, list[Subscription]] = {}
    for s in subs:
        if s.kind is kind:
            out.setdefault(s.account, []).append(s)
    return out


# --- subscriptions --------------------------------------------------------------------------------


def _subscription(row: aiosqlite.Row) -> Subscription:
    quiet = QuietHours.parse(row["quiet_start"], row["quiet_end"])
    params = json.loads(row["params"])
    return Subscription(int(row["id"]), str(row["account"]), Kind(row["kind"]),
                        Channel(row["channel"]), {str(k): str(v) for k, v in params.items()},
                        quiet, float(row["created_at"]), str(row["created_by"]),
                        bool(row["active"]))


async def _rows(db: aiosqlite.Connection, sql: str, *params: Any) -> list[aiosqlite.Row]:
    try:
        async with db.execute(sql, params) as cur:
            return list(await cur.fetchall())
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the financial secretary's records: {exc}") from exc


async def _active_subscriptions(db: aiosqlite.Connection) -> list[Subscription]:
    out = []
    for row in await _rows(db, "SELECT * FROM subscriptions WHERE active = 1 ORDER BY id"):
        try:
            out.append(_subscription(row))
        except (ValueError, TypeError, KeyError):
            log.warning("financial secretary: subscription %s is unreadable; skipped", row["id"])
    return out


async def subscribe(db: aiosqlite.Connection, account: str, kind: Kind | str,
                    channel: Channel | str, params: Mapping[str, Any] | None = None,
                    quiet: QuietHours | tuple[str, str] | None = None, by: str = "", *,
                    now: float | None = None) -> tuple[Subscription, bool]:
    """Subscribe ``account`` to notices of ``kind`` by ``channel``; return the subscription
    and whether it is new. The same request again returns the active one (with the quiet hours
    of the latest request). ``by``: ``ivr`` or the agent id. ``ValueError`` for a bad request
    (see ``secretary.canonical_params``)."""
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise ValueError("an account is 1-16 digits")
    kind, channel = Kind(kind), Channel(channel)
    canonical = canonical_params(kind, channel, params)
    window = QuietHours.parse(*quiet) if isinstance(quiet, tuple) else quiet
    start, end = window.text() if window is not None else (None, None)
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    stamp = time.time() if now is None else now
    try:
        async with transaction(db):
            cur = await db.execute(
                "INSERT OR IGNORE INTO subscriptions (account, kind, channel, params,"
                " quiet_start, quiet_end, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (account, kind.value, channel.value, text, start, end, stamp, by))
            created = cur.rowcount == 1
            if not created:
                await db.execute(
                    "UPDATE subscriptions SET quiet_start = ?, quiet_end = ? WHERE account = ?"
                    " AND kind = ? AND channel = ? AND params = ? AND active = 1",
                    (start, end, account, kind.value, channel.value, text))
            async with db.execute(
                    "SELECT * FROM subscriptions WHERE account = ? AND kind = ? AND channel = ?"
                    " AND params = ? AND active = 1",
                    (account, kind.value, channel.value, text)) as c:
                row = await c.fetchone()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot record the subscription: {exc}") from exc
    assert row is not None
    log.info("financial secretary: %s %s by %s for an account (%s)",
             "subscribed" if created else "kept", kind.value, channel.value, by or "?")
    return _subscription(row), created


async def unsubscribe(db: aiosqlite.Connection, subscription_id: int, *,
                      account: str | None = None) -> bool:
    """End a subscription (kept, inactive, with its notices); False if there is no such
    active one (of ``account``, when given: an agent acts on the customer in front of them)."""
    sql = "UPDATE subscriptions SET active = 0 WHERE id = ? AND active = 1"
    params: tuple[Any, ...] = (subscription_id,)
    if account is not None:
        sql += " AND account = ?"
        params = (subscription_id, account)
    try:
        async with transaction(db):
            cur = await db.execute(sql, params)
            changed = cur.rowcount == 1
            if changed:
                await db.execute("DELETE FROM secretary_cursors WHERE name = ?",
                                 (f"price:{subscription_id}",))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot end the subscription: {exc}") from exc
    return changed


async def list_subscriptions(db: aiosqlite.Connection, account: str, *,
                             include_inactive: bool = False) -> list[Subscription]:
    sql = "SELECT * FROM subscriptions WHERE account = ?"
    if not include_inactive:
        sql += " AND active = 1"
    return [_subscription(row) for row in await _rows(db, sql + " ORDER BY id", account)]


# --- delivery history -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox message to a customer and its latest state."""

    message_id: str
    channel: str
    template: str
    to: str
    state: str                       # queued | sent | delivered | failed
    reason: str                      # why it failed (or the last report's reason)
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None    # quiet hours or backoff: not before then
    kind: str                        # the subscription's kind, or the template
    subscription_id: int | None      # None: not a secretary notice (a statement...)
    event_key: str
    ref: str

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}

    def line(self, tz: dt.tzinfo = SHANGHAI) -> str:
        """One line for the CLI."""
        when = dt.datetime.fromtimestamp(self.created_at, tz).strftime("%Y-%m-%d %H:%M")
        text = f"{when}  {self.kind:<13} {self.channel:<5} {self.state:<9} {self.to or '-'}"
        if self.next_attempt_at is not None and self.state == "queued":
            after = dt.datetime.fromtimestamp(self.next_attempt_at, tz).strftime("%m-%d %H:%M")
            text += f"  (not before {after})"
        if self.reason:
            text += f"  {self.reason}"
        return text


async def deliveries_for(db: aiosqlite.Connection, account: str, *,
                         limit: int = 50) -> list[Delivery]:
    """The customer's outbox messages, newest first: notices, statements, notes."""
    rows = await _rows(
        db,
        "SELECT o.*, n.event_key, n.subscription_id, s.kind,"
        " (SELECT d.reason FROM deliveries d WHERE d.message_id = o.message_id"
        "   ORDER BY d.at DESC, d.id DESC LIMIT 1) AS last_reason"
        " FROM outbox o LEFT JOIN notices n ON n.message_id = o.message_id"
        " LEFT JOIN subscriptions s ON s.id = n.subscription_id"
        " WHERE json_extract(o.payload, '$.account') = ?"
        " ORDER BY o.created_at DESC, o.id DESC LIMIT ?", account, max(1, limit))
    out = []
    for row in rows:
        try:
            payload = json.loads(row["payload"])
        except ValueError:
            payload = {}
        template = str(payload.get("template") or payload.get("kind") or "")
        out.append(Delivery(
            str(row["message_id"]), str(row["channel"]), template, str(payload.get("to", "")),
            str(row["state"]), str(row["last_error"] or row["last_reason"] or ""),
            int(row["attempts"]), float(row["created_at"]), float(row["updated_at"]),
            None if row["next_attempt_at"] is None else float(row["next_attempt_at"]),
            str(row["kind"] or template), None if row["subscription_id"] is None
            else int(row["subscription_id"]), str(row["event_key"] or ""),
            str(row["ref"] or payload.get("ref") or "")))
    return out
