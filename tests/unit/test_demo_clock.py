"""The sandbox's demo clock (``backoffice.clock_start``): it starts where the setting says, in
Beijing time when the setting is naive, and runs on; unset, the engine keeps the real time."""

from __future__ import annotations

import datetime as dt

from callcenter.config import load_settings
from callcenter.engine import sandbox_rules, started_clock


def test_unset_means_the_real_time() -> None:
    assert started_clock(load_settings()) is None


def test_a_naive_start_is_beijing_time_and_the_clock_runs_on() -> None:
    settings = load_settings(backoffice={"clock_start": "2026-11-23T10:00:00"})
    clock = started_clock(settings)
    assert clock is not None
    first, second = clock(), clock()
    tz = sandbox_rules(settings).tz
    start = dt.datetime(2026, 11, 23, 10, 0, tzinfo=tz)
    assert start <= first <= second < start + dt.timedelta(hours=1)
    assert first.utcoffset() == dt.timedelta(hours=8)
