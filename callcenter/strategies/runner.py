"""Running strategies (the edge): read our records and the back office's facts, plan, write
the plan exactly once.

- one runner at a time: the engine's scheduler and ``callcenter strategies run`` each take the
  lease (``strategy_lease``, an atomic insert-or-take-over-when-lapsed, rowcount checked)
  before they read the history, and hold it until their writes are done, so a second runner
  plans on the first one's writes, never beside them;
- tasks through ``TaskStore.create``: one per strategy, customer and match key (the run day, or
  ``complaint:<id>``: its unique index), so a run repeated after a crash adds nothing;
- messages as ``outbox`` rows with the id ``plan.message_id`` (unique), each with its
  ``contact_log`` row in the same transaction, only when the outbox row is new;
- a ``strategy_runs`` row per strategy, day and slot ("HH:MM"): started, the instant planned
  for (``run_at``), finished, matched, tasks, messages (an earlier crashed run's included),
  skipped by reason. A slot whose run finished is not run again.

A run of a slot that crashed is run again with the crashed run's ``run_at``, and the history
leaves out only what that run wrote itself (its tasks, its messages' contact rows), so it plans
what the crashed run planned and writes nothing twice. Calls the dialer made meanwhile, and every
other run's rows, stay in the history.

The history covers only the days the strategies look back (``lookback_days``).

Two clocks: a run plans on ``clock`` (the back office's in the engine: the sandbox's day, which
may be set apart from the machine's), while tasks and outbox rows are kept on the task store's
clock (the engine's, which agents, the dialer, deadline alerts and the relay go by). What the
plan dates (a task's due time and deadline, a message's earliest sending) keeps its distance
from the run on the store's clock: the call-back of a complaint handled two hours before a
sandbox morning's run keeps the 22 hours left to its deadline there, not overdue at once. The
run rows' ``run_at`` and ``finished_at`` are on the run's clock, ``started_at`` on the store's
(a rerun compares it with its tasks' ``created_at``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import aiosqlite

from callcenter.broker.exchange_calendar import Calendar
from callcenter.broker.facts import CustomerBase
from callcenter.errors import StrategyError
from callcenter.seats.masking import mask
from callcenter.store.tx import transaction
from callcenter.strategies.conditions import History
from callcenter.strategies.evaluate import Match, due_slot, matches, runs_on
from callcenter.strategies.model import Strategy
from callcenter.strategies.plan import Plan, make_plan
from callcenter.tasks.store import TaskStore

__all__ = ["LEASE_S", "Crashed", "RunReport", "finished_runs", "lookback_days", "read_history",
           "run_strategies"]

log = logging.getLogger(__name__)

#: how long a runner's lease lasts without renewal (a crashed runner's lapses after this)
LEASE_S = 300.0
_LEASE = "run"


@dataclass
class RunReport:
    strategy: str
    day: dt.date
    #: "" ran; else why not ("already run", "not its day", "disabled", "another run ...")
    not_run: str = ""
    slot: str = ""
    matched: int = 0
    tasks: int = 0
    messages: int = 0
    #: written earlier by a crashed run of the same slot
    existing: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Crashed:
    """A run that started and never finished: what it may have written is its own."""

    started_at: float
    run_at: float


def lookback_days(strategies: Iterable[Strategy], contact_every_days: int) -> int:
    """The days of history the strategies need: their cooldowns, the global cap, their
    contact conditions and complaint windows."""
    days = [contact_every_days]
    for s in strategies:
        days.append(s.caps.cooldown_days)
        spec = s.population.days_since_last_contact
        if spec is not None:
            days.extend(v for v in (spec.min, spec.max) if v is not None)
        if s.population.complaint_handled is not None:
            days.append(math.ceil(s.population.complaint_handled.within_hours / 24))
    return max(days) + 1


async def read_history(db: aiosqlite.Connection, tz: dt.tzinfo, day: dt.date, lookback: int, *,
                       unshared: Iterable[str] = (),
                       rerun: Mapping[str, Crashed] | None = None) -> History:
    """Contacts since ``lookback`` days before ``day`` (``contact_log``; strategy tasks not
    cancelled, on their run day), the tasks strategies made (any state) and opt-outs. For each
    strategy in ``rerun``, what its crashed run wrote is left out: its tasks created since the
    run started and its messages' contact rows (written at its ``run_at``)."""
    again = dict(rerun or {})
    since = day - dt.timedelta(days=lookback)
    start = dt.datetime.combine(since, dt.time(), tz).timestamp()
    contacts: dict[str, list[tuple[dt.date, str]]] = {}
    async with db.execute("SELECT account, at, strategy, message_id FROM contact_log"
                          " WHERE at >= ?", (start,)) as cur:
        async for account, at, strategy, message_id in cur:
            crashed = again.get(str(strategy))
            if crashed is not None and message_id and at == crashed.run_at:
                continue
            when = dt.datetime.fromtimestamp(at, tz).date()
            contacts.setdefault(str(account), []).append((when, str(strategy)))
    made: set[tuple[str, str, str]] = set()
    async with db.execute("SELECT account, run_day, strategy, match_key, state, created_at"
                          " FROM tasks WHERE strategy != '' AND run_day >= ?",
                          (since.isoformat(),)) as cur:
        async for account, run_day, strategy, match_key, state, created_at in cur:
            crashed = again.get(str(strategy))
            if crashed is not None and created_at >= crashed.started_at:
                continue
            made.add((str(strategy), str(account), str(match_key)))
            if state != "cancelled":
                contacts.setdefault(str(account), []).append(
                    (dt.date.fromisoformat(run_day), str(strategy)))
    opt_outs: dict[str, set[str]] = {}
    async with db.execute("SELECT account, channel FROM opt_outs") as cur:
        async for account, channel in cur:
            opt_outs.setdefault(str(account), set()).add(str(channel))
    return History({a: tuple(sorted(c)) for a, c in contacts.items()},
                   {a: frozenset(c) for a, c in opt_outs.items()},
                   unshared=frozenset(unshared), made=frozenset(made), since=since)


