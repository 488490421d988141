"""What the call center needs from the brokerage's trading system: types and the ``BackOffice``.

Money is ``Decimal`` (yuan, two places; prices are quoted to 0.01), quantities are integer shares.
Passwords cross this interface as ``SecretStr`` and are never returned, logged or stored in clear.
Business refusals raise ``callcenter.errors.BrokerRefusal`` with a ``RefusalCode``; the IVR turns
each code into an explanation the caller hears.

Idempotency: ``place_order``, ``cancel_order`` and ``transfer`` take the caller-side idempotency
key; the same key always yields the same single order/transfer, and ``find_*_by_key`` lets the
engine reconcile after a crash without resending.

Optional capabilities (``ActivityFeed``, ``IpoSource``) are separate protocols: a back office
that offers them is read for the financial secretary's notices; one that does not simply gets
no such notices. ``isinstance(office, ActivityFeed)`` tells which. ``CustomerBase``
(``broker/facts.py``: every customer's facts, page by page) is another: without it no service
strategy runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from pydantic import SecretStr


class Tier(StrEnum):
    ORDINARY = "ordinary"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


class Board(StrEnum):
    """Where a stock is listed; its code's prefix says which (``callcenter.broker.boards``).
    Risk warning (ST, *ST) is not a board but a status: ``Security.risk_warning``."""

    MAIN = "main"            # SSE 600/601/603/605, SZSE 000/001/002/003: +/-10%
    CHINEXT = "chinext"      # SZSE 300/301/302: +/-20%
    STAR = "star"            # SSE 688/689: +/-20%
    BSE = "bse"              # Beijing Stock Exchange 43/83/87/92: +/-30%


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(StrEnum):
    QUEUED = "queued"                # accepted outside hours, not yet at the exchange (未报)
    OPEN = "open"                    # at the exchange, nothing filled yet
    PARTIALLY_FILLED = "partial"
    FILLED = "filled"
    CANCELLED = "cancelled"          # includes partially filled then cancelled
    REJECTED = "rejected"


class PasswordKind(StrEnum):
    """Each kind counts its wrong attempts per account, across calls, and locks on its own."""

    TRADING = "trading"              # 交易密码: login
    FUND = "fund"                    # 资金密码: transfers
    BANK = "bank"                    # 银行密码 of the linked bank account transfers go through:
    #                                  asked for bank-to-securities transfers (第三方存管)


class TransferDirection(StrEnum):
    BANK_TO_SECURITIES = "in"        # 银行转证券
    SECURITIES_TO_BANK = "out"       # 证券转银行


class RefusalCode(StrEnum):
    UNKNOWN_CODE = "unknown_code"
    UNKNOWN_ACCOUNT = "unknown_account"
    BAD_PASSWORD = "bad_password"              # params: kind, remaining (1 or more)
    ACCOUNT_LOCKED = "account_locked"          # params: kind (the last attempt locks)
    WEAK_PASSWORD = "weak_password"
    PASSWORD_MISMATCH = "password_mismatch"
    MARKET_CLOSED = "market_closed"
    SUSPENDED = "suspended"
    LOT_SIZE = "lot_size"                      # params: lot
    PRICE_TICK = "price_tick"                  # params: tick
    PRICE_LIMIT = "price_limit"                # params: low, high
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_PRICE = "invalid_price"
    INSUFFICIENT_FUNDS = "insufficient_funds"  # params: available, needed
    INSUFFICIENT_SHARES = "insufficient_shares"  # params: sellable
    ORDER_NOT_FOUND = "order_not_found"
    NOT_CANCELLABLE = "not_cancellable"        # params: status
    CANCEL_CLOSED = "cancel_closed"            # call auction, no cancels; params: until (HH:MM),
    #                                            or reason "closing" (none again today)
    MIN_QUANTITY = "min_quantity"              # params: minimum
    MAX_QUANTITY = "max_quantity"              # params: maximum
    ODD_LOT = "odd_lot"                        # a remainder sold whole; params: odd
    INVALID_AMOUNT = "invalid_amount"
    OVER_AVAILABLE = "over_available"          # params: available
    OVER_WITHDRAWABLE = "over_withdrawable"    # today's sales (可用不可取); params: withdrawable
    DAILY_LIMIT = "daily_limit"                # params: remaining
    TRANSFER_CLOSED = "transfer_closed"
    NO_BANK_LINK = "no_bank_link"
    BANK_REFUSED = "bank_refused"
    # ``verify_password`` of a back office that cannot check this kind by itself (the bank's
    # password, checked by the bank only with the transfer); params: kind. The IVR keeps the
    # password for the operation, whose refusal (BAD_PASSWORD, ACCOUNT_LOCKED) then tells.
    CHECKED_ON_USE = "checked_on_use"


@dataclass(frozen=True, slots=True)
class Security:
    code: str            # 6 digits
    name: str            # Chinese short name, e.g. 贵州茅台
    name_en: str         # English or pinyin name for English callers
    board: Board
    exchange: str        # "SH", "SZ" or "BJ"
    risk_warning: bool = False           # ST / *ST (风险警示)
    listed: dt.date | None = None        # first trading day; None: long listed


@dataclass(frozen=True, slots=True)
class Quote:
    security: Security
    prev_close: Decimal
    open: Decimal
    last: Decimal
    high: Decimal
    low: Decimal
    volume: int          # shares traded today
    amount: Decimal      # yuan traded today
    limit_up: Decimal | None         # None: no daily limit today (first days after listing)
    limit_down: Decimal | None
    at: dt.datetime

    @property
    def change(self) -> Decimal:
        return self.last - self.prev_close

    @property
    def change_pct(self) -> Decimal:
        """Percent change, two places (e.g. Decimal('-1.23'))."""
        return (self.change * 100 / self.prev_close).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class Customer:
    account: str                     # fund account (资金账号)
    name: str
    tier: Tier
    phones: tuple[str, ...]          # registered phone numbers (greeting only, never auth)
    manager: str | None              # the agent id of their named manager (gold/platinum)
    language: str                    # "zh" or "en"
    email: str | None = None         # where statements and notices by e-mail go


@dataclass(frozen=True, slots=True)
class Cash:
    balance: Decimal
    available: Decimal               # may buy
    frozen: Decimal                  # held by open buy orders
    withdrawable: Decimal            # may go to the bank now: available less today's sales (可取)


@dataclass(frozen=True, slots=True)
class Position:
    security: Security
    quantity: int
    sellable: int                    # T+1: excludes shares bought today
    cost_price: Decimal              # average cost per share
    last: Decimal

    @property
    def market_value(self) -> Decimal:
        return self.last * self.quantity


@dataclass(frozen=True, slots=True)
class OrderPreview:
    """What the caller is asked to confirm: the checked order and its costs."""

    security: Security
    side: Side
    price: Decimal
    quantity: int
    amount: Decimal                  # price x quantity
    fees: Decimal                    # commission (with minimum) + transfer fee (+ stamp duty)
    total: Decimal                   # buy: amount + fees; sell: amount - fees


@dataclass(frozen=True, slots=True)
class Order:
    order_no: str
    account: str
    security: Security
    side: Side
    price: Decimal
    quantity: int
    filled: int
    status: OrderStatus
    created_at: dt.datetime
    reason: str                      # why rejected/cancelled, else ""
    sends_at: dt.datetime | None = None  # QUEUED: when it goes to the exchange


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order: an order may fill in parts, each at its own price."""

    order_no: str
    security: Security
    side: Side
    price: Decimal
    quantity: int
    at: dt.datetime
    remaining: int | None = None     # the order's shares still unfilled after this fill
    #                                  (0: this fill completed it; None: not known)


