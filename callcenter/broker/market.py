"""The sandbox market, sans-IO: seeded price walks inside the limit band, a simulated order book
around the last price, and limit orders matched against that book.

``Market`` is fed the time (``step(now)``) and answers with executions and expiries; it never
reads a clock, sleeps or touches a database, so the same inputs always give the same market.

Prices move on a fixed grid: every ``interval`` from the start of each session (10 s by default),
each security takes one step of a random walk in whole ticks, drawn from ``random.Random`` seeded
with (seed, code, date). Because the grid and the seed are fixed, the prices of a day do not
depend on how often ``step`` is called, and a restored state (``draws`` = grid steps taken)
continues the same path. No float is involved: prices are integer ticks, volumes integer shares.

Prices walk and orders match continuously in continuous trading (09:30-11:30, 13:00-14:57).
The call auctions (``sessions.auction_times``: 09:25 and 15:00) match once, at one price: the
orders at the market then (those entered in the call, and at the close those resting from the
day) against the outside market's auction interest (``book.call_interest``, seeded with (seed,
code, auction time), around the last price moved by a seeded gap), by the SZSE rule for SZ
codes and the SSE rule for the others (BSE assumed alike; ``book.auction_price``). The auction
price becomes the open (09:25) or the close (15:00) and the last price; a frozen market fills
orders at it but keeps its prices still. What the opening auction does not fill rests into
continuous trading; what the closing auction does not fill expires at 15:00.

The book (``callcenter.broker.book``): at every grid point (and at each session's start) the
market shows a fresh book of a few levels a side around the last price, inside the day's
limits, drawn from ``random.Random`` seeded with (seed, code, grid point, last price): the
same moment always shows the same book, however often it is looked at. Open orders are matched
at each grid step and at every ``step`` during a session, oldest order first. An order arriving
in continuous trading is the taker, once, against the book showing when it arrived (its
``placed`` time): a buy takes the asks up to its limit, a sell the bids down to its limit, at
the levels' prices and sizes, one execution per level. What is left rests, and a resting order
is the maker: when a later book has asks at or under a resting buy's limit (bids at or over a
resting sell's), it fills at its own limit, for at most those levels' shares. Shares taken
from a book are gone from it until the next grid point; a restored
market is told the executions since that point (``taken``) so a restart neither frees nor
loses liquidity. The book is the outside market: it does not see the sandbox's own resting
orders (in continuous trading they never become the best bid or ask, and never trade with each
other; in a call auction they count like any order, and may trade with each other).
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
from callcenter.broker.sessions import CALLS, Phase, auction_times, continuous_hours

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
    placed: dt.datetime | None = None   # when it reached the exchange; None: the market's now


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
        # orders still to have their first turn at the market (the taker's, in continuous)
        self._fresh: set[str] = set()
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
        auctions = set(self._auctions(self._now.date()))
        for ex in taken:
            if (ex.code in self._states and ex.at not in auctions
                    and self._book_time(ex.at) == showing):
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
        """An order reaching the market at ``order.placed`` (default now). A restored one whose
        first turn came before the restored time (see ``_first_turn``) is resting already."""
        if order.code not in self._states:
            raise KeyError(order.code)
        placed = self._now if order.placed is None else r.local(order.placed, self.rules)
        order = replace(order, placed=placed)
        self._book[order.order_no] = order
        first = self._first_turn(placed)
        # a turn at the market's time is still to come for an order of continuous trading (it
        # takes at the next step), but over for one of a call auction: the market ran that
        # auction when it stepped to its time
        in_call = r.phase(placed, self.rules) in CALLS
        if first is not None and (first > self._now or (first == self._now and not in_call)):
            self._fresh.add(order.order_no)
        else:
            self._fresh.discard(order.order_no)

    def remove_order(self, order_no: str) -> bool:
        self._fresh.discard(order_no)
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
        """Advance to ``now``: walk the grid steps since the last call, hold the call auctions
        passed on the way, match, expire, roll."""
        now = r.local(now, self.rules)
        executions: list[Execution] = []
        expired: list[str] = []
        changed = False
        if now > self._now:
            changed |= self._run(self._now, min(now, r.day_close(self._date, self.rules)),
                                 executions)
            if now >= r.day_close(self._date, self.rules) and self._book:
                expired = list(self._book)
                self._book.clear()
                self._fresh.clear()
            if now.date() > self._date and r.is_trading_day(now.date(), self.rules):
                self._roll(now.date())
                start = dt.datetime.combine(now.date(), dt.time(0), self.rules.tz)
                self._run(start, now, executions)
                changed = True
            self._now = now
        executions.extend(self._arrivals(now, inclusive=False))
        if self._continuous(now):
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

    def _sessions(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """The stretches of continuous trading of ``day`` (none on a non-trading day)."""
        if not r.is_trading_day(day, self.rules):
            return []
        tz = self.rules.tz
        return [(dt.datetime.combine(day, s, tz), dt.datetime.combine(day, e, tz))
                for s, e in continuous_hours(self.rules.schedule)]

    def _auctions(self, day: dt.date) -> list[dt.datetime]:
        """When ``day``'s call auctions match (none on a non-trading day)."""
        if not r.is_trading_day(day, self.rules):
            return []
        return [dt.datetime.combine(day, t, self.rules.tz)
                for t in auction_times(self.rules.schedule)]

    def _continuous(self, at: dt.datetime) -> bool:
        return r.phase(at, self.rules) is Phase.CONTINUOUS

    def _first_turn(self, placed: dt.datetime) -> dt.datetime | None:
        """When an order placed at ``placed`` first meets the market: at once in continuous
        trading (as the taker); else at the next call auction or continuous stretch, whichever
        comes first that day (None: not that day; it expires unmatched)."""
        if self._continuous(placed):
            return placed
        later = [t for t in self._auctions(placed.date()) if t >= placed]
        later += [max(start, placed) for start, end in self._sessions(placed.date())
                  if placed < end]
        return min(later, default=None)

    def _grid(self, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
        """Grid points t with after < t <= until, inside continuous trading of ``self._date``."""
        points: list[dt.datetime] = []
        for start, end in self._sessions(self._date):
            first = max(1, (after - start) // self.interval + 1)
            last = min((end - start) // self.interval, (until - start) // self.interval)
            points.extend(start + k * self.interval for k in range(first, last + 1))
        return points

    def _run(self, after: dt.datetime, until: dt.datetime, out: list[Execution]) -> bool:
        """The events in (after, until], in time order: grid steps (walk, then match) and call
        auctions; before each, orders that arrived earlier in continuous trading take their
        turn as takers against the book they saw."""
        auctions = [t for t in self._auctions(self._date) if after < t <= until]
        events = sorted([(t, True) for t in auctions] + [(t, False) for t in
                                                        self._grid(after, until)])
        for at, auction in events:
            out.extend(self._arrivals(at, inclusive=False))
            if auction:
                out.extend(self._auction(at))
                continue
            if not self.frozen:
                for code, s in self._states.items():
                    if not s.suspended:
                        self._move(code, s)
            out.extend(self._match(at))
        return bool(events)

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

    def _fill(self, order: RestingOrder, matches: list[bk.Match], shown: dt.datetime,
              at: dt.datetime) -> list[Execution]:
        """Record ``matches`` of ``order`` (taken from the book showing at ``shown``)."""
        if not matches:
            return []
        self._taken_from(order.code, shown).add(order.side, matches)
        left = order.quantity - sum(m.quantity for m in matches)
        if left:
            self._book[order.order_no] = replace(order, quantity=left)
        else:
            del self._book[order.order_no]
            self._fresh.discard(order.order_no)
        return [Execution(order.order_no, order.code, order.side, self._price(m.price),
                          m.quantity, at) for m in matches]

    def _arrivals(self, before: dt.datetime, *, inclusive: bool) -> list[Execution]:
        """Orders that arrived in continuous trading before ``before`` (or at it) and have not
        had their turn: each takes, once, from the book showing when it arrived."""
        done: list[Execution] = []
        for order in sorted(self._book.values(), key=lambda o: o.order_no):
            placed = order.placed
            if (order.order_no not in self._fresh or placed is None
                    or not (placed <= before if inclusive else placed < before)
                    or not self._continuous(placed)):
                continue
            self._fresh.discard(order.order_no)
            if self._states[order.code].suspended:
                continue
            matches = bk.take(self._current_book(order.code, placed), order.side,
                              self._ticks(order.price), order.quantity)
            done.extend(self._fill(order, matches, self._book_time(placed), placed))
        return done

    def _match(self, at: dt.datetime) -> list[Execution]:
        """Continuous matching at ``at``: arrivals at ``at`` take; resting orders make."""
        done = self._arrivals(at, inclusive=True)
        shown = self._book_time(at)
        for order in sorted(self._book.values(), key=lambda o: o.order_no):
            if ((order.placed is not None and order.placed > at)
                    or self._states[order.code].suspended):
                continue
            if order.order_no in self._fresh \
                    and order.placed is not None and r.phase(order.placed, self.rules) in CALLS:
                turn = self._first_turn(order.placed)
                if turn is not None and turn > at:
                    continue                       # waits for its call auction
                # its auction is over without it (its code was suspended then): it rests
                self._fresh.discard(order.order_no)
            if order.order_no in self._fresh:
                # arrived while the market was shut (lunch, before the open): it takes now
                self._fresh.discard(order.order_no)
                matches = bk.take(self._current_book(order.code, at), order.side,
                                  self._ticks(order.price), order.quantity)
            else:
                matches = bk.make(self._current_book(order.code, at), order.side,
                                  self._ticks(order.price), order.quantity)
            done.extend(self._fill(order, matches, shown, at))
        return done

    def _auction(self, at: dt.datetime) -> list[Execution]:
        """The call auction at ``at``, security by security: the orders at the market then
        against the outside interest, at one price (see ``book.auction_price``)."""
        done: list[Execution] = []
        for code in sorted(self._states):
            s = self._states[code]
            if s.suspended:
                continue
            ours = sorted((o for o in self._book.values() if o.code == code
                           and (o.placed is None or o.placed <= at)), key=lambda o: o.order_no)
            low, high, unit = self._band[code]
            last = min(max(s.last, low), high)
            rng = random.Random(f"{self.seed}:{code}:{at.isoformat()}:{last}:auction")
            gap = 0 if self.frozen else rng.randrange(-4, 5) * unit
            centre = min(max(last + gap, low), high)
            bids = bk.call_interest(rng, centre, low, high)
            bids += [bk.Bid(o.order_no, o.side, self._ticks(o.price), o.quantity) for o in ours]
            result = bk.auction_price(bids, s.prev_close,
                                      nearest=self._securities[code].exchange == "SZ")
            for o in ours:
                self._fresh.discard(o.order_no)
            if result is None:
                continue
            got = bk.allocate(bids, result)
            for bid, quantity in zip(bids, got, strict=True):
                if bid.key is None or not quantity:
                    continue
                order = self._book[bid.key]
                left = order.quantity - quantity
                if left:
                    self._book[bid.key] = replace(order, quantity=left)
                else:
                    del self._book[bid.key]
                done.append(Execution(order.order_no, code, order.side,
                                      self._price(result.price), quantity, at))
            if not self.frozen:
                s.last = result.price
                if s.open is None:
                    s.open = s.high = s.low = s.last
                s.high, s.low = max(s.high, s.last), min(s.low, s.last)
                s.volume += result.volume
                s.turnover += result.price * result.volume
        return done

    def _book_time(self, at: dt.datetime) -> dt.datetime:
        """The grid point whose book shows at ``at``: the last one at or before it (a session's
        start counts; at lunch and after the close, the session's last); ``at`` itself before
        the day's first session or on a day without one (nothing is matched then)."""
        shown: dt.datetime | None = None
        for start, end in self._sessions(at.date()):
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
        self._fresh.clear()
        self._date = day
