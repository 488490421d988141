"""The console's ``intervals`` request (supervisors' charts) and the wallboard's additions.

The request is checked at the edge (``protocol.Intervals``), answered by
``seats/intervals.py`` from the report's own per-interval figures, and reached through the
engine's backend; the wallboard's ``agents`` are today's per-agent figures.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiosqlite
import pytest
from pydantic import ValidationError

from callcenter.acd.figures import QueueEvent, SeatEvent
from callcenter.acd.routing import WaitCode
from callcenter.acd.seat import SeatState
from callcenter.acd.service import Acd
from callcenter.config import AcdSettings, QueueSettings
from callcenter.errors import ConsoleError
from callcenter.seats import protocol as p
from callcenter.seats.backend import EngineConsoleBackend
from callcenter.seats.console_api import AgentIdentity
from callcenter.seats.intervals import intervals_reply
from callcenter.store.db import open_db

SH = ZoneInfo("Asia/Shanghai")
SUPERVISOR = AgentIdentity("S1", "Lin", p.Role.SUPERVISOR)
AGENT = AgentIdentity("A1", "Zhou", p.Role.AGENT)
SETTINGS = AcdSettings(queues=[QueueSettings(name="general", target_s=20, target_share=0.9),
                               QueueSettings(name="vip", target_s=10)])
CONSOLE = Path(__file__).resolve().parents[2] / "agent_console"


def sh(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SH).timestamp()


#: noon of the 23rd, Shanghai: "today" is cut here
NOW = sh(23, 12)


def request(first: str, last: str) -> p.Intervals:
    parsed = p.REQUEST.validate_python({"v": 1, "id": "t", "type": "intervals",
                                        "from": first, "to": last})
    assert isinstance(parsed, p.Intervals)
    return parsed


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "cc.db")
    rows = [
        (sh(22, 10), "general", "y1", "enter", "", None),
        (sh(22, 10, 0, 30), "general", "y1", "connect", "A1", 30.0),
        (sh(23, 9, 5), "general", "c1", "enter", "", None),
        (sh(23, 9, 5, 10), "general", "c1", "connect", "A1", 10.0),
        (sh(23, 9, 40), "vip", "c2", "enter", "", None),
        (sh(23, 9, 41), "vip", "c2", "abandon", "", 60.0),
        (sh(23, 13), "general", "later", "enter", "", None),  # after now: not counted
    ]
    for at, queue, call_id, event, agent_id, wait_s in rows:
        await conn.execute("INSERT INTO queue_log (at, queue, call_id, event, agent_id, wait_s)"
                           " VALUES (?, ?, ?, ?, ?, ?)", (at, queue, call_id, event, agent_id,
                                                          wait_s))
    await conn.commit()
    try:
        yield conn
    finally:
        await conn.close()


# -- the request at the edge ----------------------------------------------------------------------


def test_a_period_of_dates_is_accepted() -> None:
    req = request("2026-11-01", "2026-11-30")
    assert (req.first.isoformat(), req.last.isoformat()) == ("2026-11-01", "2026-11-30")


@pytest.mark.parametrize(("first", "last", "why"), [
    ("2026-02-30", "2026-03-01", "not a date"),
    ("2026-11-23T09:00", "2026-11-23", "pattern"),
    ("23/11/2026", "2026-11-23", "pattern"),
    ("2026-11-24", "2026-11-23", "on or after"),
    ("2026-10-01", "2026-11-30", "at most 31 days"),
])
def test_bad_dates_and_too_long_a_range_are_refused(first: str, last: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        request(first, last)


def test_only_supervisors_may_ask() -> None:
    assert "intervals" not in p.ALLOWED[p.Role.AGENT]
    assert "intervals" in p.ALLOWED[p.Role.SUPERVISOR]
    assert "intervals" in p.ALLOWED[p.Role.ADMIN]


async def test_an_agent_asking_is_refused_by_the_answer_too(db: aiosqlite.Connection) -> None:
    with pytest.raises(ConsoleError) as caught:
        await intervals_reply(db, SETTINGS, request("2026-11-23", "2026-11-23"), AGENT, now=NOW)
    assert caught.value.code == "forbidden"


# -- the answer ----------------------------------------------------------------------------------


async def test_today_in_half_hours_cut_at_now(db: aiosqlite.Connection) -> None:
    reply = await intervals_reply(db, SETTINGS, request("2026-11-23", "2026-11-23"),
                                  SUPERVISOR, now=NOW)
    assert reply["step_s"] == 1800
    assert reply["timezone"] == "Asia/Shanghai"  # the page draws the axis in the site's zone
    assert reply["until"] == NOW
    assert reply["target_shares"] == {"general": 0.9, "vip": 0.8}
    rows = reply["intervals"]
    assert len(rows) == 24  # 00:00 to noon
    assert rows[0]["start"] == sh(23) and rows[-1]["end"] == NOW
    nine, half_past = rows[18], rows[19]
    assert nine["start"] == sh(23, 9)
    assert [q["queue"] for q in nine["queues"]] == ["general", "vip"]
    total = nine["total"]
    assert (total["offered"], total["answered"], total["abandoned"]) == (1, 1, 0)
    assert total["service_level"] == 1.0 and total["asa_s"] == 10.0
    assert half_past["total"]["abandoned"] == 1
    assert half_past["total"]["service_level"] == 0.0
    assert half_past["total"]["asa_s"] is None
    assert sum(r["total"]["offered"] for r in rows) == 2


async def test_a_range_of_days_is_one_interval_a_day(db: aiosqlite.Connection) -> None:
    reply = await intervals_reply(db, SETTINGS, request("2026-11-21", "2026-11-23"),
                                  SUPERVISOR, now=NOW)
    assert reply["step_s"] == 86400
    rows = reply["intervals"]
    assert [r["start"] for r in rows] == [sh(21), sh(22), sh(23)]
    assert rows[-1]["end"] == NOW
    assert [r["total"]["offered"] for r in rows] == [0, 1, 2]
    assert rows[0]["total"]["service_level"] is None
    assert rows[1]["queues"][0]["asa_s"] == 30.0


async def test_a_future_day_has_no_intervals(db: aiosqlite.Connection) -> None:
    reply = await intervals_reply(db, SETTINGS, request("2026-11-25", "2026-11-25"),
                                  SUPERVISOR, now=NOW)
    assert reply["intervals"] == []


# -- through the engine's backend -----------------------------------------------------------------


@pytest.fixture
async def backend(db: aiosqlite.Connection) -> AsyncIterator[EngineConsoleBackend]:
    acd = Acd(SETTINGS, db, clock=lambda: NOW)
    await acd.start()
    backend = EngineConsoleBackend(acd, db, None)  # type: ignore[arg-type]
    try:
        yield backend
    finally:
        await backend.close()
        await acd.close()


async def test_the_backend_answers_a_supervisor(backend: EngineConsoleBackend) -> None:
    reply = await backend.command(SUPERVISOR, request("2026-11-23", "2026-11-23"))
    assert len(reply["intervals"]) == 24
    with pytest.raises(ConsoleError):
        await backend.command(AGENT, request("2026-11-23", "2026-11-23"))


async def test_the_wallboard_carries_each_agents_figures_today(
        backend: EngineConsoleBackend) -> None:
    figures = backend.figures
    figures.feed(SeatEvent(sh(23, 9), "A1", SeatState.NOT_READY, SeatState.READY))
    figures.feed(SeatEvent(sh(23, 9, 5), "A1", SeatState.READY, SeatState.ON_CALL))
    figures.feed(QueueEvent(sh(23, 9, 7), "general", "c1", "complete", "A1", talk_s=120.0))
    figures.feed(SeatEvent(sh(23, 9, 7), "A1", SeatState.ON_CALL, SeatState.WRAP_UP))
    figures.feed(SeatEvent(sh(23, 9, 8), "A1", SeatState.WRAP_UP, SeatState.READY))
    board = backend.wallboard()
    [a1] = [a for a in board["agents"] if a["agent_id"] == "A1"]
    assert a1["handled"] == 1
    assert a1["aht_s"] == 180.0  # 120 s talk + 60 s wrap-up
    busy, ready = 180.0, NOW - sh(23, 9) - 180.0
    assert a1["occupancy"] == pytest.approx(busy / (busy + ready))
    assert set(board) >= {"queues", "seats", "waiting", "agents"}


# -- the page's words ----------------------------------------------------------------------------


def _i18n_keys() -> dict[str, set[str]]:
    text = (CONSOLE / "i18n.js").read_text(encoding="utf-8")
    zh, en = text.index("  zh: {"), text.index("  en: {")
    key = re.compile(r'^\s*"([^"]+)":', re.MULTILINE)
    return {"zh": set(key.findall(text, zh, en)), "en": set(key.findall(text, en))}


def test_every_wait_reason_and_figures_word_has_both_languages() -> None:
    keys = _i18n_keys()
    wanted = {f"wait.{code.value}" for code in WaitCode}
    # whatever the wallboard and figures modules added, both languages have it
    mine = {k for k in keys["zh"] | keys["en"]
            if k.startswith(("wait.", "wb.", "fig.", "alert."))}
    for lang in ("zh", "en"):
        missing = sorted((wanted | mine) - keys[lang])
        assert not missing, f"agent_console/i18n.js ({lang}) has no text for {missing}"


async def test_the_wallboard_carries_each_queues_alert_thresholds(
        backend: EngineConsoleBackend) -> None:
    backend.acd.queues["vip"] = backend.acd.queues["vip"].model_copy(
        update={"alert_longest_wait_s": 30.0, "alert_service_level": 0.7})
    alerts = backend.wallboard()["alerts"]
    assert alerts["general"] == {"longest_wait_s": 60.0, "service_level": 0.9}  # target_share
    assert alerts["vip"] == {"longest_wait_s": 30.0, "service_level": 0.7}
