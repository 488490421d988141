"""A-share trading and transfer rules of the sandbox, as pure functions (no I/O, no clock).

Owns: trading days and sessions, lots and odd lots, the tick, daily price limits by board, fees,
buying power, T+1 sellable shares, bank-securities transfer limits and hours, and weak-password
rules. Every number is a field of ``Rules`` so an operator can configure it. A check that fails
raises ``BrokerRefusal(RefusalCode.X.value, "English explanation", **params)``; params are
strings the IVR reads out, never secrets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import pairwise
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.broker.interface import (
    Board,
    OrderPreview,
    PasswordKind,
    RefusalCode,
    Security,
    Side,
)
from callcenter.errors import BrokerRefusal

CENT = Decimal("0.01")

SHANGHAI: dt.tzinfo
try:
    SHANGHAI = ZoneInfo("Asia/Shanghai")
except ZoneInfoNotFoundError:  # pragma: no cover - no tz database on this machine
    # China has kept UTC+8 without daylight saving since 1991: a fixed offset is exact.
    SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def _default_limits() -> Mapping[Board, Decimal]:
    return MappingProxyType({
        Board.MAIN: Decimal("0.10"),
        Board.CHINEXT: Decimal("0.20"),
        Board.STAR: Decimal("0.20"),
        Board.RISK_WARNING: Decimal("0.05"),
    })


def _default_failures() -> Mapping[PasswordKind, int]:
    return MappingProxyType({PasswordKind.TRADING: 5, PasswordKind.FUND: 3})


@dataclass(frozen=True, slots=True)
class Rules:
    """Every configurable number of the sandbox. The defaults follow the exchanges' rules."""

    tz: dt.tzinfo = SHANGHAI
    #: continuous trading, [start, end) in ``tz``, on trading days
    sessions: tuple[tuple[dt.time, dt.time], ...] = (
        (dt.time(9, 30), dt.time(11, 30)),
        (dt.time(13, 0), dt.time(15, 0)),
    )
    #: exchange holidays falling on weekdays (weekends are never trading days)
    holidays: frozenset[dt.date] = frozenset()
    lot: int = 100
    tick: Decimal = CENT
    max_order_quantity: int = 1_000_000
    #: daily price limit as a fraction of the previous close
    limit_pct: Mapping[Board, Decimal] = field(default_factory=_default_limits)
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


def is_trading_time(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> bool:
    """True during continuous trading: inside a session of a trading day."""
    t = local(now, rules)
    if not is_trading_day(t.date(), rules):
        return False
    return any(start <= t.time() < end for start, end in rules.sessions)


def session_bounds(day: dt.date, rules: Rules = DEFAULT_RULES) -> list[tuple[dt.datetime,
                                                                              dt.datetime]]:
    """The sessions of ``day`` as aware datetimes (empty on a non-trading day)."""
    if not is_trading_day(day, rules):
        return []
    return [(dt.datetime.combine(day, s, rules.tz), dt.datetime.combine(day, e, rules.tz))
            for s, e in rules.sessions]


def day_close(day: dt.date, rules: Rules = DEFAULT_RULES) -> dt.datetime:
    """When the last session of ``day`` ends: orders of that day expire then."""
    last_end = max(end for _, end in rules.sessions)
    return dt.datetime.combine(day, last_end, rules.tz)


def is_transfer_time(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> bool:
    t = local(now, rules)
    start, end = rules.transfer_hours
    return is_trading_day(t.date(), rules) and start <= t.time() < end


def check_market_open(now: dt.datetime, rules: Rules = DEFAULT_RULES) -> None:
    if not is_trading_time(now, rules):
        hours = ", ".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in rules.sessions)
        raise refusal(RefusalCode.MARKET_CLOSED,
                      f"orders are accepted on trading days {hours}", hours=hours)


# --- prices and quantities ------------------------------------------------------------------------


def price_limits(prev_close: Decimal, board: Board,
                 rules: Rules = DEFAULT_RULES) -> tuple[Decimal, Decimal]:
    """(limit down, limit up): prev close x (1 -/+ pct), rounded to the tick half up."""
    pct = rules.limit_pct[board]
    high = (prev_close * (1 + pct)).quantize(rules.tick, rounding=ROUND_HALF_UP)
    low = (prev_close * (1 - pct)).quantize(rules.tick, rounding=ROUND_HALF_UP)
    return max(low, rules.tick), high


def check_price(price: Decimal, prev_close: Decimal, board: Board,
                rules: Rules = DEFAULT_RULES) -> Decimal:
    require_decimal(price, "price")
    if not price.is_finite() or price <= 0:
        raise refusal(RefusalCode.INVALID_PRICE, "the price must be a positive number")
    if price % rules.tick != 0:
        raise refusal(RefusalCode.PRICE_TICK, f"prices are quoted in steps of {rules.tick}",
                      tick=rules.tick)
    low, high = price_limits(prev_close, board, rules)
    if not low <= price <= high:
        raise refusal(RefusalCode.PRICE_LIMIT,
                      f"today's price must be between {low} and {high}", low=low, high=high)
    return price.quantize(rules.tick)


def _check_quantity_range(quantity: int, rules: Rules) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError(f"quantity must be an int, not {type(quantity).__name__}")
    if quantity <= 0 or quantity > rules.max_order_quantity:
        raise refusal(RefusalCode.INVALID_QUANTITY,
                      f"the quantity must be between 1 and {rules.max_order_quantity} shares",
                      max=rules.max_order_quantity)


def check_buy_quantity(quantity: int, rules: Rules = DEFAULT_RULES) -> None:
    """Buys are in whole lots."""
    _check_quantity_range(quantity, rules)
    if quantity % rules.lot:
        raise refusal(RefusalCode.LOT_SIZE, f"buy in multiples of {rules.lot} shares",
                      lot=rules.lot)


def check_sell_quantity(quantity: int, sellable: int, rules: Rules = DEFAULT_RULES) -> None:
    """Sells are in whole lots, except that an odd lot (< 1 lot) is sold whole, in one order."""
    _check_quantity_range(quantity, rules)
    if quantity > sellable:
        raise refusal(RefusalCode.INSUFFICIENT_SHARES,
                      f"only {sellable} shares can be sold today", sellable=sellable)
    odd = quantity % rules.lot
    if odd and odd != sellable % rules.lot:
        raise refusal(RefusalCode.LOT_SIZE,
                      f"sell in multiples of {rules.lot} shares, or the odd lot all at once",
                      lot=rules.lot)


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
