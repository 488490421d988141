"""A simulated order book and the matching of one limit order against it, sans-IO.

Prices are integer ticks and sizes integer shares; nothing here reads a clock, draws from a
global random source or touches a database. ``simulate`` builds the book the outside market
shows around its last price (the caller passes a seeded ``random.Random``); ``take`` matches a
limit order against it and says what is left on both sides.

The book:

- the last trade happened at the best ask or at the best bid (a coin); the other side starts
  one tick away, now and then two (a thin stock);
- ``DEPTH`` levels a side, each one or two ticks from the one before, with 1-20 lots of 100
  shares;
- every level inside ``low..high`` (the day's price limits): at limit-up there is no ask above
  limit-up, at limit-down no bid below it.

Matching (``take``): a buy takes the asks from the best up to its limit, a sell the bids from
the best down to its limit, each level at the level's own price and at most its size. So a
fill is never worse than the limit, a marketable order gets the book's better price, and what
the levels cannot cover stays with the order. Sizes taken are gone from the book until the
market refreshes it (``Taken`` keeps them).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from callcenter.broker.interface import Side

DEPTH = 5
LOT = 100
MAX_LOTS = 20


@dataclass(frozen=True, slots=True)
class Level:
    price: int          # ticks
    size: int           # shares


@dataclass(frozen=True, slots=True)
class Book:
    """Bids best (highest) first, asks best (lowest) first."""

    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()

    def side(self, taker: Side) -> tuple[Level, ...]:
        """The levels an order of ``taker``'s side trades against."""
        return self.asks if taker is Side.BUY else self.bids


@dataclass(frozen=True, slots=True)
class Match:
    price: int          # ticks
    quantity: int


@dataclass(slots=True)
class Taken:
    """Shares taken from one book, by (taker's side, price in ticks)."""

    shares: dict[tuple[Side, int], int] = field(default_factory=dict)

    def add(self, side: Side, matches: Iterable[Match]) -> None:
        for m in matches:
            key = (side, m.price)
            self.shares[key] = self.shares.get(key, 0) + m.quantity

    def apply(self, book: Book) -> Book:
        """``book`` without what was taken from it."""
        if not self.shares:
            return book

        def left(levels: tuple[Level, ...], taker: Side) -> tuple[Level, ...]:
            out = []
            for level in levels:
                size = level.size - self.shares.get((taker, level.price), 0)
                if size > 0:
                    out.append(Level(level.price, size))
            return tuple(out)

        return Book(left(book.bids, Side.SELL), left(book.asks, Side.BUY))


def simulate(rng: random.Random, last: int, low: int, high: int, *,
             depth: int = DEPTH) -> Book:
    """The book around ``last`` inside ``low..high`` (all in ticks); deterministic in ``rng``."""
    if not low <= last <= high:
        raise ValueError(f"last {last} outside {low}..{high}")
    gap = 2 if rng.randrange(8) == 0 else 1
    if rng.randrange(2):                    # the last trade took the ask
        best_ask, best_bid = last, last - gap
    else:                                   # it hit the bid
        best_bid, best_ask = last, last + gap
    asks: list[Level] = []
    bids: list[Level] = []
    price = best_ask
    for _ in range(depth):
        size = rng.randrange(1, MAX_LOTS + 1) * LOT
        if low <= price <= high:
            asks.append(Level(price, size))
        price += 1 + (rng.randrange(6) == 0)
    price = best_bid
    for _ in range(depth):
        size = rng.randrange(1, MAX_LOTS + 1) * LOT
        if low <= price <= high:
            bids.append(Level(price, size))
        price -= 1 + (rng.randrange(6) == 0)
    return Book(tuple(bids), tuple(asks))


def take(book: Book, side: Side, limit: int, quantity: int) -> list[Match]:
    """Match a limit order of ``side`` for ``quantity`` shares against ``book``: best price
    first, never through ``limit``, at most each level's size."""
    if quantity <= 0:
        raise ValueError("the quantity must be positive")
    matches: list[Match] = []
    wanted = quantity
    for level in book.side(side):
        if wanted == 0 or (level.price > limit if side is Side.BUY else level.price < limit):
            break
        got = min(wanted, level.size)
        matches.append(Match(level.price, got))
        wanted -= got
    return matches
