"""Call records: the ``calls`` and ``call_events`` tables, written in batches, read back whole.

``CallRecorder`` takes model changes from the controller without awaiting (the AMI event handler
must not block) and turns them into statements for an ``OrderedWriter``: one task commits
whatever has queued up in a single transaction, and spools it durably when the database refuses
writes (``writer.py``, ``spool.py``).

It also keeps a heartbeat: ``<database>.alive``, touched every ``HEARTBEAT_S``. After a crash,
its time is the last moment the engine was known alive, and ``close_orphans`` ends the calls the
dead engine left open no earlier than that (nor earlier than their last recorded event): the
honest bound, since a call the engine saw no hangup for was still up while it lived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from callcenter.atcc.model import CAUSE_LOST, CallEnded, CallStarted, Change, TimelineAdded
from callcenter.store.spool import database_file
from callcenter.store.tx import Statement
from callcenter.store.writer import OrderedWriter

log = logging.getLogger(__name__)

#: the heartbeat file is touched this often (seconds)
HEARTBEAT_S = 2.0
#: at most one commit of call records per this many seconds (``OrderedWriter.min_interval_s``):
#: under load the records of many events share one transaction and one fsync
COMMIT_INTERVAL_S = 0.05
#: calls whose row is known to be written, kept to spare their events the stub insert; past
#: this many (calls that never ended) the set starts again, the stub insert being harmless
MAX_OPEN_CALLS = 100_000


# Closing the records a crashed run (or an outage) left open, but the live ones (a JSON list).
# The end: MIN(now, MAX(started_at, the last event recorded, the moment last known alive)).
_CLOSE_EVENTS = """
INSERT INTO call_events (call_id, seq, at, kind, detail)
SELECT id, (SELECT COALESCE(MAX(seq) + 1, 0) FROM call_events e WHERE e.call_id = calls.id),
       ?, 'call.closed', json_object('reason', ?, 'approximate', 'yes', 'ended_at',
       MIN(?, MAX(started_at, COALESCE((SELECT MAX(at) FROM call_events e
                                        WHERE e.call_id = calls.id), started_at), ?)))
FROM calls WHERE ended_at IS NULL AND id NOT IN (SELECT value FROM json_each(?))
"""
_CLOSE_CALLS = """
UPDATE calls SET
    ended_at = MIN(?, MAX(started_at, COALESCE((SELECT MAX(at) FROM call_events e
                                                WHERE e.call_id = calls.id
                                                AND e.kind != 'call.closed'), started_at), ?)),
    end_cause = ?, end_reason = ?
