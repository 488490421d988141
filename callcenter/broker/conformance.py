"""The conformance suite every back office adapter must pass: exactly-once keys, refusal codes,
unknown-outcome lookups, password counts and locks (trading, fund and bank passwords),
Decimal money, no password in any refusal.

Use it from the adapter's own test file: subclass ``BackOfficeConformance`` and give it the
fixture ``adapter_under_test``, an ``AdapterUnderTest`` that opens the adapter on a test
environment and sets up an account there::

    import pytest
    from callcenter.broker.conformance import BackOfficeConformance

    class TestAcmeCounter(BackOfficeConformance):
        @pytest.fixture
        def adapter_under_test(self) -> AcmeUnderTest:
            return AcmeUnderTest(...)

pytest (with pytest-asyncio) then runs every check below against it. The sandbox's own run is
``tests/unit/test_backoffice_conformance.py``; docs/backoffice.md explains each contract.

The suite trades one main-board stock in whole lots of 100 at a price 1% under its last (on
the tick, inside the day's band), so that a buy rests, and transfers 1000.00 to the bank: it
holds under any board's lot rules. Checks that trade need the market in continuous trading;
checks that transfer need only transfer hours. An adapter that cannot put its back office there
says so and those checks skip, or fail with ``strict = True`` on the subclass (a real system's
run that must not pass by skipping).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any, ClassVar, Protocol

import pytest
from pydantic import SecretStr

from callcenter.broker.interface import (
    Order,
    OrderStatus,
    PasswordKind,
    Quote,
    RefusalCode,
    Side,
    Transfer,
    TransferDirection,
)
from callcenter.broker.plugin import BackOfficeAdapter, protocol_problems
from callcenter.errors import BrokerError, BrokerRefusal

__all__ = ["AdapterUnderTest", "BackOfficeConformance", "SeededAccount"]

CENT = Decimal("0.01")
LOT = 100
TRANSFER = Decimal("1000.00")
OUT = TransferDirection.SECURITIES_TO_BANK
IN = TransferDirection.BANK_TO_SECURITIES


@dataclasses.dataclass(frozen=True, slots=True)
class SeededAccount:
    """An account ``AdapterUnderTest.seed_account`` made ready: both passwords right and
    unlocked with no wrong attempts counted, no open orders, at least 100 000.00 available and
    withdrawable, a linked bank account, allowed to buy ``code``."""

    account: str
    trading_password: SecretStr
    fund_password: SecretStr
    #: a main-board stock (SSE 600xxx, SZSE 000xxx) listed and trading today
    code: str = "600036"
    #: the bank password of the linked account (transfers pass it; the bank kind's checks use
    #: it). None: the test environment has none, and the bank kind's checks are skipped
    bank_password: SecretStr | None = None


class AdapterUnderTest(Protocol):
    """What an adapter's test file provides: the adapter on a test environment, and set-up."""

    #: wrong passwords in a row that lock each kind, as the adapter is configured (a kind left
    #: out is not checked: a back office that cannot check the bank password on its own)
    max_failures: Mapping[PasswordKind, int]

    async def open(self) -> BackOfficeAdapter:
        """A connection to the back office under test; every call in one test reaches the
        same state (the suite closes each one, and reopens to see what persists)."""
        ...

    async def seed_account(self, office: BackOfficeAdapter) -> SeededAccount:
        """Create or reset the test account (see ``SeededAccount``)."""
        ...

    async def trading_hours(self, office: BackOfficeAdapter) -> bool:
        """Put the back office in continuous trading on a trading day, mid-session (e.g. a
        Wednesday 10:00 Beijing time), before the account is seeded. False if it cannot
        (a real system's clock, outside those hours): the checks that trade are skipped."""
        ...

    async def transfer_hours(self, office: BackOfficeAdapter) -> bool:
        """Put the back office in bank transfer hours on a trading day (09:00-16:00 at most
        brokers; e.g. 15:30, after the close), before the account is seeded. False if it
        cannot: the checks that transfer are skipped. An adapter without this method is put in
        ``trading_hours`` instead."""
        ...

    async def unlock(self, office: BackOfficeAdapter, account: str,
                     kind: PasswordKind) -> bool:
        """Unlock ``kind`` for ``account`` as the brokerage's staff would. False if the test
        environment cannot: the unlock check is skipped."""
        ...


