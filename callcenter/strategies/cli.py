"""``callcenter strategies check|try|run``: the service strategies from the command line.

- ``check [files]``  every problem as ``file:line:col: message`` (default: ``strategies.dir``)
- ``try <id> [--day D] [--population N [--seed S] | --sandbox]``  who would match and why, and
  what the day's plan would do with them; nothing is written
- ``run [--only id]``  run today's strategies against the configured database and back office
  (a slot already run is not run again; ``--day`` takes today only: a run sends its messages
  now, so it cannot be another day's)
- ``reload``  check them, then tell the running engine to read them again (``SIGUSR1``; it
  refuses a set with a problem and keeps the running one)
- ``schema [-o FILE]``  the JSON Schema of a strategy file, for editors (``schema.py``)

Days and hours are the site's (``site.timezone``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from callcenter.errors import ConfigError

__all__ = ["add_strategy_parsers"]

#: how many matches ``try`` lists before it only counts them
SHOWN = 20


def add_strategy_parsers(sub: Any) -> None:
    p = sub.add_parser("strategies", help="check, try and run the service strategies")
    ssub = p.add_subparsers(dest="action", required=True)
    s = ssub.add_parser("check", help="report every problem as file:line:col")
    s.add_argument("files", nargs="*", help="strategy files (default: every one in the"
                   " configured strategies.dir)")
    s = ssub.add_parser("try", help="who would match and why, without acting")
    s.add_argument("id", help="the strategy (its file's name)")
    s.add_argument("--day", help="the run day, YYYY-MM-DD (default: today)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--population", type=int, metavar="N",
                       help="a synthetic population of N customers (broker/population.py)")
    where.add_argument("--sandbox", action="store_true",
                       help="the sandbox back office's customers (the default)")
    s.add_argument("--seed", type=int, default=1, help="the synthetic population's seed")
    s = ssub.add_parser("run", help="run today's strategies (tasks, messages)")
    s.add_argument("--day", help="today, YYYY-MM-DD (another day is refused: use try)")
    s.add_argument("--only", help="only this strategy")
    ssub.add_parser("reload", help="check them, then tell the running engine to reload")
    s = ssub.add_parser("schema", help="the JSON Schema of a strategy file, for editors")
    s.add_argument("-o", "--output", metavar="FILE", help="write it here (default: print it)")
    p.set_defaults(func=cmd_strategies)


def cmd_strategies(args: argparse.Namespace) -> int:
    if args.action == "schema":
        from callcenter.ivr.yaml_schema import write_schema
        from callcenter.strategies.schema import strategy_schema_text

        return write_schema(strategy_schema_text(), args.output)
    from callcenter.config import load_settings
    from callcenter.strategies.load import Site, StrategySetError, load_files, load_strategies

    settings = load_settings()
    try:
        if args.action == "check" and args.files:
            strategies = load_files([Path(f) for f in args.files], Site.of(settings))
        else:
            strategies = load_strategies(settings.strategies.dir, Site.of(settings))
    except StrategySetError as exc:
        for line in exc.diagnostics:
            print(line, file=sys.stderr)
        print(f"{len(exc.diagnostics)} problem(s)", file=sys.stderr)
        return 1
    if args.action == "check":
        where = ", ".join(args.files) if args.files else str(settings.strategies.dir)
        print(f"{where}: {len(strategies)} strategies: OK")
        return 0
    if args.action == "reload":
        from callcenter.ops.engine_process import signal_reload

        # whether the engine runs them is its settings' say (./dev up turns them on in its
        # own environment), not this shell's: it logs what it did
        pid = signal_reload(settings.state_dir, "strategies")
        print(f"{settings.strategies.dir}: {len(strategies)} strategies checked; engine {pid}"
              " told to reload (its log says what it took)")
        return 0
    tz = settings.site.tz
    day = _day(args.day, tz)
    if args.action == "run" and day != dt.datetime.now(tz).date():
        raise ConfigError(f"--day {day}: a run sends its messages now, so it runs today only"
                          f" ({dt.datetime.now(tz).date()}); see another day with"
                          f" 'callcenter strategies try <id> --day {day}'")
    if args.action == "try":
        chosen = [s for s in strategies if s.id == args.id]
        if not chosen:
            raise ConfigError(f"no strategy '{args.id}' (known: "
                              f"{', '.join(s.id for s in strategies)})")
        return asyncio.run(_try(args, settings, chosen[0], strategies, day, tz))
    known = list(strategies)
    if args.only:
        strategies = [s for s in strategies if s.id == args.only]
        if not strategies:
            raise ConfigError(f"no strategy '{args.only}'")
    return asyncio.run(_run(settings, strategies, known, day, tz))


def _day(text: str | None, tz: dt.tzinfo) -> dt.date:
    if not text:
        return dt.datetime.now(tz).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--day {text!r}: not a date like 2026-11-23") from exc


def _run_at(strategy_at: str, day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    hour, minute = (int(x) for x in strategy_at.split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute), tz)


async def _backoffice(settings: Any, at: dt.datetime) -> Any:
    """The configured back office (a simulated one at the instant ``at``), if it lists its
    customers' facts."""
    from callcenter.broker.facts import CustomerBase
    from callcenter.broker.plugin import BackOfficeContext, open_backoffice
    from callcenter.engine import sandbox_rules

    office = await open_backoffice(BackOfficeContext(settings, sandbox_rules(settings),
                                                     lambda: at))
    if not isinstance(office, CustomerBase):
        await office.close()
        raise ConfigError(f"the back office ({settings.backoffice.kind}) lists no customer"
                          f" facts (broker/facts.py: CustomerBase)")
    return office


