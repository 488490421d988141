"""The sandbox back office on a real SQLite file: refusals, money, idempotency, locks, market."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import shutil
from collections.abc import AsyncIterator
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from callcenter.broker import rules as r
from callcenter.broker.interface import (
    Fill,
    OrderStatus,
    PasswordKind,
    RefusalCode,
    Side,
    Tier,
    TransferDirection,
)
from callcenter.broker.passwords import hash_password, verify_password
from callcenter.broker.sandbox import SCHEMA, SandboxBackOffice
from callcenter.broker.seed import (
    DEMO_ACCOUNTS,
    DEMO_BANK_PASSWORD,
    DEMO_FUND_PASSWORD,
    DEMO_TRADING_PASSWORD,
    GOLD,
    NO_BANK,
    ORDINARY,
    PLATINUM,
    SILVER,
    seed_demo,
)
from callcenter.errors import BrokerError, BrokerRefusal
from callcenter.store.db import open_db
from callcenter.store.migrations import MIGRATIONS

D = Decimal
MONDAY = dt.date(2024, 6, 3)
TUESDAY = dt.date(2024, 6, 4)
TRADING = SecretStr(DEMO_TRADING_PASSWORD)
FUND = SecretStr(DEMO_FUND_PASSWORD)
BANK = SecretStr(DEMO_BANK_PASSWORD)
WRONG = SecretStr("975310")
OUT = TransferDirection.SECURITIES_TO_BANK
IN = TransferDirection.BANK_TO_SECURITIES


def at(hh: int, mm: int = 0, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=r.SHANGHAI)


def refused(code: RefusalCode) -> pytest.RaisesExc[BrokerRefusal]:
    return pytest.raises(BrokerRefusal, match=f"^{code.value}:")


def assert_all_decimal(obj: object) -> None:
    """Every money-like field of a result is a Decimal: no float sneaks through."""
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        assert not isinstance(value, float), f.name
        if f.name in {"price", "amount", "fees", "total", "balance", "available", "frozen",
                      "cost_price", "last", "balance_after", "prev_close", "open", "high",
                      "low", "limit_up", "limit_down"}:
            assert type(value) is Decimal, f.name


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo ledger seeded once (password hashing is deliberately slow), copied per test."""
    path = tmp_path_factory.mktemp("template") / "backoffice.db"

    async def build() -> None:
        bo = await SandboxBackOffice.open(path, clock=lambda: at(10))
        await seed_demo(bo)
        await bo.close()

    asyncio.run(build())
    return path


async def open_copy(template: Path, tmp_path: Path, *, frozen: bool = True) -> SandboxBackOffice:
    path = tmp_path / "backoffice.db"
    if not path.exists():
        shutil.copy(template, path)
    bo = await SandboxBackOffice.open(path, clock=lambda: at(10), frozen=frozen)
    return bo


@pytest.fixture
async def bo(template: Path, tmp_path: Path) -> AsyncIterator[SandboxBackOffice]:
    office = await open_copy(template, tmp_path)
    yield office
    await office.close()


# --- market and customers -------------------------------------------------------------------------


async def test_quote_and_security(bo: SandboxBackOffice) -> None:
    q = await bo.quote("600519")
    assert (q.security.name, q.prev_close, q.limit_up, q.limit_down) == (
        "贵州茅台", D("1480.00"), D("1628.00"), D("1332.00"))
    assert_all_decimal(q)
    assert (await bo.security("688981")).board == "star"
    assert (await bo.quote("600518")).limit_up == D("3.63")        # main-board ST: 10% of 3.30
    for bad in ("999999", "60051", ""):
        with refused(RefusalCode.UNKNOWN_CODE):
            await bo.quote(bad)


async def test_customers_and_phones(bo: SandboxBackOffice) -> None:
    gold = await bo.customer(GOLD)
    assert (gold.tier, gold.manager) == (Tier.GOLD, "A1001")
    assert (await bo.customer(PLATINUM)).manager == "A1002"
    tiers = {(await bo.customer(a.customer.account)).tier for a in DEMO_ACCOUNTS}
    assert tiers == set(Tier)
    assert (await bo.customer_by_phone("13900000003")) == gold
    assert (await bo.customer_by_phone("+86 138-0000-0003")) == gold
    assert await bo.customer_by_phone("13899999999") is None
    with refused(RefusalCode.UNKNOWN_ACCOUNT):
        await bo.customer("99999999")


async def test_announcements(bo: SandboxBackOffice) -> None:
    items = await bo.announcements()
    assert len(items) == 3
    assert items[0].published >= items[-1].published
    assert all(a.body_zh and a.body_en for a in items)


# --- passwords ------------------------------------------------------------------------------------


def test_password_hash_format_and_check() -> None:
    stored = hash_password("135790")
    scheme, salt, key = stored.split("$")
    assert scheme == "scrypt" and "135790" not in stored
    assert verify_password(SecretStr("135790"), stored)
    assert not verify_password("135791", stored)
    assert hash_password("135790") != stored                        # salted
    with pytest.raises(BrokerError, match="malformed"):
        verify_password("135790", "scrypt$nope")
    with pytest.raises(BrokerError, match="scheme"):
        verify_password("135790", f"md5${salt}${key}")


