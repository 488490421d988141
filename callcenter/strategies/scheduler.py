"""The engine's strategy scheduler (edge): every ``interval_s`` it runs the strategies that are
due (their day by the exchange calendar, a slot of their schedule reached, no finished run of
that slot).

Times are the site's (``site.timezone``): the schedules' hours and the run days, on ``now``'s
clock (the back office's in the sandbox). Tasks and messages keep the engine's task store's
clock (``runner``: "Two clocks").
Strategies are read at start, and again when an API release of them is published or an operator
asks (``callcenter strategies reload``: ``SIGUSR1``): a set with a problem is refused and the
running one kept; a file with a problem at start stops none of the engine, only this scheduler
(logged with ``file:line:col``), until a reload finds the files good. ``StrategyHost`` owns the
engine's scheduler and makes starts, reloads and the API's writes take turns. Runs are one at a
time (a run under way when a reload comes ends with the set it started with); a failed run is logged
with its traceback and tried again at the next tick (its writes are idempotent); the loop never
dies of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiosqlite

from callcenter.broker.exchange_calendar import Calendar
from callcenter.broker.facts import CustomerBase
from callcenter.errors import StrategyError
from callcenter.periodic import Periodic
from callcenter.strategies.evaluate import due_slot
from callcenter.strategies.load import Site, StrategySetError, load_strategies
from callcenter.strategies.model import Strategy
from callcenter.strategies.runner import RunReport, finished_runs, run_strategies
from callcenter.tasks.store import TaskStore

if TYPE_CHECKING:
    from callcenter.config import Settings

__all__ = ["StrategyHost", "StrategyScheduler", "open_scheduler", "start_host",
           "start_scheduler"]

log = logging.getLogger(__name__)


class StrategyScheduler:
    def __init__(self, db: aiosqlite.Connection, customers: CustomerBase,
                 strategies: Sequence[Strategy], calendar: Calendar,
                 now: Callable[[], dt.datetime], *, contact_every_days: int,
                 interval_s: float = 60.0, clock: Callable[[], float] = time.time,
                 on_outbox: Callable[[], None] | None = None,
                 tasks: TaskStore | None = None,
                 source: tuple[Path, Site] | None = None) -> None:
        self.db, self.customers, self.calendar = db, customers, calendar
        self.known = list(strategies)
        self.strategies = [s for s in strategies if s.enabled]
        self.now, self.clock, self.on_outbox, self.tasks = now, clock, on_outbox, tasks
        self.contact_every_days, self.interval_s = contact_every_days, interval_s
        #: where ``reload`` reads the strategies (their directory, the site they are checked
        #: against); None: they were given, not read
        self.source = source
        self._rounds = Periodic("strategies", self.tick, lambda: self.interval_s, log,
                                "strategies: a run failed (tried again in %.0f s)")

    async def reload(self) -> list[str]:
        """Read the strategies again (a release was published): the problems, if any, and the
        running set kept; else the new set runs from the next tick (a run under way ends with
        the set it started with)."""
        if self.source is None:
            return ["these strategies were not read from a directory"]
        directory, site = self.source
        try:
            strategies = await asyncio.to_thread(load_strategies, directory, site)
        except StrategySetError as exc:
            return list(exc.diagnostics)
        except StrategyError as exc:
            return [str(exc)]
        # new lists, not changed ones: a run under way ends with the set it started with
        self.known = list(strategies)
        self.strategies = [s for s in strategies if s.enabled]
        log.info("strategies: reloaded, %d enabled of %d", len(self.strategies), len(strategies))
        return []

    async def tick(self) -> list[RunReport]:
        """Run what is due now; what each run did."""
        now = self.now()
        done = await finished_runs(self.db, now.date())
        slots = {}
        for s in self.strategies:
            slot = due_slot(s.schedule, now, self.calendar)
            if slot is not None and (s.id, slot) not in done:
                slots[s.id] = slot
        if not slots:
            return []
        due = [s for s in self.strategies if s.id in slots]
        return await run_strategies(self.db, self.customers, due, now, self.calendar,
                                    contact_every_days=self.contact_every_days,
                                    clock=self.clock, on_outbox=self.on_outbox,
                                    known=self.known, slots=slots, tasks=self.tasks)

    def start(self) -> None:
        self._rounds.start()

    async def close(self) -> None:
        await self._rounds.close()


async def open_scheduler(settings: Settings, db: aiosqlite.Connection, backoffice: CustomerBase,
                         calendar: Calendar, on_outbox: Callable[[], None] | None, *,
                         tasks: TaskStore | None = None
                         ) -> tuple[StrategyScheduler | None, list[str]]:
    """The engine's scheduler, started, and no problems; or None and the files' problems
    (``file:line:col: message``). Its zone is the site's. ``tasks``: the engine's task store,
    whose listeners then hear of the strategies' new tasks."""
    zone = settings.site.tz
    try:
        strategies = await asyncio.to_thread(load_strategies, settings.strategies.dir,
                                                Site.of(settings))
    except StrategySetError as exc:
        return None, list(exc.diagnostics)
    clock = getattr(backoffice, "now", None)

    def now() -> dt.datetime:
        when = clock() if callable(clock) else dt.datetime.now(zone)
        return when.astimezone(zone) if isinstance(when, dt.datetime) else dt.datetime.now(zone)

    scheduler = StrategyScheduler(db, backoffice, strategies, calendar, now,
                                  contact_every_days=settings.strategies.contact_every_days,
                                  interval_s=settings.strategies.interval_s,
                                  clock=lambda: now().timestamp(), on_outbox=on_outbox,
                                  tasks=tasks, source=(settings.strategies.dir, Site.of(settings)))
    scheduler.start()
    log.info("strategies: %d enabled of %d in %s", len(scheduler.strategies), len(strategies),
             settings.strategies.dir)
    return scheduler, []


