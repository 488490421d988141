"""A-share rules of the sandbox: sessions, prices, lots, fees, funds, transfers, passwords."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from callcenter.broker import rules as r
from callcenter.broker.interface import Board, RefusalCode, Security, Side
from callcenter.errors import BrokerRefusal

D = Decimal
MONDAY = dt.date(2024, 6, 3)
MOUTAI = Security("600519", "贵州茅台", "Kweichow Moutai", Board.MAIN, "SH")


def at(day: dt.date, hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=r.SHANGHAI)


def refused(code: RefusalCode) -> pytest.RaisesExc[BrokerRefusal]:
    return pytest.raises(BrokerRefusal, match=f"^{code.value}:")


# --- calendar -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hh", "mm", "open_"), [
    (9, 29, False), (9, 30, True), (11, 29, True), (11, 30, False), (12, 0, False),
    (13, 0, True), (14, 59, True), (15, 0, False), (20, 0, False),
])
def test_trading_sessions(hh: int, mm: int, open_: bool) -> None:
    assert r.is_trading_time(at(MONDAY, hh, mm)) is open_


def test_weekends_and_holidays_are_closed() -> None:
    assert not r.is_trading_time(at(dt.date(2024, 6, 1), 10))          # Saturday
    assert not r.is_trading_time(at(dt.date(2024, 6, 2), 10))          # Sunday
    rules = r.Rules(holidays=frozenset({dt.date(2024, 6, 10)}))        # Dragon Boat 2024
    assert not r.is_trading_time(at(dt.date(2024, 6, 10), 10), rules)
    assert r.is_trading_time(at(dt.date(2024, 6, 11), 10), rules)


def test_time_zone_is_shanghai_whatever_the_input_zone() -> None:
    utc = dt.datetime(2024, 6, 3, 2, 0, tzinfo=dt.UTC)                 # 10:00 in Shanghai
    assert r.is_trading_time(utc)
    assert not r.is_trading_time(utc.replace(hour=8))                   # 16:00 in Shanghai
    with pytest.raises(ValueError, match="aware"):
        r.is_trading_time(dt.datetime(2024, 6, 3, 10, 0))


def test_market_closed_refusal_says_the_hours() -> None:
    refuse = r.Rules(after_hours=r.AfterHours.REFUSE)
    with refused(RefusalCode.MARKET_CLOSED) as info:
        r.order_timing(at(MONDAY, 12, 0), refuse)
    # the opening call auction takes orders too (09:25-09:30 the exchange takes none)
    assert info.value.params == {"hours": "09:15-09:25, 09:30-11:30, 13:00-15:00"}
    assert r.order_timing(at(MONDAY, 10, 0), refuse) is None
    assert r.order_timing(at(MONDAY, 9, 15), refuse) is None


# --- prices ---------------------------------------------------------------------------------------


ST = Security("600518", "ST康美", "ST Kangmei", Board.MAIN, "SH", risk_warning=True)
CATL = Security("300750", "宁德时代", "CATL", Board.CHINEXT, "SZ")
SMIC = Security("688981", "中芯国际", "SMIC", Board.STAR, "SH")


# Risk warning is a status now, not a board (an ST on ChiNext/STAR keeps 20%): the edges per
# board and status are in test_trading_rules.py.
@pytest.mark.parametrize(("security", "prev", "low", "high"), [
    (MOUTAI, "10.00", "9.00", "11.00"),
    (CATL, "250.00", "200.00", "300.00"),
    (SMIC, "88.00", "70.40", "105.60"),
    (ST, "2.00", "1.80", "2.20"),               # main-board ST: 10% since 2025-07-07
    # half up, as the exchanges round, where half-even would differ:
    (MOUTAI, "12.35", "11.12", "13.59"),        # 13.585 -> 13.59 (half-even: 13.58)
    (ST, "4.15", "3.74", "4.57"),               # 4.565 -> 4.57 (half-even: 4.56)
    (MOUTAI, "0.05", "0.05", "0.06"),           # 0.045 -> 0.05, 0.055 -> 0.06
])
def test_price_limits_by_board_rounded_half_up(security: Security, prev: str, low: str,
                                               high: str) -> None:
    assert r.price_band(security, D(prev), MONDAY) == (D(low), D(high))


def test_price_checks() -> None:
    r.check_price(D("11.00"), D("10.00"), MOUTAI, MONDAY)
    r.check_price(D("9.00"), D("10.00"), MOUTAI, MONDAY)
    with refused(RefusalCode.PRICE_LIMIT) as info:
        r.check_price(D("11.01"), D("10.00"), MOUTAI, MONDAY)
    assert info.value.params == {"low": "9.00", "high": "11.00"}
    with refused(RefusalCode.PRICE_LIMIT):
        r.check_price(D("8.99"), D("10.00"), MOUTAI, MONDAY)
    with refused(RefusalCode.PRICE_TICK) as info:
        r.check_price(D("10.005"), D("10.00"), MOUTAI, MONDAY)
    assert info.value.params == {"tick": "0.01"}
    for bad in ("0", "-1.00", "NaN", "Infinity"):
        with refused(RefusalCode.INVALID_PRICE):
            r.check_price(D(bad), D("10.00"), MOUTAI, MONDAY)


def test_float_money_is_a_bug_not_input() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        r.check_price(10.0, D("10.00"), MOUTAI, MONDAY)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Decimal"):
        r.check_transfer_amount(100.0)  # type: ignore[arg-type]


# --- quantities -----------------------------------------------------------------------------------


def test_buy_in_whole_lots() -> None:
    r.check_buy_quantity(100)
    r.check_buy_quantity(1_000_000)
    with refused(RefusalCode.LOT_SIZE) as info:
        r.check_buy_quantity(150)
    assert info.value.params == {"lot": "100"}
    for bad in (0, -100):
        with refused(RefusalCode.INVALID_QUANTITY):
            r.check_buy_quantity(bad)
    with refused(RefusalCode.MAX_QUANTITY):          # its own code now, with the maximum
        r.check_buy_quantity(1_000_100)


def test_sell_whole_lots_or_the_odd_lot_at_once() -> None:
    r.check_sell_quantity(300, 350)
    r.check_sell_quantity(350, 350)          # everything
    r.check_sell_quantity(50, 350)           # just the odd lot
    r.check_sell_quantity(150, 350)          # a lot plus the odd lot
    with refused(RefusalCode.ODD_LOT):       # its own code now (was lot_size, "buy in lots")
        r.check_sell_quantity(30, 350)       # part of the odd lot
    with refused(RefusalCode.LOT_SIZE):
        r.check_sell_quantity(120, 300)      # an odd lot the holding does not have
    with refused(RefusalCode.INSUFFICIENT_SHARES) as info:
        r.check_sell_quantity(400, 350)
    assert info.value.params == {"sellable": "350"}


def test_t_plus_one_sellable() -> None:
    assert r.sellable(2000, 500, 0) == 1500
    assert r.sellable(2000, 500, 1000) == 500
    assert r.sellable(100, 100, 0) == 0
    with refused(RefusalCode.INSUFFICIENT_SHARES):
        r.check_sell_quantity(100, r.sellable(100, 100, 0))


# --- fees -----------------------------------------------------------------------------------------


def test_fees_of_a_big_buy() -> None:
    f = r.fees(Side.BUY, D("148000.00"))                 # 100 x 1480.00
    assert (f.commission, f.transfer_fee, f.stamp_duty) == (D("37.00"), D("1.48"), D("0.00"))
    assert f.total == D("38.48")


def test_commission_minimum_and_stamp_duty_on_sells_only() -> None:
    buy = r.fees(Side.BUY, D("1000.00"))
    assert (buy.commission, buy.transfer_fee, buy.stamp_duty) == (D("5.00"), D("0.01"), D("0"))
    sell = r.fees(Side.SELL, D("1000.00"))
    assert (sell.commission, sell.transfer_fee, sell.stamp_duty) == (
        D("5.00"), D("0.01"), D("0.50"))
    assert sell.total == D("5.51")
    # 20000 x 0.00025 = 5.00 exactly: the minimum and the rate meet
    assert r.fees(Side.BUY, D("20000.00")).commission == D("5.00")
    assert r.fees(Side.BUY, D("20040.00")).commission == D("5.01")


def test_fees_round_half_up_to_the_fen() -> None:
    # 500 x 0.00001 = 0.005 -> 0.01; 30100 x 0.00025 = 7.525 -> 7.53; x 0.0005 = 15.05
    f = r.fees(Side.SELL, D("30100.00"))
    assert (f.commission, f.stamp_duty) == (D("7.53"), D("15.05"))
    assert r.fees(Side.BUY, D("500.00")).transfer_fee == D("0.01")


def test_an_order_filled_in_parts_pays_the_fees_of_one_fill() -> None:
    # 300 + 700 shares at 10.00: one minimum commission for the order, not one a part
    first = r.fill_fees(Side.SELL, D("0"), D("3000.00"))
    second = r.fill_fees(Side.SELL, D("3000.00"), D("7000.00"))
    assert (first, second) == (D("5.03") + D("1.50"), D("0.07") + D("3.50"))
    assert first + second == r.fees(Side.SELL, D("10000.00")).total
    parts = [D("10.01") * 100, D("10.02") * 300, D("10.05") * 1000]
    paid, before = D(0), D(0)
    for amount in parts:
        paid += r.fill_fees(Side.BUY, before, amount)
        before += amount
    assert paid == r.fees(Side.BUY, sum(parts, D(0))).total


def test_a_buy_holds_its_rest_at_the_limit_with_fees() -> None:
    assert r.buy_hold(D("0"), D("10.00"), 1000) == r.preview(MOUTAI, Side.BUY, D("10.00"),
                                                             1000).total
    # 300 filled at 9.98 (2994.00): 700 still held at 10.00 and the fees they add
    rest = r.buy_hold(D("2994.00"), D("10.00"), 700)
    assert rest == D("7000.00") + r.fees(Side.BUY, D("9994.00")).total - r.fees(
        Side.BUY, D("2994.00")).total
    assert r.buy_hold(D("2994.00"), D("10.00"), 0) == D("0.00")
    # what was held always covers a fill at or under the limit and the new hold
    held = r.buy_hold(D("0"), D("10.00"), 1000)
    cost = D("2994.00") + r.fill_fees(Side.BUY, D("0"), D("2994.00"))
    assert cost + rest <= held


def test_fees_are_configurable() -> None:
    rules = r.Rules(commission_rate=D("0.0003"), commission_min=D("0"),
                    stamp_duty_rate=D("0.001"), transfer_fee_rate=D("0"))
    f = r.fees(Side.SELL, D("1000.00"), rules)
    assert (f.commission, f.transfer_fee, f.stamp_duty) == (D("0.30"), D("0.00"), D("1.00"))


def test_preview_and_buying_power_include_fees() -> None:
    p = r.preview(MOUTAI, Side.BUY, D("1480.00"), 100)
    assert (p.amount, p.fees, p.total) == (D("148000.00"), D("38.48"), D("148038.48"))
    s = r.preview(MOUTAI, Side.SELL, D("1480.00"), 100)
    assert s.fees == D("38.48") + D("74.00") and s.total == D("148000.00") - s.fees
    r.check_buying_power(D("148038.48"), p.total)
    with refused(RefusalCode.INSUFFICIENT_FUNDS) as info:
        r.check_buying_power(D("148000.00"), p.total)     # the amount alone is not enough
    assert info.value.params == {"available": "148000.00", "needed": "148038.48"}
    for value in (p.amount, p.fees, p.total, p.price):
        assert type(value) is Decimal


# --- transfers ------------------------------------------------------------------------------------


def test_transfer_amounts() -> None:
    assert r.check_transfer_amount(D("100")) == D("100.00")
    assert r.check_transfer_amount(D("0.01")) == D("0.01")
    assert r.check_transfer_amount(D("12.300")) == D("12.30")       # trailing zero is fine
    for bad in ("0", "-5", "0.001", "1.234", "NaN", "1E+40"):
        with refused(RefusalCode.INVALID_AMOUNT):
            r.check_transfer_amount(D(bad))


def test_transfer_hours_and_limits() -> None:
    r.check_transfer_time(at(MONDAY, 9, 0))
    r.check_transfer_time(at(MONDAY, 15, 59, 59))
    for closed in (at(MONDAY, 8, 59), at(MONDAY, 16, 0), at(dt.date(2024, 6, 1), 10)):
        with refused(RefusalCode.TRANSFER_CLOSED) as info:
            r.check_transfer_time(closed)
    assert info.value.params == {"hours": "09:00-16:00"}
    r.check_transfer_available(D("100.00"), D("100.00"))
    with refused(RefusalCode.OVER_AVAILABLE) as info:
        r.check_transfer_available(D("100.01"), D("100.00"))
    assert info.value.params == {"available": "100.00"}
    r.check_daily_limit(D("400000.00"), D("100000.00"))
    with refused(RefusalCode.DAILY_LIMIT) as info:
        r.check_daily_limit(D("400000.00"), D("100000.01"))
    assert info.value.params == {"remaining": "100000.00"}


# --- passwords ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "reason"), [
    ("12345", "format"), ("1234567", "format"), ("12a456", "format"), ("١٢٣٤٥٦", "format"),
    ("888888", "repeated"), ("121212", "repeated"), ("111222", "repeated"),
    ("123456", "sequence"), ("654321", "sequence"), ("890123", "sequence"),
    ("000001", "repeated"),
])
def test_weak_passwords(password: str, reason: str) -> None:
    with refused(RefusalCode.WEAK_PASSWORD) as info:
        r.check_new_password(password)
    assert info.value.params == {"reason": reason}
    assert password not in str(info.value)


def test_personal_digits_and_good_passwords() -> None:
    with refused(RefusalCode.WEAK_PASSWORD) as info:
        r.check_new_password("380000", avoid=("10000001", "13800000001"))
    assert info.value.params == {"reason": "personal"}
    for good in ("135790", "246801", "802413", "730591"):
        r.check_new_password(good, avoid=("10000001", "13800000001"))


def test_refusal_params_are_strings() -> None:
    exc = r.refusal(RefusalCode.PRICE_LIMIT, "x", low=D("9.00"), high=D("11.00"))
    assert exc.code == "price_limit" and exc.params == {"low": "9.00", "high": "11.00"}
