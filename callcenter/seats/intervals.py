"""The console's ``intervals`` request: queue figures per interval for the supervisors' charts.

The figures are the report's (:func:`callcenter.acd.report.build_intervals`, which owns what
each one means): 30-minute intervals for one day, one interval per day for a longer period, the
days being the site's (``site.timezone``), and a period that reaches past now cut at now. The
request's dates are checked at the edge (``protocol.Intervals``: real dates, ``to`` not before
``from``, at most ``MAX_INTERVAL_DAYS``); the role is checked by the console server and, again,
here.

The reply (times are unix seconds, shares 0..1, null where there is nothing to share)::

    {"from": "2026-11-23", "to": "2026-11-23", "step_s": 1800, "timezone": "Asia/Shanghai",
     "until": 1795000000.0,
     "target_shares": {"general": 0.8},
     "intervals": [{"start": ..., "end": ..., "queues": [IntervalFigures], "total": {...}}]}

IntervalFigures: {queue (null in the total), target_s, offered, answered, answered_in_target,
abandoned, abandon_rate, service_level, asa_s}.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta
from typing import Any

import aiosqlite

from callcenter.acd.intervals import DAY, DEFAULT_DAY_STEP, IntervalFigures
from callcenter.acd.report import build_intervals
from callcenter.config import AcdSettings, Settings, SiteSettings
from callcenter.errors import ConsoleError
from callcenter.seats import protocol as p
from callcenter.seats.console_api import AgentIdentity

__all__ = ["intervals_reply"]

_SUPERVISING = frozenset({p.Role.SUPERVISOR, p.Role.ADMIN})


def _figures(row: IntervalFigures) -> dict[str, Any]:
    data = dataclasses.asdict(row)
    data.pop("short_abandoned", None)
    return data


async def intervals_reply(db: aiosqlite.Connection, acd: AcdSettings, request: p.Intervals,
                          agent: AgentIdentity, *, now: float,
                          site: SiteSettings | None = None) -> dict[str, Any]:
    """The figures per interval of the request's days, cut at ``now`` (unix seconds).
    ``site`` None: the default site (Asia/Shanghai). ``ConsoleError`` "forbidden" for an
    agent."""
    if agent.role not in _SUPERVISING:
        raise ConsoleError("forbidden", "the figures per interval are for supervisors")
    site = site or SiteSettings()
    tz = site.tz
    start = datetime.combine(request.first, time(), tzinfo=tz)
    end = datetime.combine(request.last + timedelta(days=1), time(), tzinfo=tz)
    step = DEFAULT_DAY_STEP if request.first == request.last else DAY
    # build_intervals reads the site's zone and the queues only: no environment is read here
    settings = Settings.model_construct(acd=acd, site=site)
    moment = datetime.fromtimestamp(now, tz)
    rows = await build_intervals(db, settings, start, end, now=moment, step=step)
    return {
        "from": request.from_,
        "to": request.to,
        "step_s": step.total_seconds(),
        "timezone": site.timezone,
        "until": max(start, min(end, moment)).timestamp(),
        "target_shares": {q.name: q.target_share for q in acd.queues},
        "intervals": [{"start": r.start.timestamp(), "end": r.end.timestamp(),
                       "queues": [_figures(q) for q in r.queues], "total": _figures(r.total)}
                      for r in rows],
    }
