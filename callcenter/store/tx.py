"""Transactions on a shared aiosqlite connection.

aiosqlite runs one statement at a time but does not keep two coroutines' transactions apart:
a second ``BEGIN`` between another's ``BEGIN`` and ``COMMIT`` fails. ``transaction`` serialises
them with one lock per connection, and rolls back on any exception (cancellation included).
"""

from __future__ import annotations

import asyncio
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
        await db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield db
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("COMMIT")
