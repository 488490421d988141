"""A report's period from the command line: ``--from``/``--to`` as the site's days or times
(``parse_period``). ``callcenter report calls`` (``acd/report.py``) and ``callcenter report
tasks`` (``tasks/report_db.py``) both read it; it imports neither.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from callcenter.errors import ConfigError

__all__ = ["ISO_HELP", "parse_period"]

ISO_HELP = "e.g. 2026-11-23 or 2026-11-23T09:30 or 2026-11-23T09:30+08:00"


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    # a zone's offset on *that* day (DST-proof: ZoneInfo resolves it from the wall time)
    return datetime.combine(day, time(), tzinfo=tz)


def _parse_bound(option: str, text: str, tz: tzinfo) -> datetime | date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"{option} {text!r}: not an ISO date or date-time ({ISO_HELP}): {exc}"
        ) from exc
    if moment.tzinfo is None:  # naive means the site's time
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def parse_period(from_text: str | None, to_text: str | None, now: datetime,
                 tz: tzinfo | None = None) -> tuple[datetime, datetime]:
    """``[start, end)`` as aware datetimes in ``tz`` from ``--from``/``--to``; ``ConfigError``
    if bad. ``tz``: the site's zone (default: ``now``'s); naive times are in it.

    A date as ``--from`` is its midnight, as ``--to`` the end of that day (so
    ``--from 2026-11-01 --to 2026-11-30`` is all of November). No ``--from``: today
    (``now``'s date in ``tz``). No ``--to``: the end of the day ``--from`` falls in.
    """
    zone = tz or now.tzinfo
    if zone is None:
        raise ValueError("parse_period needs an aware now or a tz")
    first = _parse_bound("--from", from_text, zone) if from_text else now.astimezone(zone).date()
    start = first if isinstance(first, datetime) else _local_midnight(first, zone)
    if to_text:
        last = _parse_bound("--to", to_text, zone)
        end = (last if isinstance(last, datetime)
               else _local_midnight(last + timedelta(days=1), zone))
    else:
        end = _local_midnight(start.date() + timedelta(days=1), zone)
    if end <= start:
        raise ConfigError(
            f"--to ({end.isoformat(sep=' ')}) must be after --from ({start.isoformat(sep=' ')})"
        )
    return start, end