async def finished_runs(db: aiosqlite.Connection, day: dt.date) -> set[tuple[str, str]]:
    """(strategy, slot) of the runs of ``day`` that finished."""
    async with db.execute("SELECT strategy, slot FROM strategy_runs WHERE run_day = ?"
                          " AND finished_at IS NOT NULL", (day.isoformat(),)) as cur:
        return {(str(s), str(t)) for s, t in await cur.fetchall()}


async def find_matches(customers: CustomerBase, strategies: Sequence[Strategy],
                       history: History, now: dt.datetime,
                       between_pages: Callable[[], Awaitable[None]] | None = None
                       ) -> list[Match]:
    """Every match, reading the customers page by page (``between_pages`` awaited after
    each: the run renews its lease)."""
    found: list[Match] = []
    async for page in customers.customer_facts():
        found.extend(matches(strategies, page, history, now))
        if between_pages is not None:
            await between_pages()
    return found


class _Lease:
    """The runners' lease (``strategy_lease``): taken atomically, renewed, released."""

    def __init__(self, db: aiosqlite.Connection, clock: Callable[[], float]) -> None:
        self.db, self.clock = db, clock
        self.owner = uuid.uuid4().hex

    async def take(self) -> bool:
        now = self.clock()
        async with transaction(self.db):
            cur = await self.db.execute(
                "INSERT INTO strategy_lease (name, owner, until) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                " until = excluded.until WHERE strategy_lease.until < ?",
                (_LEASE, self.owner, now + LEASE_S, now))
            return cur.rowcount == 1

    async def renew(self) -> None:
        async with transaction(self.db):
            cur = await self.db.execute(
                "UPDATE strategy_lease SET until = ? WHERE name = ? AND owner = ?",
                (self.clock() + LEASE_S, _LEASE, self.owner))
            if cur.rowcount != 1:
                raise StrategyError("the strategies' run lease lapsed and another runner took"
                                    " it: this run stops before writing")

    async def release(self) -> None:
        async with transaction(self.db):
            await self.db.execute("DELETE FROM strategy_lease WHERE name = ? AND owner = ?",
                                  (_LEASE, self.owner))


