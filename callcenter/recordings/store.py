"""The recordings' rows (``recordings``, ``recording_access``): proofs added by the IVR, what is
due for sealing and deletion, holds, the access log, and the search by customer, agent, date
and order number (through the proof's intent)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from callcenter.errors import RecordingError, RecordingNotFound
from callcenter.store.tx import transaction

__all__ = ["Recording", "access_log", "add_proof", "count_sealed", "end_recording", "get",
           "log_access", "mark_deleted", "mark_sealed", "past_retention", "sealed", "search",
           "search_query", "set_hold", "to_seal"]

#: a recording whose end was never seen (an engine that died) counts as ended after this
STALE_S = 6 * 3600.0
SEALED_SUFFIX = ".sealed"

#: constant SQL (the queries below add only constant conditions; values are parameters)
_SELECT = """
    SELECT r.id, r.kind, r.call_id, r.agent_id, r.account, r.path, r.started_at, r.ended_at,
           r.intent_key, r.sealed_at, r.sha256, r.bytes, r.retain_until, r.held_by,
           r.hold_reason, r.deleted_at, i.kind, i.state,
           coalesce(json_extract(i.result, '$.order_no'), json_extract(i.result, '$.transfer_no'))
    FROM recordings r LEFT JOIN intents i ON i.key = r.intent_key
