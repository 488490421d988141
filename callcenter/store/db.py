"""Opening the database: WAL, durability and busy-timeout pragmas, migrations.

``synchronous=FULL`` everywhere: the same file holds orders, transfers and the audit trail, whose
commits must survive a power cut; high-rate writers batch instead (see ``calls.CallRecorder``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from callcenter.errors import StoreError
from callcenter.store.migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 5000


async def open_db(path: Path) -> aiosqlite.Connection:
    """Open (creating if needed) and migrate the database at ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    try:
        db.row_factory = aiosqlite.Row
        await durable_pragmas(db)
        await db.execute("PRAGMA foreign_keys = ON")
        await migrate(db)
    except sqlite3.Error as exc:
        await db.close()
        raise StoreError(f"cannot prepare database {path}: {exc}") from exc
    except BaseException:
        await db.close()
        raise
    return db


async def durable_pragmas(db: aiosqlite.Connection) -> None:
    """WAL, ``synchronous=FULL`` and a busy timeout: how every database of ours is opened."""
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = FULL")


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply the migrations not yet applied, each in its own transaction; return the version."""
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise StoreError(
            f"database schema version {version} is newer than this engine ({len(MIGRATIONS)})"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first; BEGIN inside makes the migration atomic.
        await db.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
        )
    return len(MIGRATIONS)
