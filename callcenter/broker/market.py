"""The sandbox market, sans-IO: seeded price walks inside the limit band, a simulated order book
around the last price, and limit orders matched against that book.

``Market`` is fed the time (``step(now)``) and answers with executions and expiries; it never
reads a clock, sleeps or touches a database, so the same inputs always give the same market.

Prices move on a fixed grid: every ``interval`` from the start of each session (10 s by default),
each security takes one step of a random walk in whole ticks, drawn from ``random.Random`` seeded
with (seed, code, date). Because the grid and the seed are fixed, the prices of a day do not
depend on how often ``step`` is called, and a restored state (``draws`` = grid steps taken)
continues the same path. No float is involved: prices are integer ticks, volumes integer shares.

Sessions here are the matching hours of ``rules.session_bounds``: continuous trading and the
closing call, which the sandbox matches like continuous trading (no call-auction matching).

The book (``callcenter.broker.book``): at every grid point (and at each session's start) the
market shows a fresh book of a few levels a side around the last price, inside the day's
limits, drawn from ``random.Random`` seeded with (seed, code, grid point, last price): the
same moment always shows the same book, however often it is looked at. Open orders are matched
at each grid step and at every ``step`` during a session, oldest order first: a buy takes the
asks up to its limit, a sell the bids down to its limit, at the levels' prices and sizes. One
execution per level taken; what the book cannot cover stays open and is matched again against
the next book. Shares taken from a book are gone from it until the next grid point; a restored
market is told the executions since that point (``taken``) so a restart neither frees nor
loses liquidity. The book is the outside market: it does not see the sandbox's own resting
orders (they never become the best bid or ask, and never trade with each other).
Orders of a day expire at that day's close. When a later trading day begins, the last price
becomes the previous close; trading days skipped entirely are not simulated.

``frozen=True`` keeps prices still (tests move them with ``set_last``); matching, expiry and
day changes still happen.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from callcenter.broker import book as bk
from callcenter.broker import rules as r
from callcenter.broker.interface import Quote, Security, Side

DEFAULT_INTERVAL = dt.timedelta(seconds=10)
# One walk step is -2..+2 units; a unit is 1/2000 of the previous close (at least one tick),
# which gives a day's range of a few percent, like a quiet real session.
_UNIT_DIVISOR = 2000
_MAX_LOTS_PER_STEP = 50
_LOT = 100
# Without a daily limit (first days after listing) the walk is kept under this multiple of the
# previous close.
_UNLIMITED_MULTIPLE = 10


@dataclass(frozen=True, slots=True)
class Listing:
    """A security and the close it starts from."""

    security: Security
    prev_close: Decimal


@dataclass(slots=True)
class InstrumentState:
    """One security's trading day. Prices are integer ticks; ``draws`` is the walk's position."""

    code: str
    trade_date: dt.date
    prev_close: int
    open: int | None          # None until the first trade of the day
    last: int
    high: int
    low: int
    volume: int
    turnover: int             # sum of price x shares, in ticks x shares (exact, no Decimal)
    draws: int
    suspended: bool = False


@dataclass(frozen=True, slots=True)
class RestingOrder:
    order_no: str
    code: str
    side: Side
    price: Decimal
    quantity: int


@dataclass(frozen=True, slots=True)
class Execution:
    order_no: str
    code: str
    side: Side
    price: Decimal
    quantity: int
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Depth:
    """The book as shown: (price, shares) levels, best first."""

    bids: tuple[tuple[Decimal, int], ...]
    asks: tuple[tuple[Decimal, int], ...]


@dataclass(frozen=True, slots=True)
class StepResult:
    executions: tuple[Execution, ...] = ()
    expired: tuple[str, ...] = ()      # order numbers whose day closed before they filled
    changed: bool = False              # the state moved: persist it


class Market:
    def __init__(self, listings: Iterable[Listing], now: dt.datetime, *,
                 rules: r.Rules = r.DEFAULT_RULES, seed: int = 0, frozen: bool = False,
                 interval: dt.timedelta = DEFAULT_INTERVAL,
                 states: Iterable[InstrumentState] = (),
                 taken: Iterable[Execution] = ()) -> None:
        """``taken``: executions already recorded (any; those of the book showing at ``now``
        are taken out of it again)."""
        if interval <= dt.timedelta(0):
            raise ValueError("the interval must be positive")
        self.rules = rules
        self.seed = seed
        self.frozen = frozen
        self.interval = interval
        self._now = r.local(now, rules)
        self._securities: dict[str, Security] = {}
        self._states: dict[str, InstrumentState] = {}
        self._rngs: dict[str, random.Random] = {}
        self._band: dict[str, tuple[int, int, int]] = {}   # low, high, walk unit (ticks)
        self._book: dict[str, RestingOrder] = {}
        # code -> (grid point, shares taken from its book); code -> ((grid point, last), book)
        self._taken: dict[str, tuple[dt.datetime, bk.Taken]] = {}
        self._books: dict[str, tuple[tuple[dt.datetime, int], bk.Book]] = {}
        restored = {s.code: s for s in states}
        # A security added since the state was saved joins on the saved day, so it rolls with
        # the others.
        base_date = max((s.trade_date for s in restored.values()), default=self._now.date())
        for listing in listings:
            code = listing.security.code
            self._securities[code] = listing.security
            state = restored.get(code)
            if state is None:
                ticks = self._ticks(listing.prev_close)
                state = InstrumentState(code, base_date, ticks, None, ticks, ticks, ticks,
                                        0, 0, 0)
            else:
                state = replace(state)
            self._states[code] = state
            self._rngs[code] = self._rng_at(code, state.trade_date, state.draws)
            self._band[code] = self._band_ticks(code)
        self._date = base_date
        showing = self._book_time(self._now)
        for ex in taken:
            if ex.code in self._states and self._book_time(ex.at) == showing:
                self._taken_from(ex.code, showing).add(
                    ex.side, [bk.Match(self._ticks(ex.price), ex.quantity)])

    # --- reading ----------------------------------------------------------------------------------

    @property
    def now(self) -> dt.datetime:
        return self._now

    def security(self, code: str) -> Security | None:
        return self._securities.get(code)

    def codes(self) -> list[str]:
        return sorted(self._securities)

    def state(self, code: str) -> InstrumentState:
        return replace(self._states[code])

    def snapshot(self) -> list[InstrumentState]:
        return [replace(s) for s in self._states.values()]

    def last(self, code: str) -> Decimal:
        return self._price(self._states[code].last)

    def prev_close(self, code: str) -> Decimal:
        return self._price(self._states[code].prev_close)

    def is_suspended(self, code: str) -> bool:
        return self._states[code].suspended

    def resting(self) -> list[RestingOrder]:
        return list(self._book.values())

    def depth(self, code: str) -> Depth:
        """The book showing now, less what has been taken from it."""
        book = self._current_book(code, self._now)
        return Depth(tuple((self._price(x.price), x.size) for x in book.bids),
                     tuple((self._price(x.price), x.size) for x in book.asks))

    def quote(self, code: str) -> Quote:
        s = self._states[code]
        security = self._securities[code]
        prev_close = self._price(s.prev_close)
        band = r.price_band(security, prev_close, s.trade_date, self.rules)
        low, high = band if band is not None else (None, None)
        return Quote(
            security=security,
            prev_close=prev_close,
            open=self._price(s.open if s.open is not None else s.prev_close),
            last=self._price(s.last),
            high=self._price(s.high),
            low=self._price(s.low),
            volume=s.volume,
            amount=r.money(s.turnover * self.rules.tick),
            limit_up=high,
            limit_down=low,
            at=self._now,
        )

    # --- orders -----------------------------------------------------------------------------------

    def add_order(self, order: RestingOrder) -> None:
        if order.code not in self._states:
            raise KeyError(order.code)
        self._book[order.order_no] = order

    def remove_order(self, order_no: str) -> bool:
        return self._book.pop(order_no, None) is not None

    # --- moving -----------------------------------------------------------------------------------

    def set_last(self, code: str, price: Decimal) -> None:
        """Put the last price somewhere inside today's band (tests, demos)."""
        s = self._states[code]
        low_ticks, high_ticks, _ = self._band_ticks(code)
        low, high = self._price(low_ticks), self._price(high_ticks)
        if price % self.rules.tick or not low <= price <= high:
            raise ValueError(f"{price} is off the tick or outside {low}..{high}")
        ticks = self._ticks(price)
        s.last = ticks
        s.high, s.low = max(s.high, ticks), min(s.low, ticks)
        if s.open is None:
            s.open = ticks

    def set_suspended(self, code: str, suspended: bool) -> None:
        self._states[code].suspended = suspended

    def step(self, now: dt.datetime) -> StepResult:
        """Advance to ``now``: walk the grid steps since the last call, match, expire, roll."""
        now = r.local(now, self.rules)
        executions: list[Execution] = []
        expired: list[str] = []
        changed = False
        if now > self._now:
            changed |= self._walk(self._now, min(now, r.day_close(self._date, self.rules)),
                                  executions)
            if now >= r.day_close(self._date, self.rules) and self._book:
                expired = list(self._book)
                self._book.clear()
            if now.date() > self._date and r.is_trading_day(now.date(), self.rules):
                self._roll(now.date())
                start = dt.datetime.combine(now.date(), dt.time(0), self.rules.tz)
                self._walk(start, now, executions)
                changed = True
            self._now = now
        if r.is_trading_time(now, self.rules):
            executions.extend(self._match(now))
        # Time passing without a grid step changes nothing worth saving: replaying from the
        # saved time walks the same (empty) stretch of grid.
        return StepResult(tuple(executions), tuple(expired),
                          changed or bool(executions) or bool(expired))

    # --- inside -----------------------------------------------------------------------------------

    def _price(self, ticks: int) -> Decimal:
        return (ticks * self.rules.tick).quantize(self.rules.tick)

    def _ticks(self, price: Decimal) -> int:
        return int(price / self.rules.tick)

    def _rng_at(self, code: str, day: dt.date, draws: int) -> random.Random:
        # A str seed goes through SHA-512: the same on every run and platform.
        rng = random.Random(f"{self.seed}:{code}:{day.isoformat()}")
        for _ in range(draws):
            self._draw(rng)
        return rng

    @staticmethod
    def _draw(rng: random.Random) -> tuple[int, int]:
        return rng.randrange(-2, 3), rng.randrange(1, _MAX_LOTS_PER_STEP + 1)

    def _grid(self, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
        """Grid points t with after < t <= until, inside sessions of ``self._date``."""
        points: list[dt.datetime] = []
        for start, end in r.session_bounds(self._date, self.rules):
            first = max(1, (after - start) // self.interval + 1)
            last = min((end - start) // self.interval, (until - start) // self.interval)
            points.extend(start + k * self.interval for k in range(first, last + 1))
        return points

    def _walk(self, after: dt.datetime, until: dt.datetime, out: list[Execution]) -> bool:
        points = self._grid(after, until)
        for at in points:
            if not self.frozen:
                for code, s in self._states.items():
                    if not s.suspended:
                        self._move(code, s)
            out.extend(self._match(at))
        return bool(points)

    def _band_ticks(self, code: str) -> tuple[int, int, int]:
        s = self._states[code]
        band = r.price_band(self._securities[code], self._price(s.prev_close), s.trade_date,
                            self.rules)
        unit = max(1, s.prev_close // _UNIT_DIVISOR)
        if band is None:  # first days after listing: no limit; the walk stays on the grid
            return 1, s.prev_close * _UNLIMITED_MULTIPLE, unit
        return self._ticks(band[0]), self._ticks(band[1]), unit

    def _move(self, code: str, s: InstrumentState) -> None:
        # Hot loop (a day is ~1440 steps per security): integers only.
        step, lots = self._draw(self._rngs[code])
        s.draws += 1
        low, high, unit = self._band[code]
        s.last = min(max(s.last + step * unit, low), high)
        if s.open is None:
            s.open = s.high = s.low = s.last
        elif s.last > s.high:
            s.high = s.last
        elif s.last < s.low:
            s.low = s.last
        shares = lots * _LOT
        s.volume += shares
        s.turnover += s.last * shares

    def _match(self, at: dt.datetime) -> list[Execution]:
        done: list[Execution] = []
        for order in sorted(self._book.values(), key=lambda o: o.order_no):
            if self._states[order.code].suspended:
                continue
            matches = bk.take(self._current_book(order.code, at), order.side,
                              self._ticks(order.price), order.quantity)
            if not matches:
                continue
            self._taken_from(order.code, self._book_time(at)).add(order.side, matches)
            left = order.quantity - sum(m.quantity for m in matches)
            if left:
                self._book[order.order_no] = replace(order, quantity=left)
            else:
                del self._book[order.order_no]
            done.extend(Execution(order.order_no, order.code, order.side,
                                  self._price(m.price), m.quantity, at) for m in matches)
        return done

    def _book_time(self, at: dt.datetime) -> dt.datetime:
        """The grid point whose book shows at ``at``: the last one at or before it (a session's
        start counts; at lunch and after the close, the session's last); ``at`` itself before
        the day's first session or on a day without one (nothing is matched then)."""
        shown: dt.datetime | None = None
        for start, end in r.session_bounds(at.date(), self.rules):
            if at >= start:
                shown = start + (min(at, end) - start) // self.interval * self.interval
        return at if shown is None else shown

    def _taken_from(self, code: str, shown: dt.datetime) -> bk.Taken:
        held = self._taken.get(code)
        if held is None or held[0] != shown:
            held = (shown, bk.Taken())
            self._taken[code] = held
        return held[1]

    def _current_book(self, code: str, at: dt.datetime) -> bk.Book:
        shown = self._book_time(at)
        low, high, _ = self._band[code]
        last = min(max(self._states[code].last, low), high)
        cached = self._books.get(code)
        if cached is None or cached[0] != (shown, last):
            rng = random.Random(f"{self.seed}:{code}:{shown.isoformat()}:{last}:book")
            cached = ((shown, last), bk.simulate(rng, last, low, high))
            self._books[code] = cached
        return self._taken_from(code, shown).apply(cached[1])

    def _roll(self, day: dt.date) -> None:
        """A new trading day: yesterday's last is the previous close; the walk restarts."""
        for code, s in self._states.items():
            self._states[code] = InstrumentState(code, day, s.last, None, s.last, s.last, s.last,
                                                 0, 0, 0, s.suspended)
            self._rngs[code] = self._rng_at(code, day, 0)
            self._band[code] = self._band_ticks(code)
        self._taken.clear()
        self._books.clear()
        self._date = day