def log_problems(problems: Sequence[str], running: bool) -> None:
    """The problems of a set the engine did not take, each line, then what runs instead."""
    for line in problems:
        log.error("%s", line)
    log.error("strategies: %d problem(s); %s (callcenter strategies check)", len(problems),
              "the running ones are kept" if running else "no strategy runs")


NO_FACTS: Final = ("strategies: the back office lists no customer facts (broker/facts.py);"
                   " no strategy runs")


async def start_host(settings: Settings, db: aiosqlite.Connection, backoffice: Any,
                     calendar: Calendar, on_outbox: Callable[[], None] | None, *,
                     tasks: TaskStore | None = None) -> StrategyHost | None:
    """The engine's strategies: a host, its scheduler started if the files are good (their
    problems logged if not); None (logged) when the back office lists no customer facts."""
    if not isinstance(backoffice, CustomerBase):
        log.warning(NO_FACTS)
        return None
    host = StrategyHost(lambda: open_scheduler(settings, db, backoffice, calendar, on_outbox,
                                               tasks=tasks))
    problems = await host.reload()
    if problems:
        log_problems(problems, running=False)
    return host


async def start_scheduler(settings: Settings, db: aiosqlite.Connection, backoffice: Any,
                          calendar: Calendar, on_outbox: Callable[[], None] | None, *,
                          tasks: TaskStore | None = None) -> StrategyScheduler | None:
    """``start_host``'s scheduler alone, for a caller that never reloads (None, logged, when
    it did not start)."""
    host = await start_host(settings, db, backoffice, calendar, on_outbox, tasks=tasks)
    return host.scheduler if host is not None else None


Opener = Callable[[], Awaitable[tuple[StrategyScheduler | None, list[str]]]]


class StrategyHost:
    """The engine's strategies: its scheduler, or none (a file with a problem kept it off).
    Starting, reloading (``callcenter strategies reload``, an API release) and the API writing
    the files take turns: no two schedulers ever run, and no reload reads half a release."""

    def __init__(self, opener: Opener) -> None:
        self._open = opener
        self.scheduler: StrategyScheduler | None = None
        self._turn = asyncio.Lock()
        self._closed = False

    @property
    def running(self) -> bool:
        return self.scheduler is not None

    async def reload(self) -> list[str]:
        """Read the strategies: the running scheduler takes them from its next run (a set with a
        problem is refused and the running one kept), or a scheduler starts with them. Their
        problems, or none; nothing is logged here."""
        async with self._turn:
            if self._closed:
                return ["the engine is stopping"]
            if self.scheduler is not None:
                return await self.scheduler.reload()
            self.scheduler, problems = await self._open()
            return problems

    @contextlib.asynccontextmanager
    async def editing(self) -> AsyncIterator[None]:
        """While an API release writes the files: no reload or start reads half of them."""
        async with self._turn:
            yield

    async def close(self) -> None:
        """Stop the scheduler (after a start or reload under way); later reloads do nothing."""
        async with self._turn:
            self._closed = True
            if self.scheduler is not None:
                await self.scheduler.close()
                self.scheduler = None
