"""The trading rules through the sandbox back office: queued orders, no-cancel windows, boards,
listings, and cash from today's sales (可用不可取), on a real SQLite file with a pinned clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from callcenter.broker import rules as r
from callcenter.broker.exchange_calendar import load_calendar
from callcenter.broker.interface import (
    Board,
    Customer,
    OrderStatus,
    RefusalCode,
    Security,
    Side,
    Tier,
    TransferDirection,
)
from callcenter.broker.market import Listing, StepResult
from callcenter.broker.sandbox import BankAccount, Holding, SandboxBackOffice, load_listings
from callcenter.errors import BrokerRefusal, ConfigError

D = Decimal
ACCOUNT = "20000001"
TRADING = SecretStr("135790")
FUND = SecretStr("246801")
BANK = SecretStr("802413")
CAL = load_calendar()
RULES = dataclasses.replace(r.DEFAULT_RULES, holidays=CAL.holidays, calendar_years=CAL.years)
MONDAY = dt.date(2026, 6, 1)
FRIDAY = dt.date(2026, 6, 5)
NEXT_MONDAY = dt.date(2026, 6, 8)

LISTINGS = [
    Listing(Security("600036", "招商银行", "China Merchants Bank", Board.MAIN, "SH"), D("40.00")),
    Listing(Security("688981", "中芯国际", "SMIC", Board.STAR, "SH"), D("88.00")),
    Listing(Security("688086", "*ST紫晶", "*ST Zijing", Board.STAR, "SH", True), D("5.00")),
    Listing(Security("920002", "万达轴承", "Wanda Bearing", Board.BSE, "BJ"), D("40.00")),
    Listing(Security("688999", "新股", "New Listing", Board.STAR, "SH", False, MONDAY),
            D("30.00")),
]


def at(day: dt.date, hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=r.SHANGHAI)


def refused(code: RefusalCode) -> pytest.RaisesExc[BrokerRefusal]:
    return pytest.raises(BrokerRefusal, match=f"^{code.value}:")


async def open_office(path: Path, when: dt.datetime,
                      rules: r.Rules = RULES) -> SandboxBackOffice:
    office = await SandboxBackOffice.open(path, rules=rules, clock=lambda: when,
                                          listings=LISTINGS, frozen=True)
    office.set_clock(when)
    return office


@pytest.fixture
async def bo(tmp_path: Path) -> AsyncIterator[SandboxBackOffice]:
    office = await open_office(tmp_path / "bo.db", at(MONDAY, 10))
    await office.put_account(
        Customer(ACCOUNT, "王芳", Tier.ORDINARY, ("13900000001",), None, "zh"),
        trading_password=TRADING, fund_password=FUND, cash=D("100000.00"),
        holdings=[Holding("600036", 1000, D("38.00")), Holding("688981", 150, D("80.00")),
                  Holding("920002", 50, D("35.00"))],
        banks=[BankAccount("ICBC", "工商银行", "6222****0001", D("0.00"), BANK)])
    yield office
    await office.close()


# --- orders outside hours: queued, exactly once, cancellable --------------------------------------


async def test_an_order_after_the_close_is_queued_for_the_next_opening(
        bo: SandboxBackOffice) -> None:
    bo.set_clock(at(FRIDAY, 16))
    order = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("40.00"), 100, "q-1")
    assert (order.status, order.sends_at) == (OrderStatus.QUEUED, at(NEXT_MONDAY, 9, 15))
    again = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("40.00"), 100, "q-1")
    assert again.order_no == order.order_no
    assert [o.order_no for o in await bo.orders_today(ACCOUNT)] == [order.order_no]
    assert (await bo.cash(ACCOUNT)).frozen > 0
    assert bo.market.resting() == []                       # not at the exchange yet
    bo.set_clock(at(dt.date(2026, 6, 6), 11))                # Saturday: still queued
    assert (await bo.order_by_key("q-1")).status is OrderStatus.QUEUED  # type: ignore[union-attr]


async def test_a_queued_order_is_cancelled_before_it_reaches_the_exchange(
        bo: SandboxBackOffice) -> None:
    bo.set_clock(at(FRIDAY, 16))
    order = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("40.00"), 100, "q-2")
    bo.set_clock(at(NEXT_MONDAY, 9, 14, 59))
    cancelled = await bo.cancel_order(ACCOUNT, order.order_no, "c-2")
    assert cancelled.status is OrderStatus.CANCELLED
    assert (await bo.cash(ACCOUNT)).frozen == 0
    bo.set_clock(at(NEXT_MONDAY, 10))
    assert bo.market.resting() == [] and await bo.fills_today(ACCOUNT) == []
    assert (await bo.order_by_key("q-2")).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_queued_order_reaches_the_exchange_exactly_once(bo: SandboxBackOffice,
                                                                tmp_path: Path) -> None:
    bo.set_clock(at(FRIDAY, 16))
    order = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("44.00"), 100, "q-3")
    await bo.close()
    # a restart before the opening: the order is still queued, not in the market
    office = await open_office(tmp_path / "bo.db", at(NEXT_MONDAY, 9, 0))
    try:
        assert office.market.resting() == []
        office.set_clock(at(NEXT_MONDAY, 9, 16))
        sent = await office.order_by_key("q-3")
        assert sent is not None and sent.status is OrderStatus.OPEN
        assert [x.order_no for x in office.market.resting()] == [order.order_no]
        await office.quote("600036")                          # more steps: not sent again
        assert len(office.market.resting()) == 1
    finally:
        await office.close()
    # another restart: rebuilt from the tables once; it fills once in continuous trading
    office = await open_office(tmp_path / "bo.db", at(NEXT_MONDAY, 9, 20))
    try:
        assert [x.order_no for x in office.market.resting()] == [order.order_no]
        office.set_clock(at(NEXT_MONDAY, 10))
        fills = await office.fills_today(ACCOUNT)
        assert [(f.order_no, f.quantity) for f in fills] == [(order.order_no, 100)]
        done = await office.order_by_key("q-3")
        assert done is not None and done.status is OrderStatus.FILLED
    finally:
        await office.close()


async def test_a_queued_order_whose_day_became_a_holiday_waits_for_the_next_window(
        bo: SandboxBackOffice, tmp_path: Path) -> None:
    bo.set_clock(at(FRIDAY, 16))
    order = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("39.00"), 100, "q-h")
    assert order.sends_at == at(NEXT_MONDAY, 9, 15)
    await bo.close()
    # the operator declares Monday a holiday and restarts on it: the order waits for Tuesday
    closed = dataclasses.replace(RULES, holidays=RULES.holidays | {NEXT_MONDAY})
    tuesday = NEXT_MONDAY + dt.timedelta(days=1)
    office = await open_office(tmp_path / "bo.db", at(NEXT_MONDAY, 10), closed)
    try:
        held = await office.order_by_key("q-h")
        assert held is not None and held.status is OrderStatus.QUEUED
        assert held.sends_at == at(tuesday, 9, 15) and office.market.resting() == []
        assert (await office.cash(ACCOUNT)).frozen > 0
        office.set_clock(at(tuesday, 10))
        sent = await office.order_by_key("q-h")
        assert sent is not None and sent.status is OrderStatus.OPEN
        assert sent.sends_at == at(tuesday, 9, 15)
        assert [x.order_no for x in office.market.resting()] == [order.order_no]
    finally:
        await office.close()


async def test_a_queued_order_due_on_a_new_holiday_goes_at_the_next_window_in_one_step(
        bo: SandboxBackOffice, tmp_path: Path) -> None:
    bo.set_clock(at(FRIDAY, 16))
    order = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("39.00"), 100, "q-h2")
    await bo.close()
    closed = dataclasses.replace(RULES, holidays=RULES.holidays | {NEXT_MONDAY})
    tuesday = NEXT_MONDAY + dt.timedelta(days=1)
    office = await open_office(tmp_path / "bo.db", at(tuesday, 10), closed)
    try:
        sent = await office.order_by_key("q-h2")
        assert sent is not None and sent.status is OrderStatus.OPEN
        assert sent.sends_at == at(tuesday, 9, 15)
        assert [x.order_no for x in office.market.resting()] == [order.order_no]
    finally:
        await office.close()


async def test_a_queued_order_cancelled_by_another_process_meanwhile_is_not_sent(
        bo: SandboxBackOffice, tmp_path: Path) -> None:
    bo.set_clock(at(FRIDAY, 16))
    order = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("39.00"), 100, "q-r")
    bo.set_clock(at(NEXT_MONDAY, 9, 20))
    step = bo.market.step

    def other_process_cancels_first(now: dt.datetime) -> StepResult:
        # Another writer on the same ledger (``callcenter sandbox``) between the read of the
        # queued orders and the sending transaction.
        with sqlite3.connect(tmp_path / "bo.db") as other:
            other.execute("UPDATE bo_orders SET status = 'cancelled', frozen = '0.00' "
                          "WHERE order_no = ? AND status = 'queued'", (order.order_no,))
            other.execute("UPDATE bo_cash SET frozen = '0.00' WHERE account = ?", (ACCOUNT,))
        return step(now)

    bo.market.step = other_process_cancels_first  # type: ignore[method-assign]
    got = await bo.order_by_key("q-r")
    assert got is not None and got.status is OrderStatus.CANCELLED
    assert bo.market.resting() == [] and (await bo.cash(ACCOUNT)).frozen == 0


async def test_an_order_in_the_pre_open_waits_for_0930(bo: SandboxBackOffice) -> None:
    bo.set_clock(at(MONDAY, 9, 27))
    order = await bo.place_order(ACCOUNT, Side.SELL, "600036", D("40.00"), 100, "q-4")
    assert order.sends_at == at(MONDAY, 9, 30)
    with refused(RefusalCode.INSUFFICIENT_SHARES):         # the queued sell holds its shares
        await bo.preview_order(ACCOUNT, Side.SELL, "600036", D("40.00"), 1000)


async def test_a_queued_order_outside_the_next_days_limits_is_refused_when_queued(
        bo: SandboxBackOffice) -> None:
    await bo.set_last("600036", D("42.00"))                  # Friday's close sets Monday's band
    bo.set_clock(at(FRIDAY, 20))
    with refused(RefusalCode.PRICE_LIMIT) as info:
        await bo.place_order(ACCOUNT, Side.BUY, "600036", D("46.21"), 100, "q-5")
    assert info.value.params == {"low": "37.80", "high": "46.20"}


async def test_orders_outside_hours_refused_when_so_set(tmp_path: Path) -> None:
    rules = dataclasses.replace(RULES, after_hours=r.AfterHours.REFUSE)
    office = await open_office(tmp_path / "bo.db", at(FRIDAY, 16), rules)
    try:
        await office.put_account(
            Customer(ACCOUNT, "王芳", Tier.ORDINARY, (), None, "zh"),
            trading_password=TRADING, fund_password=FUND, cash=D("100000.00"))
        with refused(RefusalCode.MARKET_CLOSED):
            await office.place_order(ACCOUNT, Side.BUY, "600036", D("40.00"), 100, "r-1")
        assert await office.order_by_key("r-1") is None
    finally:
        await office.close()


# --- no cancels in the call auctions --------------------------------------------------------------


async def test_no_cancels_0920_to_0930_and_in_the_closing_call(bo: SandboxBackOffice) -> None:
    bo.set_clock(at(MONDAY, 9, 16))
    order = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("39.00"), 100, "o-1")
    assert order.status is OrderStatus.OPEN
    bo.set_clock(at(MONDAY, 9, 20))
    with refused(RefusalCode.CANCEL_CLOSED) as info:
        await bo.cancel_order(ACCOUNT, order.order_no, "c-1")
    assert info.value.params == {"until": "09:30"}
    bo.set_clock(at(MONDAY, 9, 30))
    assert (await bo.cancel_order(ACCOUNT, order.order_no, "c-1")).status is \
        OrderStatus.CANCELLED
    bo.set_clock(at(MONDAY, 14, 56, 59))
    late = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("39.00"), 100, "o-2")
    bo.set_clock(at(MONDAY, 14, 57))
    with refused(RefusalCode.CANCEL_CLOSED) as info:
        await bo.cancel_order(ACCOUNT, late.order_no, "c-2")
    assert info.value.params == {"reason": "closing"}
    bo.set_clock(at(MONDAY, 15, 0))                           # expired at the close
    done = await bo.order_by_key("o-2")
    assert done is not None and done.status is OrderStatus.CANCELLED


# --- boards and listings --------------------------------------------------------------------------


async def test_star_and_bse_quantities(bo: SandboxBackOffice) -> None:
    with refused(RefusalCode.MIN_QUANTITY):
        await bo.preview_order(ACCOUNT, Side.BUY, "688981", D("88.00"), 199)
    assert (await bo.preview_order(ACCOUNT, Side.BUY, "688981", D("88.00"), 201)).quantity == 201
    with refused(RefusalCode.ODD_LOT) as info:                 # 150 held: sold whole
        await bo.preview_order(ACCOUNT, Side.SELL, "688981", D("88.00"), 100)
    assert info.value.params == {"odd": "150"}
    await bo.preview_order(ACCOUNT, Side.SELL, "688981", D("88.00"), 150)
    await bo.preview_order(ACCOUNT, Side.BUY, "920002", D("40.00"), 101)
    await bo.preview_order(ACCOUNT, Side.SELL, "920002", D("40.00"), 50)
    with refused(RefusalCode.MAX_QUANTITY):
        await bo.preview_order(ACCOUNT, Side.BUY, "920002", D("40.00"), 1_000_001)


async def test_limits_of_st_on_star_and_of_a_new_listing(bo: SandboxBackOffice) -> None:
    st = await bo.quote("688086")
    assert (st.limit_down, st.limit_up) == (D("4.00"), D("6.00"))   # 20%, not 5%
    new = await bo.quote("688999")
    assert (new.limit_down, new.limit_up) == (None, None)           # listing day
    await bo.preview_order(ACCOUNT, Side.BUY, "688999", D("90.00"), 200)
    bo.set_clock(at(NEXT_MONDAY, 10))                                # 6th trading day
    new = await bo.quote("688999")
    assert new.limit_up is not None and new.limit_up == (new.prev_close * D("1.2")).quantize(
        r.CENT)
    with refused(RefusalCode.PRICE_LIMIT):
        await bo.preview_order(ACCOUNT, Side.BUY, "688999", new.limit_up + r.CENT, 200)


def test_a_listing_whose_board_contradicts_its_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "securities.yaml"
    path.write_text('securities:\n  - {code: "688981", name: 中芯国际, name_en: SMIC, '
                    'board: main, exchange: SH, prev_close: "88.00"}\n', "utf-8")
    with pytest.raises(ConfigError, match="688981 is a star code on SH, but the listing says "
                                          "main"):
        load_listings(path)
    path.write_text('securities:\n  - {code: "600518", name: ST康美, name_en: ST Kangmei, '
                    'board: st, exchange: SH, prev_close: "3.30"}\n', "utf-8")
    with pytest.raises(ConfigError, match="risk_warning: true"):
        load_listings(path)


def test_the_packaged_listings_cover_every_board_and_status() -> None:
    listed = [x.security for x in load_listings()]
    assert {s.board for s in listed} == set(Board)
    assert {s.board for s in listed if s.risk_warning} >= {Board.MAIN, Board.STAR}
    assert any(s.listed is not None for s in listed)
    assert {s.exchange for s in listed} == {"SH", "SZ", "BJ"}


# --- 可用不可取 (cash from today's sales) -----------------------------------------------------


async def test_cash_from_todays_sale_buys_today_but_reaches_the_bank_tomorrow(
        bo: SandboxBackOffice) -> None:
    before = await bo.cash(ACCOUNT)
    assert before.withdrawable == before.available == D("100000.00")
    await bo.place_order(ACCOUNT, Side.SELL, "600036", D("39.50"), 1000, "s-1")
    bo.set_clock(at(MONDAY, 10, 5))                            # the book refills meanwhile
    assert (await bo.order_by_key("s-1")).status is OrderStatus.FILLED  # type: ignore[union-attr]
    cash = await bo.cash(ACCOUNT)
    proceeds = cash.available - before.available
    assert proceeds > D("39000") and cash.withdrawable == D("100000.00")
    out = TransferDirection.SECURITIES_TO_BANK
    with refused(RefusalCode.OVER_WITHDRAWABLE) as info:
        await bo.transfer(ACCOUNT, out, D("100000.01"), FUND, None, "t-1")
    assert info.value.params == {"withdrawable": "100000.00"}
    # it buys today: a buy uses today's proceeds first
    buy = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("40.50"), 500, "b-1")
    bo.set_clock(at(MONDAY, 10, 10))
    assert (await bo.order_by_key("b-1")).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert buy.order_no
    assert (await bo.cash(ACCOUNT)).withdrawable == D("100000.00")
    done = await bo.transfer(ACCOUNT, out, D("100000.00"), FUND, None, "t-2")
    assert done.amount == D("100000.00")
    bo.set_clock(at(dt.date(2026, 6, 2), 10))                    # the next trading day
    cash = await bo.cash(ACCOUNT)
    assert cash.withdrawable == cash.available > 0


# --- call auctions through the ledger -------------------------------------------------------------


async def test_the_opening_auction_fills_at_0925_once_across_a_restart(
        bo: SandboxBackOffice, tmp_path: Path) -> None:
    tuesday = MONDAY + dt.timedelta(days=1)
    bo.set_clock(at(tuesday, 9, 16))
    buy = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("41.00"), 300, "a-1")
    sell = await bo.place_order(ACCOUNT, Side.SELL, "600036", D("39.00"), 200, "a-2")
    assert (buy.status, sell.status) == (OrderStatus.OPEN, OrderStatus.OPEN)
    bo.set_clock(at(tuesday, 9, 24, 59))
    assert await bo.fills_today(ACCOUNT) == []              # marketable, but the call rests
    bo.set_clock(at(tuesday, 9, 25))
    fills = await bo.fills_today(ACCOUNT)
    assert sorted((f.order_no, f.quantity, f.at) for f in fills) == [
        (buy.order_no, 300, at(tuesday, 9, 25)), (sell.order_no, 200, at(tuesday, 9, 25))]
    [price] = {f.price for f in fills}                      # one price, between the limits
    assert D("39.00") < price < D("41.00")
    cash = await bo.cash(ACCOUNT)
    amount = price * 300
    assert cash.frozen == 0                                 # the buy's hold released: filled
    await bo.close()
    office = await open_office(tmp_path / "bo.db", at(tuesday, 9, 26))
    try:
        office.set_clock(at(tuesday, 10))
        again = await office.fills_today(ACCOUNT)
        assert sorted(again, key=lambda f: f.order_no) == sorted(fills, key=lambda f: f.order_no)
        after = await office.cash(ACCOUNT)
        # the buy paid once, with one minimum commission; the sale came in once
        buy_fees = r.fees(Side.BUY, amount, RULES).total
        sell_amount = price * 200
        assert after.balance == D("100000.00") - amount - buy_fees + sell_amount - r.fees(
            Side.SELL, sell_amount, RULES).total
    finally:
        await office.close()


async def test_an_order_in_the_closing_call_fills_at_1500_only(
        bo: SandboxBackOffice, tmp_path: Path) -> None:
    bo.set_clock(at(MONDAY, 14, 57))
    order = await bo.place_order(ACCOUNT, Side.BUY, "600036", D("40.50"), 100, "z-1")
    bo.set_clock(at(MONDAY, 14, 59, 59))
    assert await bo.fills_today(ACCOUNT) == []              # marketable, but the call rests
    bo.set_clock(at(MONDAY, 15))
    [fill] = await bo.fills_today(ACCOUNT)
    assert (fill.order_no, fill.quantity, fill.at) == (order.order_no, 100, at(MONDAY, 15))
    assert fill.price <= D("40.50")
    await bo.close()
    office = await open_office(tmp_path / "bo.db", at(MONDAY, 15))
    try:
        assert len(await office.fills_today(ACCOUNT)) == 1  # the auction is not held again
        done = await office.order_by_key("z-1")
        assert done is not None and done.status is OrderStatus.FILLED
    finally:
        await office.close()
