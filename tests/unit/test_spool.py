"""Records that survive write errors: a database that refuses writes (another connection holds
the write lock past the busy timeout, as a backup tool or an operator's shell would) makes the
writers spool to a JSONL file next to the database (0600, fsynced), and the spooled rows are
written exactly once when the database takes writes again, also by a restarted engine.

Real SQLite files; the only stand-in is the short busy timeout, so a refused write fails fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiosqlite
import pytest

from callcenter.atcc.model import CAUSE_LOST, CallModel
from callcenter.store.calls import CallRecorder, get_call
from callcenter.store.db import open_db
from callcenter.store.writer import OrderedWriter
from callcenter.telephony.ami_events import ChannelInfo, Hangup, NewChannel

QLOG = "INSERT INTO queue_log (at, queue, call_id, event) VALUES (?, ?, ?, ?)"


def _spool(db_path: Path, name: str) -> Path:
    return db_path.with_name(f"{db_path.name}.{name}.spool.jsonl")


class Blocker:
    """Another connection that holds the database's write lock until released."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state" / "callcenter.db"


async def _open(path: Path) -> aiosqlite.Connection:
    db = await open_db(path)
    await db.execute("PRAGMA busy_timeout = 50")  # fail fast while the lock is held
    return db


async def _rows(db: aiosqlite.Connection, sql: str) -> list[tuple[object, ...]]:
    async with db.execute(sql) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def test_queue_log_lines_are_spooled_while_writes_fail_then_written_once(
        db_path: Path) -> None:
    db = await _open(db_path)
    writer = OrderedWriter(db, "acd-log")
    writer.retry_s = 0.05
    writer.start()
    try:
        writer.put(QLOG, (1.0, "general", "c0", "enter"))
        await writer.flush()
        blocker = Blocker(db_path)
        writer.put(QLOG, (2.0, "general", "c1", "enter"))
        writer.put(QLOG, (3.0, "general", "c1", "abandon"))
        await writer.flush()  # returns once spooled: durable, not yet in the database
        spool = _spool(db_path, "acd-log")
        assert spool.exists()
        assert stat.S_IMODE(spool.stat().st_mode) == 0o600
        lines = [json.loads(line) for line in spool.read_text().splitlines()]
        assert all(line["key"] for line in lines)
        assert "c1" in spool.read_text()
        writer.put(QLOG, (4.0, "general", "c2", "enter"))  # later rows keep their order
        await writer.flush()
        blocker.release()
        await asyncio.wait_for(writer.drained(), 10)
        rows = await _rows(db, "SELECT call_id, event FROM queue_log ORDER BY id")
        assert rows == [("c0", "enter"), ("c1", "enter"), ("c1", "abandon"), ("c2", "enter")]
        assert not spool.exists() or spool.read_text() == ""
    finally:
        await writer.close()
        await db.close()


async def test_a_spool_left_by_a_crash_is_written_once_by_the_next_run(db_path: Path) -> None:
    db = await _open(db_path)
    writer = OrderedWriter(db, "acd-log")
    writer.retry_s = 3600  # this run never gets to write it back
    writer.start()
    blocker = Blocker(db_path)
    writer.put(QLOG, (1.0, "general", "c1", "enter"))
    await writer.flush()
    saved = db_path.with_name("saved.jsonl")
    shutil.copy(_spool(db_path, "acd-log"), saved)
    await writer.close()  # as a crash would: the spool stays
    await db.close()
    blocker.release()

    for _ in range(2):  # the second run finds the same spool again (truncate lost): no dupes
        shutil.copy(saved, _spool(db_path, "acd-log"))
        db = await _open(db_path)
        writer = OrderedWriter(db, "acd-log")
        writer.start()
        try:
            await asyncio.wait_for(writer.drained(), 10)
            assert await _rows(db, "SELECT call_id, event FROM queue_log") == [("c1", "enter")]
        finally:
            await writer.close()
            await db.close()


def _info(uid: str) -> ChannelInfo:
    return ChannelInfo(uid, "c1", f"Local/{uid}", 4, "Ring", "138", "", "hotline", "9500")


