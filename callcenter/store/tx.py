"""Transactions on a shared aiosqlite connection.

aiosqlite runs one statement at a time but does not keep two coroutines' transactions apart:
a second ``BEGIN`` between another's ``BEGIN`` and ``COMMIT`` fails. ``transaction`` serialises
them with one lock per connection, and rolls back on any exception (cancellation included).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite

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
