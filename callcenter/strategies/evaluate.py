"""A day's strategies and whom they match (sans-IO): the schedule against the exchange calendar,
then each customer's facts against each population, with the reasons."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callcenter.broker.exchange_calendar import Calendar
from callcenter.broker.facts import Complaint, CustomerFacts
from callcenter.strategies.conditions import History, complaint_key, pending_complaint, reasons
from callcenter.strategies.model import Days, Schedule, Strategy

__all__ = ["Match", "before_holiday", "due_slot", "is_due", "matches", "runs_on"]


def _trading(day: dt.date, calendar: Calendar) -> bool:
    return day.weekday() < 5 and day not in calendar.holidays


def runs_on(schedule: Schedule, day: dt.date, calendar: Calendar) -> bool:
    """Whether a strategy with ``schedule`` runs on ``day``."""
    match schedule.days:
        case Days.EVERY_DAY:
            return True
        case Days.WEEKDAYS:
            return day.weekday() < 5
        case Days.TRADING_DAYS:
            return _trading(day, calendar)
        case Days.BEFORE_HOLIDAY:
            return before_holiday(day, calendar)
    raise AssertionError(schedule.days)


def before_holiday(day: dt.date, calendar: Calendar) -> bool:
    """``day`` is the last trading day before an exchange holiday: a trading day, and a
    weekday holiday comes before the next trading day (a make-up working weekend is no trading
    day)."""
    if not _trading(day, calendar):
        return False
    later = day + dt.timedelta(days=1)
    while not _trading(later, calendar):
        if later in calendar.holidays:
            return True
        later += dt.timedelta(days=1)
    return False


def due_slot(schedule: Schedule, now: dt.datetime, calendar: Calendar) -> str | None:
    """The latest of the day's slots reached at ``now`` (in the site's zone), None before the
    first one or on a day the strategy does not run."""
    if not runs_on(schedule, now.date(), calendar):
        return None
    reached = [slot for slot in schedule.slots() if slot <= f"{now:%H:%M}"]
    return reached[-1] if reached else None


def is_due(schedule: Schedule, now: dt.datetime, calendar: Calendar) -> bool:
    """Whether a run of the strategy is due at ``now`` (some slot of the day reached)."""
    return due_slot(schedule, now, calendar) is not None


@dataclass(frozen=True, slots=True)
class Match:
    strategy: Strategy
    facts: CustomerFacts
    reasons: tuple[str, ...]
    #: what the strategy makes one task of ("" the run day; "complaint:<id>")
    match_key: str = ""
    #: the complaint the task is for
    complaint: Complaint | None = None


def matches(strategies: Sequence[Strategy], customers: Iterable[CustomerFacts],
            history: History, now: dt.datetime) -> list[Match]:
    """Every (strategy, customer) whose population takes the customer at ``now``."""
    out = []
    for facts in customers:
        for strategy in strategies:
            why = reasons(strategy.population, facts, history, now, strategy.id)
            if why is None:
                continue
            spec = strategy.population.complaint_handled
            complaint = None if spec is None else pending_complaint(
                facts, history, strategy.id, now, spec.within_hours)
            out.append(Match(strategy, facts, tuple(why),
                             "" if complaint is None else complaint_key(complaint), complaint))
    return out
