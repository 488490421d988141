"""Running strategies on a real SQLite database (migrations applied): the plan written once,
a repeated run after a crash adds nothing, caps at run time are logged with their reason; the
sandbox back office's customer facts; the engine's scheduler."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from callcenter.admin.releases import Releases
from callcenter.admin.services import strategy_release_kind
from callcenter.broker.exchange_calendar import load_calendar
from callcenter.broker.facts import CustomerBase, ListCustomerBase
from callcenter.broker.population import population
from callcenter.broker.rules import SHANGHAI
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import GOLD, NO_BANK, ORDINARY, PLATINUM, SILVER, seed_demo
from callcenter.config import REPO_ROOT, StrategiesSettings, load_settings
from callcenter.store.db import open_db
from callcenter.strategies.model import Strategy
from callcenter.strategies.runner import RunReport, run_strategies
from callcenter.strategies.scheduler import (
    StrategyHost,
    StrategyScheduler,
    open_scheduler,
    start_scheduler,
)

N = 300
MONDAY = dt.date(2026, 11, 23)
NINE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
CALENDAR = load_calendar()


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
              now: dt.datetime = NINE) -> dict[str, RunReport]:
    reports = await run_strategies(db, customers, strategies, now, CALENDAR,
                                   contact_every_days=3, clock=now.timestamp)
    return {r.strategy: r for r in reports}


def gold_mail(sid: str, **extra: Any) -> Strategy:
    """An e-mail to gold and platinum customers every day."""
    return Strategy.model_validate({
        "id": sid, "title": {"zh": "金", "en": "Gold"}, "schedule": {"days": "every_day"},
        "population": {"tier": {"in": ["gold", "platinum"]}},
        "action": {"message": {"channel": "email", "text": {"zh": "x", "en": "x"}}},
        **extra})


async def test_a_run_writes_tasks_messages_contacts_and_its_row(
        db: aiosqlite.Connection, shipped: dict[str, Strategy]) -> None:
    people = ListCustomerBase(population(N, 9, MONDAY))
    chosen = [shipped["complaint-callback"], shipped["birthday-greeting"]]
    got = await run(db, people, chosen)
    no_phone = {i for i in range(N) if i % 29 == 28}
    callbacks = {i for i in range(N) if i % 17 == 0} - no_phone
    birthdays = {i for i in range(N) if i % 13 == 0} - no_phone - callbacks   # one a day
    assert got["complaint-callback"].tasks == len(callbacks)
    assert got["birthday-greeting"].messages == len(birthdays)
    assert got["birthday-greeting"].skipped["already contacted today"] == len(
        {i for i in range(N) if i % 13 == 0 and i % 17 == 0} - no_phone)
    assert await count(db, "SELECT COUNT(*) FROM tasks WHERE strategy = ?",
                       "complaint-callback") == len(callbacks)
    assert await count(db, "SELECT COUNT(*) FROM outbox WHERE message_id LIKE"
                       " 'stg-birthday-greeting-%-20261123'") == len(birthdays)
    assert await count(db, "SELECT COUNT(*) FROM contact_log WHERE strategy = ? AND channel"
                       " = 'sms'", "birthday-greeting") == len(birthdays)
    async with db.execute("SELECT * FROM strategy_runs WHERE strategy = ?",
                          ("birthday-greeting",)) as cur:
        row = dict(await cur.fetchone() or {})
    assert row["run_day"] == "2026-11-23" and row["finished_at"] is not None
    assert row["matched"] == len({i for i in range(N) if i % 13 == 0})
    assert row["messages"] == len(birthdays)
    detail = json.loads(row["detail"])
    assert detail["skipped"] == got["birthday-greeting"].skipped
    async with db.execute("SELECT payload FROM outbox LIMIT 1") as cur:
        payload = json.loads((await cur.fetchone() or [""])[0])
    assert payload["template"] == "note" and payload["data"]["text"]


async def test_a_rerun_after_a_crash_adds_nothing(db: aiosqlite.Connection,
                                                  shipped: dict[str, Strategy]) -> None:
    people = ListCustomerBase(population(N, 9, MONDAY))
    chosen = [shipped["complaint-callback"], shipped["birthday-greeting"],
              shipped["new-account-verification"]]
    first = await run(db, people, chosen)
    tables = ("tasks", "outbox", "contact_log", "task_log")
    before = [await count(db, f"SELECT COUNT(*) FROM {t}") for t in tables]
    assert before[0] > 0 and before[1] > 0
    # a crash before the runs were marked finished
    await db.execute("UPDATE strategy_runs SET finished_at = NULL")
    again = await run(db, people, chosen, NINE + dt.timedelta(minutes=5))
    after = [await count(db, f"SELECT COUNT(*) FROM {t}") for t in tables]
    assert after == before
    assert await count(db, "SELECT tasks FROM strategy_runs WHERE strategy = ?",
                       "complaint-callback") == first["complaint-callback"].tasks
    assert await count(db, "SELECT messages FROM strategy_runs WHERE strategy = ?",
                       "birthday-greeting") == first["birthday-greeting"].messages
    for sid, report in again.items():
        assert report.tasks == report.messages == 0
        assert report.existing == first[sid].tasks + first[sid].messages
        assert report.skipped == first[sid].skipped
    # the rerun planned for the crashed run's instant, not its own
    assert await count(db, "SELECT COUNT(*) FROM strategy_runs WHERE run_at = ?",
                       NINE.timestamp()) == 3
    # and once finished, a slot is not run again; the complaint call-back's next slot runs
    # and makes nothing again (one task per complaint)
    third = await run(db, people, chosen, NINE + dt.timedelta(hours=1))
    assert third["birthday-greeting"].not_run == "already run"
    assert third["new-account-verification"].not_run == "already run"
    assert (third["complaint-callback"].not_run, third["complaint-callback"].slot) == ("", "10:00")
    assert third["complaint-callback"].tasks == 0
    assert third["complaint-callback"].skipped == {"no phone": 1}    # tried again each slot


async def test_caps_at_run_time_are_logged_with_their_reason(
        db: aiosqlite.Connection, caplog: pytest.LogCaptureFixture) -> None:
    people = ListCustomerBase(population(N, 9, MONDAY))
    core = gold_mail("core", caps={"cooldown_days": 7})
    await db.execute("INSERT INTO contact_log (account, at, channel, strategy) VALUES"
                     " ('20000001', ?, 'call', '')",
                     ((NINE - dt.timedelta(days=2)).timestamp(),))
    await db.execute("INSERT INTO contact_log (account, at, channel, strategy) VALUES"
                     " ('20000002', ?, 'sms', 'unbound-bank')",
                     ((NINE - dt.timedelta(hours=2)).timestamp(),))
    await db.execute("INSERT INTO opt_outs (account, channel, added_at, added_by) VALUES"
                     " ('20000010', 'email', 0, 'agent')")
    with caplog.at_level(logging.INFO, logger="callcenter.strategies.runner"):
        got = await run(db, people, [core])
    assert got["core"].skipped["already contacted today"] == 1
    assert got["core"].skipped["opted out"] == 1
    assert got["core"].skipped["global cap"] == 1                      # 20000001
    # one summary line per run, by reason; never a whole account number
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("strategy core 2026-11-23 09:00: 90 matched, 0 tasks, 58 messages")
    assert "1 already contacted today, 1 global cap, 29 no address, 1 opted out" in line
    caplog.clear()
    await db.execute("DELETE FROM strategy_runs")
    with caplog.at_level(logging.DEBUG, logger="callcenter.strategies.runner"):
        await run(db, people, [core])
    assert "skipped ****0002: contacted today by unbound-bank" in caplog.text
    assert "skipped ****0010: opted out of email" in caplog.text
    assert "20000002" not in caplog.text and "20000010" not in caplog.text


async def test_the_next_days_keep_the_cooldown(db: aiosqlite.Connection) -> None:
    people = ListCustomerBase(population(40, 9, MONDAY))
    gold = gold_mail("gold", caps={"cooldown_days": 2, "shared": False})
    core = [i for i in range(40) if i % 10 <= 2]
    golds = [i for i in core if i % 3 != 2]                            # with an e-mail
    day = dt.timedelta(days=1)
    assert (await run(db, people, [gold]))["gold"].messages == len(golds)
    assert (await run(db, people, [gold], NINE + day))["gold"].skipped == {
        "cooldown": len(golds), "no address": len(core) - len(golds)}
    assert (await run(db, people, [gold], NINE + 2 * day))["gold"].messages == len(golds)


# --- the sandbox back office ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("strategies") / "bo.db"

    async def build() -> None:
        bo = await SandboxBackOffice.open(path, clock=lambda: NINE)
        await seed_demo(bo)
        await bo.close()

    asyncio.run(build())
    return path


@pytest.fixture
async def bo(ledger: Path, tmp_path: Path) -> AsyncIterator[SandboxBackOffice]:
    shutil.copy(ledger, tmp_path / "bo.db")
    office = await SandboxBackOffice.open(tmp_path / "bo.db", clock=lambda: NINE, frozen=True)
    yield office
    await office.close()


async def test_the_sandbox_lists_its_customers_facts(bo: SandboxBackOffice) -> None:
    pages = [page async for page in bo.customer_facts(page_size=2)]
    assert [len(p) for p in pages] == [2, 2, 1]
    facts = {f.account: f for page in pages for f in page}
    assert list(facts) == sorted(facts)
    for account, f in facts.items():
        cash = await bo.cash(account)
        held = sum((p.market_value for p in await bo.positions(account)), Decimal(0))
        assert f.assets == cash.balance + held
    assert facts[NO_BANK].bank_bound is False and facts[ORDINARY].bank_bound is True
    assert facts[NO_BANK].opened_on == MONDAY - dt.timedelta(days=1)
    birthday = facts[SILVER].birthday
    assert birthday is not None
    assert (birthday.month, birthday.day) == (11, 23)
    [complaint] = facts[GOLD].complaints
    assert complaint.handled_at == NINE - dt.timedelta(hours=2)
    assert facts[PLATINUM].trades_30d == 25 and facts[ORDINARY].last_trade_on == (
        MONDAY - dt.timedelta(days=180))
    assert facts[GOLD].manager == "A1001" and facts[GOLD].timezone == "Asia/Shanghai"


async def add_agent(db: aiosqlite.Connection, agent_id: str) -> None:
    await db.execute("INSERT INTO agents (agent_id, name, role, password_hash, endpoint,"
                     " created_at) VALUES (?, 'x', 'agent', 'x', 'PJSIP/x', 0)", (agent_id,))
    await db.commit()


async def test_the_shipped_strategies_on_the_demo_customers(
        db: aiosqlite.Connection, bo: SandboxBackOffice,
        shipped: dict[str, Strategy]) -> None:
    await add_agent(db, "A1001")
    got = await run(db, bo, list(shipped.values()))
    assert got["complaint-callback"].tasks == 1
    assert got["birthday-greeting"].messages == 1
    assert got["new-account-verification"].tasks == 1
    assert got["holiday-greeting"].not_run == "not its day"
    async with db.execute("SELECT account, agent_id, team, dial FROM tasks ORDER BY"
                          " priority") as cur:
        rows = [tuple(r) for r in await cur.fetchall()]
    assert rows[0][:3] == (GOLD, "A1001", "general")                  # the manager calls
    assert json.loads(rows[1][3])["record"] is True                   # the verification call
    assert rows[1][0] == NO_BANK


async def test_the_scheduler_runs_what_is_due_once(db: aiosqlite.Connection,
                                                   shipped: dict[str, Strategy]) -> None:
    people = ListCustomerBase(population(60, 9, MONDAY))
    clock = [NINE.replace(hour=8, minute=0)]
    scheduler = StrategyScheduler(db, people, [shipped["morning-note"]], CALENDAR,
                                  lambda: clock[0], contact_every_days=3,
                                  clock=lambda: clock[0].timestamp())
    assert await scheduler.tick() == []                              # 08:30 not reached
    clock[0] = NINE.replace(hour=8, minute=31)
    [report] = await scheduler.tick()
    assert report.messages > 0
    assert await scheduler.tick() == []                              # finished for the day
    clock[0] = dt.datetime(2026, 11, 28, 9, 0, tzinfo=SHANGHAI)      # a Saturday
    assert await scheduler.tick() == []


async def test_the_engine_starts_the_scheduler_only_with_good_files(
        db: aiosqlite.Connection, bo: SandboxBackOffice, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "complaint-callback.yaml", folder)
    settings = load_settings(state_dir=tmp_path,
                             strategies=StrategiesSettings(enabled=True, dir=folder))
    scheduler = await start_scheduler(settings, db, bo, CALENDAR, None)
    assert scheduler is not None
    try:
        for _ in range(200):                                         # its first tick runs now
            if await count(db, "SELECT COUNT(*) FROM strategy_runs WHERE finished_at"
                           " IS NOT NULL"):
                break
            await asyncio.sleep(0.01)
        assert await count(db, "SELECT COUNT(*) FROM tasks WHERE account = ?", GOLD) == 1
    finally:
        await scheduler.close()
    (folder / "bad.yaml").write_text("title: {zh: x, en: x}\npopulation: {}\n", "utf-8")
    with caplog.at_level(logging.ERROR, logger="callcenter.strategies.scheduler"):
        assert await start_scheduler(settings, db, bo, CALENDAR, None) is None
    assert f"{folder / 'bad.yaml'}:1:1: 'action' is missing" in caplog.text
    assert await start_scheduler(settings, db, object(), CALENDAR, None) is None


async def test_contacts_of_a_strategy_not_shared_do_not_hold_the_others(
        db: aiosqlite.Connection, shipped: dict[str, Strategy]) -> None:
    people = ListCustomerBase(population(20, 9, MONDAY))
    await db.execute("INSERT INTO contact_log (account, at, channel, strategy) VALUES"
                     " ('20000001', ?, 'sms', 'morning-note')",
                     ((NINE - dt.timedelta(days=1)).timestamp(),))
    gold = gold_mail("gold", caps={"cooldown_days": 7})
    alone = await run_strategies(db, people, [gold], NINE, CALENDAR, contact_every_days=3,
                                 clock=NINE.timestamp)
    # an unknown strategy's contact counts as shared; 2 and 11 have no e-mail (i % 3 == 2)
    assert alone[0].skipped == {"global cap": 1, "no address": 2}
    await db.execute("DELETE FROM tasks")
    await db.execute("DELETE FROM outbox")
    await db.execute("DELETE FROM contact_log WHERE strategy = 'gold'")
    await db.execute("DELETE FROM strategy_runs")
    known = await run_strategies(db, people, [gold], NINE, CALENDAR, contact_every_days=3,
                                 clock=NINE.timestamp, known=list(shipped.values()))
    assert known[0].skipped == {"no address": 2}
    assert known[0].messages == alone[0].messages + 1


async def test_reading_facts_sends_no_queued_order(bo: SandboxBackOffice, tmp_path: Path) -> None:
    """A command beside the running engine reads facts: the market is not stepped."""
    from callcenter.broker.interface import OrderStatus, Side

    quote = await bo.quote("600036")
    order = await bo.place_order(ORDINARY, Side.BUY, "600036", quote.prev_close, 100, "q-1")
    assert order.status is OrderStatus.QUEUED                         # 09:00: before 09:15
    bo.set_clock(NINE + dt.timedelta(hours=1))
    [_ async for _ in bo.customer_facts()]
    async with aiosqlite.connect(tmp_path / "bo.db") as raw, raw.execute(
            "SELECT status FROM bo_orders WHERE order_no = ?", (order.order_no,)) as cur:
        assert await cur.fetchone() == ("queued",)


@pytest.mark.parametrize(("hour", "waits_until"), [(5, 8), (9, None), (22, 8 + 24)])
async def test_a_run_outside_the_day_queues_its_messages_for_the_morning(
        db: aiosqlite.Connection, hour: int, waits_until: int | None) -> None:
    """The outbox holds the texts of a run at dawn or at night until 08:00 in the customer's
    zone (the relay publishes a queued row once its next_attempt_at is due); at nine: at once."""
    people = ListCustomerBase(population(N, 1, MONDAY))
    await run(db, people, [gold_mail("g")], now=NINE.replace(hour=hour))
    async with db.execute("SELECT DISTINCT next_attempt_at FROM outbox") as cur:
        waits = [row[0] for row in await cur.fetchall()]
    assert await count(db, "SELECT COUNT(*) FROM outbox") > 0
    expected = None if waits_until is None else (
        NINE.replace(hour=8) + dt.timedelta(hours=waits_until - 8)).timestamp()
    assert waits == [expected]


async def test_a_published_release_of_strategies_runs_without_a_restart(
        db: aiosqlite.Connection, bo: SandboxBackOffice, tmp_path: Path) -> None:
    """A release published through the administration API's releases reaches the running
    scheduler (and its rollback too); a set with a problem is refused, the running one kept."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "complaint-callback.yaml", folder)
    settings = load_settings(state_dir=tmp_path, strategies=StrategiesSettings(
        enabled=True, dir=folder, interval_s=3600))
    host = StrategyHost(lambda: open_scheduler(settings, db, bo, CALENDAR, None))
    assert await host.reload() == []
    scheduler = host.scheduler
    assert scheduler is not None
    try:
        assert [s.id for s in scheduler.known] == ["complaint-callback"]
        releases = Releases(db, {"strategies": strategy_release_kind(settings, host)})
        text = (REPO_ROOT / "strategies" / "morning-note.yaml").read_text("utf-8")
        staged = await releases.stage("strategies", {"morning-note.yaml": text}, by="t")
        assert staged["state"] == "staged", staged
        await releases.publish("strategies", staged["id"], by="t")
        assert sorted(s.id for s in scheduler.known) == ["complaint-callback", "morning-note"]
        await releases.rollback("strategies", by="t")
        assert [s.id for s in scheduler.known] == ["complaint-callback"]
        (folder / "bad.yaml").write_text("title: {zh: x, en: x}\npopulation: {}\n", "utf-8")
        problems = await host.reload()
        assert any("'action' is missing" in p for p in problems)
        assert [s.id for s in scheduler.known] == ["complaint-callback"]
        assert host.scheduler is scheduler
    finally:
        await host.close()
    assert await host.reload() == ["the engine is stopping"] and host.scheduler is None


