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

A resting order is the maker (``make``): when the book moves through it (asks at or under a
resting buy's limit, bids at or over a resting sell's), it fills at its own limit, for at most
the shares of those levels. Whether taken or made, shares leave a side of the book from its best
level outward, so ``Taken`` counts shares per side: a restart rebuilds it from the fills' sizes,
whatever their prices.

Call auctions (``call_interest``, ``auction_price``, ``allocate``): the outside market's
interest is a few buy and sell levels around a centre price that cross each other; with the
sandbox's own orders they form one auction, matched at one price chosen by the SSE/SZSE rule
(the greatest executed volume, with every better-priced order executed; of several, SSE: the
smallest imbalance, then the middle of those still tied, rounded half up to the tick; SZSE: the
one nearest the previous close). At that price every buy above it and sell under it executes;
at the price itself by priority: the outside interest first, then the sandbox's orders oldest
first (the sandbox cannot know the outside orders' times, so its customers are put last: never
a fill the market might not have given).
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
    """Shares taken from one book, by the taker's side. Every match takes a side from its best
    level outward (``take`` and ``make`` both do), so a count per side is the whole story."""

    shares: dict[Side, int] = field(default_factory=dict)

    def add(self, side: Side, matches: Iterable[Match]) -> None:
        for m in matches:
            self.shares[side] = self.shares.get(side, 0) + m.quantity

    def apply(self, book: Book) -> Book:
        """``book`` without what was taken from it."""
        if not any(self.shares.values()):
            return book

        def left(levels: tuple[Level, ...], taker: Side) -> tuple[Level, ...]:
            gone = self.shares.get(taker, 0)
            out = []
            for level in levels:
                used = min(gone, level.size)
                gone -= used
                if level.size > used:
                    out.append(Level(level.price, level.size - used))
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


def _through(side: Side, price: int, limit: int) -> bool:
    """Whether a level at ``price`` is beyond the limit of an order of ``side``."""
    return price > limit if side is Side.BUY else price < limit


def make(book: Book, side: Side, limit: int, quantity: int) -> list[Match]:
    """A resting order of ``side`` at ``limit`` for ``quantity`` shares, as the maker: the book
    has moved through it, so it fills at its own limit, for at most the shares of the levels at
    or better than the limit (sellers at or under a buy's limit, buyers at or over a sell's)."""
    if quantity <= 0:
        raise ValueError("the quantity must be positive")
    crossed = sum(x.size for x in book.side(side) if not _through(side, x.price, limit))
    got = min(quantity, crossed)
    return [Match(limit, got)] if got else []


# --- call auctions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bid:
    """One order in a call auction: ``key`` names a sandbox order, ``None`` the outside market."""

    key: str | None
    side: Side
    price: int          # ticks
    quantity: int


def call_interest(rng: random.Random, centre: int, low: int, high: int, *,
                  depth: int = DEPTH) -> list[Bid]:
    """The outside market's interest in a call auction around ``centre`` (ticks), inside
    ``low..high``; deterministic in ``rng``. Buyers start one or two ticks above the centre and
    sellers as far under it, ``depth`` levels a side a tick or two apart, 1-20 lots each: the
    two sides cross, so the auction trades near the centre."""
    if not low <= centre <= high:
        raise ValueError(f"centre {centre} outside {low}..{high}")
    bids: list[Bid] = []
    for side, direction in ((Side.BUY, -1), (Side.SELL, 1)):
        price = centre - direction * rng.randrange(1, 3)
        for _ in range(depth):
            size = rng.randrange(1, MAX_LOTS + 1) * LOT
            if low <= price <= high:
                bids.append(Bid(None, side, price, size))
            price += direction * (1 + (rng.randrange(4) == 0))
    return bids


@dataclass(frozen=True, slots=True)
class AuctionResult:
    price: int          # ticks
    volume: int         # shares traded (each side)


def auction_price(bids: Iterable[Bid], reference: int, *,
                  nearest: bool = False) -> AuctionResult | None:
    """The one price of a call auction (None: buyers and sellers do not cross).

    The SSE and SZSE rule: the price (1) at which the most shares trade, (2) at which every buy
    above it and every sell under it executes, and (3) at which the buyers or the sellers at
    the price itself execute whole ((3) always holds where (1) does: the volume is the smaller
    side). Of several such prices, SSE takes the one leaving the fewest shares unmatched at it,
    then the middle of those still tied (rounded half up to the tick: the rule does not say);
    SZSE (``nearest``) the one nearest the previous close ``reference`` (the lower of two as
    near: the rule does not say). Every tick between the lowest and highest order price is a
    candidate, since the tie rules may land between order prices."""
    orders = list(bids)
    buy_prices = [b.price for b in orders if b.side is Side.BUY]
    sell_prices = [b.price for b in orders if b.side is Side.SELL]
    if not buy_prices or not sell_prices or max(buy_prices) < min(sell_prices):
        return None
    lo, hi = min(sell_prices), max(buy_prices)     # outside this, one side is empty
    n = hi - lo + 1
    # demand[k]: buyers at >= lo + k; supply[k]: sellers at <= lo + k (one extra slot a side)
    at_buy = [0] * (n + 1)
    at_sell = [0] * (n + 1)
    for b in orders:
        if b.side is Side.BUY and b.price >= lo:
            at_buy[b.price - lo] += b.quantity
        elif b.side is Side.SELL and b.price <= hi:
            at_sell[b.price - lo] += b.quantity
    demand = [0] * (n + 1)
    for k in range(n - 1, -1, -1):
        demand[k] = demand[k + 1] + at_buy[k]
    supply = [0] * n
    running = 0
    for k in range(n):
        running += at_sell[k]
        supply[k] = running
    volumes = [min(demand[k], supply[k]) for k in range(n)]
    most = max(volumes)
    if not most:
        return None
    fair = [k for k in range(n) if volumes[k] == most
            and demand[k + 1] <= most and (k == 0 or supply[k - 1] <= most)]
    tied = fair or [k for k in range(n) if volumes[k] == most]
    if nearest:
        k = min(tied, key=lambda k: (abs(lo + k - reference), k))
    else:
        least = min(abs(demand[k] - supply[k]) for k in tied)
        tied = [k for k in tied if abs(demand[k] - supply[k]) == least]
        k = (tied[0] + tied[-1] + 1) // 2
    return AuctionResult(lo + k, most)


def allocate(bids: Iterable[Bid], result: AuctionResult) -> list[int]:
    """Shares each of ``bids`` (in the order given, which is time priority) gets at the auction
    price: buys above it and sells under it first, best price first, then those at the price in
    the order given, until the volume is used up on each side."""
    orders = list(bids)
    got = [0] * len(orders)
    for side in (Side.BUY, Side.SELL):
        sign = -1 if side is Side.BUY else 1
        eligible = sorted((k for k, b in enumerate(orders) if b.side is side
                           and not _through(side, result.price, b.price)),
                          key=lambda k: (sign * orders[k].price, k))
        left = result.volume
        for k in eligible:
            got[k] = min(left, orders[k].quantity)
            left -= got[k]
    return got
