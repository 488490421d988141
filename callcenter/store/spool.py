"""The durable spool: statements the database refused, kept in a file until it takes them.

When a write fails because the *database* is unavailable (locked past the busy timeout, read-only,
disk full, I/O error), the writers (``writer.OrderedWriter``, and through it ``calls.CallRecorder``)
append the batch to ``<database>.<writer>.spool.jsonl`` next to the database: one JSON line
``{"key", "at", "statements": [[sql, params], ...]}``, the file 0600, each line fsynced before the
batch counts as stored. Everything later goes to the spool too, in order, until it is replayed.

Replay is exactly-once: each batch is applied in one transaction together with its key in
``spool_applied``; a batch whose key is there already (the file was not cleared before a crash) is
skipped. A line torn by a crash mid-append was never acknowledged and is skipped with a warning.

The file functions here block (they fsync): callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from callcenter.files import fsync_dir
from callcenter.store.tx import Statement, transaction

log = logging.getLogger(__name__)


#: SQLite primary result codes that mean "the database cannot take writes now", not "this row
#: is wrong": BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOLFS
_UNAVAILABLE = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 22})


def unavailable(exc: BaseException) -> bool:
    """Did this write fail because of the database (spool it) rather than the row (drop it)?"""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return (code & 0xFF) in _UNAVAILABLE
        return isinstance(exc, sqlite3.OperationalError)
    return isinstance(exc, OSError)


@dataclass(frozen=True)
class SpooledBatch:
    key: str
    statements: tuple[Statement, ...]


def new_batch(statements: Sequence[Statement]) -> SpooledBatch:
    return SpooledBatch(uuid.uuid4().hex, tuple((sql, tuple(p)) for sql, p in statements))


def spool_path(database: Path, writer: str) -> Path:
    return database.with_name(f"{database.name}.{writer}.spool.jsonl")


class SpoolFile:
    """One writer's spool file. Blocking: call from a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, batches: Sequence[SpooledBatch], at: float) -> None:
        data = "".join(
            json.dumps({"key": b.key, "at": at,
                        "statements": [[sql, list(params)] for sql, params in b.statements]},
                       ensure_ascii=False) + "\n"
            for b in batches).encode()
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                # A part written (disk full?) would glue the next append to a torn line that a
                # replay skips: cut back to the last whole batch, then let the caller retry.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)

    def read(self) -> list[SpooledBatch]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                item = json.loads(line)
                out.append(SpooledBatch(str(item["key"]), tuple(
                    (str(sql), tuple(params)) for sql, params in item["statements"])))
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: torn or unreadable spool line skipped", self.path, number)
        return out

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
            fsync_dir(self.path.parent)


async def replay(db: aiosqlite.Connection, writer: str, batch: SpooledBatch,
                 now: float) -> None:
    """Apply one spooled batch exactly once; raise if the database is still unavailable.

    A statement the database refuses for its content is dropped (logged) inside a savepoint,
    so one bad row cannot hold back everything after it.
    """
    async with transaction(db):
        async with db.execute("SELECT 1 FROM spool_applied WHERE key = ?", (batch.key,)) as cur:
            if await cur.fetchone() is not None:
                return
        for sql, params in batch.statements:
            await db.execute("SAVEPOINT spooled")
            try:
                await db.execute(sql, params)
            except sqlite3.Error as exc:
                if unavailable(exc):
                    raise
                await db.execute("ROLLBACK TO spooled")
                log.error("%s: dropped one spooled statement (%s): %s", writer, exc,
                          sql.split("(")[0])
            await db.execute("RELEASE spooled")
        await db.execute("INSERT INTO spool_applied (key, writer, at) VALUES (?, ?, ?)",
                         (batch.key, writer, now))


async def database_file(db: aiosqlite.Connection) -> Path | None:
    """The file behind ``db``'s main schema (None for an in-memory database)."""
    async with db.execute("PRAGMA database_list") as cur:
        for row in await cur.fetchall():
            if row[1] == "main" and row[2]:
                return Path(str(row[2]))
    return None