def _refused(code: RefusalCode) -> contextlib.AbstractContextManager[
        pytest.ExceptionInfo[BrokerRefusal]]:
    return pytest.raises(BrokerRefusal, match=f"^{re.escape(code.value)}:")


def _key() -> str:
    return f"conformance-{uuid.uuid4().hex}"


def resting_buy_price(quote: Quote) -> Decimal:
    """1% under the last price, on the tick, not under the day's limit down: a buy that rests."""
    return max((quote.last * Decimal("0.99")).quantize(CENT, rounding=ROUND_DOWN),
               quote.limit_down if quote.limit_down is not None else CENT)  # None: no limit


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


def _exposes(exc: BaseException, secrets: list[str]) -> list[str]:
    """The secrets found in anything ``exc`` (and what it was raised from) shows."""
    shown = []
    for e in _chain(exc):
        shown += [str(e), repr(e), repr(e.args), repr(vars(e) if hasattr(e, "__dict__") else "")]
    text = "\n".join(shown)
    return [s for s in secrets if s in text]


def _no_floats(value: object, where: str = "result") -> None:
    """No float anywhere in a result; every field declared ``Decimal`` holds a ``Decimal``."""
    assert not isinstance(value, float), f"{where} is a float"
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _no_floats(item, f"{where}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        hints = typing.get_type_hints(type(value))
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            declared = hints.get(f.name)
            if declared is Decimal or (item is not None and Decimal in typing.get_args(declared)):
                assert type(item) is Decimal, f"{where}.{f.name} is {type(item).__name__}"
            _no_floats(item, f"{where}.{f.name}")


class BackOfficeConformance:
    """The checks. Subclass it as ``Test...`` and provide the fixture ``adapter_under_test``."""

    pytestmark: ClassVar[Any] = pytest.mark.asyncio
    #: an account number, a security code and an order number the test environment lacks
    unknown_account: ClassVar[str] = "99999998"
    unknown_code: ClassVar[str] = "999999"
    unknown_order_no: ClassVar[str] = "99999999"
    #: a password that is nobody's, distinctive enough to be found if echoed
    wrong_password: ClassVar[str] = "864213"  # noqa: S105 - a test value, wrong by design
    #: a check the adapter cannot set up for (hours, unlock) fails instead of skipping
    strict: ClassVar[bool] = False

    @pytest.fixture
    def adapter_under_test(self) -> AdapterUnderTest:
        raise NotImplementedError("override the fixture adapter_under_test (docs/backoffice.md)")

    # --- set-up -------------------------------------------------------------------------------

    def cannot(self, why: str) -> typing.NoReturn:
        """The adapter cannot set up for this check: skip it, or fail it when ``strict``."""
        if self.strict:
            pytest.fail(f"{why} (strict: a check that cannot run fails)")
        pytest.skip(why)

    @contextlib.asynccontextmanager
    async def session(self, aut: AdapterUnderTest, *, trading: bool = False,
                      transfers: bool = False
                      ) -> AsyncIterator[tuple[BackOfficeAdapter, SeededAccount]]:
        """An open back office and a freshly seeded account, in trading hours or in transfer
        hours if asked (``cannot`` when the adapter cannot get there)."""
        office = await aut.open()
        try:
            if trading and not await aut.trading_hours(office):
                self.cannot(f"{type(aut).__name__} cannot put its back office in trading "
                            "hours: checks that trade are skipped")
            if transfers and not trading:
                hours = getattr(aut, "transfer_hours", aut.trading_hours)
                if not await hours(office):
                    self.cannot(f"{type(aut).__name__} cannot put its back office in transfer "
                                "hours: checks that transfer are skipped")
            yield office, await aut.seed_account(office)
        finally:
            await office.close()

    def wrong(self, acct: SeededAccount) -> SecretStr:
        rights = {p.get_secret_value() for p in (acct.trading_password, acct.fund_password,
                                                 acct.bank_password) if p is not None}
        assert self.wrong_password not in rights, "set wrong_password to one nobody has"
        return SecretStr(self.wrong_password)

    @staticmethod
    def right(acct: SeededAccount, kind: PasswordKind) -> SecretStr:
        password = {PasswordKind.TRADING: acct.trading_password,
                    PasswordKind.FUND: acct.fund_password,
                    PasswordKind.BANK: acct.bank_password}[kind]
        if password is None:
            pytest.skip(f"the test account has no {kind.value} password")
        return password

    @staticmethod
    def limit(aut: AdapterUnderTest, kind: PasswordKind) -> int:
        """The configured count for ``kind``; the check is skipped for a kind left out."""
        if kind not in aut.max_failures:
            pytest.skip(f"{type(aut).__name__} does not check {kind.value} passwords on "
                        "their own (no max_failures for it)")
        return aut.max_failures[kind]

    async def buy(self, office: BackOfficeAdapter, acct: SeededAccount, key: str,
                  quantity: int = LOT) -> Order:
        price = resting_buy_price(await office.quote(acct.code))
        return await office.place_order(acct.account, Side.BUY, acct.code, price, quantity, key)

    @staticmethod
    async def orders_numbered(office: BackOfficeAdapter, acct: SeededAccount) -> list[str]:
        return [o.order_no for o in await office.orders_today(acct.account)]

    # --- the protocol -------------------------------------------------------------------------

    async def test_satisfies_the_protocol(self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test) as (office, acct):
            assert protocol_problems(office) == []
            now = office.now()
            assert isinstance(now, dt.datetime) and now.utcoffset() is not None
            assert (await office.customer(acct.account)).account == acct.account

    # --- refusals -----------------------------------------------------------------------------

    async def test_an_unknown_account_is_refused(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test) as (office, acct):
            nobody = self.unknown_account
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: office.customer(nobody), lambda: office.cash(nobody),
                lambda: office.positions(nobody), lambda: office.orders_today(nobody),
                lambda: office.verify_password(nobody, PasswordKind.TRADING,
                                               acct.trading_password)]
            for call in calls:
                with _refused(RefusalCode.UNKNOWN_ACCOUNT):
                    await call()
            assert await office.customer_by_phone("13000000000") is None

    async def test_an_unknown_code_is_refused(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test) as (office, _acct):
            with _refused(RefusalCode.UNKNOWN_CODE):
                await office.quote(self.unknown_code)
            with _refused(RefusalCode.UNKNOWN_CODE):
                await office.security(self.unknown_code)

    # --- passwords and locks ------------------------------------------------------------------

    @pytest.mark.parametrize("kind", list(PasswordKind))
    async def test_wrong_passwords_count_down_and_the_right_one_resets(
            self, adapter_under_test: AdapterUnderTest, kind: PasswordKind) -> None:
        limit = self.limit(adapter_under_test, kind)
        if limit < 2:
            pytest.skip(f"{kind.value} locks at the first wrong password: nothing to count")
        async with self.session(adapter_under_test) as (office, acct):
            right = self.right(acct, kind)
            for remaining in range(limit - 1, 0, -1):
                with _refused(RefusalCode.BAD_PASSWORD) as refused:
                    await office.verify_password(acct.account, kind, self.wrong(acct))
                assert refused.value.params.get("remaining") == str(remaining)
                assert refused.value.params.get("kind") == kind.value
            assert (await office.verify_password(acct.account, kind, right)
                    ).account == acct.account
            with _refused(RefusalCode.BAD_PASSWORD) as refused:
                await office.verify_password(acct.account, kind, self.wrong(acct))
            assert refused.value.params.get("remaining") == str(limit - 1), \
                "the right password starts the count again"

    async def lock(self, office: BackOfficeAdapter, acct: SeededAccount, limit: int,
                   kind: PasswordKind) -> None:
        for _ in range(limit - 1):
            with _refused(RefusalCode.BAD_PASSWORD):
                await office.verify_password(acct.account, kind, self.wrong(acct))
        with _refused(RefusalCode.ACCOUNT_LOCKED) as refused:
            await office.verify_password(acct.account, kind, self.wrong(acct))
        assert refused.value.params.get("kind") == kind.value

    @pytest.mark.parametrize("kind", list(PasswordKind))
    async def test_the_last_wrong_password_locks_that_kind_for_good(
            self, adapter_under_test: AdapterUnderTest, kind: PasswordKind) -> None:
        aut = adapter_under_test
        other = PasswordKind.FUND if kind is PasswordKind.TRADING else PasswordKind.TRADING
        limit = self.limit(aut, kind)
        async with self.session(aut) as (office, acct):
            self.right(acct, kind)
            await self.lock(office, acct, limit, kind)
            with _refused(RefusalCode.ACCOUNT_LOCKED) as refused:
                await office.verify_password(acct.account, kind, self.right(acct, kind))
            assert refused.value.params.get("kind") == kind.value
            assert (await office.verify_password(acct.account, other, self.right(acct, other))
                    ).account == acct.account, "a lock holds one kind of password only"
        again = await aut.open()  # across calls and restarts: the lock is the back office's
        try:
            with _refused(RefusalCode.ACCOUNT_LOCKED):
                await again.verify_password(acct.account, kind, self.right(acct, kind))
        finally:
            await again.close()

    @pytest.mark.parametrize("kind", list(PasswordKind))
    async def test_unlocking_lets_the_right_password_in_and_counts_afresh(
            self, adapter_under_test: AdapterUnderTest, kind: PasswordKind) -> None:
        aut = adapter_under_test
        limit = self.limit(aut, kind)
        async with self.session(aut) as (office, acct):
            self.right(acct, kind)
            await self.lock(office, acct, limit, kind)
            if not await aut.unlock(office, acct.account, kind):
                self.cannot(f"{type(aut).__name__} cannot unlock on its test environment")
            assert (await office.verify_password(acct.account, kind, self.right(acct, kind))
                    ).account == acct.account
            with _refused(RefusalCode.BAD_PASSWORD if limit > 1
                          else RefusalCode.ACCOUNT_LOCKED) as refused:
                await office.verify_password(acct.account, kind, self.wrong(acct))
            if limit > 1:
                assert refused.value.params.get("remaining") == str(limit - 1)

    async def test_no_refusal_shows_a_password(
            self, adapter_under_test: AdapterUnderTest, caplog: pytest.LogCaptureFixture) -> None:
        aut = adapter_under_test
        caplog.set_level(logging.DEBUG)
        new = SecretStr("592738")
        async with self.session(aut) as (office, acct):
            secrets = [self.wrong_password, new.get_secret_value(), "111111",
                       acct.trading_password.get_secret_value(),
                       acct.fund_password.get_secret_value()]
            raised: list[BaseException] = []
            attempts: list[Callable[[], Awaitable[object]]] = [
                lambda: office.verify_password(acct.account, PasswordKind.FUND,
                                               self.wrong(acct)),
                lambda: office.change_password(acct.account, PasswordKind.TRADING,
                                               self.wrong(acct), new),
                lambda: office.change_password(acct.account, PasswordKind.TRADING,
                                               acct.trading_password, SecretStr("111111")),
            ]
            for attempt in attempts:
                with pytest.raises(BrokerError) as caught:
                    await attempt()
                raised.append(caught.value)
            await office.verify_password(acct.account, PasswordKind.TRADING,
                                         acct.trading_password)  # the count starts again
            await self.lock(office, acct, aut.max_failures[PasswordKind.TRADING],
                            PasswordKind.TRADING)
            with _refused(RefusalCode.ACCOUNT_LOCKED) as locked:
                await office.verify_password(acct.account, PasswordKind.TRADING,
                                             acct.trading_password)
            raised.append(locked.value)
        for exc in raised:
            assert not _exposes(exc, secrets), f"{exc!r} shows a password"
        logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
        assert not [s for s in secrets if s in logged], "a password reached the log"

    # --- orders: exactly once -----------------------------------------------------------------

    async def test_the_same_order_key_gives_one_order(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            key = _key()
            first = await self.buy(office, acct, key)
            frozen = (await office.cash(acct.account)).frozen
            again = await self.buy(office, acct, key)
            assert again.order_no == first.order_no
            assert (await office.cash(acct.account)).frozen == frozen, "cash held once"
            together = _key()
            many = await asyncio.gather(*(self.buy(office, acct, together) for _ in range(5)))
            assert len({o.order_no for o in many}) == 1, "concurrent sends of one key"
            numbers = await self.orders_numbered(office, acct)
            assert sorted(numbers) == sorted({first.order_no, many[0].order_no})

    async def test_a_new_key_is_a_new_order(self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            one, two = await self.buy(office, acct, _key()), await self.buy(office, acct, _key())
            assert one.order_no != two.order_no
            assert sorted(await self.orders_numbered(office, acct)) == sorted(
                [one.order_no, two.order_no])

    async def test_a_key_reused_for_another_order_is_refused(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            key = _key()
            first = await self.buy(office, acct, key)
            with pytest.raises(BrokerError):
                await self.buy(office, acct, key, quantity=2 * LOT)
            assert await self.orders_numbered(office, acct) == [first.order_no]

    async def test_an_order_is_found_by_its_key(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            assert await office.order_by_key(_key()) is None
            key = _key()
            placed = await self.buy(office, acct, key)
            found = await office.order_by_key(key)
            assert found is not None
            assert (found.order_no, found.account, found.side, found.price, found.quantity) == (
                placed.order_no, acct.account, Side.BUY, placed.price, placed.quantity)

    async def test_an_order_whose_caller_went_away_is_made_at_most_once(
            self, adapter_under_test: AdapterUnderTest) -> None:
        """The unknown outcome: the wait is cancelled mid-order; the key then tells what
        happened, and sending the key again never makes a second order."""
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            key, price = _key(), resting_buy_price(await office.quote(acct.code))
            waiting = asyncio.ensure_future(
                office.place_order(acct.account, Side.BUY, acct.code, price, LOT, key))
            await asyncio.sleep(0)
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, BrokerError):
                await waiting
            found = await office.order_by_key(key)
            resent = await self.buy(office, acct, key)
            if found is not None:
                assert resent.order_no == found.order_no
            assert (await self.orders_numbered(office, acct)).count(resent.order_no) == 1
            assert len(await self.orders_numbered(office, acct)) == 1

    # --- cancels ------------------------------------------------------------------------------

    async def test_a_cancel_is_idempotent(self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            before = (await office.cash(acct.account)).available
            order = await self.buy(office, acct, _key())
            key = _key()
            cancelled = await office.cancel_order(acct.account, order.order_no, key)
            assert (cancelled.order_no, cancelled.status) == (order.order_no,
                                                               OrderStatus.CANCELLED)
            again = await asyncio.gather(
                *(office.cancel_order(acct.account, order.order_no, key) for _ in range(3)))
            assert {(o.order_no, o.status) for o in again} == {(order.order_no,
                                                                 OrderStatus.CANCELLED)}
            assert (await office.cash(acct.account)).available == before, "released once"
            with _refused(RefusalCode.NOT_CANCELLABLE) as refused:
                await office.cancel_order(acct.account, order.order_no, _key())
            assert refused.value.params.get("status") == OrderStatus.CANCELLED.value
            with _refused(RefusalCode.ORDER_NOT_FOUND):
                await office.cancel_order(acct.account, self.unknown_order_no, _key())

    async def test_concurrent_cancels_of_one_key_cancel_once(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            order = await self.buy(office, acct, _key())
            key = _key()
            results = await asyncio.gather(
                *(office.cancel_order(acct.account, order.order_no, key) for _ in range(4)))
            assert {(o.order_no, o.status) for o in results} == {(order.order_no,
                                                                   OrderStatus.CANCELLED)}

    # --- transfers ----------------------------------------------------------------------------

    async def send(self, office: BackOfficeAdapter, acct: SeededAccount, key: str,
                   fund: SecretStr | None = None) -> Transfer:
        return await office.transfer(acct.account, OUT, TRANSFER, fund or acct.fund_password,
                                     acct.bank_password, key)

    async def test_the_same_transfer_key_moves_money_once(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, transfers=True) as (office, acct):
            before = (await office.cash(acct.account)).balance
            key = _key()
            first = await self.send(office, acct, key)
            assert (first.account, first.direction, first.amount) == (acct.account, OUT,
                                                                      TRANSFER)
            assert (await self.send(office, acct, key)).transfer_no == first.transfer_no
            together = _key()
            many = await asyncio.gather(*(self.send(office, acct, together) for _ in range(4)))
            assert len({t.transfer_no for t in many}) == 1, "concurrent sends of one key"
            assert many[0].transfer_no != first.transfer_no, "a new key is a new transfer"
            assert (await office.cash(acct.account)).balance == before - 2 * TRANSFER

    async def test_a_transfer_is_found_by_its_key(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, transfers=True) as (office, acct):
            assert await office.transfer_by_key(_key()) is None
            key = _key()
            made = await self.send(office, acct, key)
            found = await office.transfer_by_key(key)
            assert found is not None
            assert (found.transfer_no, found.account, found.direction, found.amount) == (
                made.transfer_no, acct.account, OUT, TRANSFER)

    async def test_a_refused_transfer_leaves_nothing_under_its_key(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, transfers=True) as (office, acct):
            before = await office.cash(acct.account)
            key = _key()
            with _refused(RefusalCode.BAD_PASSWORD) as refused:
                await self.send(office, acct, key, fund=self.wrong(acct))
            assert not _exposes(refused.value, [self.wrong_password,
                                                acct.fund_password.get_secret_value()])
            assert await office.transfer_by_key(key) is None
            assert await office.cash(acct.account) == before

    async def test_a_wrong_bank_password_in_a_transfer_counts_and_locks(
            self, adapter_under_test: AdapterUnderTest) -> None:
        """The bank password a transfer in carries counts as the bank kind: each wrong one is
        told with what remains, the last one locks, and nothing moves."""
        aut = adapter_under_test
        limit = self.limit(aut, PasswordKind.BANK)
        async with self.session(aut, transfers=True) as (office, acct):
            right = self.right(acct, PasswordKind.BANK)
            before = await office.cash(acct.account)
            keys = [_key() for _ in range(limit + 1)]
            for tried, key in enumerate(keys[:limit], 1):
                code = RefusalCode.ACCOUNT_LOCKED if tried == limit else RefusalCode.BAD_PASSWORD
                with _refused(code) as refused:
                    await office.transfer(acct.account, IN, TRANSFER, acct.fund_password,
                                          self.wrong(acct), key)
                assert refused.value.params.get("kind") == PasswordKind.BANK.value
                if tried < limit:
                    assert refused.value.params.get("remaining") == str(limit - tried)
            with _refused(RefusalCode.ACCOUNT_LOCKED):
                await office.transfer(acct.account, IN, TRANSFER, acct.fund_password, right,
                                      keys[-1])
            assert [await office.transfer_by_key(k) for k in keys] == [None] * len(keys)
            assert await office.cash(acct.account) == before
            assert (await office.verify_password(acct.account, PasswordKind.FUND,
                                                 acct.fund_password)).account == acct.account

    # --- refusals that leave nothing behind ---------------------------------------------------

    async def test_a_buy_beyond_the_available_cash_is_refused(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            before = await office.cash(acct.account)
            price = resting_buy_price(await office.quote(acct.code))
            lots = int(before.available / (price * LOT)) + 1      # one lot more than it pays
            if lots * LOT > 1_000_000:
                self.cannot("the test account holds more cash than one order can spend")
            key = _key()
            with _refused(RefusalCode.INSUFFICIENT_FUNDS) as refused:
                await office.place_order(acct.account, Side.BUY, acct.code, price, lots * LOT,
                                         key)
            assert refused.value.params.get("available") == str(before.available)
            assert await office.order_by_key(key) is None
            assert await office.cash(acct.account) == before

    async def test_a_transfer_out_beyond_the_available_cash_is_refused(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, transfers=True) as (office, acct):
            before = await office.cash(acct.account)
            key = _key()
            with _refused(RefusalCode.OVER_AVAILABLE) as refused:
                await office.transfer(acct.account, OUT, before.available + TRANSFER,
                                      acct.fund_password, acct.bank_password, key)
            assert refused.value.params.get("available") == str(before.available)
            assert await office.transfer_by_key(key) is None
            assert await office.cash(acct.account) == before

    # --- money --------------------------------------------------------------------------------

    async def test_money_is_decimal_in_and_out(
            self, adapter_under_test: AdapterUnderTest) -> None:
        async with self.session(adapter_under_test, trading=True) as (office, acct):
            quote = await office.quote(acct.code)
            price = resting_buy_price(quote)
            preview = await office.preview_order(acct.account, Side.BUY, acct.code, price, LOT)
            order = await self.buy(office, acct, _key())
            transfer = await self.send(office, acct, _key())
            for result in (quote, preview, order, transfer, await office.cash(acct.account),
                           await office.positions(acct.account),
                           await office.orders_today(acct.account),
                           await office.fills_today(acct.account)):
                _no_floats(result, type(result).__name__)
            order_key, transfer_key = _key(), _key()
            with pytest.raises((TypeError, ValueError, BrokerError)):
                await office.place_order(acct.account, Side.BUY, acct.code,
                                         float(price), LOT, order_key)  # type: ignore[arg-type]
            with pytest.raises((TypeError, ValueError, BrokerError)):
                await office.transfer(acct.account, OUT, float(TRANSFER),  # type: ignore[arg-type]
                                      acct.fund_password, acct.bank_password, transfer_key)
            assert await office.order_by_key(order_key) is None, "a float price made an order"
            assert await office.transfer_by_key(transfer_key) is None