async def test_the_host_starts_one_scheduler_once_the_files_are_good(
        db: aiosqlite.Connection, bo: SandboxBackOffice, tmp_path: Path) -> None:
    """A bad file kept the scheduler off; reloads that come together once it is fixed start
    one scheduler, not one each; a release being written holds them back."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "bad.yaml").write_text("title: {zh: x, en: x}\npopulation: {}\n", "utf-8")
    settings = load_settings(state_dir=tmp_path, strategies=StrategiesSettings(
        enabled=True, dir=folder, interval_s=3600))
    opened: list[object] = []

    async def opener() -> tuple[Any, list[str]]:
        scheduler, problems = await open_scheduler(settings, db, bo, CALENDAR, None)
        opened.append(scheduler)
        return scheduler, problems

    host = StrategyHost(opener)
    problems = await host.reload()
    assert any("'action' is missing" in p for p in problems) and not host.running
    (folder / "bad.yaml").unlink()
    shutil.copy(REPO_ROOT / "strategies" / "complaint-callback.yaml", folder)
    try:
        async with host.editing():
            waiting = [asyncio.create_task(host.reload()) for _ in range(3)]
            await asyncio.sleep(0.05)
            assert not any(t.done() for t in waiting)     # held while the files are written
        assert await asyncio.gather(*waiting) == [[], [], []]
        assert [s is not None for s in opened] == [False, True]   # one start, then reloads
        assert host.running
    finally:
        await host.close()


async def test_a_release_starts_the_scheduler_a_bad_file_kept_off(
        db: aiosqlite.Connection, bo: SandboxBackOffice, tmp_path: Path) -> None:
    """The API's release of strategies reaches the engine's host however it started: one that
    removes the bad file starts the scheduler (the API had kept the scheduler of the start,
    None, and never activated a release)."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "strategies" / "complaint-callback.yaml", folder)
    (folder / "bad.yaml").write_text("title: {zh: x, en: x}\npopulation: {}\n", "utf-8")
    settings = load_settings(state_dir=tmp_path, strategies=StrategiesSettings(
        enabled=True, dir=folder, interval_s=3600))
    host = StrategyHost(lambda: open_scheduler(settings, db, bo, CALENDAR, None))
    assert await host.reload() and not host.running
    releases = Releases(db, {"strategies": strategy_release_kind(settings, host)})
    try:
        staged = await releases.stage("strategies", {"bad.yaml": None}, by="t")
        assert staged["state"] == "staged", staged
        await releases.publish("strategies", staged["id"], by="t")
        assert host.scheduler is not None
        assert [s.id for s in host.scheduler.known] == ["complaint-callback"]
    finally:
        await host.close()