async def test_passwords_are_stored_hashed(bo: SandboxBackOffice, tmp_path: Path) -> None:
    rows = await bo._all("SELECT trading_hash, fund_hash FROM bo_customers")
    for row in rows:
        for stored in row:
            assert stored.startswith("scrypt$")
            assert DEMO_TRADING_PASSWORD not in stored and DEMO_FUND_PASSWORD not in stored


async def test_verify_password_and_counts(bo: SandboxBackOffice) -> None:
    assert (await bo.verify_password(ORDINARY, PasswordKind.TRADING, TRADING)).account == ORDINARY
    for remaining in (4, 3):
        with refused(RefusalCode.BAD_PASSWORD) as info:
            await bo.verify_password(ORDINARY, PasswordKind.TRADING, WRONG)
        assert info.value.params == {"kind": "trading", "remaining": str(remaining)}
        assert "975310" not in str(info.value)
    assert await bo.lock_state(ORDINARY, PasswordKind.TRADING) == (2, False)
    await bo.verify_password(ORDINARY, PasswordKind.TRADING, TRADING)       # resets the count
    assert await bo.lock_state(ORDINARY, PasswordKind.TRADING) == (0, False)
    with refused(RefusalCode.UNKNOWN_ACCOUNT):
        await bo.verify_password("99999999", PasswordKind.TRADING, TRADING)


async def test_lockout_persists_across_reopen(template: Path, tmp_path: Path) -> None:
    bo = await open_copy(template, tmp_path)
    for _ in range(4):
        with refused(RefusalCode.BAD_PASSWORD):
            await bo.verify_password(SILVER, PasswordKind.TRADING, WRONG)
    await bo.close()
    bo = await open_copy(template, tmp_path)                      # counts survive a restart
    with refused(RefusalCode.ACCOUNT_LOCKED) as info:             # the 5th locks
        await bo.verify_password(SILVER, PasswordKind.TRADING, WRONG)
    assert info.value.params == {"kind": "trading"}
    await bo.close()
    bo = await open_copy(template, tmp_path)
    try:
        with refused(RefusalCode.ACCOUNT_LOCKED):                 # even the right one
            await bo.verify_password(SILVER, PasswordKind.TRADING, TRADING)
        # the fund password is a separate lock
        await bo.verify_password(SILVER, PasswordKind.FUND, FUND)
        await bo.unlock(SILVER, PasswordKind.TRADING)
        await bo.verify_password(SILVER, PasswordKind.TRADING, TRADING)
    finally:
        await bo.close()


async def test_fund_password_locks_after_three(bo: SandboxBackOffice) -> None:
    for _ in range(2):
        with refused(RefusalCode.BAD_PASSWORD):
            await bo.verify_password(GOLD, PasswordKind.FUND, WRONG)
    with refused(RefusalCode.ACCOUNT_LOCKED):
        await bo.verify_password(GOLD, PasswordKind.FUND, WRONG)
    assert await bo.lock_state(GOLD, PasswordKind.FUND) == (3, True)
    with refused(RefusalCode.ACCOUNT_LOCKED):                     # and so do transfers
        await bo.transfer(GOLD, OUT, D("100.00"), FUND, None, "t-locked")


@pytest.mark.parametrize(("kind", "right", "limit"), [
    (PasswordKind.TRADING, TRADING, 5), (PasswordKind.FUND, FUND, 3),
    (PasswordKind.BANK, BANK, 3)])
async def test_each_kind_counts_across_reopen_and_locks_on_the_last(
        template: Path, tmp_path: Path, kind: PasswordKind, right: SecretStr,
        limit: int) -> None:
    """One wrong attempt per "call" (a reopened back office): the count goes on where the last
    call left it, the last attempt is ACCOUNT_LOCKED (never BAD_PASSWORD with 0 left), and the
    lock holds the next call, for the right password too, for that kind alone."""
    for tried in range(1, limit + 1):
        bo = await open_copy(template, tmp_path)
        try:
            if tried < limit:
                with refused(RefusalCode.BAD_PASSWORD) as info:
                    await bo.verify_password(PLATINUM, kind, WRONG)
                assert info.value.params == {"kind": kind.value,
                                             "remaining": str(limit - tried)}
            else:
                with refused(RefusalCode.ACCOUNT_LOCKED) as info:
                    await bo.verify_password(PLATINUM, kind, WRONG)
                assert info.value.params == {"kind": kind.value}
            assert await bo.lock_state(PLATINUM, kind) == (tried, tried == limit)
        finally:
            await bo.close()
    bo = await open_copy(template, tmp_path)
    try:
        with refused(RefusalCode.ACCOUNT_LOCKED):
            await bo.verify_password(PLATINUM, kind, right)
        for other, password in ((PasswordKind.TRADING, TRADING), (PasswordKind.FUND, FUND),
                                (PasswordKind.BANK, BANK)):
            if other is not kind:
                assert (await bo.verify_password(PLATINUM, other, password)).account == PLATINUM
        await bo.unlock(PLATINUM, kind)
        assert (await bo.verify_password(PLATINUM, kind, right)).account == PLATINUM
    finally:
        await bo.close()


