"""A channel server: one ``ChannelPlugin`` with the bus, de-duplication, retries and reports.

``callcenter channel <kind>`` (or ``python -m callcenter.channels.runner <kind>``) runs one as
its own process; the run command may run some inside the engine (``ChannelRunner.start``).

Exactly once, as far as it can be had (``docs/channels.md`` has the whole argument):

1. The server subscribes ``callcenter/outbox/<kind>`` at QoS 1 in a persistent session (client
   id ``<kind>``, the user name, which the broker binds to the user): what is published
   while it is down waits in the broker.
2. A message is committed to the server's own SQLite (``<state_dir>/channel-<kind>.db``) as
   ``received`` and only then acknowledged. Killed before the commit: the broker sends it again.
   Killed after: it is in the database and is delivered after the restart. A second copy (the
   broker's redelivery, the relay's resend) is recognised by its message id and not delivered
   again; its latest report is sent again instead.
3. The worker marks a message ``sending`` (committed) before calling ``deliver`` and ``done``
   after. A message found ``sending`` at start-up was interrupted at the one moment nobody can
   know whether the peer got it: it is reported ``failed`` ("interrupted while sending; not
   resent to avoid a duplicate") unless the plug-in says ``idempotent_deliver = True``, in
   which case it is delivered again.
4. Reports and inbound contacts go through a local outbox table (``outgoing``) and are deleted
   only after the broker's PUBACK, so a report is not lost to a broker or server restart.
5. A request the server cannot read (malformed, out of bounds, nested too deeply) is parked in
   its database's ``bus_dead_letters`` with the reason, acknowledged, and reported ``failed``
   when its message id can be read: it never blocks the next request, nor comes back.

A message's states (``TRANSITIONS``)::

    received -> sending -> done
                   |  \\-> waiting (retriable failure; after a backoff) -> sending ...
                   '----> failed (not retriable, or out of attempts, or interrupted)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import enum
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosqlite
from pydantic import ValidationError

from callcenter.channels.bus import (
    DEAD_LETTERS_SCHEMA,
    KEEP_BYTES,
    Bus,
    Malformed,
    decode,
    park,
    take_or_retry,
    validation_summary,
)
from callcenter.channels.messages import (
    DeliveryReport,
    DeliveryState,
    Inbound,
    Outbound,
    delivery_topic,
    inbound_topic,
    outbox_topic,
)
from callcenter.channels.plugin import ENTRY_POINT_GROUP, ChannelPlugin, Delivered
from callcenter.channels.relay import backoff
from callcenter.channels.settings import ChannelsSettings
from callcenter.entry_points import registered
from callcenter.errors import CallCenterError, ChannelError, ConfigError, DeliveryError
from callcenter.store.db import durable_pragmas, make_private
from callcenter.store.tx import transaction

if TYPE_CHECKING:
    from callcenter.config import Settings

log = logging.getLogger("callcenter.channels.runner")  # also when run as __main__

INTERRUPTED = "interrupted while sending; not resent to avoid a duplicate"
#: at most this much of a malformed payload is kept (for people to look at)
KEEP_MALFORMED = KEEP_BYTES


class MessageState(enum.StrEnum):
    RECEIVED = "received"
    SENDING = "sending"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


M = MessageState
#: allowed moves of a message in the channel server's database; anything else is a bug
TRANSITIONS: dict[MessageState, frozenset[MessageState]] = {
    M.RECEIVED: frozenset({M.SENDING, M.FAILED}),
    M.SENDING: frozenset({M.DONE, M.WAITING, M.FAILED}),
    M.WAITING: frozenset({M.SENDING, M.FAILED}),
    M.DONE: frozenset(),
    M.FAILED: frozenset(),
}


def check_move(current: MessageState, new: MessageState) -> None:
    if new not in TRANSITIONS[current]:
        raise ChannelError(f"a message cannot go from {current} to {new}")


def after_interruption(idempotent: bool) -> tuple[MessageState, str]:
    """What becomes of a message found ``sending`` at start-up."""
    return (M.WAITING, "") if idempotent else (M.FAILED, INTERRUPTED)


SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL UNIQUE,
    payload     TEXT NOT NULL,             -- the Outbound as received (JSON)
    state       TEXT NOT NULL,             -- received | sending | waiting | done | failed
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  REAL,                      -- waiting: not before this time
    last_report TEXT NOT NULL DEFAULT '',  -- the latest DeliveryReport, sent again to duplicates
    received_at REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_todo ON messages(state, seq);
CREATE TABLE IF NOT EXISTS outgoing (      -- reports and contacts not yet acknowledged
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT NOT NULL,
    payload TEXT NOT NULL
);
"""


