"""Recordings in the console (``seats/playback.py``): the one-time tickets, and search and
playback on a real store and keeper (a real sealed file): the account masked, every playback
logged, a ticket good once; the protocol keeps agents out and refuses bad filters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.errors import ConsoleError
from callcenter.recordings.service import RecordingService
from callcenter.recordings.vault import CHUNK
from callcenter.seats import playback
from callcenter.seats import protocol as p
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.console_server import check_message
from callcenter.seats.playback import ConsolePlayback, Tickets, parts_of

from .admin_world import AdminWorld, admin_world, sealed_order_recording

BOSS = AgentIdentity("S9001", "Lin Jing", p.Role.SUPERVISOR)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_ticket_opens_its_parts_once_in_order_until_it_lapses() -> None:
    tickets = Tickets(ttl_s=60, per_agent=2)
    a = tickets.issue(7, "S9001", parts=3, now=0)
    assert len(a) >= 32
    assert tickets.use(a, 1, now=1) is None               # not before part 0
    first = tickets.use(a, 0, now=1)
    assert first is not None and (first.recording_id, first.agent_id) == (7, "S9001")
    assert tickets.use(a, 0, now=2) is None               # each part once
    assert tickets.use(a, 1, now=60) is not None          # the life runs from the last use
    assert tickets.use(a, 2, now=119.9) is not None
    assert tickets.use(a, 2, now=120) is None and len(tickets) == 0   # done: gone
    b = tickets.issue(8, "S9001", parts=2, now=0)
    assert tickets.use(b, 0, now=60) is None              # expired
    assert tickets.use("guess", 0, now=0) is None


def test_a_supervisors_tickets_are_few_and_lapse_with_their_last_console() -> None:
    tickets = Tickets(ttl_s=60, per_agent=2)
    mine = [tickets.issue(n, "S9001", parts=1, now=0) for n in range(3)]
    other = tickets.issue(9, "S9002", parts=1, now=0)
    assert tickets.use(mine[0], 0, now=0) is None         # the oldest of theirs lapsed
    tickets.forget_agent("S9001")
    assert [tickets.use(t, 0, now=0) for t in mine[1:]] == [None, None]
    assert tickets.use(other, 0, now=0) is not None       # others' are untouched


def test_parts_of_a_recording() -> None:
    part = playback.PART_CHUNKS * CHUNK
    assert [parts_of(n) for n in (0, 1, part, part + 1, 3 * part)] == [1, 1, 1, 2, 3]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[AdminWorld]:
    async with admin_world(tmp_path) as w:
        yield w


def _search(**fields: object) -> p.Request:
    return p.REQUEST.validate_python({"v": 1, "id": "r", "type": "recordings", **fields})


def _play(recording_id: int) -> p.Request:
    return p.REQUEST.validate_python({"v": 1, "id": "r", "type": "recording_play",
                                      "recording_id": recording_id})


async def test_a_supervisor_finds_an_order_and_plays_it_once_per_ticket_logged(
        world: AdminWorld) -> None:
    service = world.services.recording_service
    assert service.keeper is not None
    audio = await sealed_order_recording(world.settings, world.db, service.keeper)
    clock = Clock()
    playback = ConsolePlayback(RecordingService(world.settings, world.db, service.keeper),
                               clock)

    answer = await playback.handle(BOSS, _search(reference="30000001"))
    assert answer["timezone"] == world.settings.site.timezone   # the page shows its clock
    found = answer["recordings"]
    assert [(r["kind"], r["account_masked"], r["intent"]["reference"]) for r in found] == [
        ("proof", "****0001", "30000001")]
    assert "account" not in found[0] and "sha256" not in found[0]
    assert (await playback.handle(BOSS, _search(reference="30000002")))["recordings"] == []
    assert (await playback.handle(BOSS, _search(account="10000001", day_from="2026-01-01"))
            )["recordings"]

    answer = await playback.handle(BOSS, _play(found[0]["id"]))
    assert (answer["access"], answer["expires_s"], answer["parts"]) == ([], 60, 1)
    assert "hold_reason" not in answer["recording"]
    token = answer["url"].removeprefix("/recording?t=")
    assert await playback.audio(token, 0, "192.0.2.7") == audio
    assert await playback.audio(token, 0, "192.0.2.7") is None   # once
    log = await service.access(found[0]["id"])
    assert [(a["actor"], a["via"], a["action"], a["detail"]) for a in log] == [
        ("S9001", "console", "play", "192.0.2.7")]

    late = (await playback.handle(BOSS, _play(found[0]["id"])))["url"]
    clock.now += 61
    assert await playback.audio(late.removeprefix("/recording?t="), 0, "192.0.2.7") is None
    assert len(await service.access(found[0]["id"])) == 1   # nothing played, nothing logged


async def test_a_long_recording_comes_in_parts_logged_once(
        world: AdminWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(playback, "PART_CHUNKS", 1)      # a part per sealed chunk
    service = world.services.recording_service
    assert service.keeper is not None
    audio = await sealed_order_recording(world.settings, world.db, service.keeper,
                                         size=3 * CHUNK + 10)
    console = ConsolePlayback(service)
    (rec,) = await service.search({"reference": "30000001"}, 10)
    answer = await console.handle(BOSS, _play(rec.id))
    assert answer["parts"] == 4
    token = answer["url"].removeprefix("/recording?t=")
    got = [await console.audio(token, n, "192.0.2.7") for n in range(4)]
    assert all(part is not None for part in got)
    assert b"".join(part or b"" for part in got) == audio
    assert [len(part or b"") for part in got] == [CHUNK, CHUNK, CHUNK, 14]
    assert len(await service.access(rec.id)) == 1
    assert await console.audio(token, 4, "192.0.2.7") is None


async def test_a_tampered_recording_is_not_served(world: AdminWorld) -> None:
    service = world.services.recording_service
    assert service.keeper is not None
    await sealed_order_recording(world.settings, world.db, service.keeper)
    (rec,) = await service.search({"reference": "30000001"}, 10)
    sealed = world.settings.pbx_path(rec.stored_path)
    data = bytearray(sealed.read_bytes())
    data[-100] ^= 1
    sealed.write_bytes(bytes(data))
    console = ConsolePlayback(service)
    token = (await console.handle(BOSS, _play(rec.id)))["url"].removeprefix("/recording?t=")
    assert await console.audio(token, 0, "192.0.2.7") is None


async def test_what_cannot_be_played_is_refused_with_a_reason(world: AdminWorld) -> None:
    service = world.services.recording_service
    playback = ConsolePlayback(service)
    with pytest.raises(ConsoleError) as missing:
        await playback.handle(BOSS, _play(999))
    assert missing.value.code == "not_found"
    await world.db.execute(
        "INSERT INTO recordings (call_id, agent_id, account, path, started_at, kind)"
        " VALUES ('c2', 'A1001', '10000002', '/var/spool/asterisk/monitor/x.wav', 1, 'agent')")
    (rec,) = await service.search({"call_id": "c2"}, 10)
    with pytest.raises(ConsoleError) as unsealed:
        await playback.handle(BOSS, _play(rec.id))
    assert (unsealed.value.code, "not sealed" in unsealed.value.message) == (
        "invalid_state", True)
    without_keeper = ConsolePlayback(RecordingService(world.settings, world.db, None))
    with pytest.raises(ConsoleError) as nobody:
        await without_keeper.handle(BOSS, _play(rec.id))
    assert nobody.value.code == "invalid_state"


@pytest.mark.parametrize(("fields", "role", "code"), [
    ({"type": "recordings"}, p.Role.AGENT, "forbidden"),
    ({"type": "recording_play", "recording_id": 1}, p.Role.AGENT, "forbidden"),
    ({"type": "recordings", "day_from": "2026-02-01", "day_to": "2026-01-31"},
     p.Role.SUPERVISOR, "malformed"),
    ({"type": "recordings", "day_from": "2026-02-30"}, p.Role.SUPERVISOR, "malformed"),
    ({"type": "recordings", "account": "1' OR 1=1"}, p.Role.SUPERVISOR, "malformed"),
    ({"type": "recording_play", "recording_id": 0}, p.Role.SUPERVISOR, "malformed"),
])
def test_the_protocol_keeps_agents_out_and_refuses_bad_filters(
        fields: dict[str, object], role: p.Role, code: str) -> None:
    checked = check_message(json.dumps({"v": 1, "id": "r1", **fields}), role)
    assert isinstance(checked, p.Error) and checked.code == code, checked


def test_a_supervisor_may_search_with_no_filter() -> None:
    checked = check_message(json.dumps({"v": 1, "id": "r1", "type": "recordings"}),
                            p.Role.SUPERVISOR)
    assert isinstance(checked, p.Recordings) and checked.limit == 50