async def test_a_locked_bank_password_stops_transfers_in_only(bo: SandboxBackOffice) -> None:
    for key in ("in-1", "in-2"):
        with refused(RefusalCode.BAD_PASSWORD):
            await bo.transfer(ORDINARY, IN, D("10.00"), FUND, WRONG, key)
    with refused(RefusalCode.ACCOUNT_LOCKED) as info:
        await bo.transfer(ORDINARY, IN, D("10.00"), FUND, WRONG, "in-3")
    assert info.value.params == {"kind": "bank"}
    with refused(RefusalCode.ACCOUNT_LOCKED):
        await bo.transfer(ORDINARY, IN, D("10.00"), FUND, BANK, "in-4")
    assert [await bo.transfer_by_key(f"in-{n}") for n in range(1, 5)] == [None] * 4
    assert (await bo.transfer(ORDINARY, OUT, D("10.00"), FUND, None, "out")).amount == D("10.00")
    with refused(RefusalCode.NO_BANK_LINK):
        await bo.verify_password(NO_BANK, PasswordKind.BANK, BANK)
    with pytest.raises(BrokerError, match="at the bank"):
        await bo.change_password(ORDINARY, PasswordKind.BANK, BANK, SecretStr("730591"))


async def test_concurrent_wrong_passwords_all_count(bo: SandboxBackOffice) -> None:
    results = await asyncio.gather(
        *(bo.verify_password(GOLD, PasswordKind.TRADING, WRONG) for _ in range(5)),
        return_exceptions=True)
    codes = sorted(e.code for e in results if isinstance(e, BrokerRefusal))
    assert codes == ["account_locked"] + ["bad_password"] * 4
    assert await bo.lock_state(GOLD, PasswordKind.TRADING) == (5, True)


async def test_change_password(bo: SandboxBackOffice) -> None:
    for weak in ("888888", "123456", "654321", "12345", "000001"):
        with refused(RefusalCode.WEAK_PASSWORD):
            await bo.change_password(ORDINARY, PasswordKind.TRADING, TRADING, SecretStr(weak))
    with refused(RefusalCode.WEAK_PASSWORD) as info:                     # part of the phone
        await bo.change_password(ORDINARY, PasswordKind.TRADING, TRADING, SecretStr("380000"))
    assert info.value.params == {"reason": "personal"}
    with refused(RefusalCode.WEAK_PASSWORD):
        await bo.change_password(ORDINARY, PasswordKind.TRADING, TRADING, TRADING)
    assert await bo.lock_state(ORDINARY, PasswordKind.TRADING) == (0, False)  # nothing spent
    with refused(RefusalCode.BAD_PASSWORD):
        await bo.change_password(ORDINARY, PasswordKind.TRADING, WRONG, SecretStr("730591"))
    await bo.change_password(ORDINARY, PasswordKind.TRADING, TRADING, SecretStr("730591"))
    await bo.verify_password(ORDINARY, PasswordKind.TRADING, SecretStr("730591"))
    with refused(RefusalCode.BAD_PASSWORD):
        await bo.verify_password(ORDINARY, PasswordKind.TRADING, TRADING)


# --- account queries ------------------------------------------------------------------------------


async def test_cash_positions_and_t_plus_one(bo: SandboxBackOffice) -> None:
    cash = await bo.cash(ORDINARY)
    assert (cash.balance, cash.available, cash.frozen) == (D("50000.00"), D("50000.00"), D(0))
    assert_all_decimal(cash)
    positions = {p.security.code: p for p in await bo.positions(GOLD)}
    assert (positions["601318"].quantity, positions["601318"].sellable) == (2000, 1500)
    assert positions["601318"].cost_price == D("48.00")
    for p in positions.values():
        assert_all_decimal(p)
        assert type(p.market_value) is Decimal
    silver = {p.security.code: p for p in await bo.positions(SILVER)}
    assert silver["600519"].sellable == 0                              # bought today
    bo.set_clock(at(10, 0, TUESDAY))                                   # next trading day
    silver = {p.security.code: p for p in await bo.positions(SILVER)}
    assert silver["600519"].sellable == 100
    assert (await bo.quote("600519")).at == at(10, 0, TUESDAY)


# --- orders ---------------------------------------------------------------------------------------


