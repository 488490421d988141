"""``callcenter sandbox seed|quote`` next to a running engine: the engine's market holds the
ledger's open orders, so the command neither seeds under it nor sends its queued orders into a
market of its own that ends with the command."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from callcenter import cli
from callcenter.broker import rules as r
from callcenter.broker.interface import Customer, OrderStatus, Side, Tier
from callcenter.broker.sandbox import BankAccount, SandboxBackOffice
from callcenter.config import Settings, load_settings
from callcenter.engine import sandbox_rules

ACCOUNT = "20000001"


def _settings(tmp_path: Path) -> Settings:
    return load_settings(state_dir=tmp_path / "state", ami={"secret": "s3cret"},
                         channels={"enabled": False})


async def _queue_an_order_now_due(settings: Settings) -> str:
    """A buy queued after the close of a trading day a week or more ago: due by now."""
    rules = sandbox_rules(settings)
    day = dt.datetime.now(rules.tz).date() - dt.timedelta(days=7)
    while not r.is_trading_day(day, rules):
        day -= dt.timedelta(days=1)
    placed = dt.datetime.combine(day, dt.time(16), rules.tz)
    office = await SandboxBackOffice.open(settings.backoffice_db, rules=rules,
                                          clock=lambda: placed)
    try:
        await office.put_account(
            Customer(ACCOUNT, "王芳", Tier.ORDINARY, ("13900000001",), None, "zh"),
            trading_password=SecretStr("135790"), fund_password=SecretStr("246801"),
            cash=Decimal("100000.00"), holdings=[],
            banks=[BankAccount("ICBC", "工商银行", "6222****0001", Decimal("0.00"),
                               SecretStr("802413"))])
        quote = await office.quote("600036")
        order = await office.place_order(ACCOUNT, Side.BUY, "600036", quote.last, 100, "q-1")
        assert order.status is OrderStatus.QUEUED
        return order.order_no
    finally:
        await office.close()


async def _status(settings: Settings) -> OrderStatus:
    """The order's status on disk, read without stepping any market."""
    with sqlite3.connect(settings.backoffice_db) as db:
        [(status,)] = db.execute("SELECT status FROM bo_orders WHERE idempotency_key = 'q-1'")
    return OrderStatus(status)


async def test_a_quote_beside_the_running_engine_sends_no_queued_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path)
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    await _queue_an_order_now_due(settings)
    (settings.state_dir / "engine.pid").write_text(f"{os.getpid()}\n")   # alive
    assert await cli._sandbox(argparse.Namespace(action="quote", code="600036")) == 0
    assert "as the running engine last saved it" in capsys.readouterr().out
    assert await _status(settings) is OrderStatus.QUEUED     # left for the engine to send


async def test_a_quote_with_no_engine_running_steps_the_ledger_to_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    await _queue_an_order_now_due(settings)
    assert await cli._sandbox(argparse.Namespace(action="quote", code="600036")) == 0
    # the engine, started later, rebuilds its book from the open orders on disk
    assert await _status(settings) is not OrderStatus.QUEUED


async def test_seeding_under_the_running_engine_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path)
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / "engine.pid").write_text(f"{os.getpid()}\n")
    assert await cli._sandbox(argparse.Namespace(action="seed", code="600519")) == 1
    assert "stop it before seeding" in capsys.readouterr().err
    assert not settings.backoffice_db.exists()
