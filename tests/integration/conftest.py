"""Integration fixtures: an engine per test on the session's sandbox Asterisk (tests/conftest.py).

After every test, Asterisk must have no channels left.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import seed_demo
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.phones.identity import PhoneKind
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.phones import save_phone
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.integration.acd_helpers import AGENT_PASSWORD
from tests.integration.browser_call import BROWSER_AGENTS
from tests.integration.netns import NetNs, inside, network_namespace

pytestmark = pytest.mark.integration


#: a trading day (Monday), mid-morning session, Asia/Shanghai: orders and transfers are open.
#: The sandbox runs on it from the moment it opens, whatever day the suite runs.
TRADING_TIME = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def trading_clock() -> dt.datetime:
    return TRADING_TIME


@pytest.fixture
def settings(pbx: Pbx, tmp_path: Path) -> Settings:
    # The console listens on an ephemeral port: tests never fight over 8080.
    return load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                         backoffice_path=tmp_path / "backoffice.db",
                         console={"port": 0})


async def live_channels(ami: AmiClient) -> list[str]:
    rows = await ami.action_list("CoreShowChannels")
    return [r.get("Channel", "") for r in rows]


async def wait_no_channels(ami: AmiClient, within_s: float = 20.0) -> list[str]:
    """Wait (event-driven: re-check after every AMI event burst) until Asterisk is empty."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    changed = asyncio.Event()

    def on_event(_event: object) -> None:
        changed.set()

    ami.add_handler(on_event)
    try:
        while True:
            channels = await live_channels(ami)
            if not channels or loop.time() >= deadline:
                return channels
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.05, deadline - loop.time()))
    finally:
        ami.remove_handler(on_event)


@contextlib.asynccontextmanager
async def running_engine(settings: Settings) -> AsyncIterator[Engine]:
    """An engine on the sandbox Asterisk with the demo customers, on the trading clock;
    stopped after, failing if calls were left in Asterisk."""
    eng = Engine(settings, backoffice_clock=trading_clock)
    await eng.start()
    assert isinstance(eng.backoffice, SandboxBackOffice)
    await seed_demo(eng.backoffice)
    try:
        yield eng
    finally:
        leftovers: list[str] = []
        if eng.ami is not None and eng.ami.connected.is_set():
            leftovers = await wait_no_channels(eng.ami)
        await eng.stop()
        assert leftovers == [], f"channels left in Asterisk after the test: {leftovers}"


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    async with running_engine(settings) as eng:
        yield eng


@pytest.fixture
def caller(engine: Engine) -> SimCaller:
    assert engine.ami is not None
    return SimCaller(engine.ami)


# -- a browser phone's world: a network namespace with its own Asterisk and engine ---------------


@pytest.fixture
async def namespace(pbx: Pbx) -> AsyncIterator[NetNs]:
    with network_namespace() as ns:
        yield ns


@pytest.fixture
def ns_settings(namespace: NetNs, tmp_path: Path) -> Settings:
    return load_settings(
        state_dir=tmp_path / "state", db_path=tmp_path / "callcenter.db",
        backoffice_path=tmp_path / "backoffice.db", channels={"enabled": False},
        console={"host": namespace.a, "port": 0, "tls": True},
        sip={"cert_names": [namespace.a]},
        pbx={"instance": "webrtc", "netns": namespace.name})


@pytest.fixture
async def ns_engine(namespace: NetNs, ns_settings: Settings) -> AsyncIterator[Engine]:
    ns_pbx = Pbx(ns_settings)
    await asyncio.to_thread(ns_pbx.up)
    try:
        with inside(namespace):
            engine = Engine(ns_settings, backoffice_clock=trading_clock)
            await engine.start()
            try:
                assert isinstance(engine.backoffice, SandboxBackOffice) and engine.db is not None
                await seed_demo(engine.backoffice)
                assert engine.phones is not None and engine.acd is not None
                for agent_id, role, extension in BROWSER_AGENTS:
                    record = AgentRecord(agent_id, f"网页 {agent_id}", role,
                                         f"PJSIP/{extension}", {"general": 5})
                    await save_agent(engine.db, record, SecretStr(AGENT_PASSWORD))
                    await save_phone(engine.db, agent_id, extension, PhoneKind.BROWSER,
                                     ns_settings.sip.realm)
                    engine.acd.add_agent(record)
                await engine.phones.sync()
                yield engine
            finally:
                await engine.stop()
    finally:
        await asyncio.to_thread(ns_pbx.down)
