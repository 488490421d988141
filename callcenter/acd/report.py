"""``callcenter report``: queue and agent figures for a period, read from the database.

The async edge of :mod:`callcenter.acd.figures` (which owns what each figure means) and of
:mod:`callcenter.acd.intervals` (the same figures per interval): this module owns reading a
period's ``queue_log``/``seat_log`` rows, the period's command-line syntax, the two renderings,
an aligned text table and CSV, and writing the chart (drawn by :mod:`callcenter.acd.charts`).
``cli.py`` hooks it in with :func:`add_report_parser` and :func:`run_report`.

Times in the database are Unix seconds (``queue_log.at``); the command line speaks the site's
time (``site.timezone``, default Asia/Shanghai), whatever the machine's zone: "today" and a date
are days on the site's clock. A period that reaches into the future is cut at *now*, so today's
report does not count the current states of the seats as lasting until midnight.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import io
import math
import os
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import aiosqlite

from callcenter.acd.charts import chart_png
from callcenter.acd.figures import (
    AgentFigures,
    QueueEvent,
    QueueFigures,
    SeatEvent,
    agent_figures,
    queue_figures,
)
from callcenter.acd.intervals import Interval, default_step, intervals
from callcenter.acd.seat import SeatState
from callcenter.config import Settings
from callcenter.errors import ConfigError, StoreError
from callcenter.periods import ISO_HELP, parse_period
from callcenter.store.db import open_db

__all__ = [
    "MAX_INTERVALS",
    "Report",
    "add_report_parser",
    "build_intervals",
    "build_report",
    "check_chart_path",
    "interval_step",
    "parse_period",
    "read_period",
    "read_queue_events",
    "render_csv",
    "render_table",
    "run_report",
    "select",
    "write_chart",
]



@dataclasses.dataclass(frozen=True)
class Report:
    """Figures for ``[start, until)``; ``until`` is ``end`` cut at the time of the report.

    A section that is ``None`` is not shown (see :func:`select`).
    """

    start: datetime
    end: datetime
    until: datetime
    queues: tuple[QueueFigures, ...] | None
    agents: tuple[AgentFigures, ...] | None
    target_shares: Mapping[str, float]
    names: Mapping[str, str]


# -- reading ---------------------------------------------------------------------------------------

_QUEUE_SQL = """
    SELECT id, at, queue, call_id, event, agent_id, tier, wait_s, talk_s FROM queue_log
    WHERE at >= ? AND at < ? ORDER BY at, id
"""
# the period's rows, and each agent's last row before it (its state when the period starts)
_SEAT_SQL = """
    SELECT id, at, agent_id, from_state, to_state FROM seat_log
    WHERE at < ? AND (at >= ? OR id IN (
        SELECT MAX(id) FROM seat_log WHERE at < ? GROUP BY agent_id))
    ORDER BY at, id
