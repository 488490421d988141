"""The caps' policy and the runs' safety, on a real SQLite database: dialer calls and other
runs' rows stay in a rerun's history; mandatory duties; strategies not shared; one call-back per
complaint on a repeating schedule; one runner at a time (the lease); a crashed run's instant
reused; the manager known to the call center; the scheduler's loop and clock."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from callcenter.broker.exchange_calendar import load_calendar
from callcenter.broker.facts import (
    DEFAULT_PAGE,
    Complaint,
    CustomerBase,
    CustomerFacts,
    ListCustomerBase,
)
from callcenter.broker.population import population
from callcenter.broker.rules import SHANGHAI
from callcenter.config import SiteSettings, StrategiesSettings, load_settings
from callcenter.store.db import open_db
from callcenter.strategies.conditions import History
from callcenter.strategies.evaluate import due_slot, matches
from callcenter.strategies.model import Schedule, Strategy
from callcenter.strategies.plan import make_plan, message_not_before
from callcenter.strategies.runner import (
    LEASE_S,
    RunReport,
    lookback_days,
    read_history,
    run_strategies,
)
from callcenter.strategies.scheduler import StrategyScheduler, start_scheduler

MONDAY = dt.date(2026, 11, 23)
TEN = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
CALENDAR = load_calendar()
GOLD1 = "20000001"                      # gold, e-mail and phone, manager A1001 or A1002


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "cc.db")
    yield conn
    await conn.close()


async def count(db: aiosqlite.Connection, sql: str, *params: Any) -> int:
    async with db.execute(sql, params) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def run(db: aiosqlite.Connection, customers: CustomerBase, strategies: list[Strategy],
              now: dt.datetime = TEN, **kw: Any) -> dict[str, RunReport]:
    reports = await run_strategies(db, customers, strategies, now, CALENDAR,
                                   contact_every_days=3, clock=now.timestamp, **kw)
    return {r.strategy: r for r in reports}


def strategy(sid: str, action: str = "message", **extra: Any) -> Strategy:
    """Gold customers, every day: an e-mail, or a call task."""
    act: dict[str, Any] = {"message": {"channel": "email", "text": {"zh": "x", "en": "x"}}}
    if action == "task":
        act = {"task": {"text": {"zh": "x", "en": "x"}, "script": {"zh": "x", "en": "x"},
                        "form": [{"name": "outcome", "kind": "choice", "choices": ["ok"],
                                  "success": ["ok"]}], "team": "general", "to_manager": True}}
    return Strategy.model_validate({
        "id": sid, "title": {"zh": "x", "en": "x"}, "schedule": {"days": "every_day"},
        "population": {"tier": {"in": ["gold"]}}, "caps": {"cooldown_days": 7},
        "action": act, **extra})


async def call_logged(db: aiosqlite.Connection, account: str, at: dt.datetime, by: str,
                      task_id: int | None = None) -> None:
    """A call the dialer placed (``dialer/store.py`` ``log_contact``)."""
    await db.execute("INSERT INTO contact_log (account, at, channel, strategy, task_id)"
                     " VALUES (?, ?, 'call', ?, ?)", (account, at.timestamp(), by, task_id))
    await db.commit()


# --- C1: a run's history keeps the dialer's calls and other runs' rows -------------------------


async def test_a_dialer_call_today_holds_a_strategy_run_with_it(
        db: aiosqlite.Connection) -> None:
    people = ListCustomerBase(population(10, 1, MONDAY))
    await call_logged(db, GOLD1, TEN - dt.timedelta(minutes=20), "calls")
    got = await run(db, people, [strategy("mail", priority=10), strategy("calls", "task")])
    assert got["mail"].skipped == {"already contacted today": 1, "no address": 1}
    assert await count(db, "SELECT COUNT(*) FROM outbox WHERE payload LIKE ?",
                       f"%{GOLD1}%") == 0


async def test_a_rerun_leaves_out_only_its_own_rows(db: aiosqlite.Connection) -> None:
    """Gold customers 1, 2, 11, 12. Customer 11 had a call task yesterday (cooldown); the run
    crashes after writing the tasks of 1 and 2 (not 12's); the dialer calls 2; the rerun
    plans for the crashed run's instant and sees yesterday's task and the dialer's call."""
    people = ListCustomerBase(population(20, 1, MONDAY))
    calls = strategy("calls", "task")
    yesterday = (TEN - dt.timedelta(days=1)).timestamp()
    await db.execute("INSERT INTO tasks (created_at, created_by, agent_id, text, state,"
                     " strategy, run_day, match_key, account) VALUES (?, 'strategy', '', 'x',"
                     " 'done', 'calls', ?, ?, '20000011')", (yesterday, "2026-11-22",
                                                             "2026-11-22"))
    await db.commit()
    first = await run(db, people, [calls])
    assert first["calls"].tasks == 3 and first["calls"].skipped == {"cooldown": 1}
    await db.execute("UPDATE strategy_runs SET finished_at = NULL")     # crashed ...
    await db.execute("DELETE FROM task_log")
    await db.execute("DELETE FROM tasks WHERE account = '20000012'")    # ... before 12's task
    await db.commit()
    async with db.execute("SELECT id FROM tasks WHERE account = '20000002'") as cur:
        [task_id] = await cur.fetchone() or [0]
    await call_logged(db, "20000002", TEN + dt.timedelta(minutes=3), "calls", task_id)
    again = await run(db, people, [calls], TEN + dt.timedelta(minutes=5))
    # the run's own task rows are left out (1: made before; 12: made now) ...
    assert (again["calls"].tasks, again["calls"].existing) == (1, 1)
    # ... the dialer's call and yesterday's task are not
    assert again["calls"].skipped == {"already contacted today": 1, "cooldown": 1}
    assert await count(db, "SELECT COUNT(*) FROM tasks") == 4
    # 12's task is the crashed run's plan: due 24 hours after its instant, not the rerun's
    assert await count(db, "SELECT COUNT(*) FROM tasks WHERE account = '20000012' AND due_at"
                       " = ?", (TEN + dt.timedelta(hours=24)).timestamp()) == 1


# --- C2: mandatory duties, strategies not shared ----------------------------------------------


async def test_a_mandatory_call_is_held_by_no_other_contact_nor_an_opt_out(
        db: aiosqlite.Connection) -> None:
    people = ListCustomerBase(population(10, 1, MONDAY))
    duty = strategy("duty", "task", mandatory=True, priority=90)
    first = strategy("first", priority=0)                       # the higher priority
    await call_logged(db, GOLD1, TEN - dt.timedelta(hours=1), "")       # an agent, today
    await call_logged(db, "20000002", TEN - dt.timedelta(days=1), "")   # the global cap
    await db.execute("INSERT INTO opt_outs (account, channel, added_at, added_by) VALUES"
                     " ('20000002', 'call', 0, 'agent')")
    got = await run(db, people, [first, duty])
    assert got["duty"].tasks == 2 and got["duty"].skipped == {}
    # the duty, though of a lower priority, takes the day: the other strategy waits
    assert got["first"].messages == 0
    assert got["first"].skipped == {"already contacted today": 2}


def test_check_refuses_a_mandatory_message(tmp_path: Path) -> None:
    from callcenter.strategies.load import StrategySetError, load_files

    path = tmp_path / "m.yaml"
    path.write_text("title: {zh: x, en: x}\npopulation: {tier: {in: [gold]}}\n"
                    "mandatory: true\naction:\n  message: {channel: sms, text: {zh: x, en: x}}\n",
                    "utf-8")
    with pytest.raises(StrategySetError) as caught:
        load_files([path])
    assert caught.value.diagnostics == [
        f"{path}:3:1: a message is never a duty: mandatory is for a task (a call the customer"
        f" must get)"]


async def test_the_morning_note_holds_no_other_strategy(
        db: aiosqlite.Connection, shipped: dict[str, Strategy]) -> None:
    """Core customers who trade (and so get the morning note every day) are called by their
    manager all the same; the note counts in no one's days since the last contact."""
    people = population(200, 9, MONDAY)
    base = ListCustomerBase(people)
    morning, core = shipped["morning-note"], shipped["core-customers"]
    assert (await run(db, base, [morning], TEN.replace(hour=8, minute=30)))[
        "morning-note"].messages > 0
    got = await run(db, base, [core], known=list(shipped.values()))
    active = {f.account for f in people if f.tier.value in ("gold", "platinum")
              and f.trades_30d >= 1 and f.phones}
    async with db.execute("SELECT account FROM tasks WHERE strategy = 'core-customers'") as cur:
        called = {r[0] for r in await cur.fetchall()}
    assert active and active <= called
    assert got["core-customers"].skipped.get("already contacted today", 0) == 0


async def test_across_the_day_the_earlier_run_wins(db: aiosqlite.Connection) -> None:
    people = ListCustomerBase(population(10, 1, MONDAY))
    late = strategy("late", priority=0)                                 # the higher priority
    early = strategy("early", priority=90, schedule={"at": "09:00", "days": "every_day"})
    assert (await run(db, people, [early], TEN.replace(hour=9)))["early"].messages == 1
    assert (await run(db, people, [late]))["late"].skipped["already contacted today"] == 1


# --- C3: one call-back per complaint, a repeating schedule ------------------------------------


def complained(facts: CustomerFacts, *complaints: Complaint) -> CustomerFacts:
    return dataclasses.replace(facts, complaints=complaints)


async def test_one_call_back_per_complaint_over_the_days_slots(
        db: aiosqlite.Connection, shipped: dict[str, Strategy]) -> None:
    callback, morning = shipped["complaint-callback"], shipped["morning-note"]
    [gold] = [f for f in population(3, 1, MONDAY) if f.account == "20000002"]   # trades
    evening = dt.datetime(2026, 11, 22, 18, 0, tzinfo=SHANGHAI)
    first = Complaint("CP-1", evening - dt.timedelta(hours=5), evening)
    people = ListCustomerBase([complained(gold, first)])
    scheduler = StrategyScheduler(db, people, [morning, callback], CALENDAR, lambda: clock[0],
                                  contact_every_days=3, clock=lambda: clock[0].timestamp())
    clock = [TEN.replace(hour=8, minute=31)]
    ran = {r.strategy: r for r in await scheduler.tick()}
    assert ran["morning-note"].messages == 1                    # the morning note, then ...
    assert (ran["complaint-callback"].slot, ran["complaint-callback"].tasks) == ("08:30", 1)
    clock[0] = TEN.replace(hour=9, minute=1)
    [again] = await scheduler.tick()                            # ... the 09:00 slot: no more
    assert (again.slot, again.matched, again.tasks) == ("09:00", 0, 0)
    # a second complaint handled at 09:10 is called back at the 09:30 slot, the same day
    second = Complaint("CP-2", TEN - dt.timedelta(hours=2), TEN.replace(hour=9, minute=10))
    scheduler.customers = ListCustomerBase([complained(gold, first, second)])
    clock[0] = TEN.replace(hour=9, minute=31)
    [later] = await scheduler.tick()
    assert later.tasks == 1
    async with db.execute("SELECT match_key, deadline_at, customer_name, tier FROM tasks"
                          " ORDER BY id") as cur:
        rows = [tuple(r) for r in await cur.fetchall()]
    assert second.handled_at is not None
    assert rows == [
        ("complaint:CP-1", (evening + dt.timedelta(hours=24)).timestamp(), gold.name, "gold"),
        ("complaint:CP-2", (second.handled_at + dt.timedelta(hours=24)).timestamp(),
         gold.name, "gold")]
    assert await count(db, "SELECT COUNT(*) FROM strategy_runs WHERE strategy ="
                       " 'complaint-callback'") == 3
    clock[0] = TEN.replace(day=24, hour=8, minute=1)            # next day: nothing again
    ran = {r.strategy: r for r in await scheduler.tick()}
    assert ran["complaint-callback"].tasks == 0


def test_a_repeating_schedule_and_its_slots() -> None:
    every = Schedule.model_validate({"every_minutes": 30, "from": "08:00", "until": "21:00",
                                     "days": "every_day"})
    assert every.slots()[:3] == ("08:00", "08:30", "09:00") and every.slots()[-1] == "21:00"
    assert due_slot(every, TEN.replace(hour=7, minute=59), CALENDAR) is None
    assert due_slot(every, TEN.replace(hour=9, minute=44), CALENDAR) == "09:30"
    assert due_slot(every, TEN.replace(hour=23), CALENDAR) == "21:00"
    once = Schedule.model_validate({"at": "09:30", "days": "every_day"})
    assert once.slots() == ("09:30",)
    assert due_slot(once, TEN, CALENDAR) == "09:30"
    for bad, says in (({"at": "9:30"}, "HH:MM (00:00-23:59)"),
                      ({"at": "24:00"}, "HH:MM (00:00-23:59)"),
                      ({"every_minutes": 30, "from": "08:00"}, "every_minutes, from and until"),
                      ({"at": "09:00", "every_minutes": 30, "from": "08:00", "until": "09:00"},
                       "either at"),
                      ({"every_minutes": 30, "from": "10:00", "until": "09:00"}, "is after")):
        with pytest.raises(ValueError, match=re.escape(says)):
            Schedule.model_validate(bad)


# --- M2: one runner at a time; a crashed run's instant -----------------------------------------


class _Held(ListCustomerBase):
    """A back office whose first page waits until the test lets it go: the first runner is
    then surely mid-run (holding the lease) while the second one starts."""

    def __init__(self, facts: Sequence[CustomerFacts]) -> None:
        super().__init__(facts)
        self.reading, self.go = asyncio.Event(), asyncio.Event()

    async def customer_facts(self, page_size: int = DEFAULT_PAGE
                             ) -> AsyncIterator[Sequence[CustomerFacts]]:
        self.reading.set()
        await self.go.wait()
        async for page in super().customer_facts(page_size):
            yield page


async def test_two_runners_never_plan_beside_each_other(tmp_path: Path) -> None:
    people = ListCustomerBase(population(10, 1, MONDAY))
    held = _Held(people.facts)
    a, b = await open_db(tmp_path / "cc.db"), await open_db(tmp_path / "cc.db")
    try:
        first = asyncio.create_task(run(a, held, [strategy("a")]))
        await asyncio.wait_for(held.reading.wait(), 10)
        second = await run(b, people, [strategy("b")])
        assert second["b"].not_run == "another run is under way"
        held.go.set()
        assert (await first)["a"].not_run == ""
        assert await count(a, "SELECT COUNT(*) FROM outbox") == 1
        # the second runner, once the first is done, sees its writes: no second contact
        again = await run(b, people, [strategy("a"), strategy("b")])
        assert sum(r.messages for r in again.values()) == 0
    finally:
        await a.close()
        await b.close()


async def test_a_lapsed_lease_is_taken_over(db: aiosqlite.Connection) -> None:
    people = ListCustomerBase(population(10, 1, MONDAY))
    await db.execute("INSERT INTO strategy_lease (name, owner, until) VALUES ('run', 'dead', ?)",
                     (1000.0,))
    await db.commit()
    held = await run(db, people, [strategy("a")], lease_clock=lambda: 1000.0 - 1)
    assert held["a"].not_run == "another run is under way"
    assert await count(db, "SELECT COUNT(*) FROM strategy_runs") == 0
    took = await run(db, people, [strategy("a")], lease_clock=lambda: 1000.0 + LEASE_S)
    assert took["a"].messages == 1
    assert await count(db, "SELECT COUNT(*) FROM strategy_lease") == 0     # released


# --- M5: the manager must be one of ours -------------------------------------------------------


def test_a_manager_unknown_here_leaves_the_task_to_the_team() -> None:
    people = population(2, 1, MONDAY)                                  # 1: gold
    calls = strategy("calls", "task")
    found = matches([calls], people, History(), TEN)
    [known] = make_plan(found, History(), TEN, 3, agents={people[1].manager or ""}).tasks
    assert known.agent_id == people[1].manager and known.team == "general"
    [unknown] = make_plan(found, History(), TEN, 3, agents={"A9999"}).tasks
    assert unknown.agent_id == "" and unknown.team == "general"
    assert unknown.reason.endswith(f"manager {people[1].manager} is no agent here: to team"
                                   f" general")
    nobody = [dataclasses.replace(people[1], manager=None)]
    [none] = make_plan(matches([calls], nobody, History(), TEN), History(), TEN, 3,
                       agents=set()).tasks
    assert none.agent_id == "" and none.reason.endswith("no manager on file: to team general")


# --- the history's window ----------------------------------------------------------------------


async def test_the_history_reads_only_the_days_looked_back(db: aiosqlite.Connection,
                                                         shipped: dict[str, Strategy]) -> None:
    assert lookback_days([shipped["core-customers"]], 3) == 31        # its cooldown: 30
    assert lookback_days([shipped["complaint-callback"]], 3) == 4     # 72 h, the cap: 3
    for days in (10, 40):
        await call_logged(db, GOLD1, TEN - dt.timedelta(days=days), "")
    history = await read_history(db, SHANGHAI, MONDAY, 31)
    assert history.contacts[GOLD1] == ((MONDAY - dt.timedelta(days=10), ""),)
    assert history.since == MONDAY - dt.timedelta(days=31)


# --- M6, minor: the scheduler -----------------------------------------------------------------


class Broken:
    async def customer_facts(self, page_size: int = 1000
                             ) -> AsyncIterator[Sequence[CustomerFacts]]:
        raise RuntimeError("the back office fell over")
        yield []


async def test_the_scheduler_loop_survives_any_error(
        db: aiosqlite.Connection, caplog: pytest.LogCaptureFixture) -> None:
    scheduler = StrategyScheduler(db, Broken(), [strategy("a")], CALENDAR, lambda: TEN,
                                  contact_every_days=3, interval_s=0.01, clock=TEN.timestamp)
    with caplog.at_level(logging.ERROR, logger="callcenter.strategies.scheduler"):
        scheduler.start()
        for _ in range(200):
            if len(caplog.records) >= 2:
                break
            await asyncio.sleep(0.01)
        await scheduler.close()                                         # raises nothing
    assert len(caplog.records) >= 2                                     # tried again
    assert "the back office fell over" in caplog.text and "Traceback" in caplog.text
    assert await count(db, "SELECT COUNT(*) FROM strategy_lease") == 0   # released


async def test_the_scheduler_keeps_the_sites_zone_and_the_back_offices_clock(
        db: aiosqlite.Connection, tmp_path: Path) -> None:
    class Office(ListCustomerBase):
        def now(self) -> dt.datetime:
            return TEN                                                  # Shanghai 10:00

    folder = tmp_path / "strategies"
    folder.mkdir()
    settings = load_settings(state_dir=tmp_path, site=SiteSettings(timezone="Europe/London"),
                             strategies=StrategiesSettings(enabled=True, dir=folder))
    scheduler = await start_scheduler(settings, db, Office([]), CALENDAR, None)
    assert scheduler is not None
    try:
        assert scheduler.now() == TEN and str(scheduler.now().tzinfo) == "Europe/London"
        assert scheduler.now().hour == 2
        assert scheduler.clock() == TEN.timestamp()
    finally:
        await scheduler.close()


async def test_the_engines_task_store_hears_of_the_new_tasks(db: aiosqlite.Connection) -> None:
    from callcenter.tasks.store import Task, TaskStore

    store = TaskStore(db, TEN.timestamp)
    heard: list[tuple[str, Task | None]] = []
    store.on_change.append(lambda task, old: heard.append((task.account, old)))
    got = await run(db, ListCustomerBase(population(10, 1, MONDAY)),
                    [strategy("calls", "task")], tasks=store)
    assert got["calls"].tasks == 2
    assert heard == [("20000001", None), ("20000002", None)]


async def test_tasks_and_messages_keep_their_distance_from_the_run_on_the_stores_clock(
        db: aiosqlite.Connection, shipped: dict[str, Strategy]) -> None:
    """The sandbox's day set apart from the machine's (``backoffice.clock_start``): a run plans
    on the back office's Monday morning while the engine's task store and relay go by a clock
    13 days later. The complaint's call-back keeps its deadline 24 hours after the handling
    and its due time 4 hours after the run, on the store's clock (not overdue at once); the
    morning note waits for the customer's waking hours as long as it would on the sandbox's."""
    from callcenter.tasks.store import TaskStore

    [gold] = [f for f in population(3, 1, MONDAY) if f.account == "20000002"]
    handled = TEN.replace(hour=7)
    people = ListCustomerBase([complained(gold, Complaint("CP-9", handled, handled))])
    later = dt.timedelta(days=13, seconds=7)
    business = TEN.replace(hour=7, minute=31)                   # before the texts' hours
    store = TaskStore(db, lambda: (business + later).timestamp())
    got = await run(db, people, [shipped["morning-note"], shipped["complaint-callback"]],
                    now=business, tasks=store)
    assert (got["complaint-callback"].tasks, got["morning-note"].messages) == (1, 1)
    async with db.execute("SELECT created_at, due_at, deadline_at FROM tasks") as cur:
        [(created, due, deadline)] = [tuple(r) for r in await cur.fetchall()]
    assert created == (business + later).timestamp()
    assert deadline == (handled + dt.timedelta(hours=24) + later).timestamp()
    assert due == (business + dt.timedelta(hours=4) + later).timestamp()
    async with db.execute("SELECT created_at, next_attempt_at FROM outbox") as cur:
        [(queued, not_before)] = [tuple(r) for r in await cur.fetchall()]
    assert queued == (business + later).timestamp()
    planned = message_not_before(business, gold.timezone)   # the customer's waking hours
    assert planned is not None and not_before == (planned + later).timestamp()
    async with db.execute("SELECT at FROM contact_log") as cur:  # the history: the run's day
        assert [r[0] for r in await cur.fetchall()] == [business.timestamp()]
