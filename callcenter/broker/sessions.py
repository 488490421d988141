"""A trading day's phases as a table: when the exchanges take orders and cancels.

Pure: no I/O, no clock. ``DEFAULT_SCHEDULE`` is the SSE/SZSE/BSE day: opening call auction
09:15-09:25 (no cancels from 09:20), 09:25-09:30 nothing is taken, continuous trading
09:30-11:30 and 13:00-14:57, closing call auction 14:57-15:00 (no cancels). Any other time of
a trading day, and every time of any other day, is ``Phase.CLOSED``. The orders of a call
auction are matched at its end (``auction_times``: 09:25, 15:00), at one price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Phase(StrEnum):
    CLOSED = "closed"
    OPENING_CALL = "opening_call"                # 09:15-09:20
    OPENING_CALL_FIXED = "opening_call_fixed"    # 09:20-09:25: orders yes, cancels no
    PRE_OPEN = "pre_open"                        # 09:25-09:30: the exchange takes nothing
    CONTINUOUS = "continuous"
    CLOSING_CALL = "closing_call"                # 14:57-15:00: orders yes, cancels no


#: phase -> (takes orders, takes cancels)
TAKES: Mapping[Phase, tuple[bool, bool]] = MappingProxyType({
    Phase.CLOSED: (False, False),
    Phase.OPENING_CALL: (True, True),
    Phase.OPENING_CALL_FIXED: (True, False),
    Phase.PRE_OPEN: (False, False),
    Phase.CONTINUOUS: (True, True),
    Phase.CLOSING_CALL: (True, False),
})

#: the exchange is trading in these (the closing call's orders trade at its end, at 15:00)
MATCHING = frozenset({Phase.CONTINUOUS, Phase.CLOSING_CALL})

#: call auctions: orders rest and are matched at one price when the run of call phases ends
CALLS = frozenset({Phase.OPENING_CALL, Phase.OPENING_CALL_FIXED, Phase.CLOSING_CALL})

Schedule = tuple[tuple[dt.time, dt.time, Phase], ...]

#: [start, end) in the exchange's time zone, in order, without overlaps
DEFAULT_SCHEDULE: Schedule = (
    (dt.time(9, 15), dt.time(9, 20), Phase.OPENING_CALL),
    (dt.time(9, 20), dt.time(9, 25), Phase.OPENING_CALL_FIXED),
    (dt.time(9, 25), dt.time(9, 30), Phase.PRE_OPEN),
    (dt.time(9, 30), dt.time(11, 30), Phase.CONTINUOUS),
    (dt.time(13, 0), dt.time(14, 57), Phase.CONTINUOUS),
    (dt.time(14, 57), dt.time(15, 0), Phase.CLOSING_CALL),
)


def phase_at(t: dt.time, schedule: Schedule = DEFAULT_SCHEDULE) -> Phase:
    """The phase at local time ``t`` of a trading day."""
    for start, end, phase in schedule:
        if start <= t < end:
            return phase
    return Phase.CLOSED


def takes_orders(phase: Phase) -> bool:
    return TAKES[phase][0]


def takes_cancels(phase: Phase) -> bool:
    return TAKES[phase][1]


def _merged(schedule: Schedule, phases: frozenset[Phase]) -> tuple[tuple[dt.time, dt.time], ...]:
    """The stretches of ``phases``, adjacent ones merged."""
    merged: list[tuple[dt.time, dt.time]] = []
    for start, end, phase in schedule:
        if phase not in phases:
            continue
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def matching_hours(schedule: Schedule = DEFAULT_SCHEDULE) -> tuple[tuple[dt.time, dt.time], ...]:
    """The stretches in which the market matches, adjacent phases merged."""
    return _merged(schedule, MATCHING)


def continuous_hours(schedule: Schedule = DEFAULT_SCHEDULE) -> tuple[tuple[dt.time, dt.time],
                                                                     ...]:
    """The stretches of continuous trading, adjacent ones merged."""
    return _merged(schedule, frozenset({Phase.CONTINUOUS}))


def auction_times(schedule: Schedule = DEFAULT_SCHEDULE) -> tuple[dt.time, ...]:
    """When the call auctions match: the end of each run of call phases (09:25 and 15:00)."""
    return tuple(end for _, end in _merged(schedule, CALLS))
