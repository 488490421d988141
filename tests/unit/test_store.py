"""The store: migrations, pragmas, and batched call records (a real SQLite file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.atcc.model import CallModel
from callcenter.errors import StoreError
from callcenter.store.calls import CallRecorder, get_call, recent_calls
from callcenter.store.db import open_db
from callcenter.store.migrations import MIGRATIONS
from callcenter.telephony.ami_events import ChannelInfo, Hangup, NewChannel


def _info(uid: str) -> ChannelInfo:
    return ChannelInfo(uid, "c1", f"Local/{uid}", 4, "Ring", "138", "", "hotline", "9500")


async def test_open_migrates_and_sets_pragmas(tmp_path: Path) -> None:
    db = await open_db(tmp_path / "x.db")
    try:
        async with db.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
            assert row is not None and row[0] == "wal"
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
            assert row is not None and row[0] == len(MIGRATIONS)
    finally:
        await db.close()
    # reopening is a no-op migration
    db = await open_db(tmp_path / "x.db")
    await db.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = await open_db(tmp_path / "x.db")
    await db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    await db.close()
    with pytest.raises(StoreError, match="newer"):
        await open_db(tmp_path / "x.db")


async def test_recorder_persists_a_call_with_its_timeline_in_order(tmp_path: Path) -> None:
    db = await open_db(tmp_path / "x.db")
    recorder = CallRecorder(db)
    recorder.start()
    try:
        m = CallModel()
        recorder.put(m.apply(NewChannel(_info("c1")), 1.0))
        recorder.put(m.note("c1", "ivr.digits", {"digits": "123"}, 1.5))
        recorder.put(m.apply(Hangup(_info("c1"), 16, "Normal Clearing"), 2.0))
        recorder.put(m.note("c1", "ivr.end", {}, 2.1))  # after the hangup: still recorded
        recorder.put(m.note("unseen", "ivr.end", {}, 2.1))  # AMI never saw it: kept on a stub
        await recorder.flush()
        record = await get_call(db, "c1")
        assert record is not None
        assert record.ended_at == 2.0 and record.end_cause == 16
        assert record.kinds() == ["channel.new", "ivr.digits", "channel.hangup", "ivr.end"]
        assert record.events[1].detail == {"digits": "123"}
        stub = await get_call(db, "unseen")
        assert stub is not None and stub.kinds() == ["ivr.end"]
        assert {r.id for r in await recent_calls(db)} == {"c1", "unseen"}
        assert await get_call(db, "nope") is None
    finally:
        await recorder.close()
        await db.close()


async def test_unwritable_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        await open_db(blocker / "sub" / "x.db")