async def run_strategies(db: aiosqlite.Connection, customers: CustomerBase,
                         strategies: Sequence[Strategy], now: dt.datetime, calendar: Calendar,
                         *, contact_every_days: int, clock: Callable[[], float],
                         on_outbox: Callable[[], None] | None = None,
                         known: Sequence[Strategy] = (),
                         slots: Mapping[str, str] | None = None,
                         lease_clock: Callable[[], float] = time.time,
                         tasks: TaskStore | None = None) -> list[RunReport]:
    """Run the enabled ``strategies`` whose schedule takes ``now``'s day (``now`` aware, in the
    site's zone) in their slot (``slots``: by strategy id; default the latest slot reached at
    ``now``, else the day's first) unless that slot's run finished; return what each did.
    ``known``: every strategy loaded (whose contacts are not shared). ``lease_clock``: real
    time, for the runners' lease. ``tasks``: the engine's task store (its listeners hear of
    the new tasks); default one of the run's own."""
    day = now.date()
    tz = now.tzinfo
    assert tz is not None
    reports = {s.id: RunReport(s.id, day) for s in strategies}
    todo: dict[str, Strategy] = {}
    for s in strategies:
        if not runs_on(s.schedule, day, calendar):
            reports[s.id].not_run = "not its day"
        elif not s.enabled:
            reports[s.id].not_run = "disabled"
        else:
            reports[s.id].slot = ((slots or {}).get(s.id) or due_slot(s.schedule, now, calendar)
                                  or s.schedule.slots()[0])
            todo[s.id] = s
    if not todo:
        return list(reports.values())
    lease = _Lease(db, lease_clock)
    if not await lease.take():
        for sid in todo:
            reports[sid].not_run = "another run is under way"
        return list(reports.values())
    store = tasks or TaskStore(db, clock)
    try:
        # started on the task store's clock: a rerun leaves out the tasks created since
        groups = await _claim(db, todo, reports, day, now, store.clock)
        unshared = {s.id for s in (*known, *strategies) if not s.caps.shared}
        agents = await _agents(db)
        for run_at in sorted(groups):
            crashed, group = groups[run_at]
            at = dt.datetime.fromtimestamp(run_at, tz)
            await lease.renew()
            history = await read_history(db, tz, day,
                                         lookback_days(group, contact_every_days),
                                         unshared=unshared, rerun=crashed)
            found = await find_matches(customers, group, history, at, lease.renew)
            plan = make_plan(found, history, at, contact_every_days, agents=agents)
            for m in found:
                reports[m.strategy.id].matched += 1
            await lease.renew()
            shift = 0.0 if store.clock is clock else store.clock() - clock()
            await _write(db, store, plan, reports, run_at, shift=shift)
            if plan.messages and on_outbox is not None:
                on_outbox()
            await _finish(db, group, plan, reports, day, clock())
    finally:
        await lease.release()
    return list(reports.values())


