"""Transactions on a shared aiosqlite connection.

aiosqlite runs one statement at a time but does not keep two coroutines' transactions apart:
a second ``BEGIN`` between another's ``BEGIN`` and ``COMMIT`` fails. ``transaction`` serialises
them with one lock per connection, and rolls back on any exception (cancellation included).

``apply_batch`` writes many statements in one transaction in a single trip to aiosqlite's thread
(a high-rate writer's batch would otherwise cost a thread hop, a future and a wake-up of the
loop per statement). aiosqlite has no public call for that, so it queues one function on the
connection's own queue (``Connection._execute``, there since aiosqlite 0.17): same thread, same
order as every other statement on the connection, same busy timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiosqlite

Statement = tuple[str, Sequence[object]]

_locks: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def transaction(db: aiosqlite.Connection, *, immediate: bool = True
                      ) -> AsyncIterator[aiosqlite.Connection]:
    lock = _locks.setdefault(db, asyncio.Lock())
    async with lock:
        try:
            await db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            yield db
            await db.execute("COMMIT")
        except BaseException:
            # Never leave the shared connection inside a transaction: a cancelled BEGIN goes
            # on in aiosqlite's thread and may open one later, a failed COMMIT leaves one
            # open; either would wedge every later writer. aiosqlite runs statements in
            # order, so this ROLLBACK comes after whatever is still in flight. "No
            # transaction" is fine; the original error is the one that matters.
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            raise


async def apply_batch(db: aiosqlite.Connection, statements: Sequence[Statement]) -> None:
    """Run ``statements`` in one ``BEGIN IMMEDIATE`` transaction, all or none, in one trip."""
    lock = _locks.setdefault(db, asyncio.Lock())
    async with lock:
        # private: see the docstring
        await db._execute(_apply, db._conn, list(statements))  # type: ignore[no-untyped-call]


def _apply(conn: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    """In aiosqlite's thread: the batch as one transaction, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
