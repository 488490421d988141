"""The task report's edge: a period's rows read from the database (``read_report``) for
``report.py``, and ``callcenter report tasks [--day D | --from --to] [--format ...]``.

Times in the database are Unix seconds; the command line speaks the site's days
(``site.timezone``), as ``callcenter report calls`` does (``callcenter/periods.py``). The CLI
(``cli.py``) dispatches ``report tasks`` here and ``report calls`` to ``acd/report.py``; neither
module imports the other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime

import aiosqlite

from callcenter.config import Settings
from callcenter.errors import ConfigError, StoreError
from callcenter.periods import parse_period
from callcenter.store.db import open_db
from callcenter.tasks.report import (
    Attempt,
    Outcome,
    TaskReport,
    build,
    render_csv,
    render_json,
    render_table,
)

__all__ = ["read_report", "run_task_report"]


async def _all(db: aiosqlite.Connection, sql: str, params: tuple[object, ...]
               ) -> list[tuple[object, ...]]:
    async with db.execute(sql, params) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def read_report(db: aiosqlite.Connection, start: float, end: float) -> TaskReport:
    """The figures of ``[start, end)``."""
    period = (start, end)
    matched = await _all(db, "SELECT strategy, matched FROM strategy_runs"
                             " WHERE started_at >= ? AND started_at < ?", period)
    created = await _all(db, "SELECT strategy FROM tasks WHERE created_at >= ? AND created_at < ?",
                         period)
    contacts = await _all(db, "SELECT strategy, account FROM contact_log WHERE at >= ? AND at < ?",
                          period)
    attempts = await _all(
        db, "SELECT a.task_id, t.strategy, a.agent_id, a.result, a.talk_s FROM task_attempts a"
            " JOIN tasks t ON t.id = a.task_id WHERE a.placed_at >= ? AND a.placed_at < ?",
        period)
    outcomes = await _all(
        db, "SELECT l.task_id, t.strategy, l.by, t.outcome, t.fields, EXISTS (SELECT 1 FROM"
            " task_attempts a WHERE a.task_id = l.task_id AND a.result = 'answered'"
            " AND a.placed_at <= l.at) FROM task_log l"
            " JOIN tasks t ON t.id = l.task_id WHERE l.input = 'outcome'"
            " AND l.at >= ? AND l.at < ?", period)
    return build(
        start, end,
        matched=[(str(s), int(str(n))) for s, n in matched],
        created=[str(s) for (s,) in created],
        contacts=[(str(s), str(a)) for s, a in contacts],
        attempts=[Attempt(int(str(t)), str(s), str(a), str(r),
                          None if k is None else float(str(k)))
                  for t, s, a, r, k in attempts],
        outcomes=[Outcome(int(str(t)), str(s), str(b), str(o), json.loads(str(f or "[]")),
                          bool(r))
                  for t, s, b, o, f, r in outcomes])


def add_task_report_options(p: argparse.ArgumentParser) -> None:
    """``--day`` (the ``report`` parser, ``acd/report.py``, has ``--from``, ``--to`` and
    ``--format``); ``cli.py`` adds it."""
    p.add_argument("--day", metavar="YYYY-MM-DD",
                   help="tasks: that day (the same as --from D --to D)")


async def run_task_report(args: argparse.Namespace, settings: Settings) -> int:
    """``callcenter report tasks``: print the figures; ``ConfigError``/``StoreError`` first."""
    tz = settings.site.tz
    calls_only = [name for name, value in (("--queue", args.queue), ("--agent", args.agent),
                                           ("--chart", args.chart),
                                           ("--interval", args.interval)) if value]
    if calls_only:
        raise ConfigError(f"{', '.join(calls_only)}: for 'report calls', not 'report tasks'")
    if args.day and (args.from_ or args.to):
        raise ConfigError("--day or --from/--to, not both")
    from_, to = (args.day, args.day) if args.day else (args.from_, args.to)
    start, end = parse_period(from_, to, datetime.now(tz), tz)
    path = settings.database
    if not await asyncio.to_thread(path.exists):
        raise StoreError(f"no database at {path}: has the engine run with these settings?")
    db = await open_db(path)
    try:
        report = await read_report(db, start.timestamp(), end.timestamp())
    finally:
        await db.close()
    title = f"Tasks {start.isoformat(sep=' ')} .. {end.isoformat(sep=' ')}"
    match args.format:
        case "csv":
            print(render_csv(report), end="")
        case "json":
            print(render_json(report), end="")
        case _:
            print(render_table(report, title), end="")
    return 0
