"""Figures per interval (acd/intervals.py), the site's time zone, and ``report --chart``.

Every test runs with the machine in Los Angeles (TZ), sixteen hours behind the site (Shanghai):
whatever works here does not lean on the machine's zone.
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiosqlite
import pytest

from callcenter.acd.figures import QueueEvent, queue_figures
from callcenter.acd.intervals import (
    DAY,
    Interval,
    IntervalFigures,
    default_step,
    interval_bounds,
    intervals,
)
from callcenter.acd.report import (
    MAX_INTERVALS,
    add_report_parser,
    build_intervals,
    parse_period,
    run_report,
)
from callcenter.config import AcdSettings, QueueSettings, Settings, load_settings
from callcenter.errors import ConfigError
from callcenter.store.db import open_db
from tests.unit.test_figures import QUEUE_EVENTS, T0, TARGETS
from tests.unit.test_report import _write_script

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR = ["--from", "2026-11-23T09:00", "--to", "2026-11-23T10:00"]  # the site's time
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIN = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def machine_in_los_angeles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in Shanghai."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


NINE, TEN = sh(2026, 11, 23, 9), sh(2026, 11, 23, 10)


def _counts(f: IntervalFigures) -> tuple[int, int, int, int]:
    return f.offered, f.answered, f.answered_in_target, f.abandoned


# -- the pure part ---------------------------------------------------------------------------------


def test_the_scripted_hour_in_two_half_hours() -> None:
    first, second = intervals(QUEUE_EVENTS, NINE, TEN, TARGETS, step=30 * MIN)
    assert (first.start, first.end, second.start, second.end) == (
        NINE, NINE + 30 * MIN, NINE + 30 * MIN, TEN)
    assert [r.queue for r in first.queues] == ["stocks", "funds", "margin"]
    # stocks, 09:00-09:30: c1..c6 offered; connects c7(55) c1(12) c3(65) c5(800), in target c1;
    # abandons c2 c4. SL as the report defines it: in target / (answered + abandoned) = 1/6
    stocks = first.figures("stocks")
    assert _counts(stocks) == (6, 4, 1, 2)
    assert stocks.service_level == pytest.approx(1 / 6)
    assert stocks.asa_s == pytest.approx((55 + 12 + 65 + 800) / 4)
    assert stocks.abandon_rate == pytest.approx(2 / 6)
    # funds, 09:00-09:30: c6 c9 c10 offered, c6(20) c9(40) answered, c6 in its 30 s target
    funds = first.figures("funds")
    assert _counts(funds) == (3, 2, 1, 1)
    assert funds.service_level == pytest.approx(1 / 3) and funds.asa_s == 30
    # 09:30-10:00: c8 enters and is answered in 10 s; funds is silent
    assert _counts(second.figures("stocks")) == (1, 1, 1, 0)
    assert second.figures("stocks").service_level == 1.0
    assert second.figures("stocks").asa_s == 10
    # the total adds the queues up; its ASA is the mean wait of every connect
    assert _counts(first.total) == (9, 6, 2, 3)
    assert first.total.queue is None and first.total.target_s is None
    assert first.total.service_level == pytest.approx(2 / 9)
    assert first.total.asa_s == pytest.approx((55 + 12 + 65 + 800 + 20 + 40) / 6)
    assert first.figures() is first.total
    with pytest.raises(KeyError):
        first.figures("bonds")


def test_intervals_add_up_to_the_period() -> None:
    rows = intervals(QUEUE_EVENTS, NINE, TEN, TARGETS, step=7 * MIN)
    whole = {f.queue: f for f in queue_figures(QUEUE_EVENTS, (), NINE.timestamp(),
                                               TEN.timestamp(), TARGETS)}
    for name, fig in whole.items():
        parts = [r.figures(name) for r in rows]
        assert tuple(map(sum, zip(*map(_counts, parts), strict=True))) == (
            fig.offered, fig.answered, fig.answered_in_target, fig.abandoned)
    assert sum((r.end - r.start for r in rows), timedelta(0)) == TEN - NINE


def test_empty_intervals_have_zeros_and_no_shares() -> None:
    day = intervals(QUEUE_EVENTS, sh(2026, 11, 23), sh(2026, 11, 24), TARGETS)
    assert len(day) == 48 and day[0].start == sh(2026, 11, 23)  # 30 min by default
    busy = [r for r in day if r.total.offered or r.total.answered]
    # c7 entered at 08:59:10
    assert [r.start.strftime("%H:%M") for r in busy] == ["08:30", "09:00", "09:30"]
    quiet = day[0]
    assert [r.queue for r in quiet.queues] == ["stocks", "funds", "margin"]
    for fig in (*quiet.queues, quiet.total):
        assert _counts(fig) == (0, 0, 0, 0)
        assert fig.service_level is None and fig.asa_s is None and fig.abandon_rate is None
    assert day[17].start == sh(2026, 11, 23, 8, 30) and day[17].figures("stocks").offered == 1


def test_the_grid_starts_at_midnight_and_is_clipped_to_the_period() -> None:
    bounds = interval_bounds(sh(2026, 11, 23, 9, 10), sh(2026, 11, 23, 10, 40), 30 * MIN)
    assert [(a.strftime("%H:%M"), b.strftime("%H:%M")) for a, b in bounds] == [
        ("09:10", "09:30"), ("09:30", "10:00"), ("10:00", "10:30"), ("10:30", "10:40")]
    assert interval_bounds(NINE, NINE, 30 * MIN) == []
    with pytest.raises(ValueError, match="longer than 0"):
        interval_bounds(NINE, TEN, timedelta(0))
    with pytest.raises(ValueError, match="time zone"):
        interval_bounds(datetime(2026, 11, 23), TEN, 30 * MIN)


def test_default_step() -> None:
    assert default_step(sh(2026, 11, 23), sh(2026, 11, 24)) == 30 * MIN
    assert default_step(NINE, TEN) == 30 * MIN
    assert default_step(sh(2026, 11, 23), sh(2026, 11, 30)) == DAY
    week = intervals(QUEUE_EVENTS, sh(2026, 11, 23), sh(2026, 11, 30), TARGETS)
    assert [r.start.day for r in week] == [23, 24, 25, 26, 27, 28, 29]
    assert week[0].figures("stocks").offered == 8  # c7 at 08:59:10, c1..c6, c8


def test_days_are_calendar_days_across_a_dst_change() -> None:
    ny = ZoneInfo("America/New_York")  # 2026-11-01 is 25 hours long there
    start, end = datetime(2026, 10, 31, tzinfo=ny), datetime(2026, 11, 3, tzinfo=ny)
    bounds = interval_bounds(start, end, DAY)
    assert [b.timestamp() - a.timestamp() for a, b in bounds] == [24 * 3600, 25 * 3600, 24 * 3600]
    assert all(a.hour == 0 and b.hour == 0 for a, b in bounds)


def test_until_cuts_the_period_and_short_abandons_leave_the_sl() -> None:
    rows = intervals(QUEUE_EVENTS, NINE, TEN, TARGETS, step=30 * MIN,
                     until=NINE + 45 * MIN, short_abandon_s=5)
    assert [r.end for r in rows] == [NINE + 30 * MIN, NINE + 45 * MIN]
    stocks = rows[0].figures("stocks")
    assert stocks.short_abandoned == 1  # c4 gave up after 3 s
    assert stocks.service_level == pytest.approx(1 / 5)  # 1 / (4 + 2 - 1)
    assert rows[0].total.service_level == pytest.approx(2 / 8)
    assert intervals(QUEUE_EVENTS, NINE, TEN, TARGETS, until=NINE - MIN) == []


def test_an_unconfigured_queue_is_listed_everywhere_without_a_service_level() -> None:
    stray = [QueueEvent(T0 + 2000, "bonds", "x1", "enter"),
             QueueEvent(T0 + 2005, "bonds", "x1", "connect", "a1", wait_s=5)]
    rows = intervals([*QUEUE_EVENTS, *stray], NINE, TEN, TARGETS, step=30 * MIN)
    assert [r.queue for r in rows[0].queues] == ["stocks", "funds", "margin", "bonds"]
    assert _counts(rows[0].figures("bonds")) == (0, 0, 0, 0)
    bonds = rows[1].figures("bonds")
    assert _counts(bonds) == (1, 1, 0, 0) and bonds.service_level is None
    assert bonds.asa_s == 5 and bonds.target_s is None
    # offered and answered in the total, but not in its service level (no target)
    assert _counts(rows[1].total) == (2, 2, 1, 0)
    assert rows[1].total.service_level == 1.0  # c8 only
    assert rows[1].total.asa_s == pytest.approx(7.5)


# -- the site's time zone ------------------------------------------------------------------------


def test_a_day_starts_at_midnight_in_shanghai_not_on_the_machines_clock() -> None:
    assert datetime.now().astimezone().utcoffset() in (timedelta(hours=-8), timedelta(hours=-7))
    # 2026-11-23 20:00 in Los Angeles is already the 24th in Shanghai
    now = datetime(2026, 11, 23, 20, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert parse_period(None, None, now, SHANGHAI) == (sh(2026, 11, 24), sh(2026, 11, 25))
    start, end = parse_period("2026-11-23", None, now, SHANGHAI)
    assert (start, end) == (sh(2026, 11, 23), sh(2026, 11, 24))
    assert start.utcoffset() == timedelta(hours=8)
    assert parse_period("2026-11-23T09:00", "2026-11-23T10:00", now, SHANGHAI) == (NINE, TEN)
    # an explicit offset is kept as an instant, shown on the site's clock
    start, _ = parse_period("2026-11-23T01:00Z", None, now, SHANGHAI)
    assert start == NINE and start.tzinfo is SHANGHAI


def test_the_site_zone_is_a_setting(tmp_path: Path) -> None:
    assert load_settings(state_dir=tmp_path).site.timezone == "Asia/Shanghai"
    paris = load_settings(state_dir=tmp_path, site={"timezone": "Europe/Paris"})
    assert paris.site.tz == ZoneInfo("Europe/Paris")
    with pytest.raises(ConfigError, match=r"site.timezone: .*unknown time zone 'Mars/Olympus'"):
        load_settings(state_dir=tmp_path, site={"timezone": "Mars/Olympus"})


# -- from the database, and the command line ------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    queues = [QueueSettings(name="stocks", target_s=20), QueueSettings(name="funds", target_s=30),
              QueueSettings(name="margin", target_s=20, target_share=0.9)]
    return load_settings(state_dir=tmp_path, db_path=tmp_path / "cc.db",
                         acd=AcdSettings(queues=queues))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(settings.database)
    try:
        await _write_script(conn)
        # 00:10 on the 23rd in Shanghai: still the 22nd on the machine's clock
        await conn.execute("INSERT INTO queue_log (at, queue, call_id, event) "
                           "VALUES (?, 'stocks', 'early', 'enter')",
                           (sh(2026, 11, 23, 0, 10).timestamp(),))
        await conn.commit()
        yield conn
    finally:
        await conn.close()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="callcenter")
    add_report_parser(parser.add_subparsers(dest="cmd", required=True))
    return parser.parse_args(["report", *argv])


async def test_build_intervals_reads_the_day_in_the_sites_zone(
    db: aiosqlite.Connection, settings: Settings,
) -> None:
    la = ZoneInfo("America/Los_Angeles")
    start, end = sh(2026, 11, 23).astimezone(la), sh(2026, 11, 24).astimezone(la)
    rows = await build_intervals(db, settings, start, end, now=sh(2026, 12, 1))
    assert len(rows) == 48
    assert rows[0].start == sh(2026, 11, 23) and rows[0].start.tzinfo == SHANGHAI
    assert rows[0].figures("stocks").offered == 1  # the 00:10 call
    stored = [ev for ev in QUEUE_EVENTS if ev.at >= sh(2026, 11, 23, 8, 30).timestamp()]
    expected = intervals(stored, sh(2026, 11, 23, 8, 30), sh(2026, 11, 24), TARGETS)
    assert rows[17:] == expected


async def test_report_days_are_the_sites_days(
    db: aiosqlite.Connection, settings: Settings, capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run_report(_args("--from", "2026-11-23", "--format", "csv"), settings) == 0
    out = capsys.readouterr().out
    assert "2026-11-23T00:00:00+08:00,2026-11-24T00:00:00+08:00" in out
    assert await run_report(_args(), settings) == 0
    today = datetime.now(SHANGHAI).date()
    assert capsys.readouterr().out.startswith(f"Period: {today} 00:00:00 to ")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_chart_is_a_png_of_the_expected_size(
    db: aiosqlite.Connection, settings: Settings, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chart = tmp_path / "day.png"
    assert await run_report(_args("--from", "2026-11-23", "--chart", str(chart)), settings) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Period: 2026-11-23 00:00:00") and f"Chart written to {chart}" in err
    data = chart.read_bytes()
    assert len(data) > 1000 and _png_size(data) == (1200, 900)
    assert data.endswith(b"IEND\xaeB`\x82")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch
    # one queue, 15-minute intervals, over an existing file
    assert await run_report(_args(*HOUR, "--queue", "stocks", "--interval", "15",
                                  "--chart", str(chart)), settings) == 0
    assert _png_size(chart.read_bytes()) == (1200, 900)


async def test_a_chart_of_a_period_without_figures(
    db: aiosqlite.Connection, settings: Settings, tmp_path: Path,
) -> None:
    chart = tmp_path / "future.PNG"
    assert await run_report(_args("--from", "2099-01-01", "--chart", str(chart)), settings) == 0
    assert _png_size(chart.read_bytes()) == (1200, 900)


@pytest.mark.parametrize(("argv", "message"), [
    (["--chart", "{tmp}/day.jpg"], r"--chart '.*day.jpg': the chart is a PNG image"),
    (["--chart", "{tmp}/day"], r"ending in .png"),
    (["--chart", "{tmp}/nowhere/day.png"], r"--chart '.*day.png': no directory '.*nowhere'"),
    (["--chart", "{tmp}/cc.db/day.png"], r"no directory '.*cc.db'"),
    (["--chart", "{tmp}/dir.png"], r"is a directory"),
    (["--interval", "15"], r"--interval sets the chart's intervals: give --chart"),
    (["--interval", "0", "--chart", "{tmp}/x.png"], r"--interval 0: must be .* >= 1"),
    (["--from", "2026-11-01", "--to", "2026-11-30", "--interval", "5", "--chart",
      "{tmp}/x.png"], rf"--interval 5: 8640 intervals .* \({MAX_INTERVALS}\)"),
    (["--from", "2020-01-01", "--to", "2026-11-30", "--chart", "{tmp}/x.png"],
     r"--interval: \d+ intervals of 1440 minutes"),
])
async def test_a_bad_chart_request_is_refused_before_anything_is_written(
    db: aiosqlite.Connection, settings: Settings, tmp_path: Path, argv: list[str],
    message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "dir.png").mkdir()
    before = sorted(tmp_path.rglob("*"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(ConfigError, match=message):
        await run_report(_args(*argv), settings)
    assert sorted(tmp_path.rglob("*")) == before
    assert capsys.readouterr() == ("", "")


async def test_a_failed_write_leaves_no_file(
    db: aiosqlite.Connection, settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_rename(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("callcenter.acd.report.os.replace", no_rename)
    chart = tmp_path / "day.png"
    with pytest.raises(ConfigError, match=r"cannot write the chart: No space left on device"):
        await run_report(_args(*HOUR, "--chart", str(chart)), settings)
    assert not chart.exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix in (".png", ".tmp")] == []


def test_interval_rows_are_plain_data() -> None:
    (row,) = intervals(QUEUE_EVENTS, NINE, TEN, TARGETS, step=DAY)
    assert isinstance(row, Interval) and row.start == NINE and row.end == TEN
