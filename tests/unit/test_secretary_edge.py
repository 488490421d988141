"""The financial secretary's edge on real SQLite and the real sandbox back office: notices and
outbox rows written once, quiet hours, missing addresses, restarts, every kind."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from pydantic import SecretStr

from callcenter.broker import rules as r
from callcenter.broker.interface import Customer, FillEntry, Side, Tier, TransferDirection
from callcenter.broker.sandbox import BankAccount, SandboxBackOffice
from callcenter.broker.seed import (
    DEMO_BANK_PASSWORD,
    DEMO_FUND_PASSWORD,
    DEMO_TRADING_PASSWORD,
    GOLD,
    ORDINARY,
    seed_demo,
)
from callcenter.channels.secretary import QuietHours
from callcenter.channels.secretary_edge import (
    Secretary,
    deliveries_for,
    list_subscriptions,
    subscribe,
    unsubscribe,
)
from callcenter.channels.templates import render_text
from callcenter.errors import BrokerError
from callcenter.store.db import open_db

D = Decimal
MONDAY = dt.date(2024, 6, 3)
SATURDAY = dt.date(2024, 6, 8)
FUND = SecretStr(DEMO_FUND_PASSWORD)
NO_MAIL = "10000009"


def at(hh: int, mm: int = 0, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=r.SHANGHAI)


EARLY = at(9).timestamp()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo ledger (plus a customer with no e-mail), seeded once and copied per test."""
    path = tmp_path_factory.mktemp("secretary") / "bo.db"

    async def build() -> None:
        bo = await SandboxBackOffice.open(path, clock=lambda: at(10))
        await seed_demo(bo)
        await bo.put_account(
            Customer(NO_MAIL, "赵六", Tier.ORDINARY, ("13800000009",), None, "zh", None),
            trading_password=SecretStr(DEMO_TRADING_PASSWORD), fund_password=FUND,
            cash=D("10000.00"),
            banks=[BankAccount("ICBC", "工商银行", "6222****0009", D("5000.00"),
                               SecretStr(DEMO_BANK_PASSWORD))])
        await bo.close()

    asyncio.run(build())
    return path


@pytest.fixture
async def bo(template: Path, tmp_path: Path) -> AsyncIterator[SandboxBackOffice]:
    shutil.copy(template, tmp_path / "bo.db")
    office = await SandboxBackOffice.open(tmp_path / "bo.db", clock=lambda: at(10), frozen=True)
    yield office
    await office.close()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "cc.db")
    yield conn
    await conn.close()


def secretary(db: aiosqlite.Connection, bo: SandboxBackOffice) -> Secretary:
    return Secretary(db, bo, bo.now, r.SHANGHAI, 30.0)


