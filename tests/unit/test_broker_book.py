"""The matching core: a simulated book around the last price, and one limit order against it."""

from __future__ import annotations

import itertools
import random

import pytest

from callcenter.broker.book import DEPTH, LOT, Book, Level, Match, Taken, simulate, take
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
