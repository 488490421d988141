"""The A-share trading rules at their edges: boards, price limits, lots, phases, the calendar.

Each rule's source is in docs/backoffice.md ("Trading rules"), which names these tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from callcenter.broker import rules as r
from callcenter.broker.boards import board_of, check_listing
from callcenter.broker.exchange_calendar import calendar_warnings, load_calendar
from callcenter.broker.interface import Board, RefusalCode, Security
from callcenter.broker.sessions import Phase
from callcenter.config import load_settings
from callcenter.engine import sandbox_rules
from callcenter.errors import BrokerRefusal, ConfigError

D = Decimal
CAL = load_calendar()
RULES = dataclasses.replace(r.DEFAULT_RULES, holidays=CAL.holidays,
                            calendar_years=CAL.years)
MONDAY = dt.date(2026, 6, 1)
FRIDAY = dt.date(2026, 6, 5)


def sec(code: str, board: Board, exchange: str, *, st: bool = False,
        listed: dt.date | None = None) -> Security:
    return Security(code, "x", "x", board, exchange, st, listed)


MAIN = sec("600519", Board.MAIN, "SH")
MAIN_ST = sec("600518", Board.MAIN, "SH", st=True)
CHINEXT = sec("300750", Board.CHINEXT, "SZ")
CHINEXT_ST = sec("300799", Board.CHINEXT, "SZ", st=True)
STAR = sec("688981", Board.STAR, "SH")
STAR_ST = sec("688086", Board.STAR, "SH", st=True)
BSE = sec("920002", Board.BSE, "BJ")
BSE_ST = sec("920819", Board.BSE, "BJ", st=True)


def at(day: dt.date, hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=r.SHANGHAI)


def refused(code: RefusalCode) -> pytest.RaisesExc[BrokerRefusal]:
    return pytest.raises(BrokerRefusal, match=f"^{code.value}:")


# --- boards ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "board", "exchange"), [
    ("600000", Board.MAIN, "SH"), ("601318", Board.MAIN, "SH"), ("603288", Board.MAIN, "SH"),
    ("605499", Board.MAIN, "SH"), ("000001", Board.MAIN, "SZ"), ("001979", Board.MAIN, "SZ"),
    ("002594", Board.MAIN, "SZ"), ("003816", Board.MAIN, "SZ"),
    ("300750", Board.CHINEXT, "SZ"), ("301269", Board.CHINEXT, "SZ"),
    ("688981", Board.STAR, "SH"), ("689009", Board.STAR, "SH"),
    ("920002", Board.BSE, "BJ"), ("920819", Board.BSE, "BJ"), ("920489", Board.BSE, "BJ"),
])
def test_boards_by_code_prefix(code: str, board: Board, exchange: str) -> None:
    assert board_of(code) == (board, exchange)


@pytest.mark.parametrize("code", ["510300", "900901", "200002", "123456", "68898", "6005190",
                                  # BSE's NEEQ-era codes, moved to 920xxx on 2025-10-09
                                  "430489", "833819", "870436", "921001"])
def test_codes_of_no_board(code: str) -> None:
    assert board_of(code) is None
    with pytest.raises(ValueError, match="no board"):
        check_listing(sec(code, Board.MAIN, "SH"))


def test_a_listing_contradicting_its_code_is_refused() -> None:
    check_listing(STAR)
    with pytest.raises(ValueError, match="688981 is a star code on SH, but the listing says "
                                         "main on SH"):
        check_listing(sec("688981", Board.MAIN, "SH"))
    with pytest.raises(ValueError, match="bse code on BJ"):
        check_listing(sec("920002", Board.BSE, "SZ"))


# --- price limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("security", "low", "high"), [
    (MAIN, "9.00", "11.00"), (MAIN_ST, "9.00", "11.00"),
    (CHINEXT, "8.00", "12.00"), (CHINEXT_ST, "8.00", "12.00"),
    (STAR, "8.00", "12.00"), (STAR_ST, "8.00", "12.00"),
    (BSE, "7.00", "13.00"), (BSE_ST, "7.00", "13.00"),
], ids=["main", "main_st", "chinext", "chinext_st", "star", "star_st", "bse", "bse_st"])
def test_price_limit_at_and_one_tick_beyond(security: Security, low: str, high: str) -> None:
    prev = D("10.00")
    assert r.price_band(security, prev, MONDAY) == (D(low), D(high))
    for ok in (D(low), D(low) + r.CENT, D(high) - r.CENT, D(high)):
        assert r.check_price(ok, prev, security, MONDAY) == ok
    for over in (D(low) - r.CENT, D(high) + r.CENT):
        with refused(RefusalCode.PRICE_LIMIT) as info:
            r.check_price(over, prev, security, MONDAY)
        assert info.value.params == {"low": low, "high": high}


@pytest.mark.parametrize(("security", "prev", "low", "high"), [
    (MAIN, "12.35", "11.12", "13.59"),        # 13.585 -> 13.59 (half-even: 13.58)
    (MAIN_ST, "4.15", "3.74", "4.57"),        # 3.735 -> 3.74, 4.565 -> 4.57 (half-even: 4.56)
    (MAIN, "0.05", "0.05", "0.06"),           # 0.045 -> 0.05, 0.055 -> 0.06
    (BSE, "3.35", "2.35", "4.36"),            # 2.345 -> 2.35, 4.355 -> 4.36
])
def test_price_limits_round_half_up(security: Security, prev: str, low: str,
                                    high: str) -> None:
    assert r.price_band(security, D(prev), MONDAY) == (D(low), D(high))


def test_main_board_risk_warning_limit_is_a_setting() -> None:
    # 10% since 2025-07-07 (the default); an operator replaying earlier dates sets 5%
    assert load_settings().backoffice.main_risk_warning_limit == D("0.10")
    before = load_settings(backoffice={"main_risk_warning_limit": "0.05"})
    rules = sandbox_rules(before)
    assert r.price_band(MAIN_ST, D("10.00"), MONDAY, rules) == (D("9.50"), D("10.50"))
    for over in (D("9.49"), D("10.51")):
        with refused(RefusalCode.PRICE_LIMIT):
            r.check_price(over, D("10.00"), MAIN_ST, MONDAY, rules)
    assert r.check_price(D("10.50"), D("10.00"), MAIN_ST, MONDAY, rules) == D("10.50")


@pytest.mark.parametrize(("board", "exchange", "code", "free_days"), [
    (Board.MAIN, "SH", "603999", 5), (Board.CHINEXT, "SZ", "301999", 5),
    (Board.STAR, "SH", "688999", 5), (Board.BSE, "BJ", "920999", 1),
])
def test_no_limit_in_the_first_days_after_listing(board: Board, exchange: str, code: str,
                                                  free_days: int) -> None:
    new = sec(code, board, exchange, listed=MONDAY)       # Mon 2026-06-01
    days = [MONDAY + dt.timedelta(days=i) for i in range(5)] + [dt.date(2026, 6, 8)]
    for n, day in enumerate(days, start=1):
        band = r.price_band(new, D("10.00"), day, RULES)
        assert (band is None) is (n <= free_days), (n, day)
        if band is None:
            assert r.check_price(D("99.99"), D("10.00"), new, day, RULES) == D("99.99")
    with refused(RefusalCode.PRICE_LIMIT):
        r.check_price(D("99.99"), D("10.00"), new, dt.date(2026, 6, 8), RULES)


def test_first_five_days_count_trading_days_only() -> None:
    # listed Mon 2026-09-28: Sep 28, 29, 30, (National Day Oct 1-7), Oct 8, Oct 9
    new = sec("688999", Board.STAR, "SH", listed=dt.date(2026, 9, 28))
    assert r.limit_pct(new, dt.date(2026, 10, 9), RULES) is None
    assert r.limit_pct(new, dt.date(2026, 10, 12), RULES) == D("0.20")
    # without the calendar Oct 1-2 would count and day 6 would be Oct 5
    assert r.limit_pct(new, dt.date(2026, 10, 5)) == D("0.20")


def test_prices_on_the_tick() -> None:
    with refused(RefusalCode.PRICE_TICK) as info:
        r.check_price(D("10.005"), D("10.00"), MAIN, MONDAY)
    assert info.value.params == {"tick": "0.01"}
    for bad in ("0", "-1.00", "NaN", "Infinity"):
        with refused(RefusalCode.INVALID_PRICE):
            r.check_price(D(bad), D("10.00"), MAIN, MONDAY)


# --- quantities -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("board", "ok", "refusals"), [
    (Board.MAIN, [100, 200, 1_000_000],
     {99: RefusalCode.LOT_SIZE, 101: RefusalCode.LOT_SIZE, 150: RefusalCode.LOT_SIZE,
      1_000_100: RefusalCode.MAX_QUANTITY}),
    (Board.CHINEXT, [100, 300_000],
     {99: RefusalCode.LOT_SIZE, 101: RefusalCode.LOT_SIZE, 300_100: RefusalCode.MAX_QUANTITY}),
    (Board.STAR, [200, 201, 202, 100_000],
     {100: RefusalCode.MIN_QUANTITY, 199: RefusalCode.MIN_QUANTITY,
      100_001: RefusalCode.MAX_QUANTITY}),
    (Board.BSE, [100, 101, 1_000_000],
     {99: RefusalCode.MIN_QUANTITY, 1_000_001: RefusalCode.MAX_QUANTITY}),
])
def test_buy_quantities_per_board(board: Board, ok: list[int],
                                  refusals: dict[int, RefusalCode]) -> None:
    for quantity in ok:
        r.check_buy_quantity(quantity, board)
    for quantity, code in refusals.items():
        with refused(code) as info:
            r.check_buy_quantity(quantity, board)
        b = r.DEFAULT_RULES.boards[board]
        expected = {RefusalCode.LOT_SIZE: {"lot": str(b.step)},
                    RefusalCode.MIN_QUANTITY: {"minimum": str(b.minimum)},
                    RefusalCode.MAX_QUANTITY: {"maximum": str(b.maximum)}}[code]
        assert info.value.params == expected
    for bad in (0, -100):
        with refused(RefusalCode.INVALID_QUANTITY):
            r.check_buy_quantity(bad, board)


@pytest.mark.parametrize(("board", "sellable", "ok", "refusals"), [
    # main: whole lots, or the odd lot (under 100) all at once, alone or with lots
    (Board.MAIN, 350, [300, 350, 50, 150],
     {30: (RefusalCode.ODD_LOT, {"odd": "50"}), 120: (RefusalCode.ODD_LOT, {"odd": "50"})}),
    (Board.MAIN, 300, [100, 300], {120: (RefusalCode.LOT_SIZE, {"lot": "100"})}),
    # STAR: a holding under 200 is sold whole; from 200, at least 200 then steps of 1
    (Board.STAR, 150, [150], {100: (RefusalCode.ODD_LOT, {"odd": "150"}),
                              149: (RefusalCode.ODD_LOT, {"odd": "150"})}),
    (Board.STAR, 199, [199], {198: (RefusalCode.ODD_LOT, {"odd": "199"})}),
    (Board.STAR, 250, [200, 201, 250], {199: (RefusalCode.MIN_QUANTITY, {"minimum": "200"}),
                                        50: (RefusalCode.MIN_QUANTITY, {"minimum": "200"})}),
    # BSE: a holding under 100 is sold whole; from 100, steps of 1
    (Board.BSE, 50, [50], {30: (RefusalCode.ODD_LOT, {"odd": "50"})}),
    (Board.BSE, 150, [100, 101, 150], {99: (RefusalCode.MIN_QUANTITY, {"minimum": "100"})}),
])
def test_sell_quantities_and_odd_lots(board: Board, sellable: int, ok: list[int],
                                      refusals: dict[int, tuple[RefusalCode, dict[str, str]]],
                                      ) -> None:
    for quantity in ok:
        r.check_sell_quantity(quantity, sellable, board)
    for quantity, (code, params) in refusals.items():
        with refused(code) as info:
            r.check_sell_quantity(quantity, sellable, board)
        assert info.value.params == params
    with refused(RefusalCode.INSUFFICIENT_SHARES) as info:
        r.check_sell_quantity(sellable + 1, sellable, board)
    assert info.value.params == {"sellable": str(sellable)}


def test_sell_maximum_per_order() -> None:
    r.check_sell_quantity(100_000, 150_000, Board.STAR)
    with refused(RefusalCode.MAX_QUANTITY) as info:
        r.check_sell_quantity(100_001, 150_000, Board.STAR)
    assert info.value.params == {"maximum": "100000"}


# --- the day's phases -----------------------------------------------------------------------------


@pytest.mark.parametrize(("hms", "phase", "orders", "cancels"), [
    ((9, 14, 59), Phase.CLOSED, False, True),
    ((9, 15, 0), Phase.OPENING_CALL, True, True),
    ((9, 19, 59), Phase.OPENING_CALL, True, True),
    ((9, 20, 0), Phase.OPENING_CALL_FIXED, True, False),
    ((9, 24, 59), Phase.OPENING_CALL_FIXED, True, False),
    ((9, 25, 0), Phase.PRE_OPEN, False, False),
    ((9, 29, 59), Phase.PRE_OPEN, False, False),
    ((9, 30, 0), Phase.CONTINUOUS, True, True),
    ((11, 29, 59), Phase.CONTINUOUS, True, True),
    ((11, 30, 0), Phase.CLOSED, False, True),
    ((12, 59, 59), Phase.CLOSED, False, True),
    ((13, 0, 0), Phase.CONTINUOUS, True, True),
    ((14, 56, 59), Phase.CONTINUOUS, True, True),
    ((14, 57, 0), Phase.CLOSING_CALL, True, False),
    ((14, 59, 59), Phase.CLOSING_CALL, True, False),
    ((15, 0, 0), Phase.CLOSED, False, True),
])
def test_session_boundaries(hms: tuple[int, int, int], phase: Phase, orders: bool,
                            cancels: bool) -> None:
    now = at(MONDAY, *hms)
    assert r.phase(now, RULES) is phase
    assert (r.order_timing(now, RULES) is None) is orders
    if cancels:
        r.check_cancel_time(now, RULES)
    else:
        with refused(RefusalCode.CANCEL_CLOSED):
            r.check_cancel_time(now, RULES)


@pytest.mark.parametrize(("hms", "params"), [
    ((9, 20, 0), {"until": "09:30"}), ((9, 24, 59), {"until": "09:30"}),
    ((9, 25, 0), {"until": "09:30"}), ((9, 29, 59), {"until": "09:30"}),
    # the closing call: no cancels again today, the order expires at the close
    ((14, 57, 0), {"reason": "closing"}), ((14, 59, 59), {"reason": "closing"}),
])
def test_no_cancel_windows_say_until_when(hms: tuple[int, int, int],
                                          params: dict[str, str]) -> None:
    with refused(RefusalCode.CANCEL_CLOSED) as info:
        r.check_cancel_time(at(MONDAY, *hms), RULES)
    assert info.value.params == params
    assert ("no longer be cancelled today" in str(info.value)) is ("reason" in params)


@pytest.mark.parametrize(("now", "sends_at"), [
    (at(MONDAY, 0, 0), at(MONDAY, 9, 15)),
    (at(MONDAY, 9, 14, 59), at(MONDAY, 9, 15)),
    (at(MONDAY, 9, 25), at(MONDAY, 9, 30)),
    (at(MONDAY, 9, 29, 59), at(MONDAY, 9, 30)),
    (at(MONDAY, 11, 30), at(MONDAY, 13, 0)),
    (at(MONDAY, 12, 59, 59), at(MONDAY, 13, 0)),
    (at(MONDAY, 15, 0), at(dt.date(2026, 6, 2), 9, 15)),
    (at(FRIDAY, 15, 0), at(dt.date(2026, 6, 8), 9, 15)),                 # over the weekend
    (at(dt.date(2026, 6, 6), 10, 0), at(dt.date(2026, 6, 8), 9, 15)),    # on Saturday
    (at(dt.date(2026, 9, 30), 20, 0), at(dt.date(2026, 10, 8), 9, 15)),  # over National Day
    (at(dt.date(2026, 2, 14), 10, 0), at(dt.date(2026, 2, 24), 9, 15)),  # make-up Saturday
])
def test_orders_outside_hours_queue_for_the_next_opening(now: dt.datetime,
                                                         sends_at: dt.datetime) -> None:
    assert r.order_timing(now, RULES) == sends_at


def test_orders_outside_hours_refused_when_so_set() -> None:
    rules = dataclasses.replace(RULES, after_hours=r.AfterHours.REFUSE)
    for closed in (at(MONDAY, 9, 14, 59), at(MONDAY, 9, 25), at(MONDAY, 12, 0),
                   at(MONDAY, 15, 0), at(dt.date(2026, 10, 1), 10, 0)):
        with refused(RefusalCode.MARKET_CLOSED) as info:
            r.order_timing(closed, rules)
        assert info.value.params == {"hours": "09:15-09:25, 09:30-11:30, 13:00-15:00"}
    assert r.order_timing(at(MONDAY, 9, 15), rules) is None


def test_the_market_matches_in_continuous_trading_and_the_closing_call() -> None:
    assert [(s.time(), e.time()) for s, e in r.session_bounds(MONDAY, RULES)] == [
        (dt.time(9, 30), dt.time(11, 30)), (dt.time(13, 0), dt.time(15, 0))]
    assert r.day_close(MONDAY, RULES) == at(MONDAY, 15, 0)
    assert r.session_bounds(dt.date(2026, 10, 1), RULES) == []


# --- the exchange calendar ------------------------------------------------------------------------


HOLIDAYS_2026 = [
    # name, first day, last day, the trading days just before and after
    ("New Year", dt.date(2026, 1, 1), dt.date(2026, 1, 3), dt.date(2025, 12, 31),
     dt.date(2026, 1, 5)),
    ("Spring Festival", dt.date(2026, 2, 15), dt.date(2026, 2, 23), dt.date(2026, 2, 13),
     dt.date(2026, 2, 24)),
    ("Qingming", dt.date(2026, 4, 4), dt.date(2026, 4, 6), dt.date(2026, 4, 3),
     dt.date(2026, 4, 7)),
    ("Labour Day", dt.date(2026, 5, 1), dt.date(2026, 5, 5), dt.date(2026, 4, 30),
     dt.date(2026, 5, 6)),
    ("Dragon Boat", dt.date(2026, 6, 19), dt.date(2026, 6, 21), dt.date(2026, 6, 18),
     dt.date(2026, 6, 22)),
    ("Mid-Autumn", dt.date(2026, 9, 25), dt.date(2026, 9, 27), dt.date(2026, 9, 24),
     dt.date(2026, 9, 28)),
    ("National Day", dt.date(2026, 10, 1), dt.date(2026, 10, 7), dt.date(2026, 9, 30),
     dt.date(2026, 10, 8)),
]


@pytest.mark.parametrize(("name", "first", "last", "before", "after"), HOLIDAYS_2026,
                         ids=[h[0] for h in HOLIDAYS_2026])
def test_2026_holidays_and_the_days_around(name: str, first: dt.date, last: dt.date,
                                           before: dt.date, after: dt.date) -> None:
    day = first
    while day <= last:
        assert not r.is_trading_day(day, RULES), day
        assert r.phase(at(day, 10), RULES) is Phase.CLOSED
        day += dt.timedelta(days=1)
    assert r.is_trading_day(before, RULES) and r.is_trading_day(after, RULES)
    assert r.next_trading_day(before, RULES) == after


@pytest.mark.parametrize("day", [dt.date(2026, 1, 4), dt.date(2026, 2, 14),
                                 dt.date(2026, 2, 28), dt.date(2026, 5, 9),
                                 dt.date(2026, 9, 20), dt.date(2026, 10, 10)])
def test_make_up_working_weekends_are_not_trading_days(day: dt.date) -> None:
    assert day.weekday() >= 5 and not r.is_trading_day(day, RULES)


def test_2026_trading_day_count() -> None:
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(365)]
    weekdays = sum(d.weekday() < 5 for d in days)
    closed = [d for d in days if d.weekday() < 5 and not r.is_trading_day(d, RULES)]
    assert len(closed) == 19 and weekdays - len(closed) == 242


def test_2027_is_provisional_and_warned_about() -> None:
    assert CAL.years == {2026: False, 2027: True}
    assert dt.date(2027, 10, 1) in CAL.holidays
    assert calendar_warnings(dt.date(2026, 3, 1), CAL.years) == [
        "the exchange calendar's 2027 is provisional (derived, not the exchanges' notice): "
        "replace it when the notice is out (backoffice.calendar)"]
    missing = calendar_warnings(dt.date(2027, 3, 1), CAL.years)
    assert len(missing) == 2 and "has no 2028" in missing[1]


def test_an_operator_calendar_replaces_and_extends_years(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text("years:\n"
                    "  2027:\n"
                    "    holidays:\n"
                    "      - {name: 春节, from: 2027-02-08, to: 2027-02-12}\n"
                    "    workdays: [2027-02-06]\n"
                    "  2028:\n"
                    "    holidays:\n"
                    "      - {name: 元旦, from: 2028-01-01, to: 2028-01-03}\n"
                    "    workdays: []\n", "utf-8")
    cal = load_calendar(path, extra=[dt.date(2026, 6, 3), dt.date(2026, 6, 6)])
    assert cal.years == {2026: False, 2027: False, 2028: False}
    assert dt.date(2027, 2, 8) in cal.holidays and dt.date(2027, 2, 5) not in cal.holidays
    assert dt.date(2027, 10, 1) not in cal.holidays       # the packaged 2027 is replaced
    assert dt.date(2028, 1, 3) in cal.holidays            # a Monday
    assert dt.date(2026, 6, 3) in cal.holidays            # backoffice.holidays still adds
    assert dt.date(2026, 6, 6) not in cal.holidays        # a Saturday is closed anyway
    assert calendar_warnings(dt.date(2027, 6, 1), cal.years) == []
    assert dt.date(2027, 2, 6) in cal.workdays and dt.date(2026, 2, 14) in cal.workdays


@pytest.mark.parametrize(("text", "problem"), [
    ("years:\n  2027:\n    holidays:\n      - {name: x, from: 2027-02-08, to: 2027-02-01}\n",
     "before 'from'"),
    ("years:\n  2027:\n    holidays:\n      - {name: x, from: 2026-02-08, to: 2026-02-09}\n"
     "    workdays: []\n", "is not in 2027"),
    # a year typed in (or copied from an older file) without its make-up working weekends
    # would close the agents on them without a word
    ("years:\n  2027:\n    holidays:\n      - {name: x, from: 2027-02-08, to: 2027-02-09}\n",
     "make-up working weekends"),
    ("years:\n  2027:\n    holiday: []\n", "holiday"),
    ("years: [\n", "not valid YAML"),
])
def test_a_bad_operator_calendar_is_refused_clearly(tmp_path: Path, text: str,
                                                    problem: str) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_calendar(path)


# --- 可用不可取 (cash from today's sales) -----------------------------------------------------


@pytest.mark.parametrize(("available", "frozen", "sales", "buys", "withdrawable"), [
    ("1000.00", "0", "0", "0", "1000.00"),          # no sales today: all of it
    ("6000.00", "0", "5000.00", "0", "1000.00"),    # today's proceeds stay until tomorrow
    ("3000.00", "0", "5000.00", "3000.00", "1000.00"),  # buys use today's proceeds first
    ("0.00", "1000.00", "5000.00", "4000.00", "0.00"),  # frozen for a buy counts as used
    ("4000.00", "0", "5000.00", "0", "0.00"),       # never below zero
])
def test_withdrawable_cash(available: str, frozen: str, sales: str, buys: str,
                           withdrawable: str) -> None:
    assert r.withdrawable(D(available), D(frozen), D(sales), D(buys)) == D(withdrawable)


def test_a_transfer_out_over_the_withdrawable_is_refused_with_the_amount() -> None:
    r.check_withdrawable(D("1000.00"), D("1000.00"))
    with refused(RefusalCode.OVER_WITHDRAWABLE) as info:
        r.check_withdrawable(D("1000.01"), D("1000.00"))
    assert info.value.params == {"withdrawable": "1000.00"}


def test_doctor_reports_the_calendar(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.cli import _doctor_calendar
    from callcenter.config import load_settings

    seen: list[tuple[bool, str]] = []
    _doctor_calendar(load_settings(), lambda ok, what: seen.append((ok, what)),
                     dt.date(2026, 12, 3))
    assert seen == [(True, "exchange calendar: 2026, 2027")]
    assert "[warn] the exchange calendar's 2027 is provisional" in capsys.readouterr().out
    seen.clear()
    _doctor_calendar(load_settings(), lambda ok, what: seen.append((ok, what)),
                     dt.date(2028, 1, 3))
    assert seen == [(False, "exchange calendar: 2026, 2027")]        # 2028 missing: fails
    bad = tmp_path / "calendar.yaml"
    bad.write_text("years: [\n", "utf-8")
    monkeypatch.setenv("CALLCENTER_BACKOFFICE__CALENDAR", str(bad))
    seen.clear()
    _doctor_calendar(load_settings(), lambda ok, what: seen.append((ok, what)))
    assert len(seen) == 1 and not seen[0][0] and "not valid YAML" in seen[0][1]
