"""``callcenter report`` on a real SQLite file: the scripted hour of test_figures, table and CSV."""

from __future__ import annotations

import argparse
import csv
import io
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiosqlite
import pytest

from callcenter.acd.figures import AgentFigures, QueueEvent, QueueFigures
from callcenter.acd.report import (
    CSV_COLUMNS,
    add_report_parser,
    build_report,
    parse_period,
    render_table,
    run_report,
    select,
)
from callcenter.config import AcdSettings, QueueSettings, Settings, load_settings
from callcenter.errors import ConfigError, StoreError
from callcenter.store.db import open_db
from tests.unit.test_figures import A1, A2, FUNDS, MARGIN, SCRIPT, STOCKS, T0

SHANGHAI = timezone(timedelta(hours=8))
HOUR = ["--from", "2026-11-23T09:00", "--to", "2026-11-23T10:00"]  # local time = Shanghai


@pytest.fixture(autouse=True)
def shanghai_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is Asia/Shanghai (no DST), so naive dates in the tests mean one thing."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    queues = [QueueSettings(name="stocks", target_s=20), QueueSettings(name="funds", target_s=30),
              QueueSettings(name="margin", target_s=20, target_share=0.9)]
    return load_settings(state_dir=tmp_path, db_path=tmp_path / "cc.db",
                         acd=AcdSettings(queues=queues))


async def _write_script(db: aiosqlite.Connection) -> None:
    for n, agent in enumerate(("a1", "a2", "a3"), start=1):
        await db.execute(
            "INSERT INTO agents (agent_id, name, role, password_hash, endpoint, created_at) "
            "VALUES (?, ?, 'agent', 'scrypt$x$y', ?, 0)",
            (agent, f"Agent {n}", f"PJSIP/100{n}"),
        )
    for ev in SCRIPT:
        if isinstance(ev, QueueEvent):
            await db.execute(
                "INSERT INTO queue_log (at, queue, call_id, event, agent_id, tier, wait_s, talk_s)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (ev.at, ev.queue, ev.call_id, ev.event, ev.agent_id, ev.tier, ev.wait_s,
                 ev.talk_s),
            )
        else:
            await db.execute(
                "INSERT INTO seat_log (at, agent_id, from_state, to_state, input, by) "
                "VALUES (?, ?, ?, ?, 'test', 'test')",
                (ev.at, ev.agent_id, ev.from_state.value, ev.to_state.value),
            )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(settings.database)
    try:
        await _write_script(conn)
        yield conn
    finally:
        await conn.close()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="callcenter")
    add_report_parser(parser.add_subparsers(dest="cmd", required=True))
    return parser.parse_args(["report", *argv])


def _at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, SHANGHAI)


async def test_build_report_gives_the_scripted_figures(
    db: aiosqlite.Connection, settings: Settings,
) -> None:
    report = await build_report(db, settings, _at(0), _at(3600), now=_at(86_400))
    assert report.queues == (STOCKS, FUNDS, MARGIN)
    assert report.agents == (A1, A2)
    assert report.until == _at(3600) and report.names["a2"] == "Agent 2"
    assert select(report) is report


async def test_a_period_reaching_into_the_future_stops_at_now(
    db: aiosqlite.Connection, settings: Settings,
) -> None:
    report = await build_report(db, settings, _at(0), _at(3600), now=_at(230))
    assert report.until == _at(230)
    (stocks, *_), (a1, _a2) = report.queues or (), report.agents or ()
    # 09:03:50: a1 is 15 s into c3's wrap-up; the rest of the hour has not happened
    assert (stocks.offered, stocks.handled) == (5, 3)
    assert a1.wrap_up_s == 30 and a1.logged_in_s == 230
    assert "Figures up to 2026-11-23 09:03:50 (now)." in render_table(report)


def _cells(line: str) -> list[str]:
    """A table line's cells: columns are separated by two spaces or more."""
    return re.split(r"\s{2,}", line.strip())


async def test_report_table(db: aiosqlite.Connection, settings: Settings,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_report(_args(*HOUR), settings) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Period: 2026-11-23 09:00:00 to 2026-11-23 10:00:00 (UTC+0800)"
    rows = {_cells(line)[0]: _cells(line) for line in lines[1:] if line}
    assert rows["stocks"] == ["stocks", "80% in 20s", "7", "5", "2", "28.6%", "28.6%", "188.4",
                              "121.2", "800.0", "1", "1", "0"]
    assert rows["funds"] == ["funds", "80% in 30s", "3", "2", "1", "33.3%", "33.3%", "30.0",
                             "77.5", "40.0", "0", "0", "1"]
    assert rows["margin"] == ["margin", "90% in 20s", "0", "0", "0", "-", "-", "-", "-", "-",
                              "0", "0", "0"]
    # talk 270 s, wrap-up 45 s, ready 2977 s, not ready 280 s, occupancy 343 / 3320
    assert rows["a1"] == ["a1", "Agent 1", "2", "112.5", "0:04:30", "0:00:45", "0:49:37",
                          "0:04:40", "1:00:00", "10.3%", "1"]
    assert rows["a2"] == ["a2", "Agent 2", "4", "103.8", "0:05:30", "0:01:25", "0:32:38",
                          "0:15:00", "0:55:00", "18.4%", "0"]
    assert "a3" not in rows
    # columns line up: every cell of a numeric column ends where its header ends
    header = next(line for line in lines if line.startswith("queue"))
    stocks = next(line for line in lines if line.startswith("stocks"))
    assert stocks.index("188.4") + len("188.4") == header.index("ASA s") + len("ASA s")


def _expected_csv_row(fig: QueueFigures | AgentFigures) -> dict[str, object]:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(fig).items() if k not in ("queue", "agent_id")}


