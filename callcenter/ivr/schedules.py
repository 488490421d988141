"""A schedule with the exchange calendar's days in it: the holidays are one fact in one place.

``with_calendar`` (pure) turns a ``Schedule`` as written in ``schedules.yaml`` into the one the
interpreter and the ACD read (``interpreter.schedule_open``). With ``calendar: exchange`` (the
default) it closes on every day of the calendar's public holidays (weekends included) and opens
on its make-up working weekends (调休上班); the schedule's own ``holidays`` and ``workdays`` are
the call center's own days on top, and win over the calendar. Each own date that contradicts
the calendar, or repeats it, comes back as a ``Note`` (``flows check`` prints it as a warning).
``calendar: none`` leaves the schedule as written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from callcenter.broker.exchange_calendar import Calendar
from callcenter.ivr.flow_model import Schedule


@dataclass(frozen=True, slots=True)
class Note:
    """An own date of a schedule worth a warning: ``field`` and ``index`` say where it is."""

    field: Literal["holidays", "workdays"]
    index: int
    message: str


def with_calendar(schedule: Schedule, calendar: Calendar) -> tuple[Schedule, list[Note]]:
    """The schedule with the calendar's days off and make-up workdays, and the notes on its
    own dates."""
    if schedule.calendar == "none":
        return schedule, []
    own_off = {dt.date.fromisoformat(d) for d in schedule.holidays}
    own_work = {dt.date.fromisoformat(d) for d in schedule.workdays}
    notes: list[Note] = []
    for i, text in enumerate(schedule.holidays):
        day = dt.date.fromisoformat(text)
        if day in calendar.workdays:
            notes.append(Note("holidays", i, f"{text} is a make-up working day (调休上班) in the "
                                             "exchange calendar; this schedule closes on it"))
        elif day in calendar.days_off:
            notes.append(Note("holidays", i, f"{text} is already a holiday in the exchange "
                                             "calendar: leave it out here"))
    for i, text in enumerate(schedule.workdays):
        day = dt.date.fromisoformat(text)
        if day in calendar.days_off:
            notes.append(Note("workdays", i, f"{text} is a public holiday in the exchange "
                                             "calendar; this schedule opens on it"))
        elif day in calendar.workdays:
            notes.append(Note("workdays", i, f"{text} is already a make-up working day in the "
                                             "exchange calendar: leave it out here"))
    holidays = (calendar.days_off - own_work) | own_off
    workdays = (calendar.workdays - own_off) | own_work
    resolved = schedule.model_copy(update={
        "holidays": tuple(d.isoformat() for d in sorted(holidays)),
        "workdays": tuple(d.isoformat() for d in sorted(workdays))})
    return resolved, notes
