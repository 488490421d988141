"""Queue figures per interval of a period (09:00-09:30, 09:30-10:00...), sans-IO.

The figures of each interval are those of :func:`callcenter.acd.figures.queue_figures` over the
interval's ``queue_log`` rows, so every definition (an event counts in the interval its ``at``
falls in; service level = answered within the queue's ``target_s`` / (answered + abandoned),
short abandons optionally left out of that denominator; ASA = mean ``wait_s`` of connects) is
the report's and the wallboard's. Seat rows are not needed: AHT and agent figures are not given
per interval.

Intervals are laid in the time zone of the period's ``start`` (the site's: ``site.timezone``):
a grid from the midnight of ``start``'s day, clipped to the period, so a 30-minute grid starts
at 09:00 and 09:30 even for a period from 09:10. A step of whole days steps calendar days (a day
with a DST change is 23 or 25 hours long); a shorter step steps elapsed time.

``Interval.total`` adds up the queues: a call that overflows is offered in each queue it enters
(as in the per-queue figures). Its service level is over the queues that have a target
(configured queues); its ASA is the mean wait of all connects.

This module reads no clock and no database; :func:`callcenter.acd.report.build_intervals` reads
the rows, and the console can call :func:`intervals` on rows it already holds.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from callcenter.acd.figures import QueueEvent, QueueFigures, queue_figures

__all__ = [
    "DAY",
    "DEFAULT_DAY_STEP",
    "Interval",
    "IntervalFigures",
    "default_step",
    "interval_bounds",
    "intervals",
]

DAY = timedelta(days=1)
#: the step for a period of at most one day; longer periods step by :data:`DAY`
DEFAULT_DAY_STEP = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class IntervalFigures:
    """One queue (``queue`` None: all of them) over one interval. Shares of nothing are None."""

    queue: str | None
    target_s: float | None      # None: unconfigured queue, or the total (targets differ)
    offered: int
    answered: int
    answered_in_target: int
    abandoned: int
    short_abandoned: int
    abandon_rate: float | None
    service_level: float | None
    asa_s: float | None


@dataclass(frozen=True, slots=True)
class Interval:
    """``[start, end)`` (aware, in the period's zone), per queue and in total."""

    start: datetime
    end: datetime
    queues: tuple[IntervalFigures, ...]
    total: IntervalFigures

    def figures(self, queue: str | None = None) -> IntervalFigures:
        """One queue's figures (``KeyError`` if it is not in the period); None: the total."""
        if queue is None:
            return self.total
        for row in self.queues:
            if row.queue == queue:
                return row
        raise KeyError(queue)


def default_step(start: datetime, end: datetime) -> timedelta:
    """30 minutes for a period of at most one (calendar) day, else one day."""
    _check_aware(start, end)
    return DEFAULT_DAY_STEP if end <= _add_days(start, 1) else DAY


def interval_bounds(start: datetime, end: datetime,
                    step: timedelta) -> list[tuple[datetime, datetime]]:
    """The intervals of ``[start, end)``: a ``step`` grid from the midnight of ``start``'s day
    in ``start``'s zone, the first and last clipped to the period. Empty if ``end <= start``."""
    _check_aware(start, end)
    if step <= timedelta(0):
        raise ValueError(f"an interval must be longer than 0, got {step}")
    tz = start.tzinfo
    midnight = datetime.combine(start.date(), time(), tzinfo=tz)
    if step % DAY == timedelta(0):       # whole days: calendar days on the wall clock
        days, k = step // DAY, 0         # start is within the first day

        def edge(n: int) -> datetime:
            return _add_days(midnight, n * days)
    else:                                # elapsed time
        base, seconds = midnight.timestamp(), step.total_seconds()
        k = int((start.timestamp() - base) // seconds)

        def edge(n: int) -> datetime:
            return datetime.fromtimestamp(base + n * seconds, tz)
    bounds: list[tuple[datetime, datetime]] = []
    while (lo := edge(k)) < end:
        hi = edge(k + 1)
        bounds.append((max(lo, start).astimezone(tz), min(hi, end).astimezone(tz)))
        k += 1
    return bounds


def intervals(
    events: Iterable[QueueEvent],
    start: datetime,
    end: datetime,
    targets: Mapping[str, float],
    *,
    step: timedelta | None = None,
    until: datetime | None = None,
    short_abandon_s: float = 0.0,
) -> list[Interval]:
    """Per-interval figures of ``[start, end)`` from ``queue_log`` rows, oldest first.

    ``targets``: queue name -> ``target_s`` of the configured queues. Every interval lists the
    same queues: the configured ones in their order, then any other with an event in the period,
    by name. ``step``: the interval length (default :func:`default_step`). ``until`` (e.g. now)
    cuts the period: intervals after it are left out and the one it falls in ends at it. An
    interval without calls has zero counts and None shares and averages.
    """
    step = default_step(start, end) if step is None else step
    stop = end if until is None else max(start, min(end, until))
    bounds = interval_bounds(start, stop, step)
    t0, t1 = start.timestamp(), stop.timestamp()
    starts = [lo.timestamp() for lo, _ in bounds]
    buckets: list[list[QueueEvent]] = [[] for _ in bounds]
    names: set[str] = set()
    for ev in events:
        if t0 <= ev.at < t1:
            buckets[bisect.bisect_right(starts, ev.at) - 1].append(ev)
            names.add(ev.queue)
    order = [*targets, *sorted(names - set(targets))]
    out = []
    for (lo, hi), bucket in zip(bounds, buckets, strict=True):
        a, b = lo.timestamp(), hi.timestamp()
        got = {f.queue: f for f in queue_figures(bucket, (), a, b, targets,
                                                 short_abandon_s=short_abandon_s)}
        rows = tuple(_row(got[q]) if q in got else _empty(q, targets.get(q)) for q in order)
        everything = [dataclasses.replace(ev, queue="") for ev in bucket]
        (overall,) = queue_figures(everything, (), a, b, {"": 0.0},
                                   short_abandon_s=short_abandon_s)
        out.append(Interval(lo, hi, rows, _total(rows, overall)))
    return out


# -- helpers ---------------------------------------------------------------------------------------


def _check_aware(*moments: datetime) -> None:
    for moment in moments:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{moment.isoformat()}: a period's bounds need a time zone")


def _add_days(moment: datetime, days: int) -> datetime:
    """``days`` calendar days later on ``moment``'s wall clock (its zone's offset then)."""
    local = moment.replace(tzinfo=None) + timedelta(days=days)
    return local.replace(tzinfo=moment.tzinfo)


def _row(f: QueueFigures) -> IntervalFigures:
    return IntervalFigures(
        queue=f.queue, target_s=f.target_s, offered=f.offered, answered=f.answered,
        answered_in_target=f.answered_in_target, abandoned=f.abandoned,
        short_abandoned=f.short_abandoned, abandon_rate=f.abandon_rate,
        service_level=f.service_level, asa_s=f.asa_s,
    )


def _empty(queue: str, target_s: float | None) -> IntervalFigures:
    return IntervalFigures(queue, target_s, 0, 0, 0, 0, 0, None, None, None)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _total(rows: Sequence[IntervalFigures], overall: QueueFigures) -> IntervalFigures:
    """The queues added up; ``overall``: the figures of all the interval's rows as one queue
    (its ASA is the mean wait of every connect; its target is meaningless)."""
    timed = [r for r in rows if r.target_s is not None]
    in_target = sum(r.answered_in_target for r in timed)
    sl_base = sum(r.answered + r.abandoned - r.short_abandoned for r in timed)
    offered = sum(r.offered for r in rows)
    abandoned = sum(r.abandoned for r in rows)
    return IntervalFigures(
        queue=None,
        target_s=None,
        offered=offered,
        answered=sum(r.answered for r in rows),
        answered_in_target=in_target,
        abandoned=abandoned,
        short_abandoned=sum(r.short_abandoned for r in rows),
        abandon_rate=_share(abandoned, offered),
        service_level=_share(in_target, sl_base),
        asa_s=overall.asa_s,
    )
