"""An ordered, batched statement writer for state the event loop changes synchronously.

The ACD decides in plain synchronous code (no awaits between a decision and its effect on
memory) and hands the rows to record here. One task writes them in order, whatever has queued up
in one transaction, so a burst of events costs one commit. ``flush`` returns once everything put
so far is committed or durably spooled (tests, shutdown, and restore-after-restart rely on it).

Nothing is dropped because the database is unavailable: a batch it refuses (locked past the busy
timeout, read-only, disk full, I/O error) goes to the writer's spool file (``spool.py``), and so
does everything after it, in order, until a retry (backing off from ``retry_s`` to
``retry_max_s``) has replayed the spool into the database exactly once. A spool left by a crash is
replayed when the writer starts. Only a statement the database refuses for its content (a
constraint) is dropped, alone, and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import aiosqlite

from callcenter.store.spool import (
    SpooledBatch,
    SpoolFile,
    database_file,
    new_batch,
    replay,
    spool_path,
    unavailable,
)
from callcenter.store.tx import Statement, apply_batch, transaction

log = logging.getLogger(__name__)

class OrderedWriter:
    #: first retry of a spooled backlog after this many seconds, doubling up to ``retry_max_s``
    retry_s = 0.5
    retry_max_s = 10.0

    def __init__(self, db: aiosqlite.Connection, name: str = "writer",
                 clock: Callable[[], float] = time.time, *, min_interval_s: float = 0.0) -> None:
        self.db = db
        self.name = name
        self.clock = clock
        #: at most one commit per this many seconds: under load a commit (an fsync) takes what
        #: queued up meanwhile; a lone row after a quiet spell is written at once, and a
        #: ``flush`` never waits for it
        self.min_interval_s = min_interval_s
        self._items: deque[Statement | asyncio.Future[None]] = deque()
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._last_write = float("-inf")  # loop time of the last commit's start
        self._task: asyncio.Task[None] | None = None
        self._spool: SpoolFile | None = None
        #: batches the database has not taken yet, in order (all in the spool file but
        #: ``_unsaved``, which could not be appended to it either)
        self._backlog: deque[SpooledBatch] = deque()
        self._unsaved: list[SpooledBatch] = []
        self._drained = asyncio.Event()
        self._delay = 0.0
        self._next_try = 0.0  # loop time of the next replay attempt
        self._warned = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    def put(self, sql: str, params: Sequence[object] = ()) -> None:
        self._items.append((sql, params))
        self._wake.set()

    async def flush(self) -> None:
        """Return once everything put so far is committed or durably spooled."""
        if self._task is None or self._task.done():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._items.append(fut)
        self._wake.set()
        self._urgent.set()
        await fut

    async def drained(self) -> None:
        """Return once nothing waits in the spool (the database has everything put so far)."""
        await self.flush()
        await self._drained.wait()

    @property
    def spooled(self) -> int:
        """Batches waiting in the spool for the database."""
        return len(self._backlog)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Rows put after the flush above (the task may have been pausing with them): in order,
        # behind the backlog, like the task would have.
        await self._take_items()
        if self._backlog:
            await self._drain()  # the database may be back: one last try
        if self._unsaved:
            await self._save()
        if self._backlog:
            log.warning("%s: %d batches stay in %s for the next start", self.name,
                        len(self._backlog), self._spool.path if self._spool else "memory")

    # -- the writer task -------------------------------------------------------------------

    async def _run(self) -> None:
        await self._load()
        loop = asyncio.get_running_loop()
        while True:
            if self._backlog and loop.time() >= self._next_try:
                await self._drain()
            if not self._items:
                self._wake.clear()
                timeout = max(0.0, self._next_try - loop.time()) if self._backlog else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                if not self._items:
                    continue  # the backlog's next try is due: nothing new to write
            pause = self._last_write + self.min_interval_s - loop.time()
            if pause > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), pause)
            self._urgent.clear()
            await self._take_items()

    async def _take_items(self) -> None:
        """Write (or spool, behind a backlog) every row queued, then wake the flushes queued
        with them."""
        items = list(self._items)
        self._items.clear()
        statements: list[Statement] = [i for i in items if not isinstance(i, asyncio.Future)]
        if statements:
            self._last_write = asyncio.get_running_loop().time()
            if self._backlog:
                await self._to_spool(statements)  # keep the order: behind the backlog
            else:
                await self._write(statements)
        for item in items:
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(None)

    async def _load(self) -> None:
        """Find this writer's spool and take what an earlier run left in it."""
        try:
            path = await database_file(self.db)
        except Exception:
            log.exception("%s: cannot tell where the database is; spooling to memory", self.name)
            path = None
        if path is not None:
            self._spool = SpoolFile(spool_path(path, self.name))
            try:
                left = await asyncio.to_thread(self._spool.read)
            except OSError as exc:
                log.error("%s: cannot read the spool %s: %s", self.name, self._spool.path, exc)
                left = []
            if left:
                log.warning("%s: %d spooled batches from an earlier run to write", self.name,
                            len(left))
            self._backlog.extend(left)
        if not self._backlog:
            self._drained.set()

    async def _write(self, statements: list[Statement]) -> None:
        try:
            await apply_batch(self.db, statements)
            return
        except Exception as exc:
            if unavailable(exc):
                log.error("%s: the database refused a batch (%s); spooling", self.name, exc)
                await self._to_spool(statements)
                return
            log.exception("%s: batch of %d failed; writing one by one", self.name,
                          len(statements))
        # One bad row must not cost the others: each alone; a bad one is dropped.
        for index, (sql, params) in enumerate(statements):
            try:
                async with transaction(self.db):
                    await self.db.execute(sql, params)
            except Exception as exc:
                if unavailable(exc):
                    log.error("%s: the database refused a write (%s); spooling", self.name, exc)
                    await self._to_spool(statements[index:])
                    return
                log.exception("%s: dropped one statement: %s", self.name, sql.split("(")[0])

    async def _to_spool(self, statements: Sequence[Statement]) -> None:
        batch = new_batch(statements)
        if not self._backlog:
            self._delay = self.retry_s
            self._next_try = asyncio.get_running_loop().time() + self._delay
        self._backlog.append(batch)
        self._unsaved.append(batch)
        self._drained.clear()
        await self._save()

    async def _save(self) -> None:
        """Append the batches not yet in the spool file to it (fsynced)."""
        if self._spool is None or not self._unsaved:
            return
        try:
            await asyncio.to_thread(self._spool.append, list(self._unsaved), self.clock())
        except (OSError, TypeError, ValueError) as exc:
            log.error("%s: cannot write the spool %s (%s): %d batches held in memory only",
                      self.name, self._spool.path, exc, len(self._unsaved))
            return
        self._unsaved.clear()

    async def _drain(self) -> None:
        """Replay the backlog in order; stop at the first batch the database still refuses."""
        if self._unsaved:
            await self._save()
        written = 0
        while self._backlog:
            batch = self._backlog[0]
            try:
                await replay(self.db, self.name, batch, self.clock())
            except Exception as exc:
                if not self._warned:
                    log.warning("%s: database still unavailable (%s); %d batches spooled",
                                self.name, exc, len(self._backlog))
                    self._warned = True
                self._delay = min(max(self._delay, self.retry_s) * 2, self.retry_max_s)
                self._next_try = asyncio.get_running_loop().time() + self._delay
                return
            self._backlog.popleft()
            if batch in self._unsaved:
                self._unsaved.remove(batch)
            written += 1
        log.info("%s: wrote %d spooled batches to the database", self.name, written)
        if self._spool is not None:
            try:
                await asyncio.to_thread(self._spool.clear)
            except OSError as exc:  # harmless: replay skips what was applied
                log.warning("%s: cannot clear the spool %s: %s", self.name, self._spool.path,
                            exc)
        self._warned = False
        self._drained.set()


async def replay_left(db: aiosqlite.Connection, name: str, clock: Callable[[], float] = time.time
                      ) -> bool:
    """Write back what a crashed run left in writer ``name``'s spool, before anyone reads the
    state it changes (the ACD restores seats and waiting callers from the database).

    True when nothing is left; False when the database still refuses (the writer retries).
    """
    path = await database_file(db)
    if path is None:
        return True
    spool = SpoolFile(spool_path(path, name))
    batches = await asyncio.to_thread(spool.read)
    if not batches:
        return True
    try:
        for batch in batches:
            await replay(db, name, batch, clock())
    except Exception as exc:
        log.warning("%s: cannot write back the spool yet (%s)", name, exc)
        return False
    await asyncio.to_thread(spool.clear)
    log.info("%s: wrote %d batches left in the spool by an earlier run", name, len(batches))
    return True
