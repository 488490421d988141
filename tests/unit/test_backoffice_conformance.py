"""The back office conformance suite (callcenter/broker/conformance.py) run against the sandbox,
opened the way the engine opens it: through the ``sandbox`` entry point, from settings.

This is also the worked example for an adapter's own test file (docs/backoffice.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from callcenter.broker.conformance import AdapterUnderTest, BackOfficeConformance, SeededAccount
from callcenter.broker.interface import Customer, PasswordKind, Tier
from callcenter.broker.plugin import BackOfficeAdapter, BackOfficeContext, open_backoffice
from callcenter.broker.rules import SHANGHAI
from callcenter.broker.sandbox import BankAccount, SandboxBackOffice
from callcenter.config import BackOfficeSettings, load_settings
from callcenter.engine import sandbox_rules

#: a Wednesday without holidays near it: before the market opens, then mid-morning session
MORNING = dt.datetime(2026, 3, 11, 9, 0, tzinfo=SHANGHAI)
MID_SESSION = dt.datetime(2026, 3, 11, 10, 0, tzinfo=SHANGHAI)
#: after the close, still in bank transfer hours (09:00-16:00)
AFTER_CLOSE = dt.datetime(2026, 3, 11, 15, 30, tzinfo=SHANGHAI)


class SandboxUnderTest:
    """The sandbox on a temporary SQLite file, its lock counts set away from the defaults to show
    that the configured ones are the ones that hold."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = load_settings(
            state_dir=tmp_path, backoffice_path=tmp_path / "backoffice.db",
            backoffice=BackOfficeSettings(kind="sandbox", trading_password_attempts=4,
                                          fund_password_attempts=2, bank_password_attempts=4))
        self.rules = sandbox_rules(self.settings)
        self.max_failures: Mapping[PasswordKind, int] = self.rules.max_failures
        self.time = MORNING

    async def open(self) -> BackOfficeAdapter:
        return await open_backoffice(BackOfficeContext(self.settings, self.rules,
                                                       clock=lambda: self.time))

    async def seed_account(self, office: BackOfficeAdapter) -> SeededAccount:
        assert isinstance(office, SandboxBackOffice)
        trading, fund, bank = SecretStr("135790"), SecretStr("246801"), SecretStr("802413")
        await office.put_account(
            Customer("20260311", "测试", Tier.ORDINARY, ("13700000311",), None, "zh"),
            trading_password=trading, fund_password=fund, cash=Decimal("200000.00"),
            banks=[BankAccount("ICBC", "工商银行", "6222****0311", Decimal("100000.00"), bank)])
        return SeededAccount("20260311", trading, fund, code="600036", bank_password=bank)

    async def trading_hours(self, office: BackOfficeAdapter) -> bool:
        self.time = MID_SESSION
        return True

    async def transfer_hours(self, office: BackOfficeAdapter) -> bool:
        self.time = AFTER_CLOSE
        return True

    async def unlock(self, office: BackOfficeAdapter, account: str, kind: PasswordKind) -> bool:
        assert isinstance(office, SandboxBackOffice)
        await office.unlock(account, kind)
        return True


class TestSandboxConformance(BackOfficeConformance):
    @pytest.fixture
    def adapter_under_test(self, tmp_path: Path) -> AdapterUnderTest:
        return SandboxUnderTest(tmp_path)


class NoClock(SandboxUnderTest):
    async def trading_hours(self, office: BackOfficeAdapter) -> bool:
        return False


async def test_checks_that_trade_skip_when_the_adapter_cannot_reach_trading_hours(
        tmp_path: Path) -> None:
    suite = BackOfficeConformance()
    with pytest.raises(pytest.skip.Exception, match="cannot put its back office in trading"):
        await suite.test_a_new_key_is_a_new_order(NoClock(tmp_path))
    async with suite.session(NoClock(tmp_path)) as (office, acct):  # the rest still runs
        assert (await office.customer(acct.account)).account == "20260311"


async def test_checks_that_transfer_need_only_transfer_hours(tmp_path: Path) -> None:
    suite = BackOfficeConformance()
    aut = NoClock(tmp_path)                      # no continuous trading, but transfer hours
    await suite.test_the_same_transfer_key_moves_money_once(aut)
    assert aut.time == AFTER_CLOSE
    await suite.test_a_transfer_out_beyond_the_available_cash_is_refused(NoClock(tmp_path))


class NoHours(NoClock):
    async def transfer_hours(self, office: BackOfficeAdapter) -> bool:
        return False

    async def unlock(self, office: BackOfficeAdapter, account: str, kind: PasswordKind) -> bool:
        return False


class StrictConformance(BackOfficeConformance):
    strict = True


async def test_strict_fails_what_the_adapter_cannot_set_up_for(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="cannot put its back office in transfer"):
        await BackOfficeConformance().test_a_transfer_is_found_by_its_key(NoHours(tmp_path))
    strict = StrictConformance()
    with pytest.raises(pytest.fail.Exception, match=r"in transfer hours.*strict"):
        await strict.test_a_transfer_is_found_by_its_key(NoHours(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"in trading hours.*strict"):
        await strict.test_a_new_key_is_a_new_order(NoHours(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"cannot unlock.*strict"):
        await strict.test_unlocking_lets_the_right_password_in_and_counts_afresh(
            NoHours(tmp_path), PasswordKind.FUND)