async def test_order_refusals(bo: SandboxBackOffice) -> None:
    async def place(side: Side, code: str, price: str, qty: int, account: str = ORDINARY) -> None:
        await bo.place_order(account, side, code, D(price), qty, f"k-{side}-{code}-{price}-{qty}")

    with refused(RefusalCode.UNKNOWN_ACCOUNT):
        await place(Side.BUY, "600036", "41.20", 100, account="99999999")
    with refused(RefusalCode.UNKNOWN_CODE):
        await place(Side.BUY, "123456", "10.00", 100)
    with refused(RefusalCode.PRICE_LIMIT) as info:
        await place(Side.BUY, "600036", "45.33", 100)
    assert info.value.params == {"low": "37.08", "high": "45.32"}
    with refused(RefusalCode.PRICE_TICK):
        await place(Side.BUY, "600036", "41.205", 100)
    with refused(RefusalCode.INVALID_PRICE):
        await place(Side.BUY, "600036", "0", 100)
    with refused(RefusalCode.LOT_SIZE):
        await place(Side.BUY, "600036", "41.20", 150)
    with refused(RefusalCode.INVALID_QUANTITY):
        await place(Side.BUY, "600036", "41.20", 0)
    with refused(RefusalCode.INSUFFICIENT_FUNDS):
        await place(Side.BUY, "600519", "1480.00", 100)               # 148 038.48 > 50 000
    with refused(RefusalCode.INSUFFICIENT_SHARES) as info:
        await place(Side.SELL, "600036", "41.20", 1100)
    assert info.value.params == {"sellable": "1000"}
    with refused(RefusalCode.INSUFFICIENT_SHARES):
        await place(Side.SELL, "600519", "1480.00", 100)              # not held
    with refused(RefusalCode.ODD_LOT):        # part of the odd lot: its own code (was lot_size)
        await place(Side.SELL, "000001", "11.50", 30)
    with refused(RefusalCode.INSUFFICIENT_SHARES):                    # T+1
        await place(Side.SELL, "600519", "1480.00", 100, account=SILVER)
    await bo.set_suspended("600036", True)
    with refused(RefusalCode.SUSPENDED):
        await place(Side.BUY, "600036", "41.20", 100)
    await bo.set_suspended("600036", False)
    bo.set_clock(at(12, 0))
    # the default queues orders outside hours (test_trading_rules_sandbox.py); refused when so set
    bo.rules = dataclasses.replace(bo.rules, after_hours=r.AfterHours.REFUSE)
    with refused(RefusalCode.MARKET_CLOSED):
        await place(Side.BUY, "600036", "41.20", 100)
    with pytest.raises(TypeError):
        await bo.place_order(ORDINARY, Side.BUY, "600036", 41.2, 100,  # type: ignore[arg-type]
                             "float")
    assert await bo.orders_today(ORDINARY) == []
    assert (await bo.cash(ORDINARY)).frozen == 0


async def test_buying_power_covers_the_fees(bo: SandboxBackOffice) -> None:
    # 10000005 has 8000.00: 7900 of shares is fine only if the fees fit too.
    preview = await bo.preview_order(NO_BANK, Side.BUY, "601398", D("6.80"), 1100)
    assert (preview.amount, preview.fees, preview.total) == (D("7480.00"), D("5.07"),
                                                             D("7485.07"))
    assert_all_decimal(preview)
    ok = await bo.preview_order(NO_BANK, Side.BUY, "600000", D("10.00"), 700)
    assert ok.total == D("7005.07")
    with refused(RefusalCode.INSUFFICIENT_FUNDS) as info:
        await bo.preview_order(NO_BANK, Side.BUY, "600000", D("10.00"), 800)
    assert info.value.params == {"available": "8000.00", "needed": "8005.08"}


async def test_buy_freezes_cash_once_per_key(bo: SandboxBackOffice) -> None:
    price = D("41.00")                                        # below last 41.20: rests
    order = await bo.place_order(ORDINARY, Side.BUY, "600036", price, 1000, "key-1")
    assert order.status is OrderStatus.OPEN and len(order.order_no) == 8
    assert order.order_no.isdigit()
    assert_all_decimal(order)
    frozen = D("41000.00") + D("10.25") + D("0.41")
    cash = await bo.cash(ORDINARY)
    assert (cash.frozen, cash.available) == (frozen, D("50000.00") - frozen)
    again = await bo.place_order(ORDINARY, Side.BUY, "600036", price, 1000, "key-1")
    assert again == order
    assert (await bo.cash(ORDINARY)).frozen == frozen
    assert await bo.order_by_key("key-1") == order
    assert await bo.order_by_key("nope") is None
    with pytest.raises(BrokerError, match="different order"):
        await bo.place_order(ORDINARY, Side.BUY, "600036", price, 100, "key-1")
    assert len(await bo.orders_today(ORDINARY)) == 1


async def test_concurrent_same_key_makes_one_order(bo: SandboxBackOffice) -> None:
    orders = await asyncio.gather(*(
        bo.place_order(GOLD, Side.BUY, "601318", D("52.00"), 100, "same") for _ in range(8)))
    assert len({o.order_no for o in orders}) == 1
    assert len(await bo.orders_today(GOLD)) == 1
    assert (await bo.cash(GOLD)).frozen == D("5200.00") + D("5.00") + D("0.05")


