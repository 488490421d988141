"""The sans-IO market: seeded walks in the band, the book and matching in sessions, expiry, day
roll."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from callcenter.broker import rules as r
from callcenter.broker.interface import Board, Security, Side
from callcenter.broker.market import Execution, Listing, Market, RestingOrder

D = Decimal
MONDAY = dt.date(2024, 6, 3)
LISTINGS = [
    Listing(Security("600519", "贵州茅台", "Kweichow Moutai", Board.MAIN, "SH"), D("1480.00")),
    Listing(Security("300750", "宁德时代", "CATL", Board.CHINEXT, "SZ"), D("250.00")),
    Listing(Security("600518", "ST康美", "ST Kangmei", Board.MAIN, "SH", risk_warning=True),
            D("3.30")),
]


def at(hh: int, mm: int = 0, day: dt.date = MONDAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=r.SHANGHAI)


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
            assert q.limit_down <= q.low <= q.last <= q.high <= q.limit_up
            assert q.last % D("0.01") == 0
            for value in (q.last, q.open, q.high, q.low, q.amount, q.prev_close):
                assert type(value) is Decimal
            assert type(q.volume) is int
    assert m.quote("600518").limit_up == D("3.63")          # main-board ST: 10%


def test_no_movement_outside_sessions() -> None:
    m = market()
    m.step(at(9, 29))
    assert m.quote("600519").volume == 0
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
    m = market(frozen=True)
    m.add_order(RestingOrder("30000001", "600519", Side.BUY, D("1470.00"), 100))
    m.add_order(RestingOrder("30000002", "600519", Side.SELL, D("1490.00"), 200))
    assert m.step(at(11, 30)).executions == ()              # the book around 1480: out of reach
    m.set_last("600519", D("1465.00"))
    assert m.step(at(12, 0)).executions == ()               # in reach, but lunch break
    twin = market(frozen=True)                              # the same market without orders
    twin.set_last("600519", D("1465.00"))
    twin.step(at(13, 0))
    book = twin.depth("600519")
    [buy] = m.step(at(13, 0)).executions
    assert (buy.order_no, buy.price, buy.quantity, buy.at) == (
        "30000001", book.asks[0][0], 100, at(13, 0))        # the best ask, not its limit
    assert buy.price < D("1470.00")
    m.set_last("600519", D("1492.00"))
    sells = m.step(at(13, 1)).executions
    assert {x.order_no for x in sells} == {"30000002"} and sum(x.quantity for x in sells) == 200
    assert all(x.price >= D("1490.00") for x in sells)
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
    m = market()
    m.add_order(RestingOrder("1", "300750", Side.BUY, D("300.00"), 100))   # at the limit up
    result = m.step(at(9, 31))
    [ex] = result.executions
    assert ex.at == at(9, 30) + dt.timedelta(seconds=10)    # the first grid step


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