async def rows(db: aiosqlite.Connection, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with db.execute(sql, params) as cur:
        return [dict(row) for row in await cur.fetchall()]


async def outbox(db: aiosqlite.Connection) -> list[dict[str, Any]]:
    out = await rows(db, "SELECT * FROM outbox ORDER BY id")
    for row in out:
        row["payload"] = json.loads(row["payload"])
    return out


async def buy_and_fill(bo: SandboxBackOffice, key: str = "b1") -> None:
    """A buy of 200 CMB at 41.00 that fills when the price comes down to it: the book (seed 0)
    then asks 40.90 for 700, through the resting buy, so it fills whole at its own 41.00."""
    await bo.place_order(ORDINARY, Side.BUY, "600036", D("41.00"), 200, key)
    await bo.set_last("600036", D("40.90"))


# --- fills ----------------------------------------------------------------------------------------


async def test_a_fill_is_notified_exactly_once(db: aiosqlite.Connection,
                                               bo: SandboxBackOffice) -> None:
    sub, created = await subscribe(db, ORDINARY, "fill", "sms", by="ivr", now=EARLY)
    assert created
    await buy_and_fill(bo)
    sec = secretary(db, bo)
    first = await sec.scan()
    second = await sec.scan()
    assert (first.notices, first.failed, second.notices) == (1, 0, 0)
    [notice] = await rows(db, "SELECT * FROM notices")
    [msg] = await outbox(db)
    assert notice["subscription_id"] == sub.id and notice["message_id"] == msg["message_id"]
    assert notice["event_key"].startswith("fill:") and notice["not_before"] is None
    assert (msg["channel"], msg["topic"], msg["state"], msg["next_attempt_at"]) == (
        "sms", "callcenter/outbox/sms", "queued", None)
    payload = msg["payload"]
    assert (payload["to"], payload["template"], payload["lang"], payload["account"]) == (
        "13800000001", "fill", "zh", ORDINARY)
    assert payload["data"] == {"account": ORDINARY, "side": "buy", "code": "600036",
                               "name": "招商银行", "qty": 200, "price": "41.00",
                               "time": "2024-06-03 10:00", "order_no": "30000001",
                               "remaining": 0}


async def test_each_part_of_an_order_is_a_notice_with_its_own_price_and_what_is_left(
        db: aiosqlite.Connection, bo: SandboxBackOffice) -> None:
    await subscribe(db, ORDINARY, "fill", "sms", by="ivr", now=EARLY)
    book = bo.market.depth("600036")                        # bids 41.20 x 200, 41.19 x 1500
    await bo.place_order(ORDINARY, Side.SELL, "600036", D("37.08"), 1000, "dump")
    assert (await secretary(db, bo).scan()).notices == 2
    parts = [m["payload"]["data"] for m in await outbox(db)]
    (p1, n1), (p2, _) = book.bids[:2]
    assert [(d["qty"], d["price"], d["remaining"]) for d in parts] == [
        (n1, str(p1), 1000 - n1), (1000 - n1, str(p2), 0)]
    assert p1 > p2 > D("37.08")
    texts = [render_text("fill", "zh", d).body for d in parts]
    assert texts[0].endswith(f"成交价 {p1} 元。部分成交，委托尚有 {1000 - n1} 股未成交。")
    assert texts[1].endswith(f"成交价 {p2} 元。")


async def test_a_restart_does_not_notify_again(db: aiosqlite.Connection,
                                               bo: SandboxBackOffice, tmp_path: Path) -> None:
    await subscribe(db, ORDINARY, "fill", "email", now=EARLY)
    await buy_and_fill(bo)
    assert (await secretary(db, bo).scan()).notices == 1
    await db.close()
    reopened = await open_db(tmp_path / "cc.db")
    try:
        assert (await secretary(reopened, bo).scan()).notices == 0
        # even with its bookmarks lost, the unique rule holds
        await reopened.execute("DELETE FROM secretary_cursors")
        assert (await secretary(reopened, bo).scan()).notices == 0
        assert len(await outbox(reopened)) == 1
        [msg] = await outbox(reopened)
        assert msg["payload"]["to"] == "zhang.wei@example.com"
    finally:
        await reopened.close()


async def test_fills_before_the_subscription_are_not_notified(db: aiosqlite.Connection,
                                                              bo: SandboxBackOffice) -> None:
    await buy_and_fill(bo)
    await subscribe(db, ORDINARY, "fill", "sms", now=at(10, 1).timestamp())
    assert (await secretary(db, bo).scan()).notices == 0
    [cursor] = await rows(db, "SELECT * FROM secretary_cursors WHERE name = 'fills'")
    assert cursor["value"] != ""


async def test_quiet_hours_hold_the_message_until_they_end(db: aiosqlite.Connection,
                                                           bo: SandboxBackOffice) -> None:
    await subscribe(db, ORDINARY, "fill", "sms", quiet=("09:00", "11:00"), now=EARLY)
    await buy_and_fill(bo)
    await secretary(db, bo).scan()
    [msg] = await outbox(db)
    [notice] = await rows(db, "SELECT * FROM notices")
    assert msg["state"] == "queued"
    assert msg["next_attempt_at"] == notice["not_before"] == at(11).timestamp()


async def test_quiet_hours_keep_their_length_on_the_relays_clock(db: aiosqlite.Connection,
                                                                 bo: SandboxBackOffice) -> None:
    """The sandbox's day set apart from the machine's (``backoffice.clock_start``): the notice
    is dated on the back office's clock, its outbox row on the relay's, still an hour away
    (the quiet hours end at 11:00 and the scan runs at 10:00)."""
    later = dt.timedelta(days=13, seconds=7).total_seconds()
    await subscribe(db, ORDINARY, "fill", "sms", quiet=("09:00", "11:00"), now=EARLY)
    await buy_and_fill(bo)
    relay_now = at(10).timestamp() + later
    await Secretary(db, bo, bo.now, r.SHANGHAI, 30.0, outbox_clock=lambda: relay_now).scan()
    [msg] = await outbox(db)
    [notice] = await rows(db, "SELECT * FROM notices")
    assert (notice["created_at"], notice["not_before"]) == (at(10).timestamp(),
                                                            at(11).timestamp())
    assert (msg["created_at"], msg["next_attempt_at"]) == (relay_now, relay_now + 3600)


async def test_a_missing_address_is_recorded_as_failed(db: aiosqlite.Connection,
                                                       bo: SandboxBackOffice) -> None:
    await subscribe(db, NO_MAIL, "fund", "email", now=EARLY)
    await subscribe(db, NO_MAIL, "fund", "sms", now=EARLY)
    await bo.transfer(NO_MAIL, TransferDirection.SECURITIES_TO_BANK, D("100.00"), FUND, None,
                      "t1")
    report = await secretary(db, bo).scan()
    assert (report.notices, report.failed) == (2, 1)
    by_channel = {m["channel"]: m for m in await outbox(db)}
    failed = by_channel["email"]
    assert (failed["state"], failed["last_error"]) == ("failed", "no e-mail address on file")
    assert by_channel["sms"]["state"] == "queued"
    [history] = await rows(db, "SELECT * FROM deliveries")
    assert (history["message_id"], history["state"], history["reason"]) == (
        failed["message_id"], "failed", "no e-mail address on file")
    views = {d.channel: d for d in await deliveries_for(db, NO_MAIL)}
    assert (views["email"].state, views["email"].reason, views["email"].kind) == (
        "failed", "no e-mail address on file", "fund")
    assert "no e-mail address on file" in views["email"].line()
    assert views["sms"].to == "13800000009" and views["sms"].subscription_id is not None


# --- the other kinds ------------------------------------------------------------------------------


async def test_fund_changes(db: aiosqlite.Connection, bo: SandboxBackOffice) -> None:
    await subscribe(db, ORDINARY, "fund", "sms", now=EARLY)
    await bo.transfer(ORDINARY, TransferDirection.SECURITIES_TO_BANK, D("1000.50"), FUND, None,
                      "t1")
    sec = secretary(db, bo)
    await sec.scan()
    await bo.transfer(ORDINARY, TransferDirection.BANK_TO_SECURITIES, D("2000"), FUND,
                      SecretStr(DEMO_BANK_PASSWORD), "t2")
    await sec.scan()
    await sec.scan()
    data = [m["payload"]["data"] for m in await outbox(db)]
    assert [(d["change"], d["available"], d["transfer_no"]) for d in data] == [
        ("-1000.50", "48999.50", "60000001"), ("2000.00", "50999.50", "60000002")]


async def test_ipo_allotments(db: aiosqlite.Connection, bo: SandboxBackOffice) -> None:
    await subscribe(db, GOLD, "ipo", "email", now=EARLY)
    sec = secretary(db, bo)
    assert (await sec.scan()).notices == 2
    assert (await sec.scan()).notices == 0
    data = sorted((m["payload"]["data"]["code"], m["payload"]["data"]["amount"],
                   m["payload"]["data"]["pay_date"]) for m in await outbox(db))
    assert data == [("001399", "8880.00", "2024-06-03"), ("787901", "11900.00", "2024-06-03")]


async def test_price_alert_once_per_crossing(db: aiosqlite.Connection,
                                             bo: SandboxBackOffice) -> None:
    await subscribe(db, ORDINARY, "price_above", "sms", {"code": "600036", "price": "41.50"},
                    now=EARLY)
    sec = secretary(db, bo)
    assert (await sec.scan()).notices == 0                  # 41.20 now
    await bo.set_last("600036", D("41.60"))
    assert (await sec.scan()).notices == 1
    assert (await sec.scan()).notices == 0                  # still above: told once
    await bo.set_last("600036", D("41.00"))
    assert (await sec.scan()).notices == 0                  # back below: re-armed
    await bo.set_last("600036", D("41.55"))
    assert (await sec.scan()).notices == 1
    keys = [n["event_key"] for n in await rows(db, "SELECT * FROM notices ORDER BY id")]
    assert keys == ["price_above:41.50:2024-06-03:1", "price_above:41.50:2024-06-03:2"]
    [msg, _] = await outbox(db)
    assert (msg["payload"]["template"], msg["payload"]["data"]["price"],
            msg["payload"]["data"]["threshold"]) == ("price_alert", "41.60", "41.50")


async def test_no_price_alerts_outside_trading_sessions(db: aiosqlite.Connection,
                                                        bo: SandboxBackOffice) -> None:
    await subscribe(db, ORDINARY, "price_below", "sms", {"code": "600036", "price": "41.50"},
                    now=EARLY)
    bo.set_clock(at(12))
    assert (await secretary(db, bo).scan()).notices == 0    # lunch break
    bo.set_clock(at(13))
    assert (await secretary(db, bo).scan()).notices == 1


async def test_daily_summary_once_a_trading_day(db: aiosqlite.Connection,
                                                bo: SandboxBackOffice) -> None:
    await subscribe(db, ORDINARY, "daily_summary", "email", now=EARLY)
    await buy_and_fill(bo)
    sec = secretary(db, bo)
    assert (await sec.scan()).notices == 0                  # before 15:30
    bo.set_clock(at(15, 31))
    assert (await sec.scan()).notices == 1
    assert (await sec.scan()).notices == 0
    [msg] = await outbox(db)
    data = msg["payload"]["data"]
    assert (data["date"], data["fill_count"]) == ("2024-06-03", 1)
    # cash 50000 - 8205.08; 1200 CMB and 350 Ping An Bank at their last prices
    cash = D("50000.00") - D("8205.08")
    positions = {p.security.code: p for p in await bo.positions(ORDINARY)}
    assert D(data["total_assets"]) == r.money(
        cash + sum((p.market_value for p in positions.values()), D(0)))
    # 1000 held overnight from 41.20 to 40.90, 200 bought at 41.00; Ping An Bank unchanged
    assert data["pnl"] == "-320.00"
    bo.set_clock(at(16, 0, SATURDAY))
    assert (await sec.scan()).notices == 0                  # not a trading day


# --- subscriptions and failures -------------------------------------------------------------------


async def test_subscriptions_are_kept_once_and_can_end(db: aiosqlite.Connection) -> None:
    a, new_a = await subscribe(db, ORDINARY, "price_above", "sms",
                               {"code": "600519", "price": "1500"}, now=EARLY)
    b, new_b = await subscribe(db, ORDINARY, "price_above", "sms",
                               {"code": "600519", "price": D("1500.00")},
                               quiet=QuietHours.parse("22:00", "07:00"), by="A1001", now=EARLY)
    assert new_a and not new_b and a.id == b.id
    assert b.quiet == QuietHours.parse("22:00", "07:00")   # the latest wish
    assert [s.id for s in await list_subscriptions(db, ORDINARY)] == [a.id]
    assert not await unsubscribe(db, a.id, account=GOLD)    # not that customer's
    assert await unsubscribe(db, a.id, account=ORDINARY)
    assert not await unsubscribe(db, a.id)
    assert await list_subscriptions(db, ORDINARY) == []
    [ended] = await list_subscriptions(db, ORDINARY, include_inactive=True)
    assert not ended.active
    c, new_c = await subscribe(db, ORDINARY, "price_above", "sms",
                               {"code": "600519", "price": "1500"}, now=EARLY)
    assert new_c and c.id != a.id
    for bad in [dict(account="x1"), dict(kind="weather"), dict(channel="pigeon")]:
        args: dict[str, Any] = {"account": ORDINARY, "kind": "fill", "channel": "sms", **bad}
        with pytest.raises(ValueError):
            await subscribe(db, args["account"], args["kind"], args["channel"])


class FlakyFeed:
    """The sandbox, except that its fill journal fails on demand."""

    def __init__(self, bo: SandboxBackOffice) -> None:
        self.bo = bo
        self.failing = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bo, name)

    async def fills_since(self, position: str, limit: int) -> list[FillEntry]:
        if self.failing:
            raise BrokerError("back office unreachable")
        return await self.bo.fills_since(position, limit)