"""


@dataclass(frozen=True)
class Recording:
    id: int
    kind: str                 # agent | proof
    call_id: str
    agent_id: str
    account: str
    path: str                 # as Asterisk wrote it; sealed: + SEALED_SUFFIX
    started_at: float
    ended_at: float | None
    intent_key: str | None
    sealed_at: float | None
    sha256: str | None
    bytes: int | None
    retain_until: float | None
    held_by: str | None
    hold_reason: str | None
    deleted_at: float | None
    intent_kind: str | None   # order | cancel | transfer
    intent_state: str | None  # pending | done | refused | not_done
    reference: str | None     # the order's or transfer's number

    def unplayable(self) -> str | None:
        """Why it cannot be played now, or None: only a sealed, kept recording plays."""
        if self.deleted_at is not None:
            return f"recording {self.id} was deleted after its retention"
        if self.sealed_at is None:
            return f"recording {self.id} is not sealed yet (in progress?)"
        return None

    @property
    def stored_path(self) -> str:
        return self.path + SEALED_SUFFIX if self.sealed_at is not None else self.path

    def view(self) -> dict[str, Any]:
        """For the API and the console: never the path, the digest is enough to prove it."""
        return {"id": self.id, "kind": self.kind, "call_id": self.call_id,
                "agent_id": self.agent_id, "account": self.account,
                "started_at": self.started_at, "ended_at": self.ended_at,
                "sealed": self.sealed_at is not None, "sha256": self.sha256,
                "bytes": self.bytes, "retain_until": self.retain_until,
                "held": self.held_by is not None, "hold_reason": self.hold_reason,
                "deleted": self.deleted_at is not None,
                "intent": None if self.intent_key is None else {
                    "kind": self.intent_kind, "state": self.intent_state,
                    "reference": self.reference}}


def _recording(row: Any) -> Recording:
    r = tuple(row)
    return Recording(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                     float(r[6]), r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15],
                     r[16], r[17], None if r[18] is None else str(r[18]))


async def add_proof(db: aiosqlite.Connection, *, call_id: str, account: str, path: str,
                    intent_key: str, started_at: float) -> int:
    async with transaction(db):
        cur = await db.execute(
            "INSERT INTO recordings (call_id, agent_id, account, path, started_at, kind,"
            " intent_key) VALUES (?, '', ?, ?, ?, 'proof', ?)",
            (call_id, account, path, started_at, intent_key))
    assert cur.lastrowid is not None
    return cur.lastrowid


async def end_recording(db: aiosqlite.Connection, recording_id: int, at: float) -> None:
    async with transaction(db):
        await db.execute("UPDATE recordings SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                         (at, recording_id))


async def get(db: aiosqlite.Connection, recording_id: int) -> Recording:
    async with db.execute(_SELECT + " WHERE r.id = ?", (recording_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise RecordingNotFound(f"no recording {recording_id}")
    return _recording(row)


async def to_seal(db: aiosqlite.Connection, now: float, after_s: float) -> list[Recording]:
    """Unsealed recordings that have ended (their row says so, their call record ended, or
    they are older than ``STALE_S``) at least ``after_s`` ago."""
    cut = now - after_s
    async with db.execute(
            _SELECT + " WHERE r.sealed_at IS NULL AND r.deleted_at IS NULL AND"  # noqa: S608
            " (r.ended_at <= ? OR r.started_at <= ? OR EXISTS (SELECT 1 FROM calls c"
            "  WHERE c.id = r.call_id AND c.ended_at <= ?)) ORDER BY r.id",
            (cut, now - STALE_S, cut)) as cur:
        return [_recording(r) for r in await cur.fetchall()]


async def sealed(db: aiosqlite.Connection) -> list[Recording]:
    """Sealed recordings not deleted (their files are kept), oldest first."""
    async with db.execute(_SELECT + " WHERE r.sealed_at IS NOT NULL"
                          " AND r.deleted_at IS NULL ORDER BY r.id") as cur:
        return [_recording(r) for r in await cur.fetchall()]


async def count_sealed(db: aiosqlite.Connection) -> int:
    """Sealed recordings not deleted: what the site key must open."""
    async with db.execute("SELECT count(*) FROM recordings WHERE sealed_at IS NOT NULL"
                          " AND deleted_at IS NULL") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def mark_sealed(db: aiosqlite.Connection, recording_id: int, *, at: float, sha256: str,
                      size: int, retain_until: float) -> None:
    async with transaction(db):
        await db.execute("UPDATE recordings SET sealed_at = ?, sha256 = ?, bytes = ?,"
                         " retain_until = ?, ended_at = coalesce(ended_at, ?) WHERE id = ?",
                         (at, sha256, size, retain_until, at, recording_id))


async def past_retention(db: aiosqlite.Connection, now: float) -> list[Recording]:
    """Sealed recordings past their retention and not yet deleted, held ones too (whether one
    goes is ``retention.due``'s to say)."""
    async with db.execute(_SELECT + " WHERE r.deleted_at IS NULL AND"
                          " r.retain_until <= ? ORDER BY r.id", (now,)) as cur:
        return [_recording(r) for r in await cur.fetchall()]


async def mark_deleted(db: aiosqlite.Connection, recording_id: int, at: float) -> bool:
    """Mark it deleted (logged), unless it is on hold or already deleted; whether it was."""
    async with transaction(db):
        cur = await db.execute("UPDATE recordings SET deleted_at = ? WHERE id = ?"
                               " AND held_by IS NULL AND deleted_at IS NULL", (at, recording_id))
        if cur.rowcount != 1:
            return False
        await db.execute("INSERT INTO recording_access (at, recording_id, actor, via, action)"
                         " VALUES (?, ?, 'retention', 'retention', 'delete')",
                         (at, recording_id))
    return True


async def set_hold(db: aiosqlite.Connection, recording_id: int, *, by: str, via: str,
                   reason: str | None) -> Recording:
    """Put a legal hold (``reason``) or release it (None); logged."""
    async with transaction(db):
        async with db.execute("SELECT deleted_at FROM recordings WHERE id = ?",
                              (recording_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise RecordingNotFound(f"no recording {recording_id}")
        if row[0] is not None:
            raise RecordingError(f"recording {recording_id} was deleted after its retention")
        await db.execute("UPDATE recordings SET held_by = ?, hold_reason = ? WHERE id = ?",
                         (by if reason else None, reason or None, recording_id))
        await db.execute("INSERT INTO recording_access (at, recording_id, actor, via, action,"
                         " detail) VALUES (?, ?, ?, ?, ?, ?)",
                         (time.time(), recording_id, by, via,
                          "hold" if reason else "release", reason or ""))
    return await get(db, recording_id)


async def log_access(db: aiosqlite.Connection, recording_id: int, *, actor: str, via: str,
                     action: str = "play", detail: str = "") -> None:
    async with transaction(db):
        await db.execute("INSERT INTO recording_access (at, recording_id, actor, via, action,"
                         " detail) VALUES (?, ?, ?, ?, ?, ?)",
                         (time.time(), recording_id, actor, via, action, detail))


async def access_log(db: aiosqlite.Connection, recording_id: int) -> list[dict[str, Any]]:
    async with db.execute("SELECT at, actor, via, action, detail FROM recording_access"
                          " WHERE recording_id = ? ORDER BY id", (recording_id,)) as cur:
        return [{"at": r[0], "actor": r[1], "via": r[2], "action": r[3], "detail": r[4]}
                for r in await cur.fetchall()]


def search_query(filters: Mapping[str, Any], limit: int = 100) -> tuple[str, list[object]]:
    """``search``'s SQL and its parameters (constant SQL: values are parameters)."""
    where: list[str] = []
    args: list[object] = []
    simple = {"account": "r.account = ?", "agent_id": "r.agent_id = ?",
              "call_id": "r.call_id = ?", "since": "r.started_at >= ?",
              "until": "r.started_at < ?"}
    for name, condition in simple.items():
        if filters.get(name) not in (None, ""):
            where.append(condition)
            args.append(filters[name])
    if filters.get("reference"):
        # the same expressions as migration 13's indexes
        where.append("r.call_id IN (SELECT call_id FROM intents WHERE"
                     " json_extract(result, '$.order_no') = ?"
                     " UNION SELECT call_id FROM intents WHERE"
                     " json_extract(result, '$.transfer_no') = ?)")
        args += [str(filters["reference"])] * 2
    cond = " AND ".join(where) or "1 = 1"
    return f"{_SELECT} WHERE {cond} ORDER BY r.started_at DESC, r.id DESC LIMIT ?", \
        [*args, limit]


async def search(db: aiosqlite.Connection, filters: Mapping[str, Any], *,
                 limit: int = 100) -> list[Recording]:
    """By ``account``, ``agent_id``, ``call_id``, ``reference`` (an order's or transfer's
    number: every recording of the calls it was made in), ``since``/``until`` (Unix seconds,
    on the start); newest first. Deleted recordings are listed (marked) but never played."""
    sql, args = search_query(filters, limit)
    async with db.execute(sql, args) as cur:
        return [_recording(r) for r in await cur.fetchall()]
