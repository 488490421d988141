"""Opening the database: WAL, durability and busy-timeout pragmas, migrations.

``synchronous=FULL`` everywhere: the same file holds orders, transfers and the audit trail, whose
commits must survive a power cut; high-rate writers batch instead (see ``calls.CallRecorder``).

The files hold password hashes and customer data: ``make_private`` creates a database's directory
0700 and the file 0600 (SQLite gives its ``-wal`` and ``-shm`` files the database's mode), and
tightens a database left readable by others. ``loose_modes`` lists what ``doctor`` warns about.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from collections.abc import Iterable
from pathlib import Path

import aiosqlite

from callcenter.errors import StoreError
from callcenter.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
#: a database file and its companions
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def make_private(path: Path) -> None:
    """Create ``path``'s directory (0700) and the file (0600) if missing; tighten a loose one.

    Blocking (a few system calls): run it in a thread from the loop.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in _COMPANIONS:
        file = path.with_name(path.name + suffix)
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning("%s was readable by others (%04o); now 0600", file, mode)
            file.chmod(0o600)


def make_state_dir_private(state_dir: Path, traverse: bool = False) -> None:
    """Create or tighten the state directory to 0700 (0711 with ``traverse``: another account,
    the bus broker's, must reach its own subdirectory). Blocking."""
    want = 0o711 if traverse else 0o700
    try:
        state_dir.mkdir(mode=want, parents=True, exist_ok=True)
        mode = stat.S_IMODE(state_dir.stat().st_mode)
        if mode & 0o077 & ~want:
            log.warning("state directory %s was %04o; now %04o", state_dir, mode, want)
            state_dir.chmod(want)
    except OSError as exc:
        raise StoreError(f"cannot make the state directory {state_dir} private: {exc}") from exc


def loose_modes(state_dir: Path, databases: Iterable[Path], traverse: bool = False) -> list[str]:
    """What others than the owner may read or enter: the state directory (should be 0700, or
    0711 with ``traverse``) and database files (0600), including every ``*.db``/``*.sqlite3``
    in the state directory."""
    problems = []
    want = 0o711 if traverse else 0o700
    try:
        mode = stat.S_IMODE(state_dir.stat().st_mode)
    except FileNotFoundError:
        mode = None
    if mode is not None and mode & 0o077 & ~want:
        problems.append(f"state directory {state_dir} is {mode:04o} (want {want:04o})")
    files = set(databases)
    if state_dir.is_dir():
        files.update(p for pattern in ("*.db", "*.sqlite3") for p in state_dir.glob(pattern))
    for db in sorted(files):
        for suffix in _COMPANIONS:
            file = db.with_name(db.name + suffix)
            try:
                mode = stat.S_IMODE(file.stat().st_mode)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if mode & 0o077:
                problems.append(f"database file {file} is {mode:04o} (want 0600)")
    return problems


async def open_db(path: Path) -> aiosqlite.Connection:
    """Open (creating if needed) and migrate the database at ``path``."""
    try:
        await asyncio.to_thread(make_private, path)
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