WHERE ended_at IS NULL AND id NOT IN (SELECT value FROM json_each(?))
"""


@dataclass(frozen=True)
class CallEventRecord:
    seq: int
    at: float
    kind: str
    detail: dict[str, str]


@dataclass(frozen=True)
class CallRecord:
    id: str
    started_at: float
    ended_at: float | None
    caller_num: str
    first_channel: str
    end_cause: int | None
    end_reason: str
    events: tuple[CallEventRecord, ...]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


class CallRecorder:
    def __init__(self, db: aiosqlite.Connection, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self.writer = OrderedWriter(db, "call-recorder", clock,
                                    min_interval_s=COMMIT_INTERVAL_S)
        self._open: set[str] = set()
        self._beat: asyncio.Task[None] | None = None
        self._heartbeat: Path | None = None
        self._previous_alive: float | None = None
        self._ready = asyncio.Event()

    @property
    def retry_s(self) -> float:
        return self.writer.retry_s

    @retry_s.setter
    def retry_s(self, value: float) -> None:
        self.writer.retry_s = value

    def start(self) -> None:
        self.writer.start()
        self._beat = asyncio.create_task(self._keep_heartbeat(), name="call-recorder-heartbeat")

    def put(self, changes: list[Change]) -> None:
        for change in changes:
            match change:
                case CallStarted(call):
                    if len(self._open) >= MAX_OPEN_CALLS:
                        self._open.clear()
                    self._open.add(call.id)
                case CallEnded(call):
                    self._open.discard(call.id)
            for sql, params in _statements(change, self._open):
                self.writer.put(sql, params)

    async def flush(self) -> None:
        """Return once everything put so far is committed (or durably spooled)."""
        await self.writer.flush()

    async def drained(self) -> None:
        """Return once everything put so far is in the database (nothing left in the spool)."""
        await self.writer.drained()

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        await self.writer.close()

    # -- after a crash ---------------------------------------------------------------------

    async def alive_before_start(self) -> float | None:
        """When the previous run last touched the heartbeat (None: no previous run known)."""
        await self._ready.wait()
        return self._previous_alive

    def close_orphans(self, live: Iterable[str], known_alive_at: float | None, now: float,
                      reason: str) -> None:
        """End every open call record but ``live`` ones: they ended while we could not see.

        The end is the later of the call's start, its last recorded event and
        ``known_alive_at`` (the last moment we could have seen its hangup), never after ``now``.
        """
        live_json = json.dumps(sorted(live))
        alive = known_alive_at if known_alive_at is not None else 0.0
        self.writer.put(_CLOSE_EVENTS, (now, reason, now, alive, live_json))
        self.writer.put(_CLOSE_CALLS, (now, alive, CAUSE_LOST, reason, live_json))

    async def _keep_heartbeat(self) -> None:
        try:
            path = await database_file(self.db)
            if path is not None:
                self._heartbeat = path.with_name(path.name + ".alive")
                self._previous_alive = await asyncio.to_thread(_mtime, self._heartbeat)
                await self._beat_once()
        except Exception:
            log.exception("cannot read the heartbeat of the previous run")
        finally:
            self._ready.set()
        if self._heartbeat is None:
            return
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self._beat_once()

    async def _beat_once(self) -> None:
        assert self._heartbeat is not None
        try:
            await asyncio.to_thread(_touch, self._heartbeat)
        except OSError as exc:
            log.warning("cannot touch the heartbeat %s: %s", self._heartbeat, exc)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _touch(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def _statements(change: Change, open_calls: Collection[str]) -> list[Statement]:
    """The statements recording ``change``; ``open_calls``: calls whose row is written (or
    queued) already, whose events need no stub row."""
    match change:
        case CallStarted(call):
            return [("INSERT OR IGNORE INTO calls (id, started_at, caller_num, caller_name,"
                     " first_channel) VALUES (?, ?, ?, ?, ?)",
                     (call.id, call.started_at, call.caller_num, call.caller_name,
                      call.first_channel))]
        case TimelineAdded(call_id, entry):
            # An engine note may come before (or without) AMI's view of the call, e.g. during
            # an AMI outage: keep it on a stub record.
            event: Statement = (
                "INSERT INTO call_events (call_id, seq, at, kind, detail)"
                " SELECT ?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM call_events"
                " WHERE call_id = ?), ?, ?, ?",
                (call_id, call_id, entry.at, entry.kind,
                 json.dumps(dict(entry.detail), ensure_ascii=False)))
            if call_id in open_calls:
                return [event]
            return [("INSERT OR IGNORE INTO calls (id, started_at) VALUES (?, ?)",
                     (call_id, entry.at)), event]
        case CallEnded(call):
            return [("UPDATE calls SET ended_at = ?, end_cause = ?, end_reason = ?,"
                     " caller_num = ?, caller_name = ? WHERE id = ?",
                     (call.ended_at, call.end_cause, call.end_reason, call.caller_num,
                      call.caller_name, call.id))]
    return []


async def get_call(db: aiosqlite.Connection, call_id: str) -> CallRecord | None:
    async with db.execute("SELECT * FROM calls WHERE id = ?", (call_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    async with db.execute(
        "SELECT seq, at, kind, detail FROM call_events WHERE call_id = ? ORDER BY seq", (call_id,)
    ) as cur:
        events = tuple(
            CallEventRecord(r["seq"], r["at"], r["kind"], json.loads(r["detail"]))
            for r in await cur.fetchall()
        )
    return CallRecord(row["id"], row["started_at"], row["ended_at"], row["caller_num"],
                      row["first_channel"], row["end_cause"], row["end_reason"], events)


async def recent_calls(db: aiosqlite.Connection, limit: int = 10) -> list[CallRecord]:
    async with db.execute("SELECT id FROM calls ORDER BY started_at DESC LIMIT ?", (limit,)) as cur:
        ids = [r["id"] for r in await cur.fetchall()]
    records = [await get_call(db, i) for i in ids]
    return [r for r in records if r is not None]
