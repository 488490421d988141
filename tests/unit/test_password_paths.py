"""Passwords on the hotline's own flows and actions: checked as soon as they are entered, kept
for the transfer only, and never in the call's timeline, the logs or the database in clear."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import aiosqlite
import pytest
from pydantic import SecretStr

from callcenter.broker.interface import (
    Customer,
    PasswordKind,
    RefusalCode,
    TransferDirection,
)
from callcenter.broker.interface import Transfer as Moved
from callcenter.broker.rules import SHANGHAI
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import DEMO_BANK_PASSWORD, DEMO_FUND_PASSWORD, ORDINARY, seed_demo
from callcenter.config import REPO_ROOT
from callcenter.engine import ACTION_NAMES
from callcenter.errors import BrokerError, BrokerRefusal
from callcenter.ivr import tryout
from callcenter.ivr.actions import BackgroundWork, CallSession, HotlineActions
from callcenter.ivr.flow_load import load_flowset
from callcenter.ivr.interpreter import Call, Interpreter, Outcome, Transfer
from callcenter.ivr.runner import ScriptFlowIO, drive, run_action
from callcenter.ivr.tryout import DEFAULT_AT, DemoLedgers, Scenario, check_scenario, try_flow
from callcenter.store.db import open_db
from tests.leaks import holds

TRADING = "135790"
WRONG_FUND, WRONG_BANK = "864213", "975310"   # distinctive: found if they leak anywhere


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[SandboxBackOffice]:
    when = DEFAULT_AT.replace(tzinfo=SHANGHAI)
    bo = await SandboxBackOffice.open(tmp_path / "backoffice.db", clock=lambda: when)
    await seed_demo(bo)
    yield bo
    await bo.close()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "cc.db")
    yield conn
    await conn.close()


async def _dump(conn: aiosqlite.Connection) -> str:
    return "\n".join([line async for line in conn.iterdump()])


async def test_a_transfer_in_with_a_wrong_password_of_each_kind_leaks_none(
        office: SandboxBackOffice, db: aiosqlite.Connection,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flows = load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)
    session = CallSession("c1", "13700000000")
    table = HotlineActions(office, db, BackgroundWork(), session, clock=office.now).table()
    interp = Interpreter(flows, "hotline", {"caller": "13700000000", "call_id": "c1"},
                         clock=office.now)
    notes: list[tuple[str, dict[str, str]]] = []
    kept: list[set[PasswordKind]] = []

    async def actions(call: Call) -> Outcome:
        outcome = await run_action(table, call)
        kept.append(set(session.checked))
        return outcome

    def note(kind: str, detail: Mapping[str, str]) -> None:
        notes.append((kind, dict(detail)))

    keys = (f"3 2 {ORDINARY}# {TRADING} 1 {WRONG_FUND} {DEMO_FUND_PASSWORD} {WRONG_BANK} "
            f"{DEMO_BANK_PASSWORD} 500# 1")
    await drive(interp, ScriptFlowIO(keys, {}, lambda _line: None), actions, note)
    outcomes = [(d["action"], d["outcome"]) for k, d in notes if k == "ivr.action"]
    assert outcomes == [("identify_caller", "unknown_account"), ("login", "ok"),
                        ("bank_link", "ok"), ("check_password", "bad_password"),
                        ("check_password", "ok"), ("check_password", "bad_password"),
                        ("check_password", "ok"), ("transfer", "ok")]
    # kept after each right check, dropped once the transfer has been tried
    assert kept[-4:] == [{PasswordKind.FUND}, {PasswordKind.FUND},
                         {PasswordKind.FUND, PasswordKind.BANK}, set()]
    secrets = (TRADING, WRONG_FUND, DEMO_FUND_PASSWORD, WRONG_BANK, DEMO_BANK_PASSWORD)
    timeline = repr(notes)
    stored = await _dump(db) + await _dump(office._db)
    for secret in secrets:   # on their own: a timestamp's digits may hold any six
        assert not holds(timeline, secret)
        assert not holds(caplog.text, secret)
        assert not holds(stored, secret)
    assert "checked" not in repr(session)


@pytest.mark.parametrize(("keys", "reason"), [
    (f"3 1 {ORDINARY}# 000000 000000 000000 000000 000000", "trading_password:account_locked"),
    (f"3 4 {ORDINARY}# {TRADING} " + "000000 " * 5, "trading_password:account_locked"),
    (f"3 2 {ORDINARY}# {TRADING} 2 000000 000000 000000", "fund_password:account_locked"),
    (f"3 2 {ORDINARY}# {TRADING} 1 {DEMO_FUND_PASSWORD} 000000 000000 000000",
     "bank_password:account_locked"),
])
async def test_a_lock_hands_the_call_to_an_agent_with_the_reason(
        office: SandboxBackOffice, db: aiosqlite.Connection, keys: str, reason: str) -> None:
    flows = load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)
    session = CallSession("c3", "13700000000")
    table = HotlineActions(office, db, BackgroundWork(), session, clock=office.now).table()
    interp = Interpreter(flows, "hotline", {"caller": "13700000000", "call_id": "c3"},
                         clock=office.now)
    notes: list[tuple[str, dict[str, str]]] = []

    async def actions(call: Call) -> Outcome:
        return await run_action(table, call)

    ended = await drive(interp, ScriptFlowIO(keys, {}, lambda _line: None), actions,
                        lambda kind, detail: notes.append((kind, dict(detail))))
    assert isinstance(ended, Transfer) and ended.queue == "general"
    assert ended.context["last_failure"] == reason
    assert ended.prompts == ("zh/agent_connecting",)


async def test_check_password_takes_every_kind_and_refuses_others(
        office: SandboxBackOffice, db: aiosqlite.Connection) -> None:
    session = CallSession("c2", "", account=ORDINARY)
    table = HotlineActions(office, db, BackgroundWork(), session).table()
    for kind, password in (("trading", TRADING), ("fund", DEMO_FUND_PASSWORD),
                           ("bank", DEMO_BANK_PASSWORD)):
        call = Call("check_password", {"kind": kind}, {"password": SecretStr(password)})
        assert (await run_action(table, call)).outcome == "ok"
    assert set(session.checked) == set(PasswordKind)
    wrong = Call("check_password", {"kind": "fund"}, {"password": SecretStr(WRONG_FUND)})
    got = await run_action(table, wrong)
    assert (got.outcome, dict(got.params)) == ("bad_password", {"kind": "fund",
                                                                 "remaining": "2"})
    assert PasswordKind.FUND not in session.checked    # a wrong one drops the one kept
    odd = Call("check_password", {"kind": "pin"}, {"password": SecretStr(TRADING)})
    assert (await run_action(table, odd)).outcome == "error"


async def test_scenarios_check_prompts_together_last_and_earlier_calls() -> None:
    flows = load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)
    lock = f"3 2 {ORDINARY}# {TRADING} 2 000000 000000 000000"
    ledgers = DemoLedgers()    # shared, as in `flows test`: each try still starts fresh
    after = await try_flow(flows, "hotline", f"3 2 {ORDINARY}# {TRADING} 2 {DEMO_FUND_PASSWORD}",
                           before=[lock], ledgers=ledgers)
    assert ("check_password", "account_locked") in after.actions
    fresh = await try_flow(flows, "hotline", f"3 2 {ORDINARY}# {TRADING} 2 {DEMO_FUND_PASSWORD}",
                           ledgers=ledgers)
    assert ("check_password", "ok") in fresh.actions      # without the earlier call: no lock
    wrong = Scenario(name="x", dtmf="", together=["zh/enter_fund_password", "zh/enter_amount"],
                     last_prompts=["zh/enter_amount"])
    problems = check_scenario(wrong, after)
    assert "prompts zh/enter_fund_password zh/enter_amount not heard one right after the other" \
        in problems
    assert any(p.startswith("the call's last prompts were ") for p in problems)
    right = Scenario(name="y", dtmf="", together=["zh/enter_fund_password",
                                                  "zh/fund_password_locked"],
                     last_prompts=["zh/fund_password_locked", "zh/agent_connecting"])
    assert check_scenario(right, after) == []


async def test_a_kept_password_serves_only_its_account_in_its_visit_of_the_flow(
        office: SandboxBackOffice, db: aiosqlite.Connection) -> None:
    """A transfer abandoned at its confirmation, a sub-flow left and entered again, or a second
    login: the password checked before is not lent to a transfer it was not typed for."""
    session = CallSession("c3", "", account=ORDINARY)
    table = HotlineActions(office, db, BackgroundWork(), session).table()

    async def check_both(visit: int) -> None:
        for kind, password in (("fund", DEMO_FUND_PASSWORD), ("bank", DEMO_BANK_PASSWORD)):
            call = Call("check_password", {"kind": kind}, {"password": SecretStr(password)},
                        visit)
            assert (await run_action(table, call)).outcome == "ok"

    def move(key: str, visit: int) -> Call:
        return Call("transfer", {"direction": "in", "amount": "100", "key": key}, {}, visit)

    before = (await office.cash(ORDINARY)).available
    await check_both(1)
    assert (await run_action(table, move("k-later-visit", 2))).outcome == "error"
    await check_both(1)
    session.account = "another-account"
    assert (await run_action(table, move("k-other-account", 1))).outcome == "error"
    session.account = ORDINARY
    assert (await office.cash(ORDINARY)).available == before   # nothing moved so far
    await check_both(1)
    assert (await run_action(table, move("k-same-visit", 1))).outcome == "ok"
    assert (await office.cash(ORDINARY)).available == before + 100
    # used by that try: the next transfer asks again, even in the same visit
    assert (await run_action(table, move("k-again", 1))).outcome == "error"
    assert (await office.cash(ORDINARY)).available == before + 100


class BankChecksOnTransfer(SandboxBackOffice):
    """A back office that cannot check the bank's password by itself: the bank does, with the
    transfer (``RefusalCode.CHECKED_ON_USE``), as with many real counter systems."""

    transferring = False

    async def verify_password(self, account: str, kind: PasswordKind,
                              password: SecretStr) -> Customer:
        if kind is PasswordKind.BANK and not self.transferring:
            raise BrokerRefusal(RefusalCode.CHECKED_ON_USE.value, "checked by the bank",
                                kind=kind.value)
        return await super().verify_password(account, kind, password)

    async def transfer(self, account: str, direction: TransferDirection, amount: Decimal,
                       fund_password: SecretStr, bank_password: SecretStr | None,
                       idempotency_key: str) -> Moved:
        self.transferring = True     # the sandbox's transfer checks it the same way: the bank
        try:
            return await super().transfer(account, direction, amount, fund_password,
                                          bank_password, idempotency_key)
        finally:
            self.transferring = False


async def test_a_bank_password_checked_only_by_the_transfer_is_asked_again_when_wrong(
        tmp_path: Path, db: aiosqlite.Connection) -> None:
    when = DEFAULT_AT.replace(tzinfo=SHANGHAI)
    office = await BankChecksOnTransfer.open(tmp_path / "bo.db", clock=lambda: when)
    try:
        await seed_demo(office)
        flows = load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)
        session = CallSession("c4", "13700000000")
        table = HotlineActions(office, db, BackgroundWork(), session, clock=office.now).table()
        interp = Interpreter(flows, "hotline", {"caller": "13700000000", "call_id": "c4"},
                             clock=office.now)
        notes: list[tuple[str, dict[str, str]]] = []

        async def actions(call: Call) -> Outcome:
            return await run_action(table, call)

        keys = (f"3 2 {ORDINARY}# {TRADING} 1 {DEMO_FUND_PASSWORD} {WRONG_BANK} 500# 1 "
                f"{DEMO_FUND_PASSWORD} {DEMO_BANK_PASSWORD} 500# 1")
        await drive(interp, ScriptFlowIO(keys, {}, lambda _line: None), actions,
                    lambda kind, detail: notes.append((kind, dict(detail))))
        outcomes = [(d["action"], d["outcome"]) for k, d in notes if k == "ivr.action"]
        assert outcomes == [("identify_caller", "unknown_account"), ("login", "ok"),
                            ("bank_link", "ok"), ("check_password", "ok"),
                            ("check_password", "ok"),          # not checked: kept for the bank
                            ("transfer", "bad_password"),      # the bank said no: asked again
                            ("check_password", "ok"), ("check_password", "ok"),
                            ("transfer", "ok")]
        moved = [e.transfer for e in await office.transfers_since("", 10)]
        assert len(moved) == 1 and moved[0].amount == Decimal("500")   # once, after the retry
    finally:
        await office.close()


def _trading_hash(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT trading_hash FROM bo_customers WHERE account = ?",
                         (ORDINARY,)).fetchone()
    return str(row[0])


async def test_shared_ledgers_are_private_copies_of_one_seed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each back office ``DemoLedgers`` opens is its own new file, 0600 from its first byte (no
    loose file to tighten); the second is a copy of the first's seed (the same scrypt hash), and
    what a try did to the first stays in the first."""
    ledgers = DemoLedgers()
    when = DEFAULT_AT.replace(tzinfo=SHANGHAI)
    await (await ledgers.open(tmp_path / "first.db", when)).close()
    seeded = _trading_hash(tmp_path / "first.db")
    assert seeded.startswith("scrypt$")
    with closing(sqlite3.connect(tmp_path / "first.db")) as db, db:
        db.execute("UPDATE bo_customers SET trading_hash = 'changed'")
    with caplog.at_level(logging.WARNING):
        await (await ledgers.open(tmp_path / "second.db", when)).close()
    assert "readable by others" not in caplog.text
    assert _trading_hash(tmp_path / "second.db") == seeded
    assert _trading_hash(tmp_path / "first.db") == "changed"
    for name in ("first.db", "second.db"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        await ledgers.open(tmp_path / "first.db", when)
    assert _trading_hash(tmp_path / "first.db") == "changed"


async def test_shared_ledgers_seed_each_instant_on_its_own_day(tmp_path: Path) -> None:
    """The demo data dated "today" (IPO allotments) is the day of the instant asked for, also
    when another instant was seeded first."""
    ledgers = DemoLedgers()
    for n, day in enumerate((DEFAULT_AT, DEFAULT_AT + dt.timedelta(days=1), DEFAULT_AT)):
        path = tmp_path / f"{n}.db"
        await (await ledgers.open(path, day.replace(tzinfo=SHANGHAI))).close()
        with closing(sqlite3.connect(path)) as db:
            dates = {row[0] for row in db.execute("SELECT allotted_on FROM bo_ipo_allotments")}
        assert dates == {day.date().isoformat()}


def _sqlite_threads() -> int:
    return sum("_connection_worker_thread" in t.name for t in threading.enumerate())


async def test_a_try_whose_seed_fails_closes_what_it_opened(
        monkeypatch: pytest.MonkeyPatch) -> None:
    flows = load_flowset(REPO_ROOT / "ivr_flows", actions=ACTION_NAMES)
    before = _sqlite_threads()

    async def broken(office: SandboxBackOffice) -> None:
        raise BrokerError("the seed broke")

    monkeypatch.setattr(tryout, "seed_demo", broken)
    with pytest.raises(BrokerError, match="the seed broke"):
        await try_flow(flows, "hotline", "1 600519")
    for _ in range(50):          # a closed connection's thread ends just after close returns
        if _sqlite_threads() == before:
            break
        await asyncio.sleep(0.01)
    assert _sqlite_threads() == before