async def test_call_records_are_spooled_and_replayed_in_order(db_path: Path) -> None:
    db = await _open(db_path)
    recorder = CallRecorder(db)
    recorder.retry_s = 0.05
    recorder.start()
    model = CallModel()
    try:
        blocker = Blocker(db_path)
        recorder.put(model.apply(NewChannel(_info("c1")), 10.0))
        recorder.put(model.note("c1", "ivr.digits", {"digits": "5"}, 11.0))
        recorder.put(model.apply(Hangup(_info("c1"), 16, "Normal Clearing"), 12.0))
        await recorder.flush()
        spool = _spool(db_path, "call-recorder")
        assert spool.exists() and stat.S_IMODE(spool.stat().st_mode) == 0o600
        assert await get_call(db, "c1") is None
        blocker.release()
        await asyncio.wait_for(recorder.drained(), 10)
        record = await get_call(db, "c1")
        assert record is not None and record.ended_at == 12.0 and record.end_cause == 16
        assert record.kinds() == ["channel.new", "ivr.digits", "channel.hangup"]
    finally:
        await recorder.close()
        await db.close()


async def test_a_row_the_database_refuses_is_dropped_not_spooled(db_path: Path) -> None:
    db = await _open(db_path)
    writer = OrderedWriter(db, "acd-log")
    writer.start()
    try:
        writer.put("INSERT INTO surveys (call_id, rating, created_at) VALUES (?, ?, ?)",
                   ("c1", 9, 1.0))  # CHECK fails: a bad row, not a bad database
        writer.put(QLOG, (1.0, "general", "c1", "enter"))
        await writer.flush()
        assert not _spool(db_path, "acd-log").exists()
        assert await _rows(db, "SELECT call_id FROM queue_log") == [("c1",)]
    finally:
        await writer.close()
        await db.close()


async def test_database_files_and_state_dir_are_private(tmp_path: Path) -> None:
    path = tmp_path / "fresh-state" / "callcenter.db"
    db = await open_db(path)
    try:
        await db.execute("CREATE TABLE t (x)")  # makes the -wal and -shm files exist
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        await db.close()
    # an existing database left world-readable (by an older version) is tightened on open
    path.chmod(0o644)
    db = await open_db(path)
    await db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_calls_a_crashed_run_left_open_end_at_its_last_heartbeat(db_path: Path) -> None:
    db = await _open(db_path)
    first = CallRecorder(db)
    first.start()
    model = CallModel()
    first.put(model.apply(NewChannel(_info("c1")), 10.0))
    first.put(model.apply(NewChannel(ChannelInfo("c2", "c2", "Local/c2", 4, "Ring", "139", "",
                                                 "hotline", "9500")), 11.0))
    first.put(model.note("c2", "ivr.digits", {"digits": "5"}, 70.0))  # after the last beat
    first.put(model.apply(NewChannel(ChannelInfo("c3", "c3", "Local/c3", 4, "Ring", "137", "",
                                                 "hotline", "9500")), 12.0))
    assert await first.alive_before_start() is None  # a fresh database: no earlier run
    await first.close()  # then "killed": nothing ended the calls
    heartbeat = db_path.with_name(db_path.name + ".alive")
    assert stat.S_IMODE(heartbeat.stat().st_mode) == 0o600
    os.utime(heartbeat, (50.0, 50.0))

    second = CallRecorder(db)
    second.start()
    try:
        alive = await second.alive_before_start()
        assert alive == 50.0
        second.close_orphans(["c3"], alive, 100.0, "ended while the engine was down")
        await second.flush()
        c1, c2, c3 = [await get_call(db, c) for c in ("c1", "c2", "c3")]
        assert c1 is not None and c1.ended_at == 50.0 and c1.end_cause == CAUSE_LOST
        assert c1.end_reason == "ended while the engine was down"
        assert c1.events[-1].kind == "call.closed"
        assert c1.events[-1].detail["approximate"] == "yes"
        assert c2 is not None and c2.ended_at == 70.0  # its last event is later than the beat
        assert c3 is not None and c3.ended_at is None  # still live in Asterisk
    finally:
        await second.close()
        await db.close()


def test_a_spool_write_that_fails_midway_leaves_no_torn_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.store.spool import SpooledBatch, SpoolFile

    file = SpoolFile(tmp_path / "x.spool.jsonl")
    first = SpooledBatch("k1", (("INSERT INTO t VALUES (?)", (1,)),))
    second = SpooledBatch("k2", (("INSERT INTO t VALUES (?)", (2,)),))
    file.append([first], at=1.0)
    real_write = os.write

    def disk_full(fd: int, data: memoryview | bytes) -> int:
        real_write(fd, bytes(data[:10]))  # part of it lands, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("callcenter.store.spool.os.write", disk_full)
    with pytest.raises(OSError):
        file.append([second], at=2.0)
    monkeypatch.setattr("callcenter.store.spool.os.write", real_write)
    file.append([second], at=3.0)  # retried once there is room
    assert [b.key for b in file.read()] == ["k1", "k2"]


