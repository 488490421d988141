"""The ACD through the real Asterisk: callers pass the IVR, wait in [queue-hold], agents' phones
(simulated, Local channels) ring and are bridged; priorities, VIP stages, ring-no-answer,
call-backs, abandons and a restart of the engine while people wait and talk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from callcenter.broker.seed import seed_demo
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.seats.state import SeatState
from callcenter.store.agents import AgentRecord
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.integration.acd_helpers import (
    GOLD_PHONE,
    ORDINARY_PHONE,
    PLATINUM_PHONE,
    Clock,
    add_agents,
    agent,
    hang_up_all,
    queue_log,
    queue_to_agent,
    until,
    waiting_ids,
)
from tests.integration.conftest import trading_clock, wait_no_channels

pytestmark = pytest.mark.integration

Factory = Callable[..., Awaitable[Engine]]


def acd_settings(tmp_path: Path, **queue: Any) -> Settings:
    general = {"name": "general", "announce_every_s": 0, "manager_first_s": 0,
               "vip_team_s": 0, **queue}
    return load_settings(db_path=tmp_path / "callcenter.db",
                         backoffice_path=tmp_path / "backoffice.db",
                         console={"enabled": False, "port": 0},
                         acd={"queues": [general], "ring_timeout_s": 3, "wrap_up_s": 1})


@pytest.fixture
async def start_engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Factory]:
    engines: list[Engine] = []

    async def start(agents: list[AgentRecord], clock: Clock | None = None,
                    **queue: Any) -> Engine:
        settings = acd_settings(tmp_path, **queue)
        if not engines:
            await add_agents(settings, agents)
        eng = Engine(settings, backoffice_clock=trading_clock, acd_clock=clock)
        await eng.start()
        assert eng.backoffice is not None
        await seed_demo(eng.backoffice)
        engines.append(eng)
        return eng

    try:
        yield start
    finally:
        leftovers: list[str] = []
        live = [e for e in engines if e.ami is not None]
        if live:
            await hang_up_all(live[-1])
            leftovers = await wait_no_channels(live[-1].ami)  # type: ignore[arg-type]
        for eng in engines:
            await eng.stop()
        assert leftovers == [], f"channels left in Asterisk after the test: {leftovers}"


def seat_state(engine: Engine, agent_id: str) -> SeatState:
    assert engine.acd is not None
    return engine.acd.seats[agent_id].seat.state


async def test_a_platinum_caller_who_arrives_later_is_served_first(
        start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")])
    caller = SimCaller(engine.ami)  # type: ignore[arg-type]
    ordinary = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    platinum = await queue_to_agent(engine, caller, PLATINUM_PHONE)
    assert engine.acd is not None
    engine.acd.set_state("A1", "ready")
    await until(engine, lambda: seat_state(engine, "A1") is SeatState.ON_CALL, what="on call")
    connects = await queue_log(engine, "connect")
    assert [c["call_id"] for c in connects] == [platinum]
    assert connects[0]["tier"] == "platinum" and connects[0]["agent_id"] == "A1"
    assert waiting_ids(engine) == [ordinary]