@dataclass(frozen=True, slots=True)
class BankLink:
    bank_code: str
    bank_name: str
    masked_account: str              # e.g. 6222****1234


@dataclass(frozen=True, slots=True)
class Transfer:
    transfer_no: str
    account: str
    direction: TransferDirection
    amount: Decimal
    at: dt.datetime
    balance_after: Decimal           # securities-side available cash after the transfer


@dataclass(frozen=True, slots=True)
class Announcement:
    id: str
    title: str
    body_zh: str
    body_en: str
    published: dt.date


@dataclass(frozen=True, slots=True)
class FillEntry:
    """A fill as the back office's journal holds it. ``position`` is where it sits in the
    journal (opaque; pass the last one seen to read on from there, "" for the start)."""

    position: str
    account: str
    fill_id: str                     # never reused: one notice per fill hangs on it
    fill: Fill


@dataclass(frozen=True, slots=True)
class TransferEntry:
    """A bank-securities transfer as the journal holds it (``position`` as ``FillEntry``)."""

    position: str
    transfer: Transfer


@dataclass(frozen=True, slots=True)
class IpoAllotment:
    """New shares allotted to an account in an IPO subscription (新股中签). The security is not
    listed yet, so its names travel with the allotment."""

    allotment_no: str                # never reused: one notice per allotment hangs on it
    account: str
    code: str
    name: str
    name_en: str
    quantity: int                    # shares allotted
    price: Decimal                   # issue price
    allotted_on: dt.date             # the day the result was published
    pay_date: dt.date                # the price x quantity must be in the account by its end

    @property
    def amount(self) -> Decimal:
        return self.price * self.quantity