async def test_a_failing_back_office_loses_nothing(db: aiosqlite.Connection,
                                                   bo: SandboxBackOffice) -> None:
    await subscribe(db, ORDINARY, "fill", "sms", now=EARLY)
    await buy_and_fill(bo)
    flaky = FlakyFeed(bo)
    sec = Secretary(db, flaky, bo.now)
    report = await sec.scan()
    assert (report.notices, report.skipped) == (0, ("fills",))
    assert await rows(db, "SELECT * FROM secretary_cursors WHERE name = 'fills'") == []
    flaky.failing = False
    assert (await sec.scan()).notices == 1                  # late, not lost


async def test_run_scans_on_kick_and_stops_cleanly(db: aiosqlite.Connection,
                                                   bo: SandboxBackOffice) -> None:
    await subscribe(db, ORDINARY, "fill", "sms", now=EARLY)
    sec = Secretary(db, bo, bo.now, interval_s=3600)
    await sec.start()
    try:
        async with asyncio.timeout(10):
            while sec.last is None:
                await asyncio.sleep(0.01)
            await buy_and_fill(bo)
            sec.kick()
            while not await rows(db, "SELECT * FROM notices"):
                await asyncio.sleep(0.01)
    finally:
        await sec.close()
    assert len(await outbox(db)) == 1


