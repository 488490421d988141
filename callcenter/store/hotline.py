"""The hotline's own records: intents (exactly-once orders and transfers), service requests
with their outbox messages, and survey ratings.

An intent row is committed *before* the back office is asked to act, keyed by the idempotency
key made at the confirm step. A second confirm with the same key finds the row; a crash leaves
it ``pending`` for ``reconcile`` to settle by asking the back office, never by resending.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from callcenter.errors import StoreError
from callcenter.store.tx import transaction

REF_DIGITS = 8


@dataclass(frozen=True, slots=True)
class Intent:
    key: str
    kind: str
    call_id: str
    account: str
    summary: dict[str, Any]
    state: str
    result: dict[str, Any]


def _intent(row: aiosqlite.Row) -> Intent:
    return Intent(row["key"], row["kind"], row["call_id"], row["account"],
                  json.loads(row["summary"]), row["state"], json.loads(row["result"]))


async def begin_intent(db: aiosqlite.Connection, key: str, kind: str, call_id: str,
                       account: str, summary: dict[str, Any]) -> tuple[Intent, bool]:
    """Record the intent (durably) unless it exists; return it and whether it is new."""
    now = time.time()
    async with transaction(db):
        cur = await db.execute(
            "INSERT OR IGNORE INTO intents (key, kind, call_id, account, summary, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, kind, call_id, account, json.dumps(summary, default=str, allow_nan=False),
             now, now))
        created = cur.rowcount == 1
        async with db.execute("SELECT * FROM intents WHERE key = ?", (key,)) as c:
            row = await c.fetchone()
    assert row is not None
    intent = _intent(row)
    same = json.loads(json.dumps(summary, default=str))
    if intent.kind != kind or intent.account != account or intent.summary != same:
        raise StoreError("idempotency key reused for a different request")
    return intent, created


#: the numbers a caller is read back and searched by (recordings/store.py's indexes): strings
REFERENCES = ("order_no", "transfer_no")


async def finish_intent(db: aiosqlite.Connection, key: str, state: str,
                        result: dict[str, Any]) -> None:
    """The intent's outcome; its reference numbers kept as JSON strings (a back office may
    answer a number), so a search by reference finds them."""
    kept = {k: (str(v) if k in REFERENCES and v is not None else v) for k, v in result.items()}
    async with transaction(db):
        await db.execute("UPDATE intents SET state = ?, result = ?, updated_at = ? WHERE key = ?",
                         (state, json.dumps(kept, default=str, allow_nan=False), time.time(),
                          key))


async def get_intent(db: aiosqlite.Connection, key: str) -> Intent | None:
    async with db.execute("SELECT * FROM intents WHERE key = ?", (key,)) as cur:
        row = await cur.fetchone()
    return _intent(row) if row else None


async def pending_intents(db: aiosqlite.Connection) -> list[Intent]:
    async with db.execute("SELECT * FROM intents WHERE state = 'pending' ORDER BY created_at"
                          ) as cur:
        return [_intent(r) for r in await cur.fetchall()]


def new_ref() -> str:
    """A reference a caller can write down: eight digits, not starting with 0."""
    return str(secrets.randbelow(9 * 10 ** (REF_DIGITS - 1)) + 10 ** (REF_DIGITS - 1))


async def add_request(db: aiosqlite.Connection, kind: str, call_id: str, *,
                      account: str | None, phone: str | None, detail: dict[str, Any],
                      outbox: Sequence[tuple[str, str, dict[str, Any]]] = ()) -> str:
    """Store a service request and its outbox messages (channel, topic, payload) atomically.

    Raises ``StoreError`` with ``duplicate`` in the message when a unique rule refuses it (a
    second open call-back for one number).
    """
    for _ in range(5):
        ref = new_ref()
        now = time.time()
        try:
            async with transaction(db):
                await db.execute(
                    "INSERT INTO service_requests (ref, kind, call_id, account, phone, detail,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ref, kind, call_id, account, phone, json.dumps(detail, default=str), now))
                for channel, topic, payload in outbox:
                    await db.execute(
                        "INSERT INTO outbox (message_id, channel, topic, payload, ref,"
                        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (uuid.uuid4().hex, channel, topic,
                         json.dumps({**payload, "ref": ref}, default=str, ensure_ascii=False),
                         ref, now, now))
        except sqlite3.IntegrityError as exc:
            if "service_requests.ref" in str(exc):
                continue  # ref collision: draw another
            raise StoreError(f"duplicate {kind} request") from exc
        return ref
    raise StoreError("could not allocate a request reference")


async def open_callback(db: aiosqlite.Connection, phone: str) -> str | None:
    async with db.execute("SELECT ref FROM service_requests WHERE kind = 'callback' AND"
                          " state = 'open' AND phone = ?", (phone,)) as cur:
        row = await cur.fetchone()
    return str(row["ref"]) if row else None


async def save_survey(db: aiosqlite.Connection, call_id: str, account: str | None,
                      rating: int) -> None:
    async with transaction(db):
        await db.execute("INSERT OR REPLACE INTO surveys (call_id, account, rating, created_at)"
                         " VALUES (?, ?, ?, ?)", (call_id, account, rating, time.time()))
