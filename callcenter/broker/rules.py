"""A-share trading and transfer rules of the sandbox, as pure functions (no I/O, no clock).

Owns: trading days and the day's phases (call auctions, continuous trading, no-cancel windows),
orders outside hours (queued or refused), lots and odd lots per board, the tick, daily price
limits per board and risk-warning status (none in the first days after listing), fees, buying
power, T+1 sellable shares, cash from today's sales (可用不可取), bank-securities transfer limits
and hours, and weak-password rules. Every number is a field of ``Rules`` (board tables in
``boards``, the day's phases in ``sessions``, the calendar from ``exchange_calendar``) so an
operator can configure it. A check that fails raises ``BrokerRefusal(RefusalCode.X.value,
"English explanation", **params)``; params are strings the IVR reads out, never secrets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.broker.boards import DEFAULT_BOARDS, BoardRules
from callcenter.broker.interface import (
    Board,
    OrderPreview,
    PasswordKind,
    RefusalCode,
    Security,
    Side,
)
from callcenter.broker.sessions import (
    DEFAULT_SCHEDULE,
    MATCHING,
    Phase,
    Schedule,
    matching_hours,
    phase_at,
    takes_cancels,
    takes_orders,
)
from callcenter.errors import BrokerRefusal

CENT = Decimal("0.01")

SHANGHAI: dt.tzinfo
try:
    SHANGHAI = ZoneInfo("Asia/Shanghai")
except ZoneInfoNotFoundError:  # pragma: no cover - no tz database on this machine
    # China has kept UTC+8 without daylight saving since 1991: a fixed offset is exact.
    SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


class AfterHours(StrEnum):
    """What happens to an order when the exchange takes none."""

    QUEUE = "queue"      # accepted and sent when the exchange next takes orders (most brokers)
    REFUSE = "refuse"    # refused: market_closed


def _default_failures() -> Mapping[PasswordKind, int]:
    return MappingProxyType({PasswordKind.TRADING: 5, PasswordKind.FUND: 3,
                             PasswordKind.BANK: 3})


@dataclass(frozen=True, slots=True)
class Rules:
    """Every configurable number of the sandbox. The defaults follow the exchanges' rules."""

    tz: dt.tzinfo = SHANGHAI
    #: a trading day's phases, [start, end) in ``tz``
    schedule: Schedule = DEFAULT_SCHEDULE
    #: exchange holidays falling on weekdays (weekends are never trading days)
    holidays: frozenset[dt.date] = frozenset()
    #: years the calendar covers -> provisional (derived, not the exchange's notice)
    calendar_years: Mapping[int, bool] = field(default_factory=lambda: MappingProxyType({}))
    after_hours: AfterHours = AfterHours.QUEUE
    boards: Mapping[Board, BoardRules] = field(default_factory=lambda: DEFAULT_BOARDS)
    tick: Decimal = CENT
    commission_rate: Decimal = Decimal("0.00025")
    commission_min: Decimal = Decimal("5.00")
    transfer_fee_rate: Decimal = Decimal("0.00001")
    stamp_duty_rate: Decimal = Decimal("0.0005")           # sells only
    #: bank-securities transfers: [start, end) in ``tz``, on trading days
    transfer_hours: tuple[dt.time, dt.time] = (dt.time(9, 0), dt.time(16, 0))
    #: per account, per direction, per calendar day
    transfer_daily_limit: Decimal = Decimal("500000.00")
    #: wrong passwords in a row before that kind of password is locked
    max_failures: Mapping[PasswordKind, int] = field(default_factory=_default_failures)


DEFAULT_RULES = Rules()


def refusal(code: RefusalCode, message: str, /, **params: object) -> BrokerRefusal:
    """A ``BrokerRefusal`` whose params are all strings (Decimals keep their exact text)."""
    return BrokerRefusal(code.value, message, **{k: str(v) for k, v in params.items()})