async def test_a_batch_is_one_transaction_in_order_with_the_connections_other_statements(
        db_path: Path) -> None:
    """``apply_batch``: all rows or none (a refused row rolls back the ones before it), the
    connection left outside any transaction, and queued in order with other statements."""
    from callcenter.store.tx import apply_batch, transaction

    db = await _open(db_path)
    try:
        await db.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        good = [("INSERT INTO t (x) VALUES (?)", (n,)) for n in (1, 2)]
        with pytest.raises(sqlite3.IntegrityError):
            await apply_batch(db, [*good, ("INSERT INTO t (x) VALUES (?)", (1,))])
        assert await _rows(db, "SELECT x FROM t") == []
        assert not db.in_transaction
        first = asyncio.ensure_future(apply_batch(db, good))
        await asyncio.sleep(0)  # the batch takes the connection's lock first
        async with transaction(db):  # waits for the batch, then sees its rows
            assert await _rows(db, "SELECT x FROM t ORDER BY x") == [(1,), (2,)]
        await first
    finally:
        await db.close()


async def test_a_paced_writer_commits_a_lone_row_at_once_and_a_burst_together(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``min_interval_s``: the first row after a quiet spell is committed without waiting; rows
    that come within the interval after a commit wait and share the next commit; a ``flush``
    never waits for the interval."""
    import callcenter.store.writer as writer_module
    from callcenter.store.tx import Statement
    from callcenter.store.tx import apply_batch as real

    batches: list[list[object]] = []

    async def counted(db: aiosqlite.Connection, statements: Sequence[Statement]) -> None:
        batches.append([params[0] for _, params in statements])
        await real(db, statements)

    monkeypatch.setattr(writer_module, "apply_batch", counted)
    db = await _open(db_path)
    writer = OrderedWriter(db, "paced", min_interval_s=3600)
    writer.start()
    try:
        writer.put(QLOG, (1.0, "q", "c1", "ENTERQUEUE"))
        async with asyncio.timeout(10):
            while not batches:
                await asyncio.sleep(0.01)
        writer.put(QLOG, (2.0, "q", "c2", "ENTERQUEUE"))
        await asyncio.sleep(0.05)
        writer.put(QLOG, (3.0, "q", "c3", "ENTERQUEUE"))
        await asyncio.sleep(0.05)
        assert batches == [[1.0]]  # the burst waits for the interval...
        await asyncio.wait_for(writer.flush(), 10)  # ...which a flush cuts short
        assert batches == [[1.0], [2.0, 3.0]]
        writer.put(QLOG, (4.0, "q", "c4", "ENTERQUEUE"))  # waits for the interval...
        await asyncio.sleep(0.05)
        assert len(batches) == 2
        await writer.close()  # ...and is written on close
        assert await _rows(db, "SELECT call_id FROM queue_log ORDER BY at") == [
            ("c1",), ("c2",), ("c3",), ("c4",)]
    finally:
        await writer.close()
        await db.close()


async def test_the_events_of_a_recorded_call_need_no_stub_row(db_path: Path) -> None:
    """A call whose row the recorder has written gets its events alone; a note on a call it has
    not seen (an engine note during an AMI outage) still makes the stub row it hangs on."""
    db = await _open(db_path)
    recorder = CallRecorder(db)
    written: list[str] = []
    put = recorder.writer.put

    def seen(sql: str, params: Sequence[object] = ()) -> None:
        written.append(sql.split("(")[0].strip())
        put(sql, params)

    recorder.writer.put = seen  # type: ignore[method-assign]
    recorder.start()
    model = CallModel()
    try:
        recorder.put(model.apply(NewChannel(_info("c1")), 10.0))
        recorder.put(model.note("c1", "ivr.digits", {"digits": "5"}, 11.0))
        recorder.put(model.apply(Hangup(_info("c1"), 16, "Normal Clearing"), 12.0))
        assert "INSERT OR IGNORE INTO calls" in written[0]
        assert [s for s in written[1:] if s.startswith("INSERT OR IGNORE INTO calls")] == []
        written.clear()
        recorder.put(model.note("c9", "ivr.start", {"flow": "first"}, 13.0))
        assert written[0] == "INSERT OR IGNORE INTO calls"
        await recorder.flush()
        record = await get_call(db, "c1")
        assert record is not None and record.ended_at == 12.0
        assert record.kinds() == ["channel.new", "ivr.digits", "channel.hangup"]
        stub = await get_call(db, "c9")
        assert stub is not None and stub.kinds() == ["ivr.start"]
    finally:
        await recorder.close()
        await db.close()