async def test_report_csv_parses_back_to_the_figures(
    db: aiosqlite.Connection, settings: Settings, capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run_report(_args(*HOUR, "--format", "csv"), settings) == 0
    reader = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = {row["name"]: row for row in reader}
    assert list(rows) == ["stocks", "funds", "margin", "a1", "a2"]
    for fig in (STOCKS, FUNDS, MARGIN, A1, A2):
        name = fig.queue if isinstance(fig, QueueFigures) else fig.agent_id
        row = rows[name]
        assert row["section"] == ("queue" if isinstance(fig, QueueFigures) else "agent")
        assert row["period_from"] == "2026-11-23T09:00:00+08:00"
        assert row["period_to"] == "2026-11-23T10:00:00+08:00"
        for key, want in _expected_csv_row(fig).items():
            if want is None:
                assert row[key] == "", key
            else:
                assert float(row[key]) == pytest.approx(want, abs=1e-6), (name, key)
        # cells of the other section are empty
        other = "talk_s" if isinstance(fig, QueueFigures) else "offered"
        assert row[other] == ""
    assert rows["margin"]["target_share"] == "0.9"
    assert rows["a1"]["agent_name"] == "Agent 1"


async def test_filters_and_short_abandons(
    db: aiosqlite.Connection, settings: Settings, capsys: pytest.CaptureFixture[str],
) -> None:
    await run_report(_args(*HOUR, "--queue", "stocks", "--short-abandon", "5",
                           "--format", "csv"), settings)
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["stocks"]  # --queue alone hides the agents
    assert float(rows[0]["service_level"]) == pytest.approx(1 / 3)  # 2 / (5 + 2 - 1)
    await run_report(_args(*HOUR, "--agent", "a2"), settings)
    out = capsys.readouterr().out
    assert "Queues" not in out and "Agent 2" in out and "Agent 1" not in out
    # a known agent without activity: an empty section, not an error
    await run_report(_args(*HOUR, "--agent", "a3", "--queue", "funds"), settings)
    out = capsys.readouterr().out
    assert "funds" in out and "(no agent activity in this period)" in out


async def test_default_period_is_today(db: aiosqlite.Connection, settings: Settings,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_report(_args(), settings) == 0
    today = datetime.now().astimezone().date()
    assert capsys.readouterr().out.startswith(f"Period: {today} 00:00:00 to ")


@pytest.mark.parametrize(("argv", "message"), [
    (["--from", "2026-13-01"], r"--from '2026-13-01': not an ISO date or date-time"),
    (["--to", "yesterday"], r"--to 'yesterday': not an ISO date"),
    (["--from", "2026-11-23T10:00", "--to", "2026-11-23T09:00"], r"--to .* must be after"),
    ([*HOUR, "--queue", "bonds"], r"--queue 'bonds': no such queue \(known: stocks, funds"),
    ([*HOUR, "--agent", "zz"], r"--agent 'zz': no such agent"),
    ([*HOUR, "--short-abandon", "-1"], r"--short-abandon -1.0: must be seconds >= 0"),
])
async def test_bad_input_gets_a_clear_error(
    db: aiosqlite.Connection, settings: Settings, argv: list[str], message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        await run_report(_args(*argv), settings)


async def test_no_database_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, db_path=tmp_path / "none.db")
    with pytest.raises(StoreError, match="no database at"):
        await run_report(_args(*HOUR), settings)
    assert not (tmp_path / "none.db").exists()


async def test_a_bad_state_in_the_seat_log_names_the_row(
    db: aiosqlite.Connection, settings: Settings,
) -> None:
    await db.execute("INSERT INTO seat_log (at, agent_id, from_state, to_state, input) "
                     "VALUES (?, 'a1', 'ready', 'napping', 'x')", (T0 + 10,))
    with pytest.raises(StoreError, match=r"seat_log row \d+: unknown to_state 'napping'"):
        await build_report(db, settings, _at(0), _at(3600), now=_at(3600))


def test_parse_period() -> None:
    now = datetime(2026, 11, 23, 15, 30, tzinfo=SHANGHAI)
    midnight = datetime(2026, 11, 23, tzinfo=SHANGHAI)
    day = timedelta(days=1)
    assert parse_period(None, None, now) == (midnight, midnight + day)
    # a date as --to includes that whole day
    assert parse_period("2026-11-01", "2026-11-30", now) == (
        datetime(2026, 11, 1, tzinfo=SHANGHAI), datetime(2026, 12, 1, tzinfo=SHANGHAI))
    # naive times are local; an explicit offset is kept; no --to: the end of the --from day
    start, end = parse_period("2026-11-23 09:30", None, now)
    assert (start, end) == (midnight + timedelta(hours=9.5), midnight + day)
    start, _ = parse_period("2026-11-23T01:30Z", "2026-11-23T12:00+08:00", now)
    assert start == midnight + timedelta(hours=9.5)
