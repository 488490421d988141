"""The Asterisk-format queue_log file: the thin edge of ``acd/asterisk_qlog.py``.

``QueueLogFile`` listens to the ACD's notices (``Acd.listeners``), asks the formatter for the
lines, and appends them to one file (``acd.queue_log_file``, default ``<state_dir>/queue_log``).
The listener only queues the lines in memory: one task writes what has queued up, in order, in
a worker thread, so the event loop never waits for the disk.

- Durability: each batch is flushed to the kernel at once (as Asterisk's ``fflush`` per line);
  it is fsynced at most every ``fsync_s`` seconds and on close. A power loss may cost the last
  second of lines, never the order; a crash of the engine costs nothing written.
- Rotation: before each batch the file's path is checked against the open file (device and
  inode); when ``logrotate`` (or anyone) moved or removed it, the file is opened anew at the
  path. So plain ``logrotate`` with ``create`` works without ``copytruncate`` and without a
  signal (the engine's SIGHUP already means "reload the flows").
- A write that fails (disk full, permissions) is logged once per outage; the lines of that batch
  are lost, the calls are not: the engine's own ``queue_log`` table still has every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from callcenter.acd.asterisk_qlog import AsteriskQueueLog

log = logging.getLogger(__name__)

__all__ = ["QueueLogFile"]


class QueueLogFile:
    def __init__(self, path: Path, members: Callable[[str], Iterable[str]], *,
                 fsync_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.formatter = AsteriskQueueLog(members)
        self.fsync_s = fsync_s
        self.clock = clock
        self._lines: deque[str] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._file: IO[str] | None = None
        self._synced_at = 0.0
        self._failing = False

    async def start(self) -> None:
        self._lines.extend(self.formatter.start(self.clock()))
        self._wake.set()
        self._idle.clear()
        self._task = asyncio.create_task(self._run(), name="queue-log-file")

    def on_notice(self, notice: object) -> None:
        """The ACD's listener: never blocks (the lines wait for the writer task)."""
        lines = self.formatter.feed(notice)
        if lines:
            self._lines.extend(lines)
            self._idle.clear()
            self._wake.set()

    async def flush(self) -> None:
        """Return once every line given so far is written (flushed to the kernel)."""
        if self._task is None or self._task.done():
            return
        await self._idle.wait()

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._file is not None:
            await asyncio.to_thread(self._close_file, True)

    # -- the writer task -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = list(self._lines)
            self._lines.clear()
            if batch:
                await asyncio.to_thread(self._write, batch)
            if not self._lines:
                self._idle.set()

    def _write(self, batch: list[str]) -> None:
        try:
            handle = self._open()
            handle.write("".join(f"{text}\n" for text in batch))
            handle.flush()
            now = time.monotonic()
            if now - self._synced_at >= self.fsync_s:
                os.fsync(handle.fileno())
                self._synced_at = now
            if self._failing:
                log.info("queue_log %s: writing again", self.path)
                self._failing = False
        except OSError as exc:
            if not self._failing:
                log.error("queue_log %s: cannot write (%s); %d lines lost (the engine's own"
                          " queue_log table has the events)", self.path, exc, len(batch))
                self._failing = True
            self._close_file(False)

    def _open(self) -> IO[str]:
        """The open file, opened anew when the path no longer names it (rotated, removed)."""
        if self._file is not None:
            try:
                on_disk = os.stat(self.path)
                mine = os.fstat(self._file.fileno())
                if (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino):
                    return self._file
            except FileNotFoundError:
                pass
            log.info("queue_log %s was rotated or removed: opening it anew", self.path)
            self._close_file(True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._file = os.fdopen(fd, "a", encoding="utf-8", newline="\n")
        return self._file

    def _close_file(self, sync: bool) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
            handle.close()
