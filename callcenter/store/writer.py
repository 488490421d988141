"""An ordered, batched statement writer for state the event loop changes synchronously.

The ACD decides in plain synchronous code (no awaits between a decision and its effect on
memory) and hands the rows to record here. One task writes them in order, whatever has queued up
in one transaction, so a burst of events costs one commit. ``flush`` returns once everything put
so far is committed (tests, shutdown, and restore-after-restart rely on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aiosqlite

from callcenter.store.tx import transaction

log = logging.getLogger(__name__)

Statement = tuple[str, Sequence[object]]


class OrderedWriter:
    def __init__(self, db: aiosqlite.Connection, name: str = "writer") -> None:
        self.db = db
        self.name = name
        self._queue: asyncio.Queue[Statement | asyncio.Future[None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def put(self, sql: str, params: Sequence[object] = ()) -> None:
        self._queue.put_nowait((sql, params))

    async def flush(self) -> None:
        if self._task is None or self._task.done():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(fut)
        await fut

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            statements = [i for i in items if not isinstance(i, asyncio.Future)]
            if statements:
                try:
                    async with transaction(self.db):
                        for sql, params in statements:
                            await self.db.execute(sql, params)
                except Exception:
                    # A failed batch is logged, not retried forever: one bad row must not
                    # wedge every later one. Each row is then tried alone to keep the rest.
                    log.exception("%s: batch of %d failed; writing one by one", self.name,
                                  len(statements))
                    for sql, params in statements:
                        try:
                            async with transaction(self.db):
                                await self.db.execute(sql, params)
                        except Exception:
                            log.exception("%s: dropped one statement: %s", self.name,
                                          sql.split("(")[0])
            for item in items:
                if isinstance(item, asyncio.Future) and not item.done():
                    item.set_result(None)