def money(value: Decimal) -> Decimal:
    """Yuan to the fen, rounded half up as brokers' statements do."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def require_decimal(value: object, what: str) -> Decimal:
    """Refuse floats (and anything else) where money is expected: a float is a bug, not input."""
    if isinstance(value, bool) or not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    return value


# --- calendar -------------------------------------------------------------------------------------


def local(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> dt.datetime:
    """``now`` in the exchange's time zone; a naive datetime is refused (ambiguous)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the clock must return an aware datetime")
    return now.astimezone(rules.tz)


def is_trading_day(day: dt.date, rules: Rules = DEFAULT_RULES) -> bool:
    return day.weekday() < 5 and day not in rules.holidays


def next_trading_day(day: dt.date, rules: Rules = DEFAULT_RULES) -> dt.date:
    """The first trading day after ``day``."""
    day += dt.timedelta(days=1)
    while not is_trading_day(day, rules):
        day += dt.timedelta(days=1)
    return day


def phase(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> Phase:
    """The exchange's phase at ``now``: ``CLOSED`` all day on a non-trading day."""
    t = local(now, rules)
    if not is_trading_day(t.date(), rules):
        return Phase.CLOSED
    return phase_at(t.time(), rules.schedule)


def is_trading_time(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> bool:
    """True while the market matches: continuous trading and the closing call."""
    return phase(now, rules) in MATCHING


def session_bounds(day: dt.date, rules: Rules = DEFAULT_RULES) -> list[tuple[dt.datetime,
                                                                              dt.datetime]]:
    """The matching hours of ``day`` as aware datetimes (empty on a non-trading day)."""
    if not is_trading_day(day, rules):
        return []
    return [(dt.datetime.combine(day, s, rules.tz), dt.datetime.combine(day, e, rules.tz))
            for s, e in matching_hours(rules.schedule)]


def day_close(day: dt.date, rules: Rules = DEFAULT_RULES) -> dt.datetime:
    """When the day's last phase ends: orders of that day expire then."""
    last_end = max(end for _, end, _ in rules.schedule)
    return dt.datetime.combine(day, last_end, rules.tz)


def is_transfer_time(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> bool:
    t = local(now, rules)
    start, end = rules.transfer_hours
    return is_trading_day(t.date(), rules) and start <= t.time() < end


def _order_hours(rules: Rules) -> str:
    """When the exchange takes orders, e.g. "09:15-09:25, 09:30-11:30, 13:00-15:00"."""
    spans: list[tuple[dt.time, dt.time]] = []
    for start, end, p in rules.schedule:
        if not takes_orders(p):
            continue
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return ", ".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in spans)


def next_order_window(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> dt.datetime:
    """The first instant at or after ``now`` at which the exchange takes orders."""
    t = local(now, rules)
    day = t.date()
    if is_trading_day(day, rules):
        for start, end, p in rules.schedule:
            if takes_orders(p) and t.time() < end:
                return max(t, dt.datetime.combine(day, start, rules.tz))
    day = next_trading_day(day, rules)
    first = min(start for start, _, p in rules.schedule if takes_orders(p))
    return dt.datetime.combine(day, first, rules.tz)


def order_timing(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> dt.datetime | None:
    """None: the exchange takes the order now. Otherwise when a queued order goes to it; with
    ``AfterHours.REFUSE`` the order is refused (``market_closed``) instead."""
    if takes_orders(phase(now, rules)):
        return None
    if rules.after_hours is AfterHours.REFUSE:
        hours = _order_hours(rules)
        raise refusal(RefusalCode.MARKET_CLOSED,
                      f"orders are accepted on trading days {hours}", hours=hours)
    return next_order_window(now, rules)


def check_cancel_time(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> None:
    """Refuse a cancel of an order at the exchange while the exchange takes none (09:20-09:30,
    the closing call). ``until`` is when it takes cancels again; in the closing call it takes
    none again today (``reason="closing"``): what is not filled expires at the close."""
    t = local(now, rules)
    p = phase(t, rules)
    if p is Phase.CLOSED or takes_cancels(p):
        return  # outside hours the broker cancels what it holds; the exchange has expired it
    for start, _, q in rules.schedule:
        if start > t.time() and takes_cancels(q):
            raise refusal(RefusalCode.CANCEL_CLOSED, f"the exchange takes no cancels until "
                          f"{start:%H:%M}", until=f"{start:%H:%M}")
    raise refusal(RefusalCode.CANCEL_CLOSED, "the exchange takes no cancels in the closing "
                  "call: the order can no longer be cancelled today; what is not filled "
                  "expires at the close", reason="closing")


# --- prices and quantities ------------------------------------------------------------------------


def in_first_days(listed: dt.date, day: dt.date, days: int,
                  rules: Rules = DEFAULT_RULES) -> bool:
    """Whether ``day`` is one of the first ``days`` trading days from ``listed`` (inclusive);
    a day before the listing counts as one of them."""
    n, d = 0, listed
    while d <= day:
        n += is_trading_day(d, rules)
        if n > days:
            return False
        d += dt.timedelta(days=1)
    return True


def limit_pct(security: Security, day: dt.date, rules: Rules = DEFAULT_RULES) -> Decimal | None:
    """The daily limit of ``security`` on ``day``: None in its first days after listing."""
    board = rules.boards[security.board]
    if security.listed is not None and \
            in_first_days(security.listed, day, board.unlimited_days, rules):
        return None
    return board.risk_warning_pct if security.risk_warning else board.limit_pct


def price_limits(prev_close: Decimal, pct: Decimal,
                 rules: Rules = DEFAULT_RULES) -> tuple[Decimal, Decimal]:
    """(limit down, limit up): prev close x (1 -/+ pct), rounded to the tick half up."""
    high = (prev_close * (1 + pct)).quantize(rules.tick, rounding=ROUND_HALF_UP)
    low = (prev_close * (1 - pct)).quantize(rules.tick, rounding=ROUND_HALF_UP)
    return max(low, rules.tick), high


def price_band(security: Security, prev_close: Decimal, day: dt.date,
               rules: Rules = DEFAULT_RULES) -> tuple[Decimal, Decimal] | None:
    """Today's (limit down, limit up), or None when the security has no limit today."""
    pct = limit_pct(security, day, rules)
    return None if pct is None else price_limits(prev_close, pct, rules)


def check_price(price: Decimal, prev_close: Decimal, security: Security, day: dt.date,
                rules: Rules = DEFAULT_RULES) -> Decimal:
    require_decimal(price, "price")
    if not price.is_finite() or price <= 0:
        raise refusal(RefusalCode.INVALID_PRICE, "the price must be a positive number")
    if price % rules.tick != 0:
        raise refusal(RefusalCode.PRICE_TICK, f"prices are quoted in steps of {rules.tick}",
                      tick=rules.tick)
    band = price_band(security, prev_close, day, rules)
    if band is not None and not band[0] <= price <= band[1]:
        low, high = band
        raise refusal(RefusalCode.PRICE_LIMIT,
                      f"today's price must be between {low} and {high}", low=low, high=high)
    return price.quantize(rules.tick)


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError(f"quantity must be an int, not {type(quantity).__name__}")
    if quantity <= 0:
        raise refusal(RefusalCode.INVALID_QUANTITY, "the quantity must be a positive number")


def _check_maximum(quantity: int, b: BoardRules) -> None:
    if quantity > b.maximum:
        raise refusal(RefusalCode.MAX_QUANTITY, f"at most {b.maximum} shares an order",
                      maximum=b.maximum)


def _valid_size(quantity: int, b: BoardRules) -> bool:
    return quantity >= b.minimum and (quantity - b.minimum) % b.step == 0


def _size_refusal(quantity: int, b: BoardRules) -> BrokerRefusal:
    if quantity < b.minimum and b.minimum != b.step:
        return refusal(RefusalCode.MIN_QUANTITY, f"at least {b.minimum} shares an order",
                       minimum=b.minimum)
    return refusal(RefusalCode.LOT_SIZE, f"order in multiples of {b.step} shares", lot=b.step)


def check_buy_quantity(quantity: int, board: Board = Board.MAIN,
                       rules: Rules = DEFAULT_RULES) -> None:
    """Buys: ``minimum`` and up in steps of ``step``, at most ``maximum`` (per board)."""
    b = rules.boards[board]
    _check_quantity(quantity)
    _check_maximum(quantity, b)
    if not _valid_size(quantity, b):
        raise _size_refusal(quantity, b)


def odd_remainder(sellable: int, board: Board = Board.MAIN, rules: Rules = DEFAULT_RULES) -> int:
    """The part of a holding that must be sold whole, in one order: under a lot on lot boards,
    the whole holding under the minimum on step-1 boards (STAR under 200, BSE under 100)."""
    b = rules.boards[board]
    if b.step > 1:
        return sellable % b.step
    return sellable if sellable < b.minimum else 0


def check_sell_quantity(quantity: int, sellable: int, board: Board = Board.MAIN,
                        rules: Rules = DEFAULT_RULES) -> None:
    """Sells: as buys, or with the odd remainder (``odd_remainder``) sold whole."""
    b = rules.boards[board]
    _check_quantity(quantity)
    if quantity > sellable:
        raise refusal(RefusalCode.INSUFFICIENT_SHARES,
                      f"only {sellable} shares can be sold today", sellable=sellable)
    _check_maximum(quantity, b)
    if _valid_size(quantity, b):
        return
    odd = odd_remainder(sellable, board, rules)
    if odd:
        whole = quantity % b.step == odd if b.step > 1 else quantity == sellable
        if whole:
            return
        raise refusal(RefusalCode.ODD_LOT,
                      f"the {odd} shares short of a full order must be sold at once", odd=odd)
    raise _size_refusal(quantity, b)


def sellable(quantity: int, bought_today: int, in_open_sells: int) -> int:
    """T+1: shares bought today, and shares already offered, cannot be sold."""
    return max(0, quantity - bought_today - in_open_sells)


# --- fees and buying power ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeeBreakdown:
    commission: Decimal
    transfer_fee: Decimal
    stamp_duty: Decimal

    @property
    def total(self) -> Decimal:
        return self.commission + self.transfer_fee + self.stamp_duty


def order_amount(price: Decimal, quantity: int) -> Decimal:
    return money(price * quantity)


def fees(side: Side, amount: Decimal, rules: Rules = DEFAULT_RULES) -> FeeBreakdown:
    """Commission (rate, with a minimum) + transfer fee (rate) + stamp duty (sells only)."""
    commission = max(money(amount * rules.commission_rate), money(rules.commission_min))
    transfer_fee = money(amount * rules.transfer_fee_rate)
    stamp = money(amount * rules.stamp_duty_rate) if side is Side.SELL else money(Decimal(0))
    return FeeBreakdown(commission, transfer_fee, stamp)


def preview(security: Security, side: Side, price: Decimal, quantity: int,
            rules: Rules = DEFAULT_RULES) -> OrderPreview:
    """The costs of an already checked order."""
    amount = order_amount(price, quantity)
    fee = fees(side, amount, rules).total
    total = amount + fee if side is Side.BUY else amount - fee
    return OrderPreview(security, side, price, quantity, amount, fee, total)


def fill_fees(side: Side, before: Decimal, amount: Decimal,
              rules: Rules = DEFAULT_RULES) -> Decimal:
    """The fees of one fill of ``amount`` on an order whose earlier fills came to ``before``:
    fees are charged on the order's whole amount (one minimum commission an order), so the
    fills of an order pay together exactly what one fill of the same amount would."""
    paid = fees(side, before, rules).total if before else money(Decimal(0))
    return fees(side, before + amount, rules).total - paid


def buy_hold(before: Decimal, limit: Decimal, remaining: int,
             rules: Rules = DEFAULT_RULES) -> Decimal:
    """Cash a buy order still holds: its ``remaining`` shares at its limit and their fees, after
    fills that came to ``before``. At placement (``before`` 0) it is the preview's total."""
    if remaining <= 0:
        return money(Decimal(0))
    amount = order_amount(limit, remaining)
    return amount + fill_fees(Side.BUY, before, amount, rules)


def check_buying_power(available: Decimal, needed: Decimal) -> None:
    if available < needed:
        raise refusal(RefusalCode.INSUFFICIENT_FUNDS,
                      f"this order needs {needed} yuan; {available} is available",
                      available=available, needed=needed)


# --- bank-securities transfers --------------------------------------------------------------------


def check_transfer_amount(amount: Decimal) -> Decimal:
    """A positive amount in yuan with at most two decimal places."""
    require_decimal(amount, "amount")
    try:
        ok = amount.is_finite() and amount > 0 and amount == amount.quantize(CENT)
    except InvalidOperation:  # too many digits to quantize
        ok = False
    if not ok:
        raise refusal(RefusalCode.INVALID_AMOUNT,
                      "the amount must be positive, in yuan with at most two decimals")
    return amount.quantize(CENT)


def check_transfer_time(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> None:
    if not is_transfer_time(now, rules):
        start, end = rules.transfer_hours
        hours = f"{start:%H:%M}-{end:%H:%M}"
        raise refusal(RefusalCode.TRANSFER_CLOSED,
                      f"transfers are possible on trading days {hours}", hours=hours)


def check_transfer_available(amount: Decimal, available: Decimal) -> None:
    if amount > available:
        raise refusal(RefusalCode.OVER_AVAILABLE,
                      f"at most {available} yuan can be transferred out", available=available)


def withdrawable(available: Decimal, frozen: Decimal, sales_today: Decimal,
                 buys_today: Decimal) -> Decimal:
    """可用不可取: today's sale proceeds buy today but reach the bank from the next trading day.
    Buys (spent and frozen) use today's proceeds first, as brokers count them."""
    unsettled = max(sales_today - buys_today - frozen, Decimal(0))
    return money(max(available - unsettled, Decimal(0)))


def check_withdrawable(amount: Decimal, can_withdraw: Decimal) -> None:
    if amount > can_withdraw:
        raise refusal(RefusalCode.OVER_WITHDRAWABLE,
                      f"cash from today's sales moves to the bank from the next trading day; "
                      f"{can_withdraw} yuan can go now", withdrawable=can_withdraw)


def check_daily_limit(already_today: Decimal, amount: Decimal,
                      rules: Rules = DEFAULT_RULES) -> None:
    remaining = max(rules.transfer_daily_limit - already_today, Decimal(0))
    if amount > remaining:
        raise refusal(RefusalCode.DAILY_LIMIT,
                      f"the daily transfer limit leaves {money(remaining)} yuan today",
                      remaining=money(remaining))


# --- passwords ------------------------------------------------------------------------------------


def check_new_password(password: str, *, avoid: Iterable[str] = ()) -> None:
    """Refuse a new trading/fund password that is easy to guess.

    Exactly six ASCII digits; not one or two digits repeated (888888, 121212); not a run up or
    down (123456, 654321, also wrapping: 890123); not part of the account number or a registered
    phone (``avoid``). The refusal never contains the password.
    """
    if len(password) != 6 or not (password.isascii() and password.isdigit()):
        raise refusal(RefusalCode.WEAK_PASSWORD, "the password must be exactly six digits",
                      reason="format")
    if len(set(password)) <= 2:
        raise refusal(RefusalCode.WEAK_PASSWORD, "the password repeats the same digits",
                      reason="repeated")
    steps = {(int(b) - int(a)) % 10 for a, b in pairwise(password)}
    if steps in ({1}, {9}):
        raise refusal(RefusalCode.WEAK_PASSWORD, "the password is a run of digits",
                      reason="sequence")
    if any(password in other for other in avoid if other):
        raise refusal(RefusalCode.WEAK_PASSWORD,
                      "the password is part of the account number or a phone number",
                      reason="personal")