async def _try(args: argparse.Namespace, settings: Any, strategy: Any, known: list[Any],
               day: dt.date, tz: dt.tzinfo) -> int:
    from callcenter.broker.exchange_calendar import load_calendar
    from callcenter.broker.facts import ListCustomerBase
    from callcenter.broker.population import population
    from callcenter.strategies.conditions import History
    from callcenter.strategies.evaluate import runs_on
    from callcenter.strategies.plan import make_plan
    from callcenter.strategies.runner import find_matches

    calendar = load_calendar(settings.backoffice.calendar, settings.backoffice.holidays)
    slots = strategy.schedule.slots()
    now = _run_at(slots[0], day, tz)
    when = slots[0] if len(slots) == 1 else f"{slots[0]}..{slots[-1]}, {len(slots)} runs"
    print(f"{strategy.id}: {strategy.title.zh} / {strategy.title.en}")
    print(f"run day {day} at {when} ({strategy.schedule.days.value}): "
          f"{'runs' if runs_on(strategy.schedule, day, calendar) else 'does NOT run'} that day")
    history = History(unshared=frozenset(s.id for s in known if not s.caps.shared))
    agents: frozenset[str] | None = None
    if args.population:
        customers: Any = ListCustomerBase(population(args.population, args.seed, day))
        source = f"a synthetic population of {args.population} (seed {args.seed})"
        found = await find_matches(customers, [strategy], history, now)
    else:
        from callcenter.store.db import open_db
        from callcenter.strategies.runner import lookback_days, read_history

        source = f"the back office ({settings.backoffice.kind})"
        office = await _backoffice(settings, now)
        try:
            if settings.database.exists():   # our contacts and opt-outs, when there are any
                db = await open_db(settings.database)
                try:
                    history = await read_history(
                        db, tz, day,
                        lookback_days([strategy], settings.strategies.contact_every_days),
                        unshared=history.unshared)
                    async with db.execute("SELECT agent_id FROM agents") as cur:
                        agents = frozenset(str(r[0]) for r in await cur.fetchall())
                finally:
                    await db.close()
            found = await find_matches(office, [strategy], history, now)
        finally:
            await office.close()
    print(f"customers: {source}")
    print(f"{len(found)} matched:")
    for m in found[:SHOWN]:
        print(f"  {m.facts.account} {m.facts.name}: {'; '.join(m.reasons)}")
    if len(found) > SHOWN:
        print(f"  ... and {len(found) - SHOWN} more")
    plan = make_plan(found, history, now, settings.strategies.contact_every_days,
                     {s.id: s.caps.shared for s in known}, agents)
    made = len(plan.tasks) or len(plan.messages)
    what = "tasks" if strategy.action.task is not None else "messages"
    print(f"the plan: {made} {what}; {len(plan.skipped)} skipped"
          + "".join(f", {n} {reason}" for reason, n in
                    plan.skipped_by_reason(strategy.id).items()))
    for skip in plan.skipped[:SHOWN]:
        print(f"  skipped {skip.account}: {skip.detail}")
    print("nothing was written (try only shows)")
    return 0


async def _run(settings: Any, strategies: list[Any], known: list[Any], day: dt.date,
               tz: dt.tzinfo) -> int:
    from callcenter.broker.exchange_calendar import load_calendar
    from callcenter.store.db import open_db
    from callcenter.strategies.runner import run_strategies

    calendar = load_calendar(settings.backoffice.calendar, settings.backoffice.holidays)
    run_at = dt.datetime.now(tz)
    assert run_at.date() == day
    office = await _backoffice(settings, run_at)
    try:
        db = await open_db(settings.database)
        try:
            reports = await run_strategies(
                db, office, strategies, run_at, calendar,
                contact_every_days=settings.strategies.contact_every_days, clock=time.time,
                known=known)
        finally:
            await db.close()
    finally:
        await office.close()
    for r in reports:
        if r.not_run:
            print(f"{r.strategy}: not run ({r.not_run})")
            continue
        skipped = ", ".join(f"{n} {why}" for why, n in r.skipped.items()) or "none"
        print(f"{r.strategy} {r.slot}: {r.matched} matched, {r.tasks} tasks, {r.messages} messages"
              f" ({r.existing} made before), skipped: {skipped}")
    return 0