async def open_channel_db(path: Path) -> aiosqlite.Connection:
    await asyncio.to_thread(make_private, path)  # 0600 (message ids, dead letters)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        db.row_factory = aiosqlite.Row
        await durable_pragmas(db)
        await db.executescript(SCHEMA + DEAD_LETTERS_SCHEMA)
    except BaseException:
        await db.close()
        raise
    return db


# -- plug-ins -------------------------------------------------------------------------------------

def plugin_entry_points() -> dict[str, list[metadata.EntryPoint]]:
    return registered(ENTRY_POINT_GROUP)


def load_plugin(kind: str) -> type[ChannelPlugin]:
    """The plug-in class registered for ``kind`` under the ``callcenter.channels`` group."""
    found = plugin_entry_points()
    candidates = found.get(kind, [])
    if not candidates:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"no channel plug-in for kind {kind!r} (entry point group "
                          f"{ENTRY_POINT_GROUP}; installed: {known})")
    if len(candidates) > 1:
        raise ConfigError(f"more than one plug-in claims channel kind {kind!r}: "
                          + ", ".join(ep.value for ep in candidates))
    try:
        cls = candidates[0].load()
    except Exception as exc:
        raise ConfigError(f"channel plug-in {kind!r} ({candidates[0].value}) cannot be "
                          f"loaded: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, ChannelPlugin)):
        raise ConfigError(f"{candidates[0].value} is not a ChannelPlugin subclass")
    if getattr(cls, "kind", None) != kind:
        raise ConfigError(f"{candidates[0].value} says its kind is "
                          f"{getattr(cls, 'kind', None)!r}, registered as {kind!r}")
    return cls


def plugin_settings(cls: type[ChannelPlugin], channels: ChannelsSettings, kind: str) -> Any:
    try:
        return cls.Settings.model_validate(channels.extra.get(kind, {}))
    except ValidationError as exc:
        raise ConfigError(f"[channels.extra.{kind}]: {validation_summary(exc)}") from exc


# -- the runner -----------------------------------------------------------------------------------

def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


class ChannelRunner:
    """Runs one channel plug-in against the bus (``run``, or ``start``/``close``)."""

    def __init__(self, plugin_cls: type[ChannelPlugin], channels: ChannelsSettings,
                 state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.kind = plugin_cls.kind
        self.channels = channels
        self.clock = clock
        self.idempotent = bool(plugin_cls.idempotent_deliver)
        self.plugin = plugin_cls(plugin_settings(plugin_cls, channels, self.kind),
                                 self._report_later, self._publish_inbound)
        self.db_path = state_dir / f"channel-{self.kind}.db"
        # the broker makes the client id the user name anyway (use_username_as_clientid)
        self.bus = Bus(channels, state_dir, self.kind, client_id=self.kind,
                       subscriptions=(outbox_topic(self.kind),), handler=self._on_message,
                       on_poison=self._park)
        self._db: aiosqlite.Connection | None = None
        self._work = asyncio.Event()
        self._outgoing = asyncio.Event()
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise ChannelError(f"channel server {self.kind} is not running")
        return self._db

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Run in a task of this process; return once subscribed (``ChannelError`` and
        stopped again if that takes longer than ``start_timeout``)."""
        self._task = asyncio.create_task(self.run(), name=f"channel-{self.kind}")
        try:
            await self.wait_ready(self.channels.start_timeout)
        except BaseException:
            self.stop()
            task, self._task = self._task, None
            with contextlib.suppress(Exception):
                await task
            raise

    async def wait_ready(self, wait_s: float | None = None) -> None:
        waiter = asyncio.ensure_future(self._ready.wait())
        waits: set[asyncio.Future[Any]] = {waiter}
        if self._task is not None:
            waits.add(self._task)
        try:
            await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._task is not None and self._task.done():
            self._task.result()  # its error, if any
            raise ChannelError(f"channel server {self.kind} stopped")
        if not waiter.done() or waiter.cancelled():
            raise ChannelError(f"channel server {self.kind} not ready after {wait_s}s")

    def stop(self) -> None:
        """Finish the delivery in progress (up to ``shutdown_grace_s``), then stop."""
        self._stop.set()
        self._work.set()

    async def close(self) -> None:
        self.stop()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def run(self) -> None:
        """Serve until ``stop`` (or cancellation); ``BusError`` if the broker refuses us."""
        self._db = await open_channel_db(self.db_path)
        try:
            await self._recover()
            await self.plugin.start()
            try:
                await self._serve()
            finally:
                await self.plugin.close()
        finally:
            db, self._db = self._db, None
            await db.close()

    async def _serve(self) -> None:
        await self.bus.start()
        assert self.bus.task is not None
        publisher = asyncio.create_task(self._publisher(), name=f"reports-{self.kind}")
        worker = asyncio.create_task(self._worker(), name=f"worker-{self.kind}")
        stop = asyncio.create_task(self._stop.wait())
        ready = asyncio.create_task(self._announce_ready())
        try:
            done, _ = await asyncio.wait((self.bus.task, publisher, worker, stop),
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop:
                    task.result()  # a failure (BusError...) ends the server
            # stop asked: let the delivery in progress finish, then flush the reports
            if not worker.done():
                await asyncio.wait({worker}, timeout=self.channels.shutdown_grace_s)
            if self.bus.connected:
                self._out()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(),
                                           min(5.0, self.channels.io_timeout))
        finally:
            for task in (publisher, worker, stop, ready):
                task.cancel()
            # their errors, if any, were raised above already
            await asyncio.gather(publisher, worker, stop, ready, return_exceptions=True)
            await self.bus.close()
        log.info("channel server %s stopped", self.kind)

    async def _announce_ready(self) -> None:
        with contextlib.suppress(CallCenterError):
            await self.bus.wait_connected()
            log.info("channel server %s ready: subscribed to %s", self.kind,
                     outbox_topic(self.kind))
            self._ready.set()

    async def _recover(self) -> None:
        """Messages left ``sending`` by a crash: retry (idempotent plug-in) or fail."""
        state, reason = after_interruption(self.idempotent)
        now = self.clock()
        async with self.db.execute(
                "SELECT message_id, attempts FROM messages WHERE state = 'sending'") as cur:
            rows = list(await cur.fetchall())
        for row in rows:
            if state is M.WAITING:
                log.warning("channel %s: %s was interrupted while sending; the plug-in is "
                            "idempotent, so it is sent again", self.kind, row["message_id"])
                await self._move(row["message_id"], M.SENDING, M.WAITING, None,
                                 not_before=now)
            else:
                log.error("channel %s: %s %s", self.kind, row["message_id"], INTERRUPTED)
                await self._move(row["message_id"], M.SENDING, M.FAILED,
                                 self._report(row["message_id"], DeliveryState.FAILED, reason,
                                              max(row["attempts"], 1)))

    # -- receiving ----------------------------------------------------------------------------

    async def _on_message(self, topic: str, payload: bytes) -> None:
        await take_or_retry(self._take, topic, payload)

    async def _take(self, topic: str, payload: bytes) -> None:
        """Take a request; park what cannot be one (and report it failed if it has an id)."""
        item = decode(topic, payload)
        now = self.clock()
        try:
            if isinstance(item, Malformed):
                await self._on_malformed(item, payload, now)
            elif not isinstance(item, Outbound):
                await self._park(topic, payload, f"a {type(item).__name__} on the outbox topic")
            else:
                await self._on_outbound(item, now)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            log.exception("channel %s: a message on %s cannot be taken", self.kind, topic)
            await self._park(topic, payload, f"cannot be taken: {type(exc).__name__}: "
                                             f"{str(exc)[:300]}",
                             item.message_id if isinstance(item, Outbound | Malformed) else None)

    async def _on_outbound(self, item: Outbound, now: float) -> None:
        async with transaction(self.db):
            cur = await self.db.execute(
                "INSERT OR IGNORE INTO messages (message_id, payload, state, received_at,"
                " updated_at) VALUES (?, ?, 'received', ?, ?)",
                (item.message_id, item.model_dump_json(), now, now))
            fresh = cur.rowcount == 1
            again = False if fresh else await self._report_again(item.message_id)
        if fresh:
            log.info("channel %s: received %s", self.kind, item.message_id)
            self._work.set()
        else:
            log.info("channel %s: %s heard again; not delivered again%s", self.kind,
                     item.message_id, ", its latest report is sent again" if again else "")
            if again:
                self._out()

    async def _park(self, topic: str, payload: bytes, reason: str,
                    message_id: str | None = None) -> None:
        """Keep a request this server cannot use as a dead letter, with why."""
        await park(self.db, topic, payload, reason, message_id, self.clock())

    async def _report_again(self, message_id: str) -> bool:
        async with self.db.execute("SELECT last_report FROM messages WHERE message_id = ?",
                                   (message_id,)) as cur:
            row = await cur.fetchone()
        if row is None or not row["last_report"]:
            return False
        await self.db.execute("INSERT INTO outgoing (topic, payload) VALUES (?, ?)",
                              (delivery_topic(self.kind), row["last_report"]))
        return True

    async def _on_malformed(self, item: Malformed, payload: bytes, now: float) -> None:
        await self._park(item.topic, payload, item.reason, item.message_id)
        if item.message_id is None:
            log.error("channel %s: malformed message on %s without a readable message id "
                      "parked, not reported: %s", self.kind, item.topic, item.reason)
            return
        log.error("channel %s: malformed message %s reported failed: %s", self.kind,
                  item.message_id, item.reason)
        report = self._report(item.message_id, DeliveryState.FAILED,
                              f"malformed message: {item.reason}", 1)
        async with transaction(self.db):
            cur = await self.db.execute(
                "INSERT OR IGNORE INTO messages (message_id, payload, state, last_report,"
                " received_at, updated_at) VALUES (?, ?, 'failed', ?, ?, ?)",
                (item.message_id, payload[:KEEP_MALFORMED].decode("utf-8", "replace"),
                 report.model_dump_json(), now, now))
            if cur.rowcount == 1:
                await self.db.execute("INSERT INTO outgoing (topic, payload) VALUES (?, ?)",
                                      (delivery_topic(self.kind), report.model_dump_json()))
            else:
                await self._report_again(item.message_id)
        self._out()

    # -- delivering ---------------------------------------------------------------------------

    def _report(self, message_id: str, state: DeliveryState, reason: str, attempt: int,
                detail: dict[str, Any] | None = None) -> DeliveryReport:
        fields: dict[str, Any] = dict(message_id=message_id, channel=self.kind, state=state,
                                      reason=reason[:500], attempt=min(max(attempt, 1), 10_000),
                                      at=_utc(self.clock()))
        try:
            return DeliveryReport(**fields, detail=detail or {})
        except ValidationError as exc:  # a plug-in's detail out of bounds: the report goes
            log.warning("channel %s: the detail of %s's report dropped: %s", self.kind,
                        message_id, validation_summary(exc))
            return DeliveryReport(**fields, detail={"dropped": validation_summary(exc, 200)})

    async def _move(self, message_id: str, current: MessageState, new: MessageState,
                    report: DeliveryReport | None, *, attempts: int | None = None,
                    not_before: float | None = None) -> None:
        """One committed step: the new state, and the report to send (if any)."""
        check_move(current, new)
        now = self.clock()
        async with transaction(self.db):
            # last_report is what a duplicate hears: a receipt that came early (delivered)
            # is not replaced by the hand-over report (sent) that follows it
            cur = await self.db.execute(
                "UPDATE messages SET state = ?, attempts = COALESCE(?, attempts),"
                " not_before = ?, updated_at = ?, last_report = CASE"
                "  WHEN ? IS NULL THEN last_report"
                "  WHEN ? NOT IN ('delivered', 'failed') AND last_report != '' AND"
                "   json_extract(last_report, '$.state') IN ('delivered', 'failed')"
                "  THEN last_report ELSE ? END"
                " WHERE message_id = ? AND state = ?",
                (new.value, attempts, not_before, now, report and report.state.value,
                 report and report.state.value, report and report.model_dump_json(),
                 message_id, current.value))
            if cur.rowcount != 1:
                raise ChannelError(f"message {message_id} was not {current}")
            if report is not None:
                await self.db.execute("INSERT INTO outgoing (topic, payload) VALUES (?, ?)",
                                      (delivery_topic(self.kind), report.model_dump_json()))
        if report is not None:
            self._out()

    async def _worker(self) -> None:
        while not self._stop.is_set():
            self._work.clear()
            now = self.clock()
            async with self.db.execute(
                    "SELECT message_id, payload, state, attempts FROM messages WHERE"
                    " state = 'received' OR (state = 'waiting' AND not_before <= ?)"
                    " ORDER BY seq LIMIT 1", (now,)) as cur:
                row = await cur.fetchone()
            if row is not None:
                await self._deliver(row["message_id"], row["payload"],
                                    MessageState(row["state"]), row["attempts"])
                continue
            async with self.db.execute(
                    "SELECT MIN(not_before) FROM messages WHERE state = 'waiting'") as cur:
                nxt = await cur.fetchone()
            delay = None if nxt is None or nxt[0] is None else max(0.0, nxt[0] - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), delay)

    async def _deliver(self, message_id: str, payload: str, state: MessageState,
                       attempts: int) -> None:
        try:
            message = Outbound.model_validate_json(payload)
        except ValidationError as exc:
            await self._move(message_id, state, M.FAILED, self._report(
                message_id, DeliveryState.FAILED,
                f"stored message unreadable: {validation_summary(exc)}", attempts))
            return
        attempt = attempts + 1
        await self._move(message_id, state, M.SENDING, None, attempts=attempt)
        try:
            result = await self.plugin.deliver(message)
        except DeliveryError as exc:
            await self._failed(message_id, attempt, exc)
            return
        except Exception as exc:
            log.exception("channel %s: the plug-in failed on %s", self.kind, message_id)
            await self._move(message_id, M.SENDING, M.FAILED, self._report(
                message_id, DeliveryState.FAILED,
                f"channel server error: {type(exc).__name__}: {exc}", attempt))
            return
        if not isinstance(result, Delivered) or result.state not in (DeliveryState.SENT,
                                                                      DeliveryState.DELIVERED):
            await self._move(message_id, M.SENDING, M.FAILED, self._report(
                message_id, DeliveryState.FAILED,
                f"the plug-in answered {result!r}, not SENT or DELIVERED", attempt))
            return
        log.info("channel %s: %s %s", self.kind, message_id, result.state)
        await self._move(message_id, M.SENDING, M.DONE, self._report(
            message_id, result.state, "", attempt, result.detail))

    async def _failed(self, message_id: str, attempt: int, exc: DeliveryError) -> None:
        limit = self.channels.deliver_attempts
        if exc.retriable and attempt < limit:
            delay = backoff(attempt - 1, self.channels.retry_min_s, self.channels.retry_max_s)
            log.warning("channel %s: %s attempt %d failed (%s); again in %.0fs", self.kind,
                        message_id, attempt, exc.reason, delay)
            await self._move(message_id, M.SENDING, M.WAITING, self._report(
                message_id, DeliveryState.RETRYING, exc.reason, attempt),
                not_before=self.clock() + delay)
            return
        reason = exc.reason if not exc.retriable else (
            f"{exc.reason} (gave up after {attempt} attempts)")
        log.warning("channel %s: %s failed: %s", self.kind, message_id, reason)
        await self._move(message_id, M.SENDING, M.FAILED, self._report(
            message_id, DeliveryState.FAILED, reason, attempt))

    # -- what the plug-in sends back ----------------------------------------------------------

    async def _report_later(self, message_id: str, state: DeliveryState, reason: str,
                            detail: dict[str, Any]) -> None:
        async with transaction(self.db):
            async with self.db.execute("SELECT attempts FROM messages WHERE message_id = ?",
                                       (message_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                log.warning("channel %s: a receipt for unknown message %s dropped", self.kind,
                            message_id)
                return
            report = self._report(message_id, state, reason, row["attempts"], detail)
            await self.db.execute(
                "UPDATE messages SET last_report = ?, updated_at = ? WHERE message_id = ?",
                (report.model_dump_json(), self.clock(), message_id))
            await self.db.execute("INSERT INTO outgoing (topic, payload) VALUES (?, ?)",
                                  (delivery_topic(self.kind), report.model_dump_json()))
        self._out()

    async def _publish_inbound(self, contact: Inbound) -> None:
        if contact.channel != self.kind:
            raise ChannelError(f"channel server {self.kind} cannot publish a "
                               f"{contact.channel} contact")
        async with transaction(self.db):
            await self.db.execute("INSERT INTO outgoing (topic, payload) VALUES (?, ?)",
                                  (inbound_topic(self.kind), contact.model_dump_json()))
        self._out()

    def _out(self) -> None:
        """Something was added to ``outgoing``."""
        self._drained.clear()
        self._outgoing.set()

    async def _publisher(self) -> None:
        """Publish the local outbox in order; delete each row after its PUBACK."""
        failures = 0
        while True:
            self._outgoing.clear()
            async with self.db.execute(
                    "SELECT id, topic, payload FROM outgoing ORDER BY id LIMIT 100") as cur:
                rows = list(await cur.fetchall())
            if not rows:
                self._drained.set()
                await self._outgoing.wait()
                continue
            await self.bus.wait_connected()
            done: list[int] = []
            try:
                for row in rows:
                    await self.bus.publish(row["topic"], row["payload"].encode("utf-8"))
                    done.append(row["id"])
                failures = 0
            except CallCenterError as exc:
                delay = backoff(failures, self.channels.reconnect_min,
                                self.channels.reconnect_max)
                failures += 1
                log.warning("channel %s: publishing a report failed (%s); again in %.1fs",
                            self.kind, exc, delay)
                await asyncio.sleep(delay)
            finally:
                if done:
                    async with transaction(self.db):
                        await self.db.executemany("DELETE FROM outgoing WHERE id = ?",
                                                  [(i,) for i in done])


# -- entry points ---------------------------------------------------------------------------------

async def run_channel(settings: Settings, kind: str) -> None:
    """``callcenter channel <kind>``: serve until SIGTERM or SIGINT."""
    channels = settings.channels
    if kind not in channels.kinds:
        raise ConfigError(f"channel kind {kind!r} is not configured (known: "
                          f"{', '.join(channels.kinds)}); add a [channels.extra.{kind}] table")
    runner = ChannelRunner(load_plugin(kind), channels, settings.state_dir)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stop)
    try:
        await runner.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    from callcenter.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m callcenter.channels.runner",
                                     description="Run one channel server in the foreground.")
    parser.add_argument("kind", help="fax, email, sms, or a plug-in's kind")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run_channel(load_settings(), args.kind))
    except KeyboardInterrupt:
        return 130
    except CallCenterError as exc:
        print(f"callcenter channel: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
