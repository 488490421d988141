"""Choosing the back office by entry point (callcenter/broker/plugin.py): the sandbox by default,
a site's adapter by ``backoffice.kind``, and clear refusals of what cannot serve."""

from __future__ import annotations

import datetime as dt
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.broker.plugin import (
    BackOfficeContext,
    installed_kinds,
    load_factory,
    open_backoffice,
    open_sandbox,
    protocol_problems,
)
from callcenter.broker.rules import SHANGHAI
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine, sandbox_rules
from callcenter.errors import ConfigError

NOON = dt.datetime(2026, 3, 11, 12, 0, tzinfo=SHANGHAI)

#: a site's package: one adapter that serves, and the ways one can be wrong
ACME = '''
from callcenter.broker.sandbox import SandboxBackOffice

SEEN = []

async def open_counter(context):
    SEEN.append(dict(context.settings.backoffice.options))
    return await SandboxBackOffice.open(context.settings.backoffice_db, clock=context.clock,
                                        rules=context.rules)

class Incomplete:
    closed = False
    async def quote(self, code): ...
    def cash(self, account): ...                      # not a coroutine function
    async def transfer(self, account, direction): ...  # too few parameters
    def now(self): ...
    async def close(self):
        Incomplete.closed = True

async def open_incomplete(context):
    return Incomplete()

def open_sync(context):
    return Incomplete()

async def open_without_context():
    return Incomplete()
'''


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A package installed beside ours that registers back offices under the entry point."""
    site = tmp_path / "site"
    info = site / "acme_counter-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-counter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [callcenter.backoffice]
        acme = acme_counter:open_counter
        incomplete = acme_counter:open_incomplete
        sync = acme_counter:open_sync
        argless = acme_counter:open_without_context
        missing = acme_counter:no_such_factory
    """))
    (site / "acme_counter.py").write_text(ACME)
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("acme_counter", None)


def settings_for(tmp_path: Path, kind: str, **backoffice: object) -> Settings:
    return load_settings(state_dir=tmp_path, backoffice_path=tmp_path / "backoffice.db",
                         backoffice={"kind": kind, **backoffice})


def context_for(settings: Settings) -> BackOfficeContext:
    return BackOfficeContext(settings, sandbox_rules(settings), clock=lambda: NOON)


def test_the_default_kind_is_the_sandbox_registered_under_the_group() -> None:
    assert load_settings().backoffice.kind == "sandbox"
    assert "sandbox" in installed_kinds()
    assert load_factory("sandbox") is open_sandbox


async def test_the_sandbox_opens_with_the_configured_rules_and_clock(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "sandbox", fund_password_attempts=2)
    office = await open_backoffice(context_for(settings))
    try:
        assert isinstance(office, SandboxBackOffice)
        assert office.now() == NOON
        assert office.rules.max_failures == sandbox_rules(settings).max_failures
        assert (tmp_path / "backoffice.db").exists()
    finally:
        await office.close()


def test_an_unknown_kind_names_the_installed_ones(acme: None) -> None:
    with pytest.raises(ConfigError, match=r"backoffice.kind 'pager'.*installed: acme, argless, "
                                          r"incomplete, missing, sandbox, sync"):
        load_factory("pager")


async def test_a_sites_adapter_is_opened_with_its_own_options(acme: None, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "acme", options={"host": "counter.example", "port": 7001})
    office = await open_backoffice(context_for(settings))
    try:
        assert protocol_problems(office) == []
        assert sys.modules["acme_counter"].SEEN == [{"host": "counter.example", "port": 7001}]
    finally:
        await office.close()


async def test_an_adapter_that_falls_short_of_the_protocol_is_refused_and_closed(
        acme: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not satisfy the BackOffice protocol") as refused:
        await open_backoffice(context_for(settings_for(tmp_path, "incomplete")))
    message = str(refused.value)
    assert "'incomplete' (Incomplete)" in message
    assert "cash: not a coroutine function" in message
    assert "transfer: does not take (account, direction, amount, fund_password, " \
           "bank_password, idempotency_key)" in message
    assert "place_order: missing" in message and "order_by_key: missing" in message
    assert "quote" not in message and "now" not in message and "close" not in message
    assert sys.modules["acme_counter"].Incomplete.closed


@pytest.mark.parametrize(("kind", "why"), [
    ("sync", "its factory must be async"),
    ("argless", "is not a factory taking one BackOfficeContext"),
    ("missing", "cannot be loaded"),
])
async def test_what_is_not_a_factory_is_refused(acme: None, tmp_path: Path, kind: str,
                                                why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        await open_backoffice(context_for(settings_for(tmp_path, kind)))


def test_the_kind_is_a_plain_name() -> None:
    with pytest.raises(ConfigError, match=r"backoffice\.kind"):
        load_settings(backoffice={"kind": "../acme"})


async def test_the_engine_refuses_an_unknown_kind_before_it_serves(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, agi={"key": "k" * 48},
                             backoffice={"kind": "pager"})
    engine = Engine(settings)
    with pytest.raises(ConfigError, match=r"backoffice\.kind 'pager'"):
        await engine.start()
    assert engine.backoffice is None and engine.db is None and engine.agi is None
