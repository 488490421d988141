"""The exchange calendar as data: the packaged ``data/calendar.yaml``, an operator's file over it.

The loader is the only I/O here (pydantic at the edge); ``Calendar`` and ``calendar_warnings``
are pure. A year in the operator's file replaces the same year of the packaged one; other years
are added. The exchanges close on the weekdays among each holiday's days; weekends are never
trading days (``rules.is_trading_day``), so only weekdays are kept in ``holidays``.

The same notice gives the make-up working weekends (调休上班): not trading days, but working days
for the call center. ``days_off`` (every day of the holidays, weekends included) and ``workdays``
are what an agents' schedule with ``calendar: exchange`` takes (``ivr/schedules.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from callcenter.errors import ConfigError

PACKAGED = "data/calendar.yaml"


class _Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    start: dt.date = Field(alias="from")
    end: dt.date = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> _Holiday:
        if self.end < self.start:
            raise ValueError(f"{self.name}: 'to' ({self.end}) is before 'from' ({self.start})")
        if (self.end - self.start).days > 31:
            raise ValueError(f"{self.name}: longer than a month; a typo in a date?")
        return self


class _Year(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provisional: bool = False
    source: str = ""
    holidays: list[_Holiday] = []
    #: make-up working weekends (调休上班): not trading days, working days for the agents
    workdays: list[dt.date] = []

    @model_validator(mode="after")
    def _weekends(self) -> _Year:
        for day in self.workdays:
            if day.weekday() < 5:
                raise ValueError(f"workday {day} is a weekday: list only the make-up weekends")
        if self.holidays and not self.provisional and "workdays" not in self.model_fields_set:
            # a year copied from an older file, or a new notice typed in without them, would
            # silently close the agents on those Saturdays and Sundays
            raise ValueError("list the notice's make-up working weekends (调休上班) as "
                             "`workdays: [...]`, or `workdays: []` if it has none")
        return self


class _CalendarFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    years: dict[int, _Year]

    @model_validator(mode="after")
    def _in_their_year(self) -> _CalendarFile:
        for year, body in self.years.items():
            for h in body.holidays:
                if h.start.year != year and h.end.year != year:
                    raise ValueError(f"{year}: {h.name} ({h.start}..{h.end}) is not in {year}")
            for day in body.workdays:
                if day.year != year:
                    raise ValueError(f"{year}: workday {day} is not in {year}")
        return self


@dataclass(frozen=True, slots=True)
class Calendar:
    """Weekday holidays, and the years covered (year -> provisional)."""

    holidays: frozenset[dt.date]
    years: Mapping[int, bool]
    #: every day of the public holidays, weekends included (not ``backoffice.holidays``: an
    #: unplanned closure of the exchanges is no day off for the call center)
    days_off: frozenset[dt.date] = frozenset()
    #: the make-up working weekends (调休上班)
    workdays: frozenset[dt.date] = frozenset()


def _read(text: str, name: str) -> dict[int, _Year]:
    try:
        raw: Any = yaml.safe_load(text)
        return _CalendarFile.model_validate(raw).years
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"{name}: {problems}") from exc


def load_calendar(path: Path | None = None, extra: Iterable[dt.date] = ()) -> Calendar:
    """The packaged calendar, with the years of ``path`` (an operator's file) over it, plus the
    single days of ``extra`` (``backoffice.holidays``)."""
    packaged = resources.files("callcenter.broker").joinpath(PACKAGED).read_text("utf-8")
    years = _read(packaged, PACKAGED)
    if path is not None:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the exchange calendar: {exc}") from exc
        years |= _read(text, str(path))
    off: set[dt.date] = set()
    for body in years.values():
        for h in body.holidays:
            d = h.start
            while d <= h.end:
                off.add(d)
                d += dt.timedelta(days=1)
    days = {d for d in (*off, *extra) if d.weekday() < 5}
    return Calendar(frozenset(days),
                    MappingProxyType({y: b.provisional for y, b in sorted(years.items())}),
                    days_off=frozenset(off),
                    workdays=frozenset(d for b in years.values() for d in b.workdays))


def calendar_warnings(today: dt.date, years: Mapping[int, bool]) -> list[str]:
    """What an operator must fix: the current or next year missing or provisional."""
    out = []
    for year in (today.year, today.year + 1):
        if year not in years:
            out.append(f"the exchange calendar has no {year}: every weekday of {year} counts "
                       f"as a trading day; add the exchanges' {year} holidays "
                       f"(backoffice.calendar)")
        elif years[year]:
            out.append(f"the exchange calendar's {year} is provisional (derived, not the "
                       f"exchanges' notice): replace it when the notice is out "
                       f"(backoffice.calendar)")
    return out