class BackOffice(Protocol):
    """Everything the IVR and console ask of the trading system. All methods are coroutines."""

    # market
    async def quote(self, code: str) -> Quote: ...
    async def security(self, code: str) -> Security: ...

    # customers and authentication
    async def customer(self, account: str) -> Customer: ...
    async def customer_by_phone(self, phone: str) -> Customer | None: ...
    # A wrong password counts (kept across calls): BAD_PASSWORD with what remains, and the
    # attempt that reaches the limit ACCOUNT_LOCKED; a locked kind refuses even the right one.
    # The right one starts the count again. ``transfer`` counts the same way. BANK: the bank's
    # password, checked through the bank link (the bank keeps the count; change it at the bank).
    async def verify_password(self, account: str, kind: PasswordKind,
                              password: SecretStr) -> Customer: ...
    async def change_password(self, account: str, kind: PasswordKind, old: SecretStr,
                              new: SecretStr) -> None: ...

    # account queries
    async def cash(self, account: str) -> Cash: ...
    async def positions(self, account: str) -> list[Position]: ...
    async def orders_today(self, account: str) -> list[Order]: ...
    async def fills_today(self, account: str) -> list[Fill]: ...

    # orders
    async def preview_order(self, account: str, side: Side, code: str, price: Decimal,
                            quantity: int) -> OrderPreview: ...
    async def place_order(self, account: str, side: Side, code: str, price: Decimal,
                          quantity: int, idempotency_key: str) -> Order: ...
    async def cancel_order(self, account: str, order_no: str, idempotency_key: str) -> Order: ...
    async def order_by_key(self, idempotency_key: str) -> Order | None: ...

    # bank-securities transfers
    async def bank_links(self, account: str) -> list[BankLink]: ...
    async def transfer(self, account: str, direction: TransferDirection, amount: Decimal,
                       fund_password: SecretStr, bank_password: SecretStr | None,
                       idempotency_key: str) -> Transfer: ...
    async def transfer_by_key(self, idempotency_key: str) -> Transfer | None: ...

    # information
    async def announcements(self) -> list[Announcement]: ...


@runtime_checkable
class ActivityFeed(Protocol):
    """Optional: read fills and transfers of every account in journal order, from a position.

    The back office pushes nothing, so the financial secretary polls this. A real trading
    system's query "by position string" (定位串) maps onto it."""

    async def fills_since(self, position: str, limit: int) -> list[FillEntry]: ...
    async def transfers_since(self, position: str, limit: int) -> list[TransferEntry]: ...


@runtime_checkable
class IpoSource(Protocol):
    """Optional: the IPO allotments of an account (published ones, newest last)."""

    async def ipo_allotments(self, account: str) -> list[IpoAllotment]: ...