async def test_caller_cancelled_mid_order_loses_nothing(bo: SandboxBackOffice) -> None:
    task = asyncio.create_task(
        bo.place_order(GOLD, Side.BUY, "601318", D("52.00"), 100, "hung-up"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    made = await bo.order_by_key("hung-up")                  # the order went through whole
    assert made is not None and made.status is OrderStatus.OPEN
    again = await bo.place_order(GOLD, Side.BUY, "601318", D("52.00"), 100, "hung-up")
    assert again.order_no == made.order_no
    assert (await bo.cash(GOLD)).frozen == D("5205.05")


async def test_cancel_releases_cash_and_is_idempotent(bo: SandboxBackOffice) -> None:
    order = await bo.place_order(ORDINARY, Side.BUY, "600036", D("41.00"), 100, "o")
    assert (await bo.cash(ORDINARY)).frozen == D("4105.04")
    with refused(RefusalCode.ORDER_NOT_FOUND):
        await bo.cancel_order(SILVER, order.order_no, "c-other")    # not their order
    with refused(RefusalCode.ORDER_NOT_FOUND):
        await bo.cancel_order(ORDINARY, "39999999", "c-none")
    cancelled = await bo.cancel_order(ORDINARY, order.order_no, "c1")
    assert (cancelled.status, cancelled.reason) == (OrderStatus.CANCELLED, "cancelled by customer")
    cash = await bo.cash(ORDINARY)
    assert (cash.frozen, cash.available) == (D(0), D("50000.00"))
    assert await bo.cancel_order(ORDINARY, order.order_no, "c1") == cancelled
    assert (await bo.cash(ORDINARY)).available == D("50000.00")     # released once
    with refused(RefusalCode.NOT_CANCELLABLE) as info:
        await bo.cancel_order(ORDINARY, order.order_no, "c2")
    assert info.value.params == {"status": "cancelled"}
    await bo.set_last("600036", D("41.00"))                         # a cancelled order never fills
    assert (await bo.orders_today(ORDINARY))[0].status is OrderStatus.CANCELLED


async def test_buy_fills_in_session_not_at_lunch(bo: SandboxBackOffice) -> None:
    order = await bo.place_order(ORDINARY, Side.BUY, "600036", D("41.00"), 200, "b")
    bo.set_clock(at(11, 45))
    await bo.set_last("600036", D("40.90"))                         # crosses at lunch
    assert (await bo.order_by_key("b")).status is OrderStatus.OPEN  # type: ignore[union-attr]
    assert await bo.fills_today(ORDINARY) == []
    bo.set_clock(at(13, 0))
    [filled] = await bo.orders_today(ORDINARY)
    assert (filled.status, filled.filled) == (OrderStatus.FILLED, 200)
    [fill] = await bo.fills_today(ORDINARY)
    # The book at 13:00 (seed 0) asks 40.90 for 700: the market moved through the resting buy,
    # which is the maker and fills at its own limit 41.00 (SSE/SZSE: a trade is at the price of
    # the order that was waiting).
    assert (fill.order_no, fill.price, fill.quantity, fill.at) == (
        order.order_no, D("41.00"), 200, at(13, 0))
    assert_all_decimal(fill)
    cash = await bo.cash(ORDINARY)                                  # 8200 + 5.00 + 0.08
    assert (cash.balance, cash.frozen) == (D("50000.00") - D("8205.08"), D(0))
    cmb = {p.security.code: p for p in await bo.positions(ORDINARY)}["600036"]
    assert (cmb.quantity, cmb.sellable) == (1200, 1000)             # T+1 on the new shares
    assert cmb.cost_price == ((D("38500.00") + D("8205.08")) / 1200).quantize(D("0.01"))
    with refused(RefusalCode.INSUFFICIENT_SHARES):
        await bo.place_order(ORDINARY, Side.SELL, "600036", D("41.00"), 1100, "s-too-many")


async def test_sell_fill_pays_stamp_duty_and_odd_lot_goes_whole(bo: SandboxBackOffice) -> None:
    await bo.place_order(ORDINARY, Side.SELL, "000001", D("11.60"), 350, "odd")   # rests
    with refused(RefusalCode.INSUFFICIENT_SHARES) as info:          # offered already
        await bo.place_order(ORDINARY, Side.SELL, "000001", D("11.60"), 100, "again")
    assert info.value.params == {"sellable": "0"}
    [pos] = [p for p in await bo.positions(ORDINARY) if p.security.code == "000001"]
    assert (pos.quantity, pos.sellable) == (350, 0)
    await bo.set_last("000001", D("11.61"))
    bo.set_clock(at(10, 5))                                         # books refresh meanwhile
    [order] = await bo.orders_today(ORDINARY)
    assert order.status is OrderStatus.FILLED
    fills = await bo.fills_today(ORDINARY)
    assert sum(f.quantity for f in fills) == 350 and all(f.price >= D("11.60") for f in fills)
    amount = sum((f.price * f.quantity for f in fills), D(0))
    # one commission minimum for the order, however many fills: 5.00 + transfer + stamp duty
    fee = r.fees(Side.SELL, amount).total
    assert (await bo.cash(ORDINARY)).balance == D("50000.00") + amount - fee
    assert "000001" not in {p.security.code for p in await bo.positions(ORDINARY)}


async def test_open_orders_expire_at_the_close(bo: SandboxBackOffice) -> None:
    await bo.place_order(ORDINARY, Side.BUY, "600036", D("40.00"), 100, "expire")
    assert (await bo.cash(ORDINARY)).frozen > 0
    bo.set_clock(at(15, 1))
    [order] = await bo.orders_today(ORDINARY)
    assert (order.status, order.reason) == (OrderStatus.CANCELLED, "expired at the close")
    assert (await bo.cash(ORDINARY)).frozen == 0
    bo.set_clock(at(9, 31, TUESDAY))
    assert await bo.orders_today(ORDINARY) == []
    await bo.set_last("600036", D("40.00"))
    assert (await bo.cash(ORDINARY)).balance == D("50000.00")


async def test_moving_market_fills_in_sessions_only(template: Path, tmp_path: Path) -> None:
    bo = await open_copy(template, tmp_path, frozen=False)
    try:
        prices = {"600036": D("41.10"), "601318": D("52.20"), "000858": D("128.40")}
        for code, price in prices.items():
            await bo.place_order(GOLD, Side.BUY, code, price, 100, f"m-{code}")
        bo.set_clock(at(11, 30))
        lunch = await bo.orders_today(GOLD)
        bo.set_clock(at(12, 59))
        assert await bo.orders_today(GOLD) == lunch                 # nothing moves at lunch
        bo.set_clock(at(15, 30))
        orders = {o.security.code: o for o in await bo.orders_today(GOLD)}
        fills = await bo.fills_today(GOLD)
        for code, price in prices.items():
            low = (await bo.quote(code)).low
            filled = orders[code].status is OrderStatus.FILLED
            assert filled == (low <= price), code                   # fills iff the price came
        assert fills and len(fills) == sum(
            o.status is OrderStatus.FILLED for o in orders.values())
        for fill in fills:
            assert r.is_trading_time(fill.at) or fill.at.time() in (dt.time(11, 30),
                                                                    dt.time(15, 0))
    finally:
        await bo.close()


async def test_ledger_and_market_survive_reopen(template: Path, tmp_path: Path) -> None:
    bo = await open_copy(template, tmp_path, frozen=False)
    order = await bo.place_order(GOLD, Side.BUY, "601318", D("48.00"), 100, "persist")
    bo.set_clock(at(11, 0))
    quote = await bo.quote("601318")
    await bo.close()
    bo = await SandboxBackOffice.open(tmp_path / "backoffice.db", clock=lambda: at(11, 0))
    try:
        assert await bo.quote("601318") == quote
        assert await bo.order_by_key("persist") == order
        assert (await bo.cash(GOLD)).frozen == D("4805.05")
    finally:
        await bo.close()


# --- the book: fills at the market's prices, in parts, exactly once ------------------------------


def order_cost(fills: list[Fill], side: Side) -> tuple[Decimal, Decimal]:
    """(amount, fees) of an order's fills: fees on their sum, one minimum commission."""
    amount = sum((f.price * f.quantity for f in fills), D(0))
    return amount, r.fees(side, amount).total


async def test_a_marketable_sell_at_limit_down_fills_at_the_best_bid(
        bo: SandboxBackOffice) -> None:
    quote, book = await bo.quote("600036"), bo.market.depth("600036")
    assert (quote.last, quote.limit_down) == (D("41.20"), D("37.08"))
    order = await bo.place_order(ORDINARY, Side.SELL, "600036", D("37.08"), 100, "dump")
    [fill] = await bo.fills_today(ORDINARY)                  # the next look steps the market
    assert (fill.order_no, fill.price, fill.quantity, fill.remaining) == (
        order.order_no, book.bids[0][0], 100, 0)
    assert fill.price >= D("41.19")                          # the market's bid, not 37.08
    amount, fee = order_cost([fill], Side.SELL)
    cash = await bo.cash(ORDINARY)
    assert cash.balance == D("50000.00") + amount - fee
    assert cash.withdrawable == D("50000.00")                # 可用不可取 until tomorrow


async def test_a_buy_holds_cash_at_its_limit_and_releases_the_difference_part_by_part(
        bo: SandboxBackOffice) -> None:
    limit, quantity = D("57.53"), 15_000                     # limit-up: marketable
    assert (await bo.quote("601318")).limit_up == limit
    book = bo.market.depth("601318")
    order = await bo.place_order(GOLD, Side.BUY, "601318", limit, quantity, "big")
    held = r.preview(order.security, Side.BUY, limit, quantity).total   # held at placement
    first = await bo.fills_today(GOLD)                       # what the book showed: not enough
    assert [(f.price, f.quantity) for f in first] == list(book.asks)
    filled = sum(f.quantity for f in first)
    assert [f.remaining for f in first] == [quantity - sum(f.quantity for f in first[:i + 1])
                                            for i in range(len(first))]
    [partial] = await bo.orders_today(GOLD)
    assert (partial.status, partial.filled) == (OrderStatus.PARTIALLY_FILLED, filled)
    amount, fee = order_cost(first, Side.BUY)
    rest = limit * (quantity - filled)                       # still held at the limit
    cash = await bo.cash(GOLD)
    assert cash.frozen == rest + r.fees(Side.BUY, amount + rest).total - fee
    assert cash.balance == D("1200000.00") - amount - fee
    assert cash.available == cash.balance - cash.frozen
    bo.set_clock(at(10, 5))                                  # the book refreshes every 10 s
    [done] = await bo.orders_today(GOLD)
    fills = await bo.fills_today(GOLD)
    assert (done.status, done.filled) == (OrderStatus.FILLED, quantity) and len(fills) > 5
    assert fills[:len(first)] == first and fills[-1].remaining == 0
    # the rest rested at the limit, and the later books filled it there: it was the maker
    assert all(f.price == limit for f in fills[len(first):])
    amount, fee = order_cost(fills, Side.BUY)
    cash = await bo.cash(GOLD)
    assert (cash.balance, cash.frozen) == (D("1200000.00") - amount - fee, D(0))
    assert D("1200000.00") - cash.balance < held             # price improvement came back
    ping_an = {p.security.code: p for p in await bo.positions(GOLD)}["601318"]
    assert (ping_an.quantity, ping_an.sellable) == (2000 + quantity, 1500)   # T+1


async def test_cancelling_a_partly_filled_order_keeps_its_fills_and_frees_the_rest(
        bo: SandboxBackOffice) -> None:
    order = await bo.place_order(GOLD, Side.BUY, "601318", D("57.53"), 15_000, "part")
    fills = await bo.fills_today(GOLD)
    filled = sum(f.quantity for f in fills)
    assert 0 < filled < 15_000
    cancelled = await bo.cancel_order(GOLD, order.order_no, "part-c")
    assert (cancelled.status, cancelled.filled) == (OrderStatus.CANCELLED, filled)
    amount, fee = order_cost(fills, Side.BUY)
    cash = await bo.cash(GOLD)
    assert (cash.balance, cash.frozen) == (D("1200000.00") - amount - fee, D(0))
    bo.set_clock(at(10, 5))                                  # fresh books: nothing more fills
    assert await bo.fills_today(GOLD) == fills
    assert (await bo.cash(GOLD)).balance == D("1200000.00") - amount - fee


async def test_partial_fills_survive_a_restart_exactly_once(template: Path,
                                                            tmp_path: Path) -> None:
    bo = await open_copy(template, tmp_path)
    await bo.place_order(GOLD, Side.BUY, "601318", D("57.53"), 15_000, "restart")
    before = await bo.fills_today(GOLD)
    cash = await bo.cash(GOLD)
    await bo.close()
    bo = await open_copy(template, tmp_path)                 # the same moment, reopened
    try:
        assert await bo.fills_today(GOLD) == before           # no fill twice, none lost
        assert await bo.cash(GOLD) == cash
        assert bo.market.depth("601318").asks == ()          # what was taken stays taken
        bo.set_clock(at(10, 0) + dt.timedelta(seconds=10))
        more = await bo.fills_today(GOLD)
        assert more[:len(before)] == before and len(more) > len(before)
        bo.set_clock(at(10, 5))
        fills = await bo.fills_today(GOLD)
        assert sum(f.quantity for f in fills) == 15_000
        amount, fee = order_cost(fills, Side.BUY)
        assert (await bo.cash(GOLD)).balance == D("1200000.00") - amount - fee
    finally:
        await bo.close()


# --- transfers ------------------------------------------------------------------------------------


async def test_transfer_out_and_in(bo: SandboxBackOffice) -> None:
    [link] = await bo.bank_links(ORDINARY)
    assert (link.bank_code, link.masked_account) == ("ICBC", "6222****0001")
    out = await bo.transfer(ORDINARY, OUT, D("1000.50"), FUND, None, "t1")
    assert (out.amount, out.balance_after) == (D("1000.50"), D("48999.50"))
    assert len(out.transfer_no) == 8 and out.transfer_no.isdigit()
    assert_all_decimal(out)
    assert await bo.bank_balance(ORDINARY, "ICBC") == D("201000.50")
    back = await bo.transfer(ORDINARY, IN, D("2000"), FUND, BANK, "t2")
    assert back.balance_after == D("50999.50") and back.transfer_no != out.transfer_no
    assert await bo.transfer_by_key("t1") == out
    assert await bo.transfer_by_key("t9") is None


async def test_transfer_idempotency(bo: SandboxBackOffice) -> None:
    first = await bo.transfer(ORDINARY, OUT, D("100.00"), FUND, None, "same")
    # a retry returns the transfer already made, without moving money again
    assert await bo.transfer(ORDINARY, OUT, D("100"), FUND, None, "same") == first
    assert (await bo.cash(ORDINARY)).balance == D("49900.00")
    with pytest.raises(BrokerError, match="different transfer"):
        await bo.transfer(ORDINARY, OUT, D("200.00"), FUND, None, "same")
    many = await asyncio.gather(*(
        bo.transfer(GOLD, OUT, D("10.00"), FUND, None, "burst") for _ in range(5)))
    assert len({t.transfer_no for t in many}) == 1
    assert (await bo.cash(GOLD)).balance == D("1199990.00")


async def test_transfer_refusals(bo: SandboxBackOffice) -> None:
    with refused(RefusalCode.INVALID_AMOUNT):
        await bo.transfer(ORDINARY, OUT, D("0"), FUND, None, "a")
    with refused(RefusalCode.INVALID_AMOUNT):
        await bo.transfer(ORDINARY, OUT, D("1.001"), FUND, None, "b")
    with refused(RefusalCode.OVER_AVAILABLE) as info:
        await bo.transfer(ORDINARY, OUT, D("50000.01"), FUND, None, "c")
    assert info.value.params == {"available": "50000.00"}
    with refused(RefusalCode.NO_BANK_LINK):
        await bo.transfer(NO_BANK, OUT, D("10.00"), FUND, None, "d")
    with refused(RefusalCode.BANK_REFUSED) as info:
        await bo.transfer(ORDINARY, IN, D("10.00"), FUND, None, "e")
    assert info.value.params == {"reason": "bank_password_required"}
    with refused(RefusalCode.BAD_PASSWORD) as info:              # the bank's password counts
        await bo.transfer(ORDINARY, IN, D("10.00"), FUND, WRONG, "f")
    assert info.value.params == {"kind": "bank", "remaining": "2"}
    await bo.verify_password(ORDINARY, PasswordKind.BANK, BANK)  # and starts again
    with refused(RefusalCode.BANK_REFUSED) as info:
        await bo.transfer(ORDINARY, IN, D("200000.01"), FUND, BANK, "g")
    assert info.value.params == {"reason": "bank_balance"}
    with refused(RefusalCode.BAD_PASSWORD) as info:
        await bo.transfer(ORDINARY, OUT, D("10.00"), WRONG, None, "h")
    assert info.value.params == {"kind": "fund", "remaining": "2"}
    with refused(RefusalCode.UNKNOWN_ACCOUNT):
        await bo.transfer("99999999", OUT, D("10.00"), FUND, None, "i")
    # frozen cash is not available for transfers
    await bo.place_order(ORDINARY, Side.BUY, "600036", D("41.00"), 1000, "hold")
    with refused(RefusalCode.OVER_AVAILABLE):
        await bo.transfer(ORDINARY, OUT, D("9000.00"), FUND, None, "j")
    for when in (at(8, 59), at(16, 0), at(10, 0, dt.date(2024, 6, 1))):
        bo.set_clock(when)
        with refused(RefusalCode.TRANSFER_CLOSED):
            await bo.transfer(ORDINARY, OUT, D("10.00"), FUND, None, f"k-{when:%d%H%M}")
    assert await bo.bank_balance(ORDINARY, "ICBC") == D("200000.00")
    assert (await bo.cash(ORDINARY)).balance == D("50000.00")


async def test_daily_limit_per_direction(bo: SandboxBackOffice) -> None:
    await bo.transfer(GOLD, OUT, D("300000.00"), FUND, None, "d1")
    await bo.transfer(GOLD, OUT, D("200000.00"), FUND, None, "d2")
    with refused(RefusalCode.DAILY_LIMIT) as info:
        await bo.transfer(GOLD, OUT, D("0.01"), FUND, None, "d3")
    assert info.value.params == {"remaining": "0.00"}
    await bo.transfer(GOLD, IN, D("100000.00"), FUND, BANK, "d4")   # the other direction
    bo.set_clock(at(10, 0, TUESDAY))                                 # a new day, a new limit
    await bo.transfer(GOLD, OUT, D("0.01"), FUND, None, "d5")


# --- storage --------------------------------------------------------------------------------------


async def test_seeding_twice_resets_to_the_same_state(bo: SandboxBackOffice) -> None:
    await bo.place_order(ORDINARY, Side.BUY, "600036", D("41.00"), 100, "before-reseed")
    before = {a.customer.account: (await bo.cash(a.customer.account),
                                   await bo.positions(a.customer.account))
              for a in DEMO_ACCOUNTS}
    await seed_demo(bo)
    after = {a.customer.account: (await bo.cash(a.customer.account),
                                  await bo.positions(a.customer.account))
             for a in DEMO_ACCOUNTS}
    assert before[ORDINARY][0].frozen > 0 and after[ORDINARY][0].frozen == 0
    del before[ORDINARY], after[ORDINARY]
    assert before == after
    assert await bo.orders_today(ORDINARY) == [] and len(await bo.announcements()) == 3
    assert bo.market.resting() == []


async def test_lives_in_the_engine_database_too(tmp_path: Path) -> None:
    db = await open_db(tmp_path / "callcenter.db")
    try:
        bo = await SandboxBackOffice.open(db, clock=lambda: at(10), frozen=True)
        assert (await bo.quote("600519")).last == D("1480.00")
        await bo.close()                                  # does not close the engine's db
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
            assert row is not None and row[0] == len(MIGRATIONS)
        async with db.execute("SELECT version FROM bo_schema_version") as cur:
            row = await cur.fetchone()
            assert row is not None and row[0] == len(SCHEMA)
        await SandboxBackOffice.open(db, clock=lambda: at(10))   # re-open: no migration
    finally:
        await db.close()


async def test_newer_schema_is_refused(bo: SandboxBackOffice, tmp_path: Path) -> None:
    await bo._db.execute("UPDATE bo_schema_version SET version = 99")
    await bo.close()
    with pytest.raises(BrokerError, match="newer"):
        await SandboxBackOffice.open(tmp_path / "backoffice.db")


async def test_set_clock_accepts_naive_shanghai_time(bo: SandboxBackOffice) -> None:
    bo.set_clock(dt.datetime(2024, 6, 3, 14, 0))
    assert bo.now() == at(14)
    bo.set_clock(None)
    assert bo.now() == at(10)
