"""The sans-IO market: seeded walks in the band, the book and matching in sessions, expiry, day
roll."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from callcenter.broker import rules as r
from callcenter.broker.interface import Board, Security, Side
from callcenter.broker.market import Execution, Listing, Market, RestingOrder
from callcenter.broker.sessions import Phase, auction_times, continuous_hours

D = Decimal
MONDAY = dt.date(2024, 6, 3)
LISTINGS = [
    Listing(Security("600519", "贵州茅台", "Kweichow Moutai", Board.MAIN, "SH"), D("1480.00")),
    Listing(Security("300750", "宁德时代", "CATL", Board.CHINEXT, "SZ"), D("250.00")),
    Listing(Security("600518", "ST康美", "ST Kangmei", Board.MAIN, "SH", risk_warning=True),
            D("3.30")),
]


def at(hh: int, mm: int = 0, day: dt.date = MONDAY, *, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=r.SHANGHAI)


def market(start: dt.datetime | None = None, **kw: object) -> Market:
    """Seed 7 from ``start`` (default 09:00)."""
    return Market(LISTINGS, start or at(9, 0), seed=7, **kw)  # type: ignore[arg-type]


def test_walk_is_deterministic_and_independent_of_call_rhythm() -> None:
    a, b = market(), market()
    a.step(at(15, 0))
    t = at(9, 0)
    while t < at(15, 0):
        t += dt.timedelta(seconds=37)
        b.step(min(t, at(15, 0)))
    assert a.snapshot() == b.snapshot()
    assert a.quote("600519").last != D("1480.00") or a.quote("600519").volume > 0


def test_prices_stay_in_the_band_on_the_tick_and_exact() -> None:
    m = market()
    for minute in range(0, 331, 5):
        m.step(at(9, 30) + dt.timedelta(minutes=minute))
        for listing in LISTINGS:
            q = m.quote(listing.security.code)
            assert q.limit_down is not None and q.limit_up is not None
            assert q.limit_down <= q.low <= q.last <= q.high <= q.limit_up
            assert q.last % D("0.01") == 0
            for value in (q.last, q.open, q.high, q.low, q.amount, q.prev_close):
                assert type(value) is Decimal
            assert type(q.volume) is int
    assert m.quote("600518").limit_up == D("3.63")          # main-board ST: 10%


def test_no_movement_outside_sessions() -> None:
    m = market()
    m.step(at(9, 24, ss=59))
    assert m.quote("600519").volume == 0
    m.step(at(9, 25))                                       # the opening auction trades once
    opened = m.snapshot()
    assert all(x.volume > 0 and x.open == x.last for x in opened)
    m.step(at(9, 29, ss=59))
    assert m.snapshot() == opened                           # 09:25-09:30: nothing
    m.step(at(11, 30))
    morning = m.snapshot()
    m.step(at(12, 59))                                      # lunch: nothing trades
    assert m.snapshot() == morning
    m.step(at(13, 1))
    assert m.snapshot() != morning


def test_frozen_market_moves_only_when_told() -> None:
    m = market(frozen=True)
    m.step(at(15, 0))
    q = m.quote("600519")
    assert (q.last, q.volume) == (D("1480.00"), 0)
    m.set_last("600519", D("1500.00"))
    assert m.quote("600519").last == D("1500.00")
    with pytest.raises(ValueError, match="outside"):
        m.set_last("600519", D("1700.00"))
    with pytest.raises(ValueError, match="tick"):
        m.set_last("600519", D("1500.005"))


def test_matching_takes_the_book_at_its_prices_only_in_sessions() -> None:
    m = market(frozen=True, start=at(11))
    m.add_order(RestingOrder("30000001", "600519", Side.BUY, D("1470.00"), 100))
    m.add_order(RestingOrder("30000002", "600519", Side.SELL, D("1490.00"), 200))
    assert m.step(at(11, 30)).executions == ()              # the book around 1480: out of reach
    m.set_last("600519", D("1465.00"))
    assert m.step(at(12, 0)).executions == ()               # in reach, but lunch break
    twin = market(frozen=True)                              # the same market without orders
    twin.set_last("600519", D("1465.00"))
    twin.step(at(13, 0))
    book = twin.depth("600519")
    assert book.asks[0][0] < D("1470.00")
    [buy] = m.step(at(13, 0)).executions                    # resting: the maker, at its limit
    assert (buy.order_no, buy.price, buy.quantity, buy.at) == (
        "30000001", D("1470.00"), 100, at(13, 0))
    m.add_order(RestingOrder("30000003", "600519", Side.BUY, D("1470.00"), 100))
    [taker] = m.step(at(13, 0)).executions                  # arriving: the taker, at the ask
    assert (taker.order_no, taker.price, taker.quantity) == ("30000003", book.asks[0][0], 100)
    m.set_last("600519", D("1492.00"))
    sells = m.step(at(13, 1)).executions
    assert {x.order_no for x in sells} == {"30000002"} and sum(x.quantity for x in sells) == 200
    assert all(x.price == D("1490.00") for x in sells)
    assert m.resting() == []


def test_a_marketable_sell_at_limit_down_fills_at_the_best_bid() -> None:
    m = market(frozen=True, start=at(10))
    quote, book = m.quote("600519"), m.depth("600519")
    assert quote.limit_down == D("1332.00") and book.bids[0][0] >= D("1479.00")
    m.add_order(RestingOrder("1", "600519", Side.SELL, D("1332.00"), 100))
    [sell] = m.step(at(10)).executions
    assert (sell.price, sell.quantity) == (book.bids[0][0], 100)   # not 1332.00
    after = m.depth("600519").bids                           # the 100 shares are gone from it
    assert sum(n for _, n in after) == sum(n for _, n in book.bids) - 100


def test_what_the_book_cannot_cover_fills_over_time_as_it_refreshes() -> None:
    m = market(frozen=True, start=at(10))
    book = m.depth("300750")
    shown = sum(size for _, size in book.asks)
    m.add_order(RestingOrder("1", "300750", Side.BUY, D("300.00"), 20_000))
    first = m.step(at(10)).executions
    assert [(x.price, x.quantity) for x in first] == list(book.asks)   # every level, in order
    assert m.depth("300750").asks == () and m.resting()[0].quantity == 20_000 - shown
    assert m.step(at(10) + dt.timedelta(seconds=9)).executions == ()   # the same book: empty
    got = shown
    t = at(10)
    while m.resting():
        t += m.interval
        executions = m.step(t).executions
        assert executions and all(x.at == t and x.price <= D("300.00") for x in executions)
        got += sum(x.quantity for x in executions)
    assert got == 20_000 and t < at(10, 5)


def test_a_restored_market_knows_what_was_taken_from_the_book_showing() -> None:
    m = market(frozen=True, start=at(10))
    m.add_order(RestingOrder("1", "300750", Side.BUY, D("300.00"), 20_000))
    taken = m.step(at(10, 0) + dt.timedelta(seconds=25)).executions
    earlier = Execution("0", "300750", Side.BUY, D("250.00"), 100, at(9, 45))  # another book
    restored = Market(LISTINGS, m.now, seed=7, frozen=True, states=m.snapshot(),
                      taken=[earlier, *taken])
    assert restored.depth("300750") == m.depth("300750")
    [order] = m.resting()
    restored.add_order(order)
    assert restored.step(m.now).executions == m.step(m.now).executions == ()
    later = m.now + m.interval
    assert restored.step(later).executions == m.step(later).executions != ()
    forgetful = Market(LISTINGS, later, seed=7, frozen=True, states=m.snapshot())
    assert forgetful.depth("300750") != m.depth("300750")      # without them: shares again


def test_moving_market_fills_at_a_grid_step() -> None:
    m = market(start=at(9, 30))
    m.add_order(RestingOrder("1", "300750", Side.BUY, D("300.00"), 100))   # at the limit up
    [ex] = m.step(at(9, 30)).executions                     # arriving at the open: at once
    assert ex.at == at(9, 30) and ex.price < D("300.00")
    m = market(start=at(9, 30))
    low = m.quote("300750").last - D("0.50")                # under the market: it rests
    m.add_order(RestingOrder("1", "300750", Side.BUY, low, 100))
    t = at(9, 30)
    while not (executions := m.step(t).executions):
        t += dt.timedelta(seconds=7)
    [ex] = executions                                       # the walk came down to it
    assert (ex.at - at(9, 30)) % m.interval == dt.timedelta(0) and ex.price == low


def test_suspended_security_neither_moves_nor_fills() -> None:
    m = market()
    m.set_suspended("600519", True)
    m.add_order(RestingOrder("1", "600519", Side.BUY, D("1628.00"), 100))
    assert m.step(at(11, 0)).executions == ()
    assert m.quote("600519").volume == 0


def test_orders_expire_at_the_close_and_a_new_day_rolls_the_close() -> None:
    m = market(frozen=True)
    m.add_order(RestingOrder("1", "600519", Side.BUY, D("1400.00"), 100))
    m.set_last("600519", D("1500.00"))
    assert m.step(at(14, 59)).expired == ()
    result = m.step(at(15, 0))
    assert result.expired == ("1",) and result.changed and m.resting() == []
    m.step(at(10, 0, dt.date(2024, 6, 8)))                  # Saturday: still Monday's day
    assert m.quote("600519").prev_close == D("1480.00")
    m.step(at(9, 0, dt.date(2024, 6, 10)))                  # next trading day
    q = m.quote("600519")
    assert (q.prev_close, q.last, q.volume) == (D("1500.00"), D("1500.00"), 0)
    assert (q.limit_down, q.limit_up) == (D("1350.00"), D("1650.00"))


def test_restored_state_continues_the_same_path() -> None:
    whole = market()
    whole.step(at(14, 0))
    half = market()
    half.step(at(10, 30))
    restored = Market(LISTINGS, half.now, seed=7, states=half.snapshot())
    restored.step(at(14, 0))
    assert restored.snapshot() == whole.snapshot()


def test_time_going_backwards_changes_nothing() -> None:
    m = market()
    m.step(at(11, 0))
    before = m.snapshot()
    assert not m.step(at(10, 0)).changed
    assert m.snapshot() == before and m.now == at(11, 0)


def test_different_seeds_walk_differently() -> None:
    a, b = market(), Market(LISTINGS, at(9, 0), seed=8)
    a.step(at(15, 0))
    b.step(at(15, 0))
    assert a.snapshot() != b.snapshot()


# --- call auctions and resting orders -------------------------------------------------------------


def opening_call(**kw: object) -> Market:
    """A market at 09:16 with three orders in the opening call for 600519 (around 1480)."""
    m = market(start=at(9, 16), **kw)
    m.add_order(RestingOrder("1", "600519", Side.BUY, D("1500.00"), 300))     # over the open
    m.add_order(RestingOrder("2", "600519", Side.SELL, D("1400.00"), 200))    # under it
    m.add_order(RestingOrder("3", "600519", Side.BUY, D("1460.00"), 100))     # out of reach
    return m


def test_orders_in_the_opening_call_match_at_0925_at_one_price() -> None:
    m = opening_call()
    assert m.step(at(9, 24, ss=59)).executions == ()        # marketable, yet nothing before 09:25
    executions = m.step(at(9, 25)).executions
    assert {x.order_no: x.quantity for x in executions} == {"1": 300, "2": 200}
    [price] = {x.price for x in executions}                 # one price for all
    assert all(x.at == at(9, 25) for x in executions)
    q = m.quote("600519")
    assert q.open == q.last == price and q.volume > 500     # the open is the auction's price
    assert D("1400.00") < price < D("1500.00")
    [carried] = m.resting()                                 # unfilled: carried into continuous
    assert (carried.order_no, carried.quantity) == ("3", 100)


def test_0925_to_0930_nothing_trades_and_the_carried_order_meets_continuous_at_0930() -> None:
    m = opening_call()
    m.step(at(9, 25))
    assert m.step(at(9, 29, ss=59)).executions == ()
    m.add_order(RestingOrder("4", "600519", Side.BUY, D("1500.00"), 100, at(9, 30)))
    [taker] = m.step(at(9, 30)).executions                  # arriving at 09:30: takes the ask
    book = market(start=at(9, 16))
    book.step(at(9, 25))
    opened = book.quote("600519").last
    assert taker.order_no == "4" and taker.at == at(9, 30) and opened <= taker.price < D("1500")
    assert [x.order_no for x in m.resting()] == ["3"]       # 1460 is far under the open


def test_an_order_entered_at_0915_is_in_the_auction_and_one_before_is_too() -> None:
    for placed in (at(9, 15), at(9, 14, ss=59)):
        m = market(start=at(9, 0))
        m.add_order(RestingOrder("1", "600519", Side.BUY, D("1500.00"), 100, placed))
        [ex] = m.step(at(9, 25)).executions
        assert (ex.at, ex.quantity) == (at(9, 25), 100)


def test_a_frozen_market_fills_the_auction_but_keeps_its_price() -> None:
    m = opening_call(frozen=True)
    assert m.step(at(9, 25)).executions != ()
    q = m.quote("600519")
    assert (q.last, q.volume) == (D("1480.00"), 0)


def test_the_closing_call_matches_at_1500_at_one_price_and_the_rest_expires() -> None:
    m = market(start=at(14, 50))
    m.add_order(RestingOrder("5", "600519", Side.SELL, D("1400.00"), 100))
    [taker] = m.step(at(14, 56, ss=59)).executions          # continuous: at the bid, at once
    assert taker.at == at(14, 50) and taker.price > D("1400.00")
    m.add_order(RestingOrder("6", "600519", Side.SELL, D("1400.00"), 100, at(14, 57)))
    m.add_order(RestingOrder("7", "600519", Side.BUY, D("1300.00"), 100, at(14, 58)))
    assert m.step(at(14, 59, ss=59)).executions == ()       # the closing call: resting only
    before = m.quote("600519").last
    result = m.step(at(15, 0))
    [close] = result.executions
    assert (close.order_no, close.quantity, close.at) == ("6", 100, at(15, 0))
    assert m.quote("600519").last == close.price and result.expired == ("7",)
    assert abs(close.price - before) < D("10")


def test_orders_resting_from_continuous_join_the_closing_auction() -> None:
    m = market(start=at(14, 56))
    m.add_order(RestingOrder("8", "600519", Side.BUY, D("1600.00"), 100, at(14, 57)))
    m.add_order(RestingOrder("9", "600519", Side.SELL, D("1620.00"), 100))  # rests: too high
    m.step(at(14, 56, ss=30))
    assert [x.order_no for x in m.resting()] == ["8", "9"]
    [ex] = m.step(at(15, 0)).executions
    assert ex.order_no == "8" and ex.at == at(15, 0)


def test_a_resting_order_fills_at_its_own_price_when_the_book_moves_through_it() -> None:
    m = market(frozen=True, start=at(10))
    m.add_order(RestingOrder("1", "600519", Side.BUY, D("1478.02"), 50_000))
    assert m.step(at(10)).executions == ()                  # the asks start at 1480.01
    m.set_last("600519", D("1478.00"))
    twin = market(frozen=True, start=at(10))
    twin.set_last("600519", D("1478.00"))
    grid = at(10, ss=10)
    twin.step(grid)
    crossing = sum(n for price, n in twin.depth("600519").asks if price <= D("1478.02"))
    assert 0 < crossing < sum(n for _, n in twin.depth("600519").asks)
    [ex] = m.step(grid).executions                          # the maker: its limit, the levels' size
    assert (ex.price, ex.quantity, ex.at) == (D("1478.02"), crossing, grid)
    assert m.step(grid).executions == ()                    # the same book: not taken twice
    assert m.step(at(10, ss=15)).executions == ()
    m.add_order(RestingOrder("2", "600519", Side.BUY, D("1478.02"), 100))
    assert m.step(at(10, ss=15)).executions == ()           # nor by an arriving order
    [again] = [x for x in m.step(at(10, ss=20)).executions if x.order_no == "1"]
    assert again.price == D("1478.02")                      # the next book: parts again


def test_a_restored_market_neither_repeats_the_auction_nor_retakes_an_arrival() -> None:
    m = opening_call()
    done = m.step(at(9, 25)).executions
    restored = Market(LISTINGS, m.now, seed=7, states=m.snapshot(), taken=done)
    for order in m.resting():
        restored.add_order(order)
    assert restored.step(at(9, 25)).executions == ()
    assert restored.step(at(10)).executions == m.step(at(10)).executions
    # an order that took its turn before the save is resting afterwards: a maker, not a taker
    m = market(frozen=True, start=at(10))
    m.add_order(RestingOrder("1", "600519", Side.BUY, D("1479.00"), 100, at(10)))
    m.step(at(10, ss=5))
    m.set_last("600519", D("1478.00"))
    again = Market(LISTINGS, m.now, seed=7, frozen=True, states=m.snapshot())
    again.add_order(RestingOrder("1", "600519", Side.BUY, D("1479.00"), 100, at(10)))
    [ex] = again.step(at(10, ss=5)).executions
    assert ex.price == D("1479.00")


def test_the_days_auctions_and_continuous_stretches_come_from_the_phase_table() -> None:
    assert auction_times() == (dt.time(9, 25), dt.time(15, 0))
    assert continuous_hours() == ((dt.time(9, 30), dt.time(11, 30)),
                                  (dt.time(13, 0), dt.time(14, 57)))
    # a schedule without a closing call has one auction, and trades continuously to its end
    short = ((dt.time(9, 15), dt.time(9, 25), Phase.OPENING_CALL),
             (dt.time(9, 30), dt.time(15, 0), Phase.CONTINUOUS))
    assert auction_times(short) == (dt.time(9, 25),)
    assert continuous_hours(short) == ((dt.time(9, 30), dt.time(15, 0)),)


def _first_fill(m: Market, until: dt.datetime) -> tuple[str, D, dt.time] | None:
    t = m.now
    while t < until:
        t += dt.timedelta(seconds=10)
        for ex in m.step(t).executions:
            return ex.order_no, ex.price, ex.at.time()
    return None


def test_an_opening_call_order_restored_at_0925_still_trades_as_a_maker() -> None:
    # a buy the auction does not reach but a later book does: restored at exactly 09:25, the
    # auction is over for it (it ran when the market stepped there), so it rests and makes
    live = market(start=at(9, 16))
    live.add_order(RestingOrder("9", "600519", Side.BUY, D("1470.00"), 100))
    done = live.step(at(9, 25)).executions
    restored = Market(LISTINGS, live.now, seed=7, states=live.snapshot(), taken=done)
    for order in live.resting():
        restored.add_order(order)
    expected = _first_fill(live, at(14, 56))
    assert expected is not None and expected[1] == D("1470.00")    # a maker, at its limit
    assert _first_fill(restored, at(14, 56)) == expected


def test_an_opening_call_order_of_a_code_suspended_at_0925_rests_once_it_trades_again() -> None:
    m = market(start=at(9, 16))
    m.add_order(RestingOrder("9", "600519", Side.BUY, D("1470.00"), 100))
    m.set_suspended("600519", True)
    assert m.step(at(9, 25)).executions == ()          # no auction for a suspended code
    m.step(at(9, 30))
    m.set_suspended("600519", False)
    fill = _first_fill(m, at(14, 56))
    assert fill is not None and fill[0] == "9" and fill[1] == D("1470.00")