async def _claim(db: aiosqlite.Connection, todo: Mapping[str, Strategy],
                 reports: dict[str, RunReport], day: dt.date, now: dt.datetime,
                 clock: Callable[[], float]
                 ) -> dict[float, tuple[dict[str, Crashed], list[Strategy]]]:
    """Each strategy's run row: new (planned for ``now``), a crashed one's (its ``run_at``), or
    finished (not run). The strategies to run, grouped by the instant they plan for."""
    groups: dict[float, tuple[dict[str, Crashed], list[Strategy]]] = {}
    started = clock()
    async with transaction(db):
        for sid, s in todo.items():
            key = (sid, day.isoformat(), reports[sid].slot)
            cur = await db.execute(
                "INSERT INTO strategy_runs (strategy, run_day, slot, started_at, run_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", (*key, started, now.timestamp()))
            if cur.rowcount == 1:
                groups.setdefault(now.timestamp(), ({}, []))[1].append(s)
                continue
            async with db.execute("SELECT started_at, run_at, finished_at FROM strategy_runs"
                                  " WHERE strategy = ? AND run_day = ? AND slot = ?",
                                  key) as rows:
                row = await rows.fetchone()
            assert row is not None
            if row[2] is not None:
                reports[sid].not_run = "already run"
                continue
            crashed = Crashed(float(row[0]), float(row[1]))
            group = groups.setdefault(crashed.run_at, ({}, []))
            group[0][sid] = crashed
            group[1].append(s)
    return groups


async def _agents(db: aiosqlite.Connection) -> frozenset[str]:
    async with db.execute("SELECT agent_id FROM agents") as cur:
        return frozenset(str(row[0]) for row in await cur.fetchall())


async def _finish(db: aiosqlite.Connection, group: Sequence[Strategy], plan: Plan,
                  reports: dict[str, RunReport], day: dt.date, finished: float) -> None:
    async with transaction(db):
        for s in group:
            r = reports[s.id]
            r.skipped = plan.skipped_by_reason(s.id)
            # the slot's totals: what an earlier, crashed run of it made counts too
            tasks = r.tasks + (r.existing if s.action.task is not None else 0)
            messages = r.messages + (r.existing if s.action.message is not None else 0)
            await db.execute(
                "UPDATE strategy_runs SET finished_at = ?, matched = ?, tasks = ?, messages = ?,"
                " skipped = ?, detail = ? WHERE strategy = ? AND run_day = ? AND slot = ?",
                (finished, r.matched, tasks, messages, sum(r.skipped.values()),
                 json.dumps({"skipped": r.skipped, "existing": r.existing}, sort_keys=True),
                 s.id, day.isoformat(), r.slot))
    for s in group:
        r = reports[s.id]
        log.info("strategy %s %s %s: %d matched, %d tasks, %d messages, %d made before,"
                 " skipped %s", s.id, day, r.slot, r.matched, r.tasks, r.messages, r.existing,
                 ", ".join(f"{n} {why}" for why, n in sorted(r.skipped.items())) or "none")
        if log.isEnabledFor(logging.DEBUG):
            for skip in plan.skipped:
                if skip.strategy == s.id:
                    log.debug("strategy %s %s: skipped %s: %s", s.id, day, mask(skip.account),
                              skip.detail)


def _later(when: float | None, shift: float) -> float | None:
    return None if when is None else when + shift


async def _write(db: aiosqlite.Connection, store: TaskStore, plan: Plan,
                 reports: dict[str, RunReport], run_at: float, *, shift: float) -> None:
    """The plan's tasks and messages, their dates moved by ``shift`` from the run's clock onto
    the task store's; contact rows stay at ``run_at`` (the history counts the run's days)."""
    for task in plan.tasks:
        moved = replace(task, due_at=_later(task.due_at, shift),
                        deadline_at=_later(task.deadline_at, shift))
        if await store.create(moved) is None:
            reports[task.strategy].existing += 1
        else:
            reports[task.strategy].tasks += 1
    for msg in plan.messages:
        now = store.clock()
        async with transaction(db):
            cur = await db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, channel, topic, payload, state,"
                " created_at, updated_at, next_attempt_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                (msg.message_id, msg.channel, f"callcenter/outbox/{msg.channel}",
                 json.dumps(msg.payload, ensure_ascii=False, sort_keys=True), now, now,
                 _later(msg.not_before, shift)))
            if cur.rowcount != 1:
                reports[msg.strategy].existing += 1
                continue
            await db.execute(
                "INSERT INTO contact_log (account, at, channel, strategy, message_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (msg.account, run_at, msg.channel, msg.strategy, msg.message_id))
        reports[msg.strategy].messages += 1