"""


def _state(row: sqlite3.Row, column: str) -> SeatState:
    try:
        return SeatState(row[column])
    except ValueError as exc:
        raise StoreError(f"seat_log row {row['id']}: unknown {column} {row[column]!r}") from exc


async def read_queue_events(db: aiosqlite.Connection, start: float,
                            end: float) -> list[QueueEvent]:
    """The ``queue_log`` rows of ``[start, end)``, oldest first."""
    try:
        async with db.execute(_QUEUE_SQL, (start, end)) as cur:
            queue_rows = list(await cur.fetchall())
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the queue log: {exc}") from exc
    return [
        QueueEvent(r["at"], r["queue"], r["call_id"], r["event"], r["agent_id"], r["tier"],
                   r["wait_s"], r["talk_s"])
        for r in queue_rows
    ]


async def read_period(db: aiosqlite.Connection, start: float,
                      end: float) -> tuple[list[QueueEvent], list[SeatEvent]]:
    """The rows the figures of ``[start, end)`` need, oldest first."""
    events = await read_queue_events(db, start, end)
    try:
        async with db.execute(_SEAT_SQL, (end, start, start)) as cur:
            seat_rows = list(await cur.fetchall())
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the seat log: {exc}") from exc
    seats = [
        SeatEvent(r["at"], r["agent_id"], _state(r, "from_state"), _state(r, "to_state"))
        for r in seat_rows
    ]
    return events, seats


async def _agent_names(db: aiosqlite.Connection) -> dict[str, str]:
    try:
        async with db.execute("SELECT agent_id, name FROM agents") as cur:
            return {row[0]: row[1] for row in await cur.fetchall()}
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the agents: {exc}") from exc


async def build_report(db: aiosqlite.Connection, settings: Settings, start: datetime,
                       end: datetime, *, now: datetime,
                       short_abandon_s: float = 0.0) -> Report:
    """Every configured queue (and any other in the log) and every agent active in the period."""
    until = max(start, min(end, now))
    targets = {q.name: q.target_s for q in settings.acd.queues}
    events, seats = await read_period(db, start.timestamp(), until.timestamp())
    t0, t1 = start.timestamp(), until.timestamp()
    return Report(
        start=start,
        end=end,
        until=until,
        queues=tuple(queue_figures(events, seats, t0, t1, targets,
                                   short_abandon_s=short_abandon_s)),
        agents=tuple(agent_figures(events, seats, t0, t1)),
        target_shares={q.name: q.target_share for q in settings.acd.queues},
        names=await _agent_names(db),
    )


async def build_intervals(db: aiosqlite.Connection, settings: Settings, start: datetime,
                          end: datetime, *, now: datetime, step: timedelta | None = None,
                          short_abandon_s: float = 0.0) -> list[Interval]:
    """Per-interval queue figures of ``[start, end)`` cut at ``now``, in the site's zone.

    ``step`` None: 30 minutes for a day, one day for a longer period. See
    :func:`callcenter.acd.intervals.intervals` for the grid and what each figure means.
    """
    tz = settings.site.tz
    start, end = start.astimezone(tz), end.astimezone(tz)
    until = max(start, min(end, now))
    targets = {q.name: q.target_s for q in settings.acd.queues}
    events = await read_queue_events(db, start.timestamp(), until.timestamp())
    return intervals(events, start, end, targets, step=step, until=until,
                     short_abandon_s=short_abandon_s)


def select(report: Report, *, queue: str | None = None, agent: str | None = None) -> Report:
    """Keep one queue and/or one agent. Naming only one hides the other section."""
    if queue is None and agent is None:
        return report
    queues: tuple[QueueFigures, ...] | None = None
    agents: tuple[AgentFigures, ...] | None = None
    if queue is not None:
        queues = tuple(r for r in report.queues or () if r.queue == queue)
        if not queues:
            known = ", ".join(r.queue for r in report.queues or ()) or "none"
            raise ConfigError(f"--queue {queue!r}: no such queue (known: {known})")
    if agent is not None:
        agents = tuple(r for r in report.agents or () if r.agent_id == agent)
        if not agents and agent not in report.names:
            raise ConfigError(f"--agent {agent!r}: no such agent")
    return dataclasses.replace(report, queues=queues, agents=agents)


# -- rendering -------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _sec(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _hms(x: float) -> str:
    whole = round(x)
    return f"{whole // 3600}:{whole % 3600 // 60:02}:{whole % 60:02}"


def _goal(report: Report, row: QueueFigures) -> str:
    share = report.target_shares.get(row.queue)
    if row.target_s is None or share is None:
        return "-"
    return f"{100 * share:g}% in {row.target_s:g}s"


def _align(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> list[str]:
    """Columns padded to their widest cell; the first ``left`` columns left-aligned."""
    widths = [max(len(cell) for cell in col) for col in zip(headers, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(w) if n < left else cell.rjust(w)
                  for n, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in (headers, *rows)
    ]


_QUEUE_HEADERS = ("queue", "goal", "offered", "answered", "abandoned", "aband.", "SL",
                  "ASA s", "AHT s", "longest s", "callbacks", "overflows", "transfers")
_AGENT_HEADERS = ("agent", "name", "handled", "AHT s", "talk", "wrap-up", "ready",
                  "not ready", "logged in", "occupancy", "no answer")


def _queue_cells(report: Report, r: QueueFigures) -> list[str]:
    return [r.queue, _goal(report, r), str(r.offered), str(r.answered), str(r.abandoned),
            _pct(r.abandon_rate), _pct(r.service_level), _sec(r.asa_s), _sec(r.aht_s),
            _sec(r.longest_wait_s), str(r.callbacks), str(r.overflows), str(r.transfers)]


def _agent_cells(report: Report, r: AgentFigures) -> list[str]:
    return [r.agent_id, report.names.get(r.agent_id, ""), str(r.handled), _sec(r.aht_s),
            _hms(r.talk_s), _hms(r.wrap_up_s), _hms(r.ready_s), _hms(r.not_ready_s),
            _hms(r.logged_in_s), _pct(r.occupancy), str(r.no_answers)]


def render_table(report: Report) -> str:
    """The report as aligned text for a terminal."""
    stamp = "%Y-%m-%d %H:%M:%S"
    lines = [f"Period: {report.start:{stamp}} to {report.end:{stamp}} "
             f"(UTC{report.start:%z})"]
    if report.until < report.end:
        lines.append(f"Figures up to {report.until:{stamp}} (now).")
    if report.queues is not None:
        lines += ["", "Queues"]
        cells = [_queue_cells(report, r) for r in report.queues]
        lines += _align(_QUEUE_HEADERS, cells, left=2)
    if report.agents is not None:
        lines += ["", "Agents"]
        if report.agents:
            cells = [_agent_cells(report, r) for r in report.agents]
            lines += _align(_AGENT_HEADERS, cells, left=2)
        else:
            lines.append("(no agent activity in this period)")
    return "\n".join(lines) + "\n"


#: One CSV for both sections: ``section`` says which, cells that do not apply are empty.
CSV_COLUMNS = (
    "section", "name", "agent_name", "period_from", "period_to", "target_s", "target_share",
    "offered", "answered", "answered_in_target", "abandoned", "short_abandoned",
    "abandon_rate", "service_level", "asa_s", "aht_s", "longest_wait_s", "callbacks",
    "overflows", "transfers", "handled", "talk_s", "wrap_up_s", "ringing_s", "ready_s",
    "not_ready_s", "logged_in_s", "occupancy", "no_answers",
)


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 6)
    return value


def render_csv(report: Report) -> str:
    """The report as CSV (stdlib ``csv``): seconds and shares as plain numbers, None as empty."""
    period = {"period_from": report.start.isoformat(), "period_to": report.until.isoformat()}
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for q in report.queues or ():
        row: dict[str, object] = {"section": "queue", "name": q.queue, **period,
                                  "target_share": report.target_shares.get(q.queue)}
        row.update((k, v) for k, v in _fields(q).items() if k != "queue")
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    for a in report.agents or ():
        row = {"section": "agent", "name": a.agent_id, "agent_name": report.names.get(a.agent_id),
               **period}
        row.update((k, v) for k, v in _fields(a).items() if k != "agent_id")
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return out.getvalue()


def _fields(obj: QueueFigures | AgentFigures) -> dict[str, object]:
    return dataclasses.asdict(obj)


# -- the chart -------------------------------------------------------------------------------------

#: a chart of more intervals than this is refused (it could not be read): a longer --interval
MAX_INTERVALS = 1000


def interval_step(minutes: int | None, start: datetime, end: datetime) -> timedelta:
    """``--interval`` as a step (None: the default for the period); ``ConfigError`` if bad or
    if the chart would have more than :data:`MAX_INTERVALS` intervals."""
    if minutes is not None and minutes < 1:
        raise ConfigError(f"--interval {minutes}: must be a whole number of minutes >= 1")
    step = default_step(start, end) if minutes is None else timedelta(minutes=minutes)
    count = (end - start) / step
    if count > MAX_INTERVALS:
        option = "--interval" if minutes is None else f"--interval {minutes}"
        raise ConfigError(
            f"{option}: {math.ceil(count)} intervals of {step // timedelta(minutes=1)} minutes "
            f"in this period, more than a chart can show ({MAX_INTERVALS}); give a longer "
            "--interval or a shorter period"
        )
    return step


def _scratch(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def check_chart_path(text: str) -> Path:
    """``--chart``'s file, refused (``ConfigError``) unless it is a ``.png`` name in a directory
    where a file can be written now. Blocking: file-system calls."""
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--chart {text!r}: the chart is a PNG image: give a file name "
                          "ending in .png")
    if path.is_dir():
        raise ConfigError(f"--chart {text!r}: is a directory; give a file name ending in .png")
    if not path.parent.is_dir():
        raise ConfigError(f"--chart {text!r}: no directory {str(path.parent)!r}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"--chart {text!r}: the file exists and is not writable")
    probe = _scratch(path)
    try:
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--chart {text!r}: cannot write in {str(path.parent)!r}: "
                          f"{exc.strerror or exc}") from exc
    return path


def write_chart(path: Path, png: bytes) -> None:
    """Write ``png`` to ``path`` whole or not at all (a scratch file, then a rename).
    Blocking."""
    scratch = _scratch(path)
    try:
        with open(scratch, "xb") as f:
            f.write(png)
        os.replace(scratch, path)
    except OSError as exc:
        scratch.unlink(missing_ok=True)
        raise ConfigError(f"--chart {str(path)!r}: cannot write the chart: "
                          f"{exc.strerror or exc}") from exc


def _chart_title(settings: Settings, queue: str | None, start: datetime, end: datetime,
                 until: datetime, step: timedelta) -> str:
    stamp = "%Y-%m-%d %H:%M"
    minutes = step // timedelta(minutes=1)
    size = f"{minutes // 1440}-day" if minutes % 1440 == 0 else f"{minutes}-min"
    title = (f"{'Queue ' + queue if queue else 'All queues'}: {start:{stamp}} to {end:{stamp}}"
             f" ({settings.site.timezone}), {size} intervals")
    return title + (f", up to {until:{stamp}}" if until < end else "")


def _target_share(settings: Settings, queue: str | None) -> float | None:
    """The goal line: the queue's, or for all queues the one they share (None if they differ)."""
    shares = {q.target_share for q in settings.acd.queues if queue in (None, q.name)}
    return shares.pop() if len(shares) == 1 else None


