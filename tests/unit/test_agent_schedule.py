"""The agents' schedule takes the exchange calendar's holidays and make-up workdays (one fact in
one place); its own dates go on top, and those that contradict the calendar are warned about."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from callcenter import cli
from callcenter.broker.exchange_calendar import load_calendar
from callcenter.errors import ConfigError
from callcenter.ivr.flow_model import Schedule
from callcenter.ivr.flowset import read_flowset
from callcenter.ivr.interpreter import schedule_open
from callcenter.ivr.schedules import with_calendar

REPO = Path(__file__).resolve().parents[2]
CST = dt.timezone(dt.timedelta(hours=8))
CAL = load_calendar()


def at(day: str, hhmm: str = "10:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day} {hhmm}").replace(tzinfo=CST)


def shipped_agents() -> Schedule:
    flowset, _problems = read_flowset(REPO / "ivr_flows")
    assert flowset is not None
    return flowset.schedules["agents"]


@pytest.mark.parametrize(("day", "is_open"), [
    ("2026-09-27", False),   # Sunday inside Mid-Autumn: was a workday in the old schedules.yaml
    ("2026-09-20", True),    # Sunday, make-up workday before National Day
    ("2026-10-10", True),    # Saturday, make-up workday
    ("2026-10-08", True),    # Thursday after National Day
    ("2026-10-05", False),   # National Day
    ("2026-02-16", False),   # Spring Festival (missing from the old schedules.yaml)
    ("2026-02-23", False),   # its last day, a Monday
    ("2026-02-24", True),
    ("2026-02-14", True),    # Saturday, make-up workday before Spring Festival
    ("2026-02-28", True),    # Saturday, make-up workday after it
    ("2026-01-01", False),   # New Year
    ("2026-01-04", True),    # Sunday, make-up workday
    ("2026-05-05", False),   # Labour Day
    ("2026-05-09", True),    # Saturday, make-up workday
    ("2026-11-21", False),   # an ordinary Saturday
    ("2026-11-23", True),    # an ordinary Monday
])
def test_the_shipped_agents_schedule_follows_the_exchange_calendar(day: str,
                                                                   is_open: bool) -> None:
    assert schedule_open(shipped_agents(), at(day)) is is_open


def test_a_make_up_workday_keeps_mondays_hours() -> None:
    agents = shipped_agents()
    assert not schedule_open(agents, at("2026-09-20", "08:00"))
    assert schedule_open(agents, at("2026-09-20", "17:29"))
    assert not schedule_open(agents, at("2026-09-20", "17:30"))


def test_the_shipped_schedule_repeats_no_calendar_date() -> None:
    flowset, _problems = read_flowset(REPO / "ivr_flows")
    assert flowset is not None and flowset.warnings == ()


WEEKDAYS = {d: ["08:30-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}


def test_own_days_go_on_top_of_the_calendar() -> None:
    written = Schedule(weekly=WEEKDAYS, holidays=("2026-12-24",), workdays=("2026-11-28",))
    schedule, notes = with_calendar(written, CAL)
    assert notes == []
    assert not schedule_open(schedule, at("2026-12-24"))       # a Thursday of our own
    assert schedule_open(schedule, at("2026-11-28"))           # an extra Saturday shift
    assert not schedule_open(schedule, at("2026-02-17"))       # the calendar still counts
    assert schedule_open(schedule, at("2026-02-14"))


def test_an_own_date_against_the_calendar_wins_and_is_noted() -> None:
    written = Schedule(weekly=WEEKDAYS, holidays=("2026-10-10",),
                       workdays=("2026-09-27", "2026-10-02"))
    schedule, notes = with_calendar(written, CAL)
    assert [(n.field, n.index) for n in notes] == [("holidays", 0), ("workdays", 0),
                                                   ("workdays", 1)]
    assert "make-up working day" in notes[0].message and "closes" in notes[0].message
    assert "public holiday" in notes[1].message and "opens" in notes[1].message
    assert not schedule_open(schedule, at("2026-10-10"))
    assert schedule_open(schedule, at("2026-09-27"))           # Sunday: Monday's hours
    assert schedule_open(schedule, at("2026-10-02"))           # a weekday holiday, opened


def test_an_own_date_repeating_the_calendar_is_noted() -> None:
    written = Schedule(weekly=WEEKDAYS, holidays=("2026-10-01",), workdays=("2026-10-10",))
    _schedule, notes = with_calendar(written, CAL)
    assert [n.field for n in notes] == ["holidays", "workdays"]
    assert all("already" in n.message for n in notes)


def test_calendar_none_keeps_only_its_own_dates() -> None:
    written = Schedule(weekly=WEEKDAYS, calendar="none", holidays=("2026-10-01",))
    schedule, notes = with_calendar(written, CAL)
    assert notes == [] and schedule == written
    assert schedule_open(schedule, at("2026-02-16"))           # Spring Festival: open
    assert not schedule_open(schedule, at("2026-10-01"))


def test_a_holiday_saturday_closes_a_schedule_open_on_saturdays() -> None:
    written = Schedule(weekly={**WEEKDAYS, "sat": ["09:00-12:00"]})
    schedule, _notes = with_calendar(written, CAL)
    assert not schedule_open(schedule, at("2026-10-03"))       # National Day's Saturday
    assert schedule_open(schedule, at("2026-11-21"))


def test_an_operator_calendar_gives_the_schedule_its_days(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text("years:\n  2027:\n    holidays:\n"
                    "      - {name: 春节, from: 2027-02-06, to: 2027-02-14}\n"
                    "    workdays: [2027-01-31, 2027-02-20]\n", "utf-8")
    cal = load_calendar(path)
    assert dt.date(2027, 2, 20) in cal.workdays and dt.date(2027, 2, 6) in cal.days_off
    assert dt.date(2027, 2, 6) not in cal.holidays              # a Saturday: trading anyway no
    schedule, _notes = with_calendar(Schedule(weekly=WEEKDAYS), cal)
    assert schedule_open(schedule, at("2027-02-20"))
    assert not schedule_open(schedule, at("2027-02-08"))
    assert schedule_open(schedule, at("2027-02-15"))


@pytest.mark.parametrize(("workdays", "problem"), [
    ("[2027-02-22]", "is a weekday"),
    ("[2026-12-27]", "is not in 2027"),
])
def test_a_bad_calendar_workday_is_refused(tmp_path: Path, workdays: str, problem: str) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(f"years:\n  2027:\n    workdays: {workdays}\n", "utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_calendar(path)


def test_a_bad_calendar_option_is_a_file_line_error(tmp_path: Path) -> None:
    (tmp_path / "schedules.yaml").write_text(
        "agents:\n  calendar: sse\n  weekly: {mon: ['08:30-17:30']}\n", "utf-8")
    _flowset, problems = read_flowset(tmp_path)
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'schedules.yaml'}:2:3: agents.calendar: "
        "Input should be 'exchange' or 'none'"]


def test_flows_check_warns_with_file_and_line(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "schedules.yaml").write_text(textwrap.dedent("""\
        agents:
          weekly: {mon: ["08:30-17:30"]}
          workdays:
            - "2026-09-27"
        """), "utf-8")
    assert cli.main(["flows", "check", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err == (f"warning: {tmp_path / 'schedules.yaml'}:4:7: agents: 2026-09-27 is a public "
                   "holiday in the exchange calendar; this schedule opens on it\n")
