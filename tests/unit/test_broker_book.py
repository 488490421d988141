"""The matching core: a simulated book around the last price, and one limit order against it."""

from __future__ import annotations

import itertools
import random

import pytest

from callcenter.broker.book import (
    DEPTH,
    LOT,
    AuctionResult,
    Bid,
    Book,
    Level,
    Match,
    Taken,
    allocate,
    auction_price,
    call_interest,
    make,
    simulate,
    take,
)
from callcenter.broker.interface import Side

BOOK = Book(bids=(Level(1000, 300), Level(999, 500), Level(997, 200)),
            asks=(Level(1001, 200), Level(1002, 400), Level(1004, 1000)))


def test_a_marketable_buy_gets_the_best_asks_not_its_limit() -> None:
    assert take(BOOK, Side.BUY, 1100, 100) == [Match(1001, 100)]     # improved by 99 ticks


def test_a_marketable_sell_gets_the_best_bids_not_its_limit() -> None:
    assert take(BOOK, Side.SELL, 900, 100) == [Match(1000, 100)]


def test_an_order_walks_the_levels_up_to_its_limit_and_never_through() -> None:
    assert take(BOOK, Side.BUY, 1002, 1000) == [Match(1001, 200), Match(1002, 400)]
    assert take(BOOK, Side.SELL, 999, 1000) == [Match(1000, 300), Match(999, 500)]
    assert take(BOOK, Side.BUY, 1003, 5000) == [Match(1001, 200), Match(1002, 400)]


def test_at_the_touch_it_fills_at_its_own_price_and_off_it_not_at_all() -> None:
    assert take(BOOK, Side.BUY, 1001, 50) == [Match(1001, 50)]
    assert take(BOOK, Side.BUY, 1000, 50) == []                       # one tick under the ask
    assert take(BOOK, Side.SELL, 1000, 50) == [Match(1000, 50)]
    assert take(BOOK, Side.SELL, 1001, 50) == []                      # one tick over the bid


def test_sizes_bound_each_fill_and_an_odd_lot_fills_whole_if_it_can() -> None:
    assert take(BOOK, Side.SELL, 1000, 301) == [Match(1000, 300)]     # the rest waits
    assert take(BOOK, Side.SELL, 999, 350) == [Match(1000, 300), Match(999, 50)]
    with pytest.raises(ValueError, match="positive"):
        take(BOOK, Side.BUY, 1001, 0)
    assert take(Book(), Side.BUY, 1001, 100) == []                    # no sellers at all


def test_shares_taken_are_gone_until_the_book_refreshes() -> None:
    taken = Taken()
    taken.add(Side.BUY, take(BOOK, Side.BUY, 1002, 300))              # 200 at 1001, 100 at 1002
    left = taken.apply(BOOK)
    assert left.asks == (Level(1002, 300), Level(1004, 1000)) and left.bids == BOOK.bids
    assert take(left, Side.BUY, 1002, 1000) == [Match(1002, 300)]
    taken.add(Side.SELL, [Match(1000, 300)])
    assert taken.apply(BOOK).bids[0] == Level(999, 500)
    assert Taken().apply(BOOK) is BOOK


def test_the_simulated_book_sits_around_the_last_price_on_whole_ticks() -> None:
    for seed in range(200):
        book = simulate(random.Random(seed), 1000, 900, 1100)
        best_bid, best_ask = book.bids[0].price, book.asks[0].price
        assert 1000 in (best_bid, best_ask) and 1 <= best_ask - best_bid <= 2
        assert len(book.bids) == len(book.asks) == DEPTH
        for levels, step in ((book.asks, 1), (book.bids, -1)):
            prices = [x.price for x in levels]
            assert all(0 < (b - a) * step <= 2 for a, b in itertools.pairwise(prices))
            assert all(x.size > 0 and x.size % LOT == 0 for x in levels)
    assert simulate(random.Random(5), 1000, 900, 1100) == simulate(random.Random(5), 1000, 900,
                                                                   1100)


def test_the_book_stays_inside_the_days_limits() -> None:
    for seed in range(100):
        at_up = simulate(random.Random(seed), 1100, 900, 1100)
        assert all(x.price <= 1100 for x in at_up.asks) and len(at_up.asks) <= 1
        at_down = simulate(random.Random(seed), 900, 900, 1100)
        assert all(x.price >= 900 for x in at_down.bids) and len(at_down.bids) <= 1
    with pytest.raises(ValueError, match="outside"):
        simulate(random.Random(0), 1101, 900, 1100)


# --- a resting order is the maker -----------------------------------------------------------------


def test_a_resting_order_fills_at_its_own_limit_for_the_levels_through_it() -> None:
    assert make(BOOK, Side.BUY, 1002, 10_000) == [Match(1002, 600)]   # 200 + 400, at 1002
    assert make(BOOK, Side.BUY, 1002, 100) == [Match(1002, 100)]
    assert make(BOOK, Side.SELL, 999, 10_000) == [Match(999, 800)]    # 300 + 500, at 999
    assert make(BOOK, Side.BUY, 1001, 10_000) == [Match(1001, 200)]   # at the touch
    assert make(BOOK, Side.BUY, 1000, 100) == []                       # one tick under the ask
    assert make(BOOK, Side.SELL, 1001, 100) == []                      # one tick over the bid
    with pytest.raises(ValueError, match="positive"):
        make(BOOK, Side.BUY, 1001, 0)


