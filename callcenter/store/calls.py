"""Call records: the ``calls`` and ``call_events`` tables, written in batches, read back whole.

``CallRecorder`` takes model changes from the controller without awaiting (the AMI event handler
must not block), and one writer task commits whatever has queued up in a single transaction: one
thread hop per batch instead of one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

import aiosqlite

from callcenter.atcc.model import CallEnded, CallStarted, Change, TimelineAdded
from callcenter.store.tx import transaction

log = logging.getLogger(__name__)


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
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._queue: asyncio.Queue[Change] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="call-recorder")

    def put(self, changes: list[Change]) -> None:
        for change in changes:
            self._idle.clear()
            self._queue.put_nowait(change)

    async def flush(self) -> None:
        """Return once everything put so far is committed."""
        await self._idle.wait()

    async def close(self) -> None:
        if self._task is None:
            return
        await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:
                # The record is lost but calls go on; say so loudly.
                log.exception("could not write %d call record changes", len(batch))
            if self._queue.empty():
                self._idle.set()

    async def _write(self, batch: list[Change]) -> None:
        async with transaction(self.db) as db:
            for change in batch:
                match change:
                    case CallStarted(call):
                        await db.execute(
                            "INSERT OR IGNORE INTO calls (id, started_at, caller_num, caller_name,"
                            " first_channel) VALUES (?, ?, ?, ?, ?)",
                            (call.id, call.started_at, call.caller_num, call.caller_name,
                             call.first_channel),
                        )
                    case TimelineAdded(call_id, entry):
                        # An engine note may come before (or without) AMI's view of the call,
                        # e.g. during an AMI outage: keep it on a stub record.
                        await db.execute(
                            "INSERT OR IGNORE INTO calls (id, started_at) VALUES (?, ?)",
                            (call_id, entry.at))
                        await db.execute(
                            "INSERT INTO call_events (call_id, seq, at, kind, detail)"
                            " SELECT ?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM call_events"
                            " WHERE call_id = ?), ?, ?, ?",
                            (call_id, call_id, entry.at, entry.kind,
                             json.dumps(dict(entry.detail), ensure_ascii=False)),
                        )
                    case CallEnded(call):
                        await db.execute(
                            "UPDATE calls SET ended_at = ?, end_cause = ?, end_reason = ?,"
                            " caller_num = ?, caller_name = ? WHERE id = ?",
                            (call.ended_at, call.end_cause, call.end_reason, call.caller_num,
                             call.caller_name, call.id),
                        )


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