# -- command line ----------------------------------------------------------------------------------


def add_report_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``report`` to ``callcenter``'s subcommands; the caller sets its ``func``."""
    p = subparsers.add_parser(
        "report", help="queue and agent figures for a period",
        description="Queue and agent figures (service level, ASA, AHT, occupancy...) for a "
                    "period, from the engine's database, and optionally a chart of them per "
                    "interval. Times are the site's (setting site.timezone, default "
                    "Asia/Shanghai) unless an offset is given.",
    )
    p.add_argument("what", nargs="?", choices=["calls", "tasks"], default="calls",
                   help="calls (queues and agents, the default) or tasks (strategies and "
                        "agents' tasks: callcenter/tasks/report_db.py; cli.py dispatches)")
    p.add_argument("--from", dest="from_", metavar="ISO",
                   help=f"start: a date (its midnight) or a date-time, {ISO_HELP} "
                        "(default: today)")
    p.add_argument("--to", metavar="ISO",
                   help="end, exclusive; a date means the end of that day "
                        "(default: the end of the --from day)")
    p.add_argument("--queue", metavar="NAME", help="only this queue (hides agents unless "
                                                   "--agent is given too)")
    p.add_argument("--agent", metavar="ID", help="only this agent (hides queues unless "
                                                 "--queue is given too)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="json: tasks only")
    p.add_argument("--short-abandon", type=float, default=0.0, metavar="S",
                   help="leave abandons shorter than S seconds out of the service level "
                        "(default 0: they count)")
    p.add_argument("--chart", metavar="FILE.png",
                   help="also draw calls offered/answered/abandoned, service level and ASA per "
                        "interval into this PNG (the --queue named, else all queues)")
    p.add_argument("--interval", type=int, metavar="MINUTES",
                   help="with --chart: interval length (default: 30 for a period of one day, "
                        "1440 (a day) for longer ones)")
    return p


async def run_report(args: argparse.Namespace, settings: Settings) -> int:
    """``callcenter report``: print the figures, draw the chart if asked; ``ConfigError`` or
    ``StoreError`` on bad input (before anything is printed or written)."""
    if args.format == "json" or getattr(args, "day", None):
        raise ConfigError("--format json and --day go with 'report tasks'")
    tz = settings.site.tz
    now = datetime.now(tz)
    start, end = parse_period(args.from_, args.to, now, tz)
    short = float(args.short_abandon)
    if not math.isfinite(short) or short < 0:
        raise ConfigError(f"--short-abandon {args.short_abandon}: must be seconds >= 0")
    if args.interval is not None and args.chart is None:
        raise ConfigError("--interval sets the chart's intervals: give --chart FILE.png too")
    step = interval_step(args.interval, start, end) if args.chart else None
    chart = await asyncio.to_thread(check_chart_path, args.chart) if args.chart else None
    path = settings.database
    if not await asyncio.to_thread(path.exists):  # open_db would create an empty one
        raise StoreError(f"no database at {path}: has the engine run with these settings?")
    db = await open_db(path)
    try:
        report = await build_report(db, settings, start, end, now=now, short_abandon_s=short)
        rows = None if chart is None else await build_intervals(
            db, settings, start, end, now=now, step=step, short_abandon_s=short)
    finally:
        await db.close()
    report = select(report, queue=args.queue, agent=args.agent)
    text = render_csv(report) if args.format == "csv" else render_table(report)
    if chart is not None and rows is not None and step is not None:
        title = _chart_title(settings, args.queue, start, end, report.until, step)
        png = await asyncio.to_thread(chart_png, rows, title=title, queue=args.queue,
                                      target_share=_target_share(settings, args.queue))
        await asyncio.to_thread(write_chart, chart, png)
    print(text, end="")
    if chart is not None:
        print(f"Chart written to {chart}", file=sys.stderr)
    return 0
