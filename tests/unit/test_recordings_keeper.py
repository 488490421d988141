"""Recordings at rest (``recordings/``): sealed with the site key and opened whole only by it;
altered, cut or swapped files refused; the keeper seals what has ended, keeps each kind for its
retention, deletes after it and never under legal hold; every playback is logged first."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from callcenter.config import Settings, load_settings
from callcenter.errors import RecordingError
from callcenter.recordings import store
from callcenter.recordings.keeper import RecordingKeeper
from callcenter.recordings.retention import DAY_S, Kept, due, kind_of
from callcenter.recordings.vault import CHUNK, load_or_create_key, open_sealed, seal_file
from callcenter.store.db import open_db

KEY = bytes(range(32))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_sealed_then_opened_whole_at_every_chunk_boundary(tmp_path: Path, size: int) -> None:
    plain = os.urandom(size)
    (tmp_path / "a.wav").write_bytes(plain)
    digest, length = seal_file(tmp_path / "a.wav", tmp_path / "a.sealed", KEY, "/x/a.wav")
    assert (digest, length) == (hashlib.sha256(plain).hexdigest(), size)
    sealed = (tmp_path / "a.sealed").read_bytes()
    assert plain[:64] not in sealed or size < 16
    assert b"".join(open_sealed(tmp_path / "a.sealed", KEY, "/x/a.wav")) == plain


@pytest.mark.parametrize(("first", "count"), [(0, 1), (1, 2), (2, 5), (3, 1), (0, 9)])
def test_any_run_of_chunks_opens_alone(tmp_path: Path, first: int, count: int) -> None:
    plain = os.urandom(3 * CHUNK + 5)
    (tmp_path / "a.wav").write_bytes(plain)
    seal_file(tmp_path / "a.wav", tmp_path / "a.sealed", KEY, "/x/a.wav")
    got = b"".join(open_sealed(tmp_path / "a.sealed", KEY, "/x/a.wav", first, count))
    assert got == plain[first * CHUNK:(first + count) * CHUNK]


def test_altered_cut_swapped_or_foreign_recordings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(os.urandom(2 * CHUNK + 100))
    seal_file(tmp_path / "a.wav", tmp_path / "a.sealed", KEY, "/x/a.wav")
    good = (tmp_path / "a.sealed").read_bytes()

    def opened(data: bytes, label: str = "/x/a.wav", key: bytes = KEY) -> bytes:
        (tmp_path / "b.sealed").write_bytes(data)
        return b"".join(open_sealed(tmp_path / "b.sealed", key, label))

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 1
    cut = good[: len(good) - (100 + 16)]      # the last chunk dropped: the one before is not last
    (tmp_path / "c.sealed").write_bytes(cut)  # read from the middle, the cut shows too
    with pytest.raises(RecordingError, match="chunk 1"):
        b"".join(open_sealed(tmp_path / "c.sealed", KEY, "/x/a.wav", 1, 1))
    for bad, why in ((bytes(flipped), "altered"), (cut, "altered")):
        with pytest.raises(RecordingError, match=why):
            opened(bad)
    with pytest.raises(RecordingError, match="altered"):
        opened(good, label="/x/another.wav")   # another recording's file in its place
    with pytest.raises(RecordingError, match="another site key"):
        opened(good, key=bytes(32))
    with pytest.raises(RecordingError, match="not a sealed recording"):
        opened(b"RIFF....WAVE")
    with pytest.raises(RecordingError, match="no chunk 3"):      # past the end: said so
        b"".join(open_sealed(tmp_path / "a.sealed", KEY, "/x/a.wav", 3, 1))


def test_the_site_key_is_made_once_private_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "state" / "recordings.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("short\n")
    with pytest.raises(RecordingError, match="not a recordings key"):
        load_or_create_key(path)


def test_retention_kinds_and_holds() -> None:
    assert [kind_of("proof", k) for k in ("order", "cancel", "transfer", None)] == [
        "order", "cancel", "transfer", "declined"]
    assert kind_of("agent", None) == "agent"
    rows = [Kept(1, 100.0, False), Kept(2, 100.0, True), Kept(3, 200.0, False)]
    assert due(rows, 150.0) == [1] and due(rows, 200.0) == [1, 3]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Settings, aiosqlite.Connection]]:
    settings = load_settings(db_path=tmp_path / "cc.db", state_dir=tmp_path / "state",
                             pbx={"root": tmp_path / "root"})
    db = await open_db(settings.database)
    yield settings, db
    await db.close()


async def _recording(settings: Settings, db: aiosqlite.Connection, *, kind: str,
                     started: float, ended: float | None, data: bytes,
                     intent: tuple[str, str] | None = None) -> int:
    path = f"/var/spool/asterisk/monitor/callcenter/20261201/c{started:.0f}-{kind}.wav"
    host = settings.pbx_path(path)
    host.parent.mkdir(parents=True, exist_ok=True)
    host.write_bytes(data)
    key = None
    if intent is not None:
        key, intent_kind = intent
        await db.execute("INSERT INTO intents (key, kind, call_id, account, summary, state,"
                         " result, created_at, updated_at) VALUES (?, ?, 'c', '10000001', '{}',"
                         " 'done', '{\"order_no\": \"30000001\"}', 0, 0)", (key, intent_kind))
    cur = await db.execute(
        "INSERT INTO recordings (call_id, agent_id, account, path, started_at, ended_at, kind,"
        " intent_key) VALUES ('c', ?, '10000001', ?, ?, ?, ?, ?)",
        ("A1" if kind == "agent" else "", path, started, ended, kind, key))
    assert cur.lastrowid is not None
    return cur.lastrowid


async def test_the_keeper_seals_keeps_deletes_and_logs_each_playback(
        world: tuple[Settings, aiosqlite.Connection]) -> None:
    settings, db = world
    keeper = RecordingKeeper(settings, db)
    audio = os.urandom(100_000)
    now = 1_800_000_000.0
    proof = await _recording(settings, db, kind="proof", started=now - 60, ended=now - 30,
                             data=audio, intent=("k" * 32, "order"))
    agent = await _recording(settings, db, kind="agent", started=now - 50, ended=now - 1,
                             data=b"agent call")
    running = await _recording(settings, db, kind="agent", started=now - 10, ended=None,
                               data=b"still talking")
    assert await keeper.round(now) == (1, 0)  # the agent's call ended 1 s ago: not yet
    rec = await store.get(db, proof)
    assert rec.sealed_at is not None and rec.sha256 == hashlib.sha256(audio).hexdigest()
    assert rec.retain_until == pytest.approx(now - 60 + 7305 * DAY_S)   # 20 years: an order
    assert not settings.pbx_path(rec.path).exists()
    assert audio[:1000] not in settings.pbx_path(rec.stored_path).read_bytes()
    assert await keeper.round(now + 10) == (1, 0)
    assert (await store.get(db, agent)).retain_until == pytest.approx(now - 50 + 1827 * DAY_S)
    assert (await store.get(db, running)).sealed_at is None

    found, chunks = await keeper.play(proof, actor="sup1", via="api")
    assert b"".join(chunks) == audio and found.reference == "30000001"
    assert [(a["actor"], a["via"], a["action"]) for a in await store.access_log(db, proof)] \
        == [("sup1", "api", "play")]
    assert [r.id for r in await store.search(db, {"reference": "30000001"})] == [
        running, agent, proof]   # every recording of the order's call, newest first
    with pytest.raises(RecordingError, match="not sealed"):
        await keeper.play(running, actor="sup1", via="api")

    # past the agent call's retention: deleted; the held proof outlives its own
    await store.set_hold(db, proof, by="legal", via="api", reason="CSRC inquiry 2046-17")
    later = now + 7306 * DAY_S
    # the running one, stale now, is sealed, and being an agent's call is past retention too
    assert await keeper.round(later) == (1, 2)
    assert (await store.get(db, agent)).deleted_at is not None
    assert not settings.pbx_path((await store.get(db, agent)).stored_path).exists()
    assert (await store.get(db, proof)).deleted_at is None
    with pytest.raises(RecordingError, match="deleted"):
        await keeper.play(agent, actor="sup1", via="api")
    await store.set_hold(db, proof, by="legal", via="api", reason=None)
    # a hold that comes while the keeper is at it wins: the row is not marked, no file goes
    await store.set_hold(db, proof, by="legal", via="cli", reason="a second inquiry")
    assert not await store.mark_deleted(db, proof, later)
    assert (await store.get(db, proof)).deleted_at is None
    assert settings.pbx_path((await store.get(db, proof)).stored_path).exists()
    await store.set_hold(db, proof, by="legal", via="cli", reason=None)
    assert (await keeper.round(later))[1] == 1
    assert (await store.get(db, proof)).deleted_at is not None
    actions = [a["action"] for a in await store.access_log(db, proof)]
    assert actions == ["play", "hold", "release", "hold", "release", "delete"]


async def test_a_lost_key_stops_the_keeper_instead_of_making_a_new_one(
        world: tuple[Settings, aiosqlite.Connection]) -> None:
    settings, db = world
    now = 1_800_000_000.0
    await _recording(settings, db, kind="agent", started=now - 50, ended=now - 40, data=b"x")
    assert await RecordingKeeper(settings, db).round(now) == (1, 0)
    key = settings.recordings_key_file.read_bytes()
    settings.recordings_key_file.unlink()
    with pytest.raises(RecordingError, match="restore it from its backup"):
        await RecordingKeeper(settings, db).start()
    assert not settings.recordings_key_file.exists()
    settings.recordings_key_file.write_bytes(key)
    keeper = RecordingKeeper(settings, db)
    await keeper.start()
    await keeper.close()


@pytest.mark.parametrize("filters", [{"reference": "30000001"},
                                     {"reference": "30000001", "account": "10000001"}])
async def test_a_search_by_reference_reads_intents_through_their_indexes(
        world: tuple[Settings, aiosqlite.Connection], filters: dict[str, str]) -> None:
    _, db = world
    sql, args = store.search_query(filters)
    async with db.execute(f"EXPLAIN QUERY PLAN {sql}", args) as cur:
        plan = " | ".join(str(tuple(r)[-1]) for r in await cur.fetchall())
    assert "intents_order_no" in plan and "intents_transfer_no" in plan, plan
    assert "SCAN i" not in plan and "SCAN intents" not in plan, plan