# --- the sandbox's journal and allotments ---------------------------------------------------------


async def test_journal_positions_are_never_reused(bo: SandboxBackOffice) -> None:
    await buy_and_fill(bo)
    [entry] = await bo.fills_since("", 10)
    assert (entry.account, entry.fill.quantity) == (ORDINARY, 200)
    assert entry.fill_id == f"{entry.fill.order_no}-{entry.position}"
    assert await bo.fills_since(entry.position, 10) == []
    await seed_demo(bo)                          # resets the account: its fills are deleted
    await bo.set_last("600036", D("41.20"))
    await buy_and_fill(bo, key="b2")
    [later] = await bo.fills_since(entry.position, 10)
    assert int(later.position) > int(entry.position) and later.fill_id != entry.fill_id
    assert await bo.transfers_since("", 10) == []


async def test_allotments_are_reset_with_the_demo(bo: SandboxBackOffice) -> None:
    before = await bo.ipo_allotments(GOLD)
    assert [a.allotment_no for a in before] == ["IPO-0001", "IPO-0002"]
    assert before[0].amount == D("11900.00")
    await seed_demo(bo)
    assert await bo.ipo_allotments(GOLD) == before
    assert await bo.ipo_allotments(ORDINARY) == []
    with pytest.raises(ValueError):
        await bo.put_ipo_allotment(dataclasses.replace(before[0], quantity=0))