def test_made_and_taken_shares_leave_a_side_from_its_best_level() -> None:
    taken = Taken()
    taken.add(Side.BUY, make(BOOK, Side.BUY, 1002, 300))              # 300 shares at 1002
    left = taken.apply(BOOK)
    assert left.asks == (Level(1002, 300), Level(1004, 1000))         # as if taken from the top
    assert make(left, Side.BUY, 1002, 10_000) == [Match(1002, 300)]
    taken.add(Side.BUY, make(left, Side.BUY, 1002, 10_000))
    assert make(taken.apply(BOOK), Side.BUY, 1002, 100) == []         # never twice


# --- call auctions --------------------------------------------------------------------------------


def bids(*orders: tuple[str, int, int]) -> list[Bid]:
    return [Bid(None, Side.BUY if s == "b" else Side.SELL, p, q) for s, p, q in orders]


def test_the_auction_price_executes_the_most_shares_then_leaves_the_fewest_over() -> None:
    book = bids(("b", 1003, 100), ("b", 1002, 200), ("b", 1000, 300),
                ("s", 999, 100), ("s", 1001, 200), ("s", 1002, 300))
    # 999/1000: 100; 1001: 300 (300 a side, none over); 1002: 300 (600 offered); 1003: 100
    assert auction_price(book, 1000) == AuctionResult(1001, 300)
    assert auction_price(book, 1000, nearest=True) == AuctionResult(1001, 300)


def test_an_auction_tie_is_the_middle_on_sse_and_the_nearest_to_the_close_on_szse() -> None:
    book = bids(("b", 1005, 500), ("s", 1000, 500))      # 500 at every price 1000..1005
    assert auction_price(book, 1001) == AuctionResult(1003, 500)      # 1002.5, half up
    assert auction_price(book, 1001, nearest=True).price == 1001      # type: ignore[union-attr]
    assert auction_price(book, 990, nearest=True).price == 1000       # type: ignore[union-attr]
    assert auction_price(book, 1010, nearest=True).price == 1005      # type: ignore[union-attr]
    uneven = bids(("b", 1005, 500), ("s", 1000, 300), ("s", 1003, 200))
    # 1000-1002: 300 with 200 over; 1003-1005: 500 with none over
    assert auction_price(uneven, 1000) == AuctionResult(1004, 500)
    assert auction_price(uneven, 1000, nearest=True) == AuctionResult(1003, 500)
    two = bids(("b", 1004, 100), ("s", 1003, 100))       # an even tie: 1003.5 -> 1004
    assert auction_price(two, 1000) == AuctionResult(1004, 100)
    assert auction_price(two, 1000, nearest=True) == AuctionResult(1003, 100)


def test_the_auction_price_executes_every_better_priced_order() -> None:
    book = bids(("b", 1002, 100), ("b", 1000, 300), ("s", 999, 300), ("s", 1001, 100))
    # 300 trade at 999 and at 1000; at 999 the buyers above it (400) would not all execute
    assert auction_price(book, 999, nearest=True) == AuctionResult(1000, 300)
    assert auction_price(book, 999) == AuctionResult(1000, 300)


def test_no_auction_price_when_the_sides_do_not_cross() -> None:
    assert auction_price(bids(("b", 999, 100), ("s", 1000, 100)), 1000) is None
    assert auction_price(bids(("b", 999, 100)), 1000) is None
    assert auction_price([], 1000) is None


def test_the_auction_fills_better_prices_first_then_at_the_price_in_time_order() -> None:
    book = bids(("b", 1003, 100), ("b", 1002, 200), ("b", 1000, 300),
                ("s", 999, 100), ("s", 1001, 200), ("s", 1002, 300))
    assert allocate(book, AuctionResult(1001, 300)) == [100, 200, 0, 100, 200, 0]
    # at the price itself the outside interest (listed first) goes before the sandbox's order
    crowd = [Bid(None, Side.BUY, 1001, 200), Bid("30000001", Side.BUY, 1001, 200),
             Bid(None, Side.SELL, 1000, 300)]
    result = auction_price(crowd, 1000)
    assert result == AuctionResult(1001, 300)            # 1000 and 1001 tie: the middle, half up
    assert allocate(crowd, result) == [200, 100, 300]


def test_the_outside_auction_interest_crosses_inside_the_limits() -> None:
    for seed in range(100):
        interest = call_interest(random.Random(seed), 1000, 900, 1100)
        result = auction_price(interest, 1000)
        assert result is not None and abs(result.price - 1000) <= 2
        assert all(b.key is None and b.quantity % LOT == 0 for b in interest)
        at_up = call_interest(random.Random(seed), 1100, 900, 1100)
        assert all(b.price <= 1100 for b in at_up)
    assert call_interest(random.Random(3), 1000, 900, 1100) == call_interest(
        random.Random(3), 1000, 900, 1100)
    with pytest.raises(ValueError, match="outside"):
        call_interest(random.Random(0), 1101, 900, 1100)
