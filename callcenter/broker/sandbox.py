"""The embedded sandbox back office: a ``BackOffice`` with its own ledger in SQLite.

Owns the ``bo_*`` tables (customers, password counters and locks, cash, positions, orders, fills,
bank links, transfers and daily totals, announcements, securities and market state, and the
profiles and complaints the service strategies read: ``customer_facts``) and drives
the sans-IO ``Market`` and ``rules``. The schema version is kept in ``bo_schema_version`` (not
``PRAGMA user_version``), so the tables may live in the engine's database or, by default, in a
file of their own, ``<state_dir>/backoffice.db``.

Consistency: every mutation is one ``BEGIN IMMEDIATE`` transaction that first looks up its
idempotency key, so a retried order or transfer returns the one already made. Mutations run as
shielded tasks under one lock: a caller hanging up mid-order cancels its wait, never half an
order, and the in-memory market and the tables never disagree.

Time: the market steps lazily at each call, to the time of the injectable clock (``set_clock``
pins it for tests and demos); there is no background task. Orders placed while the exchange
takes none are ``queued`` with ``sends_at`` (``rules.order_timing``); the step that passes that
time sends each one to the market once, flipping it to ``open`` in the same transaction.

Journal reads for the financial secretary (``fills_since``, ``transfers_since``): fill ids come
from a counter that a reset account never winds back, and transfer numbers likewise, so a
position read on from is never passed by a later fill or transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiosqlite
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from callcenter.broker import rules as r
from callcenter.broker.boards import check_listing
from callcenter.broker.facts import DEFAULT_PAGE, Complaint, CustomerBase, CustomerFacts
from callcenter.broker.interface import (
    ActivityFeed,
    Announcement,
    BackOffice,
    BankLink,
    Board,
    Cash,
    Customer,
    Fill,
    FillEntry,
    IpoAllotment,
    IpoSource,
    Order,
    OrderPreview,
    OrderStatus,
    PasswordKind,
    Position,
    Quote,
    RefusalCode,
    Security,
    Side,
    Tier,
    Transfer,
    TransferDirection,
    TransferEntry,
)
from callcenter.broker.market import (
    DEFAULT_INTERVAL,
    Execution,
    InstrumentState,
    Listing,
    Market,
    RestingOrder,
)
from callcenter.broker.passwords import hash_password_async, verify_password_async
from callcenter.errors import BrokerError, ConfigError
from callcenter.store.db import durable_pragmas, make_private

T = TypeVar("T")
Clock = Callable[[], dt.datetime]

DB_FILE = "backoffice.db"
# Order and transfer numbers are 8 digits, read out to callers digit by digit; the two ranges
# never overlap, so an agent can tell them apart by the first digit.
ORDER_BASE = 30_000_000
TRANSFER_BASE = 60_000_000
# Orders still alive: queued (not yet at the exchange) or at the exchange.
_OPEN = (OrderStatus.QUEUED.value, OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value)
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
_ZERO = Decimal("0.00")


class _SentElsewhere(BrokerError):
    """A queued order this process was sending was sent or cancelled by another one."""


# Fills with the shares their order still had open after each (an order fills in parts).
_FILLS = ("SELECT f.*, o.quantity - (SELECT SUM(g.quantity) FROM bo_fills g "
          "WHERE g.order_no = f.order_no AND g.id <= f.id) AS remaining "
          "FROM bo_fills f LEFT JOIN bo_orders o ON o.order_no = f.order_no")

SCHEMA: tuple[str, ...] = (
    # 1: the whole sandbox ledger. Money is TEXT holding a Decimal: SQLite has no exact decimal
    # type, and no arithmetic on money is done in SQL.
    """
    CREATE TABLE bo_securities (
        code       TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        name_en    TEXT NOT NULL,
        board      TEXT NOT NULL,
        exchange   TEXT NOT NULL,
        prev_close TEXT NOT NULL                  -- the listing's, used until a day is saved
    );
    CREATE TABLE bo_market (
        code       TEXT PRIMARY KEY,
        trade_date TEXT NOT NULL,
        prev_close INTEGER NOT NULL,              -- prices in ticks
        open       INTEGER,
        last       INTEGER NOT NULL,
        high       INTEGER NOT NULL,
        low        INTEGER NOT NULL,
        volume     INTEGER NOT NULL,
        turnover   INTEGER NOT NULL,              -- price x shares, in ticks x shares
        draws      INTEGER NOT NULL,              -- grid steps walked today
        suspended  INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE bo_market_clock (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        now TEXT NOT NULL
    );
    CREATE TABLE bo_customers (
        account      TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        tier         TEXT NOT NULL,
        phones       TEXT NOT NULL DEFAULT '[]',  -- JSON array of digit strings
        manager      TEXT,
        language     TEXT NOT NULL DEFAULT 'zh',
        trading_hash TEXT NOT NULL,               -- scrypt$salt$hash, never the password
        fund_hash    TEXT NOT NULL
    );
    CREATE TABLE bo_password_state (
        account   TEXT NOT NULL,
        kind      TEXT NOT NULL,
        failures  INTEGER NOT NULL DEFAULT 0,     -- wrong passwords in a row
        locked    INTEGER NOT NULL DEFAULT 0,
        locked_at TEXT,
        PRIMARY KEY (account, kind)
    );
    CREATE TABLE bo_cash (
        account TEXT PRIMARY KEY,
        balance TEXT NOT NULL,
        frozen  TEXT NOT NULL                     -- held by open buy orders
    );
    CREATE TABLE bo_positions (
        account      TEXT NOT NULL,
        code         TEXT NOT NULL,
        quantity     INTEGER NOT NULL,
        bought_today INTEGER NOT NULL DEFAULT 0,  -- meaningful only when bought_date is today
        bought_date  TEXT,
        cost         TEXT NOT NULL,               -- total cost including buy fees
        PRIMARY KEY (account, code)
    );
    CREATE TABLE bo_orders (
        order_no        TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        cancel_key      TEXT UNIQUE,
        account         TEXT NOT NULL,
        code            TEXT NOT NULL,
        side            TEXT NOT NULL,
        price           TEXT NOT NULL,
        quantity        INTEGER NOT NULL,
        filled          INTEGER NOT NULL DEFAULT 0,
        status          TEXT NOT NULL,
        frozen          TEXT NOT NULL,            -- cash this order still holds
        trade_date      TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        reason          TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX bo_orders_account ON bo_orders(account, trade_date);
    CREATE INDEX bo_orders_status ON bo_orders(status);
    CREATE TABLE bo_fills (
        id         INTEGER PRIMARY KEY,
        order_no   TEXT NOT NULL,
        account    TEXT NOT NULL,
        code       TEXT NOT NULL,
        side       TEXT NOT NULL,
        price      TEXT NOT NULL,
        quantity   INTEGER NOT NULL,
        at         TEXT NOT NULL,
        trade_date TEXT NOT NULL
    );
    CREATE INDEX bo_fills_account ON bo_fills(account, trade_date);
    CREATE TABLE bo_bank_links (
        account        TEXT NOT NULL,
        bank_code      TEXT NOT NULL,
        bank_name      TEXT NOT NULL,
        masked_account TEXT NOT NULL,
        bank_hash      TEXT NOT NULL,             -- the sandbox bank's password check
        bank_balance   TEXT NOT NULL,
        rank           INTEGER NOT NULL DEFAULT 0,  -- 0 = the account transfers go through
        PRIMARY KEY (account, bank_code)
    );
    CREATE TABLE bo_transfers (
        transfer_no     TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        account         TEXT NOT NULL,
        direction       TEXT NOT NULL,
        amount          TEXT NOT NULL,
        bank_code       TEXT NOT NULL,
        at              TEXT NOT NULL,
        trade_date      TEXT NOT NULL,
        balance_after   TEXT NOT NULL
    );
    CREATE INDEX bo_transfers_account ON bo_transfers(account, trade_date);
    CREATE TABLE bo_transfer_totals (
        account   TEXT NOT NULL,
        day       TEXT NOT NULL,
        direction TEXT NOT NULL,
        total     TEXT NOT NULL,
        PRIMARY KEY (account, day, direction)
    );
    CREATE TABLE bo_announcements (
        id        TEXT PRIMARY KEY,
        title     TEXT NOT NULL,
        body_zh   TEXT NOT NULL,
        body_en   TEXT NOT NULL,
        published TEXT NOT NULL
    );
    CREATE TABLE bo_counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO bo_counters (name, value) VALUES ('order', 0), ('transfer', 0);
    """,
    # 2: customers' e-mail addresses (statements and notices by e-mail)
    """
    ALTER TABLE bo_customers ADD COLUMN email TEXT;
    """,
    # 3: IPO allotments; fill ids from a counter (a reset account's deleted fills would
    # otherwise hand their ids to new fills, behind a reader's position)
    """
    CREATE TABLE bo_ipo_allotments (
        allotment_no TEXT PRIMARY KEY,
        account      TEXT NOT NULL,
        code         TEXT NOT NULL,
        name         TEXT NOT NULL,
        name_en      TEXT NOT NULL,
        quantity     INTEGER NOT NULL,
        price        TEXT NOT NULL,
        allotted_on  TEXT NOT NULL,
        pay_date     TEXT NOT NULL
    );
    CREATE INDEX bo_ipo_allotments_account ON bo_ipo_allotments(account);
    INSERT INTO bo_counters (name, value) SELECT 'fill', COALESCE(MAX(id), 0) FROM bo_fills;
    """,
    # 4: risk warning is a status, not a board; listing dates (no limits in the first days);
    # queued orders (sent when the exchange next takes orders); today's sales and buys per
    # account (可用不可取: today's sale proceeds reach the bank from the next trading day)
    """
    ALTER TABLE bo_securities ADD COLUMN risk_warning INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE bo_securities ADD COLUMN listed TEXT;
    UPDATE bo_securities SET board = 'main', risk_warning = 1 WHERE board = 'st';
    ALTER TABLE bo_orders ADD COLUMN sends_at TEXT;
    CREATE INDEX bo_orders_queued ON bo_orders(sends_at) WHERE status = 'queued';
    ALTER TABLE bo_cash ADD COLUMN day TEXT;
    ALTER TABLE bo_cash ADD COLUMN sales TEXT NOT NULL DEFAULT '0.00';
    ALTER TABLE bo_cash ADD COLUMN buys TEXT NOT NULL DEFAULT '0.00';
    """,
    # 5: orders fill in parts against the book: an order's fills are read together (its fees
    # are charged on their sum; a notice says what is left)
    """
    CREATE INDEX bo_fills_order ON bo_fills(order_no, id);
    """,
    # 6: what the service strategies select on (broker/facts.py): when the account was opened,
    # birthday, time zone, trading before the sandbox's own fills, complaints
    """
    CREATE TABLE bo_profiles (
        account       TEXT PRIMARY KEY,
        opened_on     TEXT NOT NULL,
        birthday      TEXT,
        timezone      TEXT NOT NULL DEFAULT 'Asia/Shanghai',
        last_trade_on TEXT,                       -- before the sandbox's own fills
        trades_30d    INTEGER NOT NULL DEFAULT 0  -- likewise, added to its fills
    );
    CREATE TABLE bo_complaints (
        id         TEXT PRIMARY KEY,
        account    TEXT NOT NULL,
        opened_at  TEXT NOT NULL,
        handled_at TEXT
    );
    CREATE INDEX bo_complaints_account ON bo_complaints(account);
    """,
)


# --- the securities file (pydantic at the edge) ---------------------------------------------------


class _ListingModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^\d{6}$")
    name: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    board: Board
    exchange: Literal["SH", "SZ", "BJ"]
    prev_close: Decimal = Field(gt=0, decimal_places=2)
    risk_warning: bool = False
    listed: dt.date | None = None

    @field_validator("board", mode="before")
    @classmethod
    def _st_is_a_status(cls, value: object) -> object:
        if value == "st":
            raise ValueError("'st' is no board: write the stock's board and risk_warning: true")
        return value

    @field_validator("prev_close", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("write prices as quoted strings, e.g. \"10.20\" (floats are inexact)")
        return value


class _SecuritiesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    securities: list[_ListingModel] = Field(min_length=1)


def load_listings(path: Path | None = None) -> list[Listing]:
    """The securities of ``path``, or of the packaged ``data/securities.yaml``."""
    try:
        if path is None:
            name = "data/securities.yaml"
            text = resources.files("callcenter.broker").joinpath(name).read_text("utf-8")
        else:
            name = str(path)
            text = path.read_text("utf-8")
        parsed = _SecuritiesFile.model_validate(yaml.safe_load(text))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{name}: cannot read securities: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"{name}: {problems}") from exc
    seen: set[str] = set()
    listings = []
    for item in parsed.securities:
        if item.code in seen:
            raise ConfigError(f"{name}: security {item.code} is listed twice")
        seen.add(item.code)
        security = Security(item.code, item.name, item.name_en, item.board, item.exchange,
                            item.risk_warning, item.listed)
        try:
            check_listing(security)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from exc
        listings.append(Listing(security, item.prev_close.quantize(r.CENT)))
    return listings


def default_path(state_dir: Path) -> Path:
    return state_dir / DB_FILE


# --- what an operator loads -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding:
    """A position to load: shares, average cost, and how many of them were bought today."""

    code: str
    quantity: int
    cost_price: Decimal
    bought_today: int = 0


@dataclass(frozen=True, slots=True)
class Profile:
    """What the service strategies read besides the ledger (``put_profile``)."""

    opened_on: dt.date
    birthday: dt.date | None = None
    timezone: str = "Asia/Shanghai"
    #: trading before the sandbox's own fills (these are added)
    last_trade_on: dt.date | None = None
    trades_30d: int = 0


#: an account without a profile counts as opened on this day
NO_PROFILE_OPENED = dt.date(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class BankAccount:
    """A linked bank account of the sandbox bank, with its balance and password."""

    bank_code: str
    bank_name: str
    masked_account: str
    balance: Decimal
    password: SecretStr


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


def _dt(value: Any, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value)).astimezone(tz)


def _normalise_phone(phone: str) -> str:
    digits = "".join(c for c in phone if c.isdigit())
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError("an idempotency key is 1-128 printable ASCII characters")


class SandboxBackOffice:
    """``BackOffice`` on SQLite. Create it with ``await SandboxBackOffice.open(path)``."""

    def __init__(self, db: aiosqlite.Connection, *, rules: r.Rules, clock: Clock | None,
                 seed: int, frozen: bool, interval: dt.timedelta, owns_db: bool) -> None:
        self._db = db
        self.rules = rules
        self._clock: Clock = clock or (lambda: dt.datetime.now(rules.tz))
        self._pinned: dt.datetime | None = None
        self._seed = seed
        self._frozen = frozen
        self._interval = interval
        self._owns_db = owns_db
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._market: Market | None = None

    @classmethod
    async def open(cls, target: Path | aiosqlite.Connection, *, rules: r.Rules | None = None,
                   clock: Clock | None = None, listings: Sequence[Listing] | None = None,
                   seed: int = 0, frozen: bool = False,
                   interval: dt.timedelta = DEFAULT_INTERVAL) -> SandboxBackOffice:
        """Open the ledger at ``target``: a file path (opened with WAL, ``synchronous=FULL`` and
        a busy timeout), or an open connection in autocommit mode (``isolation_level=None``)
        whose owner set those pragmas. Creates/migrates the ``bo_*`` tables and loads the
        securities (``listings``, default the packaged file) and the market state."""
        owns = not isinstance(target, aiosqlite.Connection)
        if isinstance(target, aiosqlite.Connection):
            if target.isolation_level is not None:
                raise BrokerError("the back office needs a connection with isolation_level=None")
            db = target
        else:
            try:
                await asyncio.to_thread(make_private, target)  # customer data: 0600
                db = await aiosqlite.connect(target, isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                raise BrokerError(f"cannot open back office database {target}: {exc}") from exc
        office = cls(db, rules=rules or r.DEFAULT_RULES, clock=clock, seed=seed, frozen=frozen,
                     interval=interval, owns_db=owns)
        try:
            if owns:
                await durable_pragmas(db)
            await office._migrate()
            await office._load_securities(listings if listings is not None else load_listings())
            await office._reload_market()
            if not await office._one("SELECT 1 FROM bo_market_clock"):
                async with office._tx():
                    await office._save_market()
        except sqlite3.Error as exc:
            await office._close_db()
            raise BrokerError(f"cannot prepare the back office database: {exc}") from exc
        except BaseException:
            await office._close_db()
            raise
        return office

    async def close(self) -> None:
        """Let mutations in flight finish, then close the connection if this object opened it."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_db()

    async def __aenter__(self) -> SandboxBackOffice:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --- the clock --------------------------------------------------------------------------------

    def set_clock(self, when: dt.datetime | None) -> None:
        """Pin the sandbox's time to ``when`` (naive means Asia/Shanghai), or unpin it (None)."""
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=self.rules.tz)
        self._pinned = None if when is None else r.local(when, self.rules)

    def now(self) -> dt.datetime:
        return r.local(self._pinned or self._clock(), self.rules)

    # --- market -----------------------------------------------------------------------------------

    async def quote(self, code: str) -> Quote:
        async def op() -> Quote:
            await self._advance()
            self._security(code)
            return self.market.quote(code)
        return await self._run(op)

    async def security(self, code: str) -> Security:
        return self._security(code)

    async def set_last(self, code: str, price: Decimal) -> None:
        """Move a security's last price (demos, tests; inside today's band, on the tick)."""
        r.require_decimal(price, "price")

        async def op() -> None:
            await self._advance()
            self._security(code)
            self.market.set_last(code, price)
            async with self._tx():
                await self._save_market()
        await self._run(op)

    async def set_suspended(self, code: str, suspended: bool) -> None:
        async def op() -> None:
            await self._advance()
            self._security(code)
            self.market.set_suspended(code, suspended)
            async with self._tx():
                await self._save_market()
        await self._run(op)

    @property
    def market(self) -> Market:
        if self._market is None:
            raise BrokerError("the back office is not open")
        return self._market

    # --- customers and authentication -------------------------------------------------------------

    async def customer(self, account: str) -> Customer:
        return await self._run(lambda: self._customer(account))

    async def customer_by_phone(self, phone: str) -> Customer | None:
        number = _normalise_phone(phone)

        async def op() -> Customer | None:
            row = await self._one(
                "SELECT * FROM bo_customers c WHERE EXISTS "
                "(SELECT 1 FROM json_each(c.phones) WHERE value = ?) ORDER BY account LIMIT 1",
                number)
            return None if row is None else self._to_customer(row)
        return await self._run(op) if number else None

    async def verify_password(self, account: str, kind: PasswordKind,
                              password: SecretStr) -> Customer:
        """Check a password. Wrong ones count (persisted); at the limit that kind locks, and a
        locked kind refuses even the right password. The right one resets the count. The bank
        kind is the password of the bank account transfers go through (the sandbox bank's)."""
        kind = PasswordKind(kind)

        async def read() -> tuple[Customer, str]:
            customer = await self._customer(account)
            if kind is PasswordKind.BANK:
                row = await self._one("SELECT bank_hash FROM bo_bank_links WHERE account = ? "
                                      "ORDER BY rank, bank_code LIMIT 1", account)
                if row is None:
                    raise r.refusal(RefusalCode.NO_BANK_LINK, "no bank account is linked")
            else:
                column = "trading_hash" if kind is PasswordKind.TRADING else "fund_hash"
                # ``column`` is one of two literals above, never input.
                row = await self._one(
                    f"SELECT {column} FROM bo_customers WHERE account = ?",  # noqa: S608
                    account)
                assert row is not None
            await self._refuse_if_locked(account, kind)
            return customer, str(row[0])

        customer, stored = await self._run(read)
        ok = await verify_password_async(password, stored)

        async def record() -> tuple[int, bool]:
            async with self._tx():
                await self._refuse_if_locked(account, kind)
                if ok:
                    await self._db.execute(
                        "UPDATE bo_password_state SET failures = 0 "
                        "WHERE account = ? AND kind = ?", (account, kind.value))
                    return 0, False
                row = await self._one(
                    "UPDATE bo_password_state SET failures = failures + 1 "
                    "WHERE account = ? AND kind = ? RETURNING failures", account, kind.value)
                failures = int(row[0]) if row else 1
                if row is None:  # a ledger loaded by hand, without counters
                    await self._db.execute(
                        "INSERT INTO bo_password_state (account, kind, failures) VALUES (?, ?, 1)",
                        (account, kind.value))
                locked = failures >= self.rules.max_failures[kind]
                if locked:
                    await self._db.execute(
                        "UPDATE bo_password_state SET locked = 1, locked_at = ? "
                        "WHERE account = ? AND kind = ?",
                        (self.now().isoformat(), account, kind.value))
                return failures, locked

        # The count is committed first, then the refusal raised: raising inside the
        # transaction would roll the count back.
        failures, locked = await self._run(record)
        if ok:
            return customer
        if locked:
            raise self._locked(kind)
        remaining = self.rules.max_failures[kind] - failures
        raise r.refusal(RefusalCode.BAD_PASSWORD,
                        f"wrong {kind.value} password; {remaining} attempts left",
                        kind=kind.value, remaining=remaining)

    async def change_password(self, account: str, kind: PasswordKind, old: SecretStr,
                              new: SecretStr) -> None:
        kind = PasswordKind(kind)
        if kind is PasswordKind.BANK:
            raise BrokerError("the bank password is changed at the bank, not here")
        customer = await self.customer(account)
        # Judge the new password before spending an attempt on the old one.
        if new.get_secret_value() == old.get_secret_value():
            raise r.refusal(RefusalCode.WEAK_PASSWORD,
                            "the new password must differ from the old one", reason="unchanged")
        r.check_new_password(new.get_secret_value(), avoid=(account, *customer.phones))
        await self.verify_password(account, kind, old)
        stored = await hash_password_async(new)
        column = "trading_hash" if kind is PasswordKind.TRADING else "fund_hash"

        async def op() -> None:
            async with self._tx():
                await self._db.execute(
                    f"UPDATE bo_customers SET {column} = ? WHERE account = ?",  # noqa: S608
                    (stored, account))
        await self._run(op)

    async def unlock(self, account: str, kind: PasswordKind) -> None:
        """Unlock a password kind and clear its count (an agent's action after checks)."""
        async def op() -> None:
            await self._customer(account)
            async with self._tx():
                await self._db.execute(
                    "UPDATE bo_password_state SET failures = 0, locked = 0, locked_at = NULL "
                    "WHERE account = ? AND kind = ?", (account, PasswordKind(kind).value))
        await self._run(op)

    async def lock_state(self, account: str, kind: PasswordKind) -> tuple[int, bool]:
        """(wrong passwords in a row, locked) for ``kind``."""
        async def op() -> tuple[int, bool]:
            await self._customer(account)
            row = await self._one(
                "SELECT failures, locked FROM bo_password_state WHERE account = ? AND kind = ?",
                account, PasswordKind(kind).value)
            return (0, False) if row is None else (int(row[0]), bool(row[1]))
        return await self._run(op)

    # --- account queries --------------------------------------------------------------------------

    async def cash(self, account: str) -> Cash:
        async def op() -> Cash:
            now = await self._advance()
            await self._customer(account)
            balance, frozen = await self._cash(account)
            return Cash(balance, balance - frozen, frozen,
                        await self._withdrawable(account, now.date()))
        return await self._run(op)

    async def positions(self, account: str) -> list[Position]:
        async def op() -> list[Position]:
            today = (await self._advance()).date()
            await self._customer(account)
            rows = await self._all(
                "SELECT * FROM bo_positions WHERE account = ? ORDER BY code", account)
            result = []
            for row in rows:
                code = str(row["code"])
                quantity = int(row["quantity"])
                can_sell = r.sellable(quantity, self._bought_today(row, today),
                                      await self._in_open_sells(account, code))
                cost = r.money(_d(row["cost"]) / quantity) if quantity else _ZERO
                result.append(Position(self._security(code), quantity, can_sell, cost,
                                       self.market.last(code)))
            return result
        return await self._run(op)

    async def orders_today(self, account: str) -> list[Order]:
        async def op() -> list[Order]:
            today = (await self._advance()).date()
            await self._customer(account)
            rows = await self._all("SELECT * FROM bo_orders WHERE account = ? AND (trade_date = ? "
                                   "OR status = ?) ORDER BY order_no", account,
                                   today.isoformat(), OrderStatus.QUEUED.value)
            return [self._to_order(row) for row in rows]
        return await self._run(op)

    async def fills_today(self, account: str) -> list[Fill]:
        async def op() -> list[Fill]:
            today = (await self._advance()).date()
            await self._customer(account)
            rows = await self._all(f"{_FILLS} WHERE f.account = ? AND f.trade_date = ? "
                                   "ORDER BY f.id", account, today.isoformat())
            return [self._to_fill(row) for row in rows]
        return await self._run(op)

    # --- the journal (financial secretary) ----------------------------------------------------

    async def fills_since(self, position: str, limit: int) -> list[FillEntry]:
        """Fills of every account after ``position`` ("" = from the first), oldest first."""
        after = int(position) if position else 0

        async def op() -> list[FillEntry]:
            await self._advance()
            rows = await self._all(f"{_FILLS} WHERE f.id > ? ORDER BY f.id LIMIT ?",
                                   after, max(1, limit))
            return [FillEntry(str(row["id"]), str(row["account"]),
                              f"{row['order_no']}-{row['id']}", self._to_fill(row))
                    for row in rows]
        return await self._run(op)

    async def transfers_since(self, position: str, limit: int) -> list[TransferEntry]:
        """Transfers of every account after ``position`` ("" = from the first), oldest first.
        The position is the transfer number (fixed width, so text order is number order)."""
        async def op() -> list[TransferEntry]:
            rows = await self._all("SELECT * FROM bo_transfers WHERE transfer_no > ? "
                                   "ORDER BY transfer_no LIMIT ?", position, max(1, limit))
            return [TransferEntry(str(row["transfer_no"]), self._to_transfer(row))
                    for row in rows]
        return await self._run(op)

    async def ipo_allotments(self, account: str) -> list[IpoAllotment]:
        async def op() -> list[IpoAllotment]:
            await self._customer(account)
            rows = await self._all("SELECT * FROM bo_ipo_allotments WHERE account = ? "
                                   "ORDER BY allotted_on, allotment_no", account)
            return [IpoAllotment(str(x["allotment_no"]), str(x["account"]), str(x["code"]),
                                 str(x["name"]), str(x["name_en"]), int(x["quantity"]),
                                 _d(x["price"]), dt.date.fromisoformat(str(x["allotted_on"])),
                                 dt.date.fromisoformat(str(x["pay_date"]))) for x in rows]
        return await self._run(op)

    # --- orders -----------------------------------------------------------------------------------

    async def preview_order(self, account: str, side: Side, code: str, price: Decimal,
                            quantity: int) -> OrderPreview:
        async def op() -> OrderPreview:
            now = await self._advance()
            return await self._check_order(now, account, Side(side), code, price, quantity)
        return await self._run(op)

    async def place_order(self, account: str, side: Side, code: str, price: Decimal,
                          quantity: int, idempotency_key: str) -> Order:
        _check_key(idempotency_key)
        side = Side(side)

        async def op() -> Order:
            now = await self._advance()
            async with self._tx():
                row = await self._one("SELECT * FROM bo_orders WHERE idempotency_key = ?",
                                      idempotency_key)
                if row is not None:
                    order = self._to_order(row)
                    if (order.account, order.side, order.security.code, order.price,
                            order.quantity) != (account, side, code, price, quantity):
                        raise BrokerError("idempotency key reused for a different order")
                    return order
                checked = await self._check_order(now, account, side, code, price, quantity)
                sends_at = r.order_timing(now, self.rules)
                status = OrderStatus.OPEN if sends_at is None else OrderStatus.QUEUED
                order_no = await self._next_number("order", ORDER_BASE)
                frozen = checked.total if side is Side.BUY else _ZERO
                await self._db.execute(
                    "INSERT INTO bo_orders (order_no, idempotency_key, account, code, side, "
                    "price, quantity, status, frozen, trade_date, created_at, sends_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (order_no, idempotency_key, account, code, side.value, str(checked.price),
                     quantity, status.value, str(frozen), (sends_at or now).date().isoformat(),
                     now.isoformat(), None if sends_at is None else sends_at.isoformat()))
                if frozen:
                    balance, held = await self._cash(account)
                    await self._set_cash(account, balance, held + frozen)
            # Committed: only now may the market see it (a queued one: when it is sent).
            if sends_at is None:
                self.market.add_order(RestingOrder(order_no, code, side, checked.price,
                                                   quantity))
            return Order(order_no, account, checked.security, side, checked.price, quantity, 0,
                         status, now, "", sends_at)
        return await self._run(op)

    async def cancel_order(self, account: str, order_no: str, idempotency_key: str) -> Order:
        _check_key(idempotency_key)

        async def op() -> Order:
            now = await self._advance()
            async with self._tx():
                row = await self._one("SELECT * FROM bo_orders WHERE cancel_key = ?",
                                      idempotency_key)
                if row is not None:
                    if (row["account"], row["order_no"]) != (account, order_no):
                        raise BrokerError("idempotency key reused for a different cancel")
                    return self._to_order(row)
                row = await self._one(
                    "SELECT * FROM bo_orders WHERE order_no = ? AND account = ?",
                    order_no, account)
                if row is None:
                    raise r.refusal(RefusalCode.ORDER_NOT_FOUND,
                                    f"there is no order {order_no} on this account")
                if row["status"] not in _OPEN:
                    raise r.refusal(RefusalCode.NOT_CANCELLABLE,
                                    f"the order is already {row['status']}",
                                    status=row["status"])
                if row["status"] != OrderStatus.QUEUED.value:  # the broker holds a queued one
                    r.check_cancel_time(now, self.rules)
                await self._close_order(row, "cancelled by customer", cancel_key=idempotency_key)
                row = await self._one("SELECT * FROM bo_orders WHERE order_no = ?", order_no)
                assert row is not None
            self.market.remove_order(order_no)
            return self._to_order(row)
        return await self._run(op)

    async def order_by_key(self, idempotency_key: str) -> Order | None:
        async def op() -> Order | None:
            await self._advance()
            row = await self._one("SELECT * FROM bo_orders WHERE idempotency_key = ?",
                                  idempotency_key)
            return None if row is None else self._to_order(row)
        return await self._run(op)

    # --- bank-securities transfers ----------------------------------------------------------------

    async def bank_links(self, account: str) -> list[BankLink]:
        async def op() -> list[BankLink]:
            await self._customer(account)
            rows = await self._all("SELECT * FROM bo_bank_links WHERE account = ? "
                                   "ORDER BY rank, bank_code", account)
            return [BankLink(str(x["bank_code"]), str(x["bank_name"]), str(x["masked_account"]))
                    for x in rows]
        return await self._run(op)

    async def transfer(self, account: str, direction: TransferDirection, amount: Decimal,
                       fund_password: SecretStr, bank_password: SecretStr | None,
                       idempotency_key: str) -> Transfer:
        """Move cash between the securities account and its first linked bank account.

        In (bank to securities) needs the bank password as well, counted and locked as the
        bank kind (``verify_password``); the per-day limit applies to each direction on its
        own. A retried key returns the transfer already made."""
        _check_key(idempotency_key)
        direction = TransferDirection(direction)
        r.require_decimal(amount, "amount")
        done = await self.transfer_by_key(idempotency_key)
        if done is not None:
            return self._same_transfer(done, account, direction, amount)
        amount = r.check_transfer_amount(amount)
        r.check_transfer_time(self.now(), self.rules)
        await self.customer(account)

        async def primary_link() -> Any:
            return await self._one("SELECT * FROM bo_bank_links WHERE account = ? "
                                   "ORDER BY rank, bank_code LIMIT 1", account)
        link = await self._run(primary_link)
        if link is None:
            raise r.refusal(RefusalCode.NO_BANK_LINK, "no bank account is linked")
        await self.verify_password(account, PasswordKind.FUND, fund_password)
        if direction is TransferDirection.BANK_TO_SECURITIES:
            if bank_password is None:
                raise r.refusal(RefusalCode.BANK_REFUSED, "the bank needs its password",
                                reason="bank_password_required")
            await self.verify_password(account, PasswordKind.BANK, bank_password)
        bank_code = str(link["bank_code"])

        async def op() -> Transfer:
            now = await self._advance()
            async with self._tx():
                row = await self._one("SELECT * FROM bo_transfers WHERE idempotency_key = ?",
                                      idempotency_key)
                if row is not None:
                    return self._same_transfer(self._to_transfer(row), account, direction,
                                               amount)
                day = now.date().isoformat()
                total_row = await self._one(
                    "SELECT total FROM bo_transfer_totals WHERE account = ? AND day = ? "
                    "AND direction = ?", account, day, direction.value)
                already = _d(total_row[0]) if total_row else _ZERO
                r.check_daily_limit(already, amount, self.rules)
                balance, frozen = await self._cash(account)
                bank_row = await self._one(
                    "SELECT bank_balance FROM bo_bank_links WHERE account = ? AND bank_code = ?",
                    account, bank_code)
                if bank_row is None:
                    raise r.refusal(RefusalCode.NO_BANK_LINK, "no bank account is linked")
                bank_balance = _d(bank_row[0])
                if direction is TransferDirection.SECURITIES_TO_BANK:
                    r.check_transfer_available(amount, balance - frozen)
                    r.check_withdrawable(amount, await self._withdrawable(account, now.date()))
                    balance, bank_balance = balance - amount, bank_balance + amount
                else:
                    if amount > bank_balance:
                        raise r.refusal(RefusalCode.BANK_REFUSED,
                                        "the bank account does not hold that much",
                                        reason="bank_balance")
                    balance, bank_balance = balance + amount, bank_balance - amount
                await self._set_cash(account, balance, frozen)
                await self._db.execute(
                    "UPDATE bo_bank_links SET bank_balance = ? WHERE account = ? "
                    "AND bank_code = ?", (str(bank_balance), account, bank_code))
                await self._db.execute(
                    "INSERT INTO bo_transfer_totals (account, day, direction, total) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (account, day, direction) "
                    "DO UPDATE SET total = excluded.total",
                    (account, day, direction.value, str(already + amount)))
                transfer_no = await self._next_number("transfer", TRANSFER_BASE)
                transfer = Transfer(transfer_no, account, direction, amount, now,
                                    balance - frozen)
                await self._db.execute(
                    "INSERT INTO bo_transfers (transfer_no, idempotency_key, account, "
                    "direction, amount, bank_code, at, trade_date, balance_after) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (transfer_no, idempotency_key, account, direction.value, str(amount),
                     bank_code, now.isoformat(), day, str(transfer.balance_after)))
                return transfer
        return await self._run(op)

    async def transfer_by_key(self, idempotency_key: str) -> Transfer | None:
        async def op() -> Transfer | None:
            row = await self._one("SELECT * FROM bo_transfers WHERE idempotency_key = ?",
                                  idempotency_key)
            return None if row is None else self._to_transfer(row)
        return await self._run(op)

    async def bank_balance(self, account: str, bank_code: str) -> Decimal:
        """The sandbox bank's side of a link (for demos and tests)."""
        async def op() -> Decimal:
            row = await self._one("SELECT bank_balance FROM bo_bank_links "
                                  "WHERE account = ? AND bank_code = ?", account, bank_code)
            if row is None:
                raise r.refusal(RefusalCode.NO_BANK_LINK, "no such bank account is linked")
            return _d(row[0])
        return await self._run(op)

    # --- information ------------------------------------------------------------------------------

    async def announcements(self) -> list[Announcement]:
        async def op() -> list[Announcement]:
            rows = await self._all("SELECT * FROM bo_announcements ORDER BY published DESC, id")
            return [Announcement(str(x["id"]), str(x["title"]), str(x["body_zh"]),
                                 str(x["body_en"]), dt.date.fromisoformat(str(x["published"])))
                    for x in rows]
        return await self._run(op)

    # --- loading data -----------------------------------------------------------------------------

    async def put_account(self, customer: Customer, *, trading_password: SecretStr,
                          fund_password: SecretStr, cash: Decimal,
                          holdings: Sequence[Holding] = (),
                          banks: Sequence[BankAccount] = ()) -> None:
        """Create or reset an account: everything it had (orders, fills, transfers, counters)
        is replaced. The two passwords must pass the weak-password rules."""
        r.require_decimal(cash, "cash")
        avoid = (customer.account, *customer.phones)
        r.check_new_password(trading_password.get_secret_value(), avoid=avoid)
        r.check_new_password(fund_password.get_secret_value(), avoid=avoid)
        for h in holdings:
            self._security(h.code)
            if not 0 <= h.bought_today <= h.quantity or h.quantity <= 0:
                raise ValueError(f"holding {h.code}: bad quantities")
        hashes = await asyncio.gather(
            hash_password_async(trading_password), hash_password_async(fund_password),
            *(hash_password_async(b.password) for b in banks))
        account = customer.account

        async def op() -> None:
            today = (await self._advance()).date().isoformat()
            async with self._tx():
                open_orders = await self._all(
                    "SELECT order_no FROM bo_orders WHERE account = ? AND status IN (?, ?, ?)",
                    account, *_OPEN)
                for table in ("bo_customers", "bo_password_state", "bo_cash", "bo_positions",
                              "bo_orders", "bo_fills", "bo_bank_links", "bo_transfers",
                              "bo_transfer_totals", "bo_ipo_allotments", "bo_profiles",
                              "bo_complaints"):
                    await self._db.execute(
                        f"DELETE FROM {table} WHERE account = ?", (account,))  # noqa: S608
                await self._db.execute(
                    "INSERT INTO bo_customers (account, name, tier, phones, manager, language, "
                    "trading_hash, fund_hash, email) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (account, customer.name, Tier(customer.tier).value,
                     json.dumps([_normalise_phone(p) for p in customer.phones]),
                     customer.manager, customer.language, hashes[0], hashes[1],
                     customer.email))
                await self._db.executemany(
                    "INSERT INTO bo_password_state (account, kind) VALUES (?, ?)",
                    [(account, kind.value) for kind in PasswordKind])
                await self._set_cash(account, r.money(cash), _ZERO)
                for h in holdings:
                    await self._db.execute(
                        "INSERT INTO bo_positions (account, code, quantity, bought_today, "
                        "bought_date, cost) VALUES (?, ?, ?, ?, ?, ?)",
                        (account, h.code, h.quantity, h.bought_today,
                         today if h.bought_today else None,
                         str(r.money(h.cost_price * h.quantity))))
                for rank, (bank, stored) in enumerate(zip(banks, hashes[2:], strict=True)):
                    await self._db.execute(
                        "INSERT INTO bo_bank_links (account, bank_code, bank_name, "
                        "masked_account, bank_hash, bank_balance, rank) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (account, bank.bank_code, bank.bank_name, bank.masked_account, stored,
                         str(r.money(bank.balance)), rank))
            for row in open_orders:
                self.market.remove_order(str(row["order_no"]))
        await self._run(op)

    async def put_ipo_allotment(self, allotment: IpoAllotment) -> None:
        """Publish (or replace) an allotment; the account must exist."""
        a = allotment
        r.require_decimal(a.price, "price")
        if isinstance(a.quantity, bool) or not isinstance(a.quantity, int) or a.quantity <= 0:
            raise ValueError("an allotment's quantity is a positive number of shares")
        if a.price <= 0 or a.pay_date < a.allotted_on:
            raise ValueError("an allotment needs a positive price and pay date on or after "
                             "its publication")

        async def op() -> None:
            await self._customer(a.account)
            async with self._tx():
                await self._db.execute(
                    "INSERT OR REPLACE INTO bo_ipo_allotments (allotment_no, account, code, "
                    "name, name_en, quantity, price, allotted_on, pay_date) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (a.allotment_no, a.account, a.code, a.name, a.name_en, a.quantity,
                     str(r.money(a.price)), a.allotted_on.isoformat(), a.pay_date.isoformat()))
        await self._run(op)

    async def put_announcement(self, announcement: Announcement) -> None:
        async def op() -> None:
            async with self._tx():
                a = announcement
                await self._db.execute(
                    "INSERT INTO bo_announcements (id, title, body_zh, body_en, published) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET title = "
                    "excluded.title, body_zh = excluded.body_zh, body_en = excluded.body_en, "
                    "published = excluded.published",
                    (a.id, a.title, a.body_zh, a.body_en, a.published.isoformat()))
        await self._run(op)

    async def put_profile(self, account: str, profile: Profile) -> None:
        """Set what the service strategies read besides the ledger (broker/facts.py)."""
        async def op() -> None:
            await self._customer(account)
            async with self._tx():
                await self._db.execute(
                    "INSERT OR REPLACE INTO bo_profiles (account, opened_on, birthday, timezone,"
                    " last_trade_on, trades_30d) VALUES (?, ?, ?, ?, ?, ?)",
                    (account, profile.opened_on.isoformat(),
                     None if profile.birthday is None else profile.birthday.isoformat(),
                     profile.timezone,
                     None if profile.last_trade_on is None else profile.last_trade_on.isoformat(),
                     profile.trades_30d))
        await self._run(op)

    async def put_complaint(self, account: str, complaint: Complaint) -> None:
        """Record (or replace) a complaint and when it was handled."""
        async def op() -> None:
            await self._customer(account)
            async with self._tx():
                await self._db.execute(
                    "INSERT OR REPLACE INTO bo_complaints (id, account, opened_at, handled_at)"
                    " VALUES (?, ?, ?, ?)",
                    (complaint.id, account, complaint.opened_at.isoformat(),
                     None if complaint.handled_at is None
                     else complaint.handled_at.isoformat()))
        await self._run(op)

    # --- customer facts (broker/facts.py) ---------------------------------------------------------

    async def customer_facts(self, page_size: int = DEFAULT_PAGE
                             ) -> AsyncIterator[Sequence[CustomerFacts]]:
        """Every customer's facts in account order, a page at a time. Assets are cash plus
        positions at the market's last price; trading adds the sandbox's fills to the profile's
        figures. An account without a profile counts as opened on ``NO_PROFILE_OPENED``."""
        after = ""
        size = max(1, page_size)
        while True:
            page = await self._run(functools.partial(self._facts_page, after, size))
            if not page:
                return
            yield page
            after = page[-1].account

    async def _facts_page(self, after: str, size: int) -> list[CustomerFacts]:
        # No step of the market: a command beside the running engine (``strategies try``)
        # must not send queued orders into a market of its own; prices are the last saved.
        today = self.now().date()
        since = (today - dt.timedelta(days=30)).isoformat()
        rows = await self._all(
            "SELECT c.*, p.opened_on, p.birthday, p.timezone, p.last_trade_on, p.trades_30d,"
            " k.balance, (SELECT MAX(trade_date) FROM bo_fills f WHERE f.account = c.account)"
            " AS filled_on, (SELECT COUNT(*) FROM bo_fills f WHERE f.account = c.account"
            " AND f.trade_date > ?) AS fills_30d, EXISTS (SELECT 1 FROM bo_bank_links b"
            " WHERE b.account = c.account) AS bound FROM bo_customers c"
            " LEFT JOIN bo_profiles p ON p.account = c.account"
            " LEFT JOIN bo_cash k ON k.account = c.account"
            " WHERE c.account > ? ORDER BY c.account LIMIT ?", since, after, size)
        held: dict[str, Decimal] = {}
        complaints: dict[str, list[Complaint]] = {}
        for pos in await self._all("SELECT account, code, quantity FROM bo_positions WHERE"
                                   " account IN (SELECT account FROM bo_customers WHERE"
                                   " account > ? ORDER BY account LIMIT ?)", after, size):
            value = self.market.last(str(pos["code"])) * int(pos["quantity"])
            held[str(pos["account"])] = held.get(str(pos["account"]), _ZERO) + value
        for row in await self._all("SELECT * FROM bo_complaints WHERE account IN (SELECT"
                                   " account FROM bo_customers WHERE account > ? ORDER BY"
                                   " account LIMIT ?) ORDER BY opened_at", after, size):
            complaints.setdefault(str(row["account"]), []).append(Complaint(
                str(row["id"]), _dt(row["opened_at"], self.rules.tz),
                None if row["handled_at"] is None else _dt(row["handled_at"], self.rules.tz)))
        out = []
        for row in rows:
            account = str(row["account"])
            customer = self._to_customer(row)
            traded = [dt.date.fromisoformat(str(d)) for d in (row["last_trade_on"],
                                                                row["filled_on"]) if d]
            out.append(CustomerFacts(
                account=account, name=customer.name, tier=customer.tier,
                phones=customer.phones, language=customer.language, manager=customer.manager,
                email=customer.email,
                opened_on=(dt.date.fromisoformat(str(row["opened_on"])) if row["opened_on"]
                           else NO_PROFILE_OPENED),
                birthday=(dt.date.fromisoformat(str(row["birthday"])) if row["birthday"]
                          else None),
                assets=r.money((_d(row["balance"]) if row["balance"] is not None else _ZERO)
                               + held.get(account, _ZERO)),
                last_trade_on=max(traded) if traded else None,
                trades_30d=int(row["trades_30d"] or 0) + int(row["fills_30d"] or 0),
                bank_bound=bool(row["bound"]),
                timezone=str(row["timezone"] or "Asia/Shanghai"),
                complaints=tuple(complaints.get(account, ()))))
        return out

    # --- inside: running, transactions, rows ------------------------------------------------------

    async def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` alone on the connection, to completion even if the caller is cancelled."""
        async def locked() -> T:
            async with self._lock:
                try:
                    return await fn()
                except sqlite3.Error as exc:
                    raise BrokerError(f"back office database error: {exc}") from exc

        task = asyncio.ensure_future(locked())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return await asyncio.shield(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            # Retrieved here so that a caller who hung up leaves no "never retrieved" noise;
            # its outcome is found again through the idempotency key.
            task.exception()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[None]:
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            await self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await self._db.execute("ROLLBACK")
            raise

    async def _one(self, sql: str, *params: Any) -> Any:
        rows = await self._all(sql, *params)
        return rows[0] if rows else None

    async def _all(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        cursor = await self._db.cursor()
        try:
            cursor.row_factory = sqlite3.Row
            await cursor.execute(sql, params)
            return list(await cursor.fetchall())
        finally:
            await cursor.close()

    async def _close_db(self) -> None:
        if self._owns_db:
            self._owns_db = False
            await self._db.close()

    async def _migrate(self) -> None:
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS bo_schema_version (version INTEGER NOT NULL)")
        row = await self._one("SELECT version FROM bo_schema_version")
        if row is None:
            await self._db.execute("INSERT INTO bo_schema_version (version) VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        if version > len(SCHEMA):
            raise BrokerError(f"back office schema version {version} is newer than this engine "
                              f"({len(SCHEMA)})")
        for number, script in enumerate(SCHEMA[version:], start=version + 1):
            await self._db.executescript(
                f"BEGIN IMMEDIATE;\n{script}\n"
                f"UPDATE bo_schema_version SET version = {number};\nCOMMIT;")

    async def _load_securities(self, listings: Sequence[Listing]) -> None:
        async with self._tx():
            await self._db.executemany(
                "INSERT INTO bo_securities (code, name, name_en, board, exchange, prev_close, "
                "risk_warning, listed) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO "
                "UPDATE SET name = excluded.name, name_en = excluded.name_en, "
                "board = excluded.board, exchange = excluded.exchange, "
                "prev_close = excluded.prev_close, risk_warning = excluded.risk_warning, "
                "listed = excluded.listed",
                [(x.security.code, x.security.name, x.security.name_en, x.security.board.value,
                  x.security.exchange, str(x.prev_close), int(x.security.risk_warning),
                  None if x.security.listed is None else x.security.listed.isoformat())
                 for x in listings])

    async def _reload_market(self) -> None:
        """(Re)build the market from the tables: listings, saved state, clock, open orders."""
        listings = [Listing(Security(str(x["code"]), str(x["name"]), str(x["name_en"]),
                                     Board(x["board"]), str(x["exchange"]),
                                     bool(x["risk_warning"]),
                                     None if x["listed"] is None
                                     else dt.date.fromisoformat(str(x["listed"]))),
                            _d(x["prev_close"]))
                    for x in await self._all("SELECT * FROM bo_securities ORDER BY code")]
        states = [InstrumentState(
            str(x["code"]), dt.date.fromisoformat(str(x["trade_date"])), int(x["prev_close"]),
            None if x["open"] is None else int(x["open"]), int(x["last"]), int(x["high"]),
            int(x["low"]), int(x["volume"]), int(x["turnover"]), int(x["draws"]),
            bool(x["suspended"])) for x in await self._all("SELECT * FROM bo_market")]
        clock_row = await self._one("SELECT now FROM bo_market_clock")
        start = _dt(clock_row[0], self.rules.tz) if clock_row else self.now()
        # The fills of the book showing at ``start`` took its liquidity: the market takes it
        # out again (it picks them by time), so a restart neither frees nor loses shares.
        taken = [Execution(str(x["order_no"]), str(x["code"]), Side(x["side"]), _d(x["price"]),
                           int(x["quantity"]), _dt(x["at"], self.rules.tz))
                 for x in await self._all("SELECT * FROM bo_fills WHERE at >= ? ORDER BY id",
                                          (start - self._interval).isoformat())]
        market = Market(listings, start, rules=self.rules, seed=self._seed, frozen=self._frozen,
                        interval=self._interval, states=states, taken=taken)
        for x in await self._all("SELECT * FROM bo_orders WHERE status IN (?, ?) "
                                 "ORDER BY order_no", *_OPEN[1:]):
            # placed: when it reached the exchange (a queued one: when it was sent), which
            # tells the market whether it has had its first turn (see ``Market.add_order``)
            placed = _dt(x["sends_at"] or x["created_at"], self.rules.tz)
            market.add_order(RestingOrder(str(x["order_no"]), str(x["code"]), Side(x["side"]),
                                          _d(x["price"]), int(x["quantity"]) - int(x["filled"]),
                                          placed))
        self._market = market

    async def _save_market(self) -> None:
        market = self.market
        await self._db.executemany(
            "INSERT OR REPLACE INTO bo_market (code, trade_date, prev_close, open, last, high, "
            "low, volume, turnover, draws, suspended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(s.code, s.trade_date.isoformat(), s.prev_close, s.open, s.last, s.high, s.low,
              s.volume, s.turnover, s.draws, int(s.suspended)) for s in market.snapshot()])
        await self._db.execute("INSERT OR REPLACE INTO bo_market_clock (id, now) VALUES (1, ?)",
                               (market.now.isoformat(),))

    async def _advance(self) -> dt.datetime:
        """Step the market to now, sending queued orders that are due on the way (each at its
        time); record releases, fills and expiries with the market's state, atomically."""
        try:
            return await self._advance_once()
        except _SentElsewhere:
            # Another process sent a queued order first: the market, reloaded from the disk,
            # now holds it; go again from there.
            return await self._advance_once()

    async def _advance_once(self) -> dt.datetime:
        now = self.now()
        tz = self.rules.tz
        # Only the due ones, through the index (sends_at is text in the rules' zone: the margin
        # covers a change of UTC offset; the exact test follows).
        queued = await self._all(
            "SELECT * FROM bo_orders WHERE status = ? AND sends_at <= ? ORDER BY order_no",
            OrderStatus.QUEUED.value, (now + dt.timedelta(hours=2)).isoformat())
        # Each goes at the first moment the exchange takes orders under today's rules: the
        # calendar may have changed since it was queued (a holiday added, a year replaced).
        # One whose day no longer trades is moved to the next window, not sent.
        moved: list[tuple[sqlite3.Row, dt.datetime]] = []
        due: list[tuple[dt.datetime, sqlite3.Row]] = []
        for row in queued:
            sends_at = _dt(row["sends_at"], tz)
            if sends_at > now:
                continue
            at = r.next_order_window(sends_at, self.rules)
            if at <= now:
                due.append((at, row))
            else:
                moved.append((row, at))
        due.sort(key=lambda x: x[0])
        try:
            # (order, when sent, why refused at sending, or "")
            sent: list[tuple[sqlite3.Row, dt.datetime, str]] = []
            results = []
            for at, row in due:
                # Catching up a long gap walks thousands of grid steps: off the loop. The lock
                # keeps every other reader of the market waiting meanwhile.
                results.append(await asyncio.to_thread(self.market.step, at))
                why = self._refused_at_sending(row, at)
                if not why:
                    self.market.add_order(RestingOrder(
                        str(row["order_no"]), str(row["code"]), Side(row["side"]),
                        _d(row["price"]), int(row["quantity"])))
                sent.append((row, at, why))
            results.append(await asyncio.to_thread(self.market.step, now))
        except BaseException:
            await self._reload_market()
            raise
        executions = [e for res in results for e in res.executions]
        expired = [o for res in results for o in res.expired]
        if sent or moved or any(res.changed for res in results):
            try:
                async with self._tx():
                    for row, at in moved:
                        await self._db.execute(
                            "UPDATE bo_orders SET sends_at = ?, trade_date = ? "
                            "WHERE order_no = ? AND status = ?",
                            (at.isoformat(), at.date().isoformat(), row["order_no"],
                             OrderStatus.QUEUED.value))
                    for row, at, why in sent:
                        # Only a still queued one: another process (the CLI on the same
                        # ledger) may have sent or cancelled it meanwhile.
                        cursor = await self._db.execute(
                            "UPDATE bo_orders SET status = ?, sends_at = ?, trade_date = ? "
                            "WHERE order_no = ? AND status = ?",
                            (OrderStatus.OPEN.value, at.isoformat(), at.date().isoformat(),
                             row["order_no"], OrderStatus.QUEUED.value))
                        if cursor.rowcount != 1:
                            raise _SentElsewhere(f"order {row['order_no']} is no longer queued")
                        if why:
                            await self._close_order(row, why, status=OrderStatus.REJECTED)
                    for execution in executions:
                        await self._apply_fill(execution)
                    for order_no in expired:
                        row = await self._one("SELECT * FROM bo_orders WHERE order_no = ?",
                                              order_no)
                        if row is not None and row["status"] in _OPEN:
                            await self._close_order(row, "expired at the close")
                    await self._save_market()
            except BaseException:
                # The market moved in memory but not on disk: take the disk's word.
                await self._reload_market()
                raise
        return now

    async def _apply_fill(self, ex: Execution) -> None:
        row = await self._one("SELECT * FROM bo_orders WHERE order_no = ?", ex.order_no)
        if row is None or row["status"] not in _OPEN:
            return
        account = str(row["account"])
        limit = _d(row["price"])
        if ex.price > limit if ex.side is Side.BUY else ex.price < limit:
            raise BrokerError(f"order {ex.order_no} filled at {ex.price}, through its limit")
        remaining = int(row["quantity"]) - int(row["filled"])
        quantity = min(ex.quantity, remaining)
        amount = r.order_amount(ex.price, quantity)
        # Fees on the order's whole amount: one minimum commission however many fills.
        before = sum((r.order_amount(_d(x["price"]), int(x["quantity"])) for x in await self._all(
            "SELECT price, quantity FROM bo_fills WHERE order_no = ?", ex.order_no)), _ZERO)
        fee = r.fill_fees(ex.side, before, amount, self.rules)
        balance, frozen = await self._cash(account)
        position = await self._one("SELECT * FROM bo_positions WHERE account = ? AND code = ?",
                                   account, ex.code)
        day = ex.at.date()
        held_by_order = _d(row["frozen"])
        if ex.side is Side.BUY:
            # Held at the limit; a better price releases the difference with the fill.
            still_held = min(held_by_order, r.buy_hold(before + amount, limit,
                                                       remaining - quantity, self.rules))
            await self._set_cash(account, balance - amount - fee,
                                 frozen - (held_by_order - still_held))
            await self._count_today(account, day, buys=amount + fee)
            held_by_order = still_held
            if position is None:
                await self._db.execute(
                    "INSERT INTO bo_positions (account, code, quantity, bought_today, "
                    "bought_date, cost) VALUES (?, ?, ?, ?, ?, ?)",
                    (account, ex.code, quantity, quantity, day.isoformat(), str(amount + fee)))
            else:
                bought = self._bought_today(position, day) + quantity
                await self._db.execute(
                    "UPDATE bo_positions SET quantity = ?, bought_today = ?, bought_date = ?, "
                    "cost = ? WHERE account = ? AND code = ?",
                    (int(position["quantity"]) + quantity, bought, day.isoformat(),
                     str(_d(position["cost"]) + amount + fee), account, ex.code))
        else:
            if position is None or int(position["quantity"]) < quantity:
                raise BrokerError(f"order {ex.order_no} sells shares the account does not hold")
            await self._set_cash(account, balance + amount - fee, frozen)
            await self._count_today(account, day, sales=amount - fee)
            left = int(position["quantity"]) - quantity
            if left == 0:
                await self._db.execute(
                    "DELETE FROM bo_positions WHERE account = ? AND code = ?", (account, ex.code))
            else:
                # Average cost: the shares sold take their share of the cost with them.
                cost = r.money(_d(position["cost"]) * left / int(position["quantity"]))
                await self._db.execute(
                    "UPDATE bo_positions SET quantity = ?, cost = ? WHERE account = ? "
                    "AND code = ?", (left, str(cost), account, ex.code))
        filled = int(row["filled"]) + quantity
        status = OrderStatus.FILLED if filled == int(row["quantity"]) else \
            OrderStatus.PARTIALLY_FILLED
        await self._db.execute(
            "UPDATE bo_orders SET filled = ?, status = ?, frozen = ? WHERE order_no = ?",
            (filled, status.value, str(held_by_order), ex.order_no))
        fill_id = int(await self._next_number("fill", 0))
        await self._db.execute(
            "INSERT INTO bo_fills (id, order_no, account, code, side, price, quantity, at, "
            "trade_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fill_id, ex.order_no, account, ex.code, ex.side.value, str(ex.price), quantity,
             ex.at.isoformat(), day.isoformat()))

    def _refused_at_sending(self, row: sqlite3.Row, at: dt.datetime) -> str:
        """Why the exchange refuses a queued order sent at ``at`` (the market stepped there),
        or "". Checked when queued against the close known then; this catches what changed."""
        code = str(row["code"])
        if self.market.is_suspended(code):
            return "rejected by the exchange: suspended"
        band = r.price_band(self._security(code), self.market.prev_close(code), at.date(),
                            self.rules)
        if band is not None and not band[0] <= _d(row["price"]) <= band[1]:
            return f"rejected by the exchange: outside today's limits {band[0]}-{band[1]}"
        return ""

    async def _close_order(self, row: sqlite3.Row, reason: str,
                           cancel_key: str | None = None,
                           status: OrderStatus = OrderStatus.CANCELLED) -> None:
        """Cancel (or reject) an open order: release the cash it holds."""
        account = str(row["account"])
        held = _d(row["frozen"])
        if held:
            balance, frozen = await self._cash(account)
            await self._set_cash(account, balance, frozen - held)
        await self._db.execute(
            "UPDATE bo_orders SET status = ?, reason = ?, frozen = ?, cancel_key = ? "
            "WHERE order_no = ?",
            (status.value, reason, str(_ZERO), cancel_key, row["order_no"]))

    async def _check_order(self, now: dt.datetime, account: str, side: Side, code: str,
                           price: Decimal, quantity: int) -> OrderPreview:
        """Every rule an order must pass, in the order a caller is told about them."""
        r.require_decimal(price, "price")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise TypeError("quantity must be an int")
        await self._customer(account)
        security = self._security(code)
        sends_at = r.order_timing(now, self.rules)
        if self.market.is_suspended(code):
            raise r.refusal(RefusalCode.SUSPENDED, f"{code} is suspended from trading today")
        day = (sends_at or now).date()
        price = r.check_price(price, self._reference_close(code, day), security, day,
                              self.rules)
        if side is Side.BUY:
            r.check_buy_quantity(quantity, security.board, self.rules)
        else:
            # T+1 on the day it reaches the exchange: a sell queued for tomorrow may include
            # shares bought today
            can_sell = r.sellable(*await self._holding(account, code, day))
            r.check_sell_quantity(quantity, can_sell, security.board, self.rules)
        checked = r.preview(security, side, price, quantity, self.rules)
        balance, frozen = await self._cash(account)
        # A sell so small that its fees exceed its proceeds costs cash too.
        needed = checked.total if side is Side.BUY else -checked.total
        if needed > 0:
            r.check_buying_power(balance - frozen, needed)
        return checked

    def _reference_close(self, code: str, day: dt.date) -> Decimal:
        """The close ``day``'s limits start from: today's last price for a later day (a queued
        order after the close: the market is still, so it is that day's previous close)."""
        if day > self.market.state(code).trade_date:
            return self.market.last(code)
        return self.market.prev_close(code)

    async def _holding(self, account: str, code: str, today: dt.date) -> tuple[int, int, int]:
        """(quantity, bought today, offered in open sells) of one security."""
        row = await self._one("SELECT * FROM bo_positions WHERE account = ? AND code = ?",
                              account, code)
        if row is None:
            return 0, 0, 0
        return (int(row["quantity"]), self._bought_today(row, today),
                await self._in_open_sells(account, code))

    async def _in_open_sells(self, account: str, code: str) -> int:
        row = await self._one(
            "SELECT COALESCE(SUM(quantity - filled), 0) FROM bo_orders WHERE account = ? "
            "AND code = ? AND side = ? AND status IN (?, ?, ?)",
            account, code, Side.SELL.value, *_OPEN)
        return int(row[0]) if row else 0

    @staticmethod
    def _bought_today(row: sqlite3.Row, today: dt.date) -> int:
        return int(row["bought_today"]) if row["bought_date"] == today.isoformat() else 0

    async def _cash(self, account: str) -> tuple[Decimal, Decimal]:
        row = await self._one("SELECT balance, frozen FROM bo_cash WHERE account = ?", account)
        if row is None:
            return _ZERO, _ZERO
        return _d(row[0]), _d(row[1])

    async def _set_cash(self, account: str, balance: Decimal, frozen: Decimal) -> None:
        await self._db.execute(
            "INSERT INTO bo_cash (account, balance, frozen) VALUES (?, ?, ?) ON CONFLICT "
            "(account) DO UPDATE SET balance = excluded.balance, frozen = excluded.frozen",
            (account, str(r.money(balance)), str(r.money(frozen))))

    async def _count_today(self, account: str, day: dt.date, *, sales: Decimal = _ZERO,
                           buys: Decimal = _ZERO) -> None:
        """Add to the account's sale proceeds and buy costs of ``day`` (可用不可取)."""
        had_sales, had_buys = await self._today(account, day)
        await self._db.execute(
            "UPDATE bo_cash SET day = ?, sales = ?, buys = ? WHERE account = ?",
            (day.isoformat(), str(had_sales + sales), str(had_buys + buys), account))

    async def _today(self, account: str, day: dt.date) -> tuple[Decimal, Decimal]:
        """(sale proceeds, buy costs) of ``day``; zero once the day has passed."""
        row = await self._one("SELECT day, sales, buys FROM bo_cash WHERE account = ?", account)
        if row is None or row["day"] != day.isoformat():
            return _ZERO, _ZERO
        return _d(row["sales"]), _d(row["buys"])

    async def _withdrawable(self, account: str, day: dt.date) -> Decimal:
        balance, frozen = await self._cash(account)
        return r.withdrawable(balance - frozen, frozen, *await self._today(account, day))

    async def _next_number(self, name: str, base: int) -> str:
        row = await self._one(
            "UPDATE bo_counters SET value = value + 1 WHERE name = ? RETURNING value", name)
        return f"{base + int(row[0]):08d}"

    async def _refuse_if_locked(self, account: str, kind: PasswordKind) -> None:
        row = await self._one("SELECT locked FROM bo_password_state WHERE account = ? "
                              "AND kind = ?", account, kind.value)
        if row is not None and row[0]:
            raise self._locked(kind)

    @staticmethod
    def _locked(kind: PasswordKind) -> Exception:
        return r.refusal(RefusalCode.ACCOUNT_LOCKED,
                         f"the {kind.value} password is locked after too many wrong attempts",
                         kind=kind.value)

    def _security(self, code: str) -> Security:
        security = self.market.security(code) if isinstance(code, str) else None
        if security is None:
            raise r.refusal(RefusalCode.UNKNOWN_CODE, f"there is no security {code}",
                            security=code)
        return security

    async def _customer(self, account: str) -> Customer:
        row = await self._one("SELECT * FROM bo_customers WHERE account = ?", account)
        if row is None:
            raise r.refusal(RefusalCode.UNKNOWN_ACCOUNT, "there is no such account")
        return self._to_customer(row)

    @staticmethod
    def _to_customer(row: sqlite3.Row) -> Customer:
        phones = tuple(str(p) for p in json.loads(row["phones"]))
        return Customer(str(row["account"]), str(row["name"]), Tier(row["tier"]), phones,
                        None if row["manager"] is None else str(row["manager"]),
                        str(row["language"]),
                        None if row["email"] is None else str(row["email"]))

    def _to_order(self, row: sqlite3.Row) -> Order:
        return Order(str(row["order_no"]), str(row["account"]), self._security(str(row["code"])),
                     Side(row["side"]), _d(row["price"]), int(row["quantity"]),
                     int(row["filled"]), OrderStatus(row["status"]),
                     _dt(row["created_at"], self.rules.tz), str(row["reason"]),
                     None if row["sends_at"] is None else _dt(row["sends_at"], self.rules.tz))

    def _to_fill(self, row: sqlite3.Row) -> Fill:
        """A ``bo_fills`` row; with ``remaining`` when read through ``_FILLS``."""
        known = "remaining" in row.keys() and row["remaining"] is not None  # noqa: SIM118
        remaining = int(row["remaining"]) if known else None
        return Fill(str(row["order_no"]), self._security(str(row["code"])), Side(row["side"]),
                    _d(row["price"]), int(row["quantity"]), _dt(row["at"], self.rules.tz),
                    remaining)

    def _to_transfer(self, row: sqlite3.Row) -> Transfer:
        return Transfer(str(row["transfer_no"]), str(row["account"]),
                        TransferDirection(row["direction"]), _d(row["amount"]),
                        _dt(row["at"], self.rules.tz), _d(row["balance_after"]))

    @staticmethod
    def _same_transfer(done: Transfer, account: str, direction: TransferDirection,
                       amount: Decimal) -> Transfer:
        if (done.account, done.direction, done.amount) != (account, direction, amount):
            raise BrokerError("idempotency key reused for a different transfer")
        return done


if TYPE_CHECKING:
    # mypy proves here that the sandbox is a complete ``BackOffice``.
    def _is_a_backoffice(office: SandboxBackOffice) -> BackOffice:
        return office

    def _has_a_feed(office: SandboxBackOffice) -> ActivityFeed:
        return office

    def _has_ipos(office: SandboxBackOffice) -> IpoSource:
        return office

    def _has_facts(office: SandboxBackOffice) -> CustomerBase:
        return office
