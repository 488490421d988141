"""AMI faults against the real Asterisk: refused values, half-open links, restarts, kills."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from callcenter.atcc.model import CAUSE_LOST
from callcenter.config import Settings
from callcenter.engine import Engine
from callcenter.errors import AmiConnectionError, UnsafeValueError
from callcenter.store.calls import get_call
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller

from .conftest import live_channels, wait_no_channels
from .proxy import TcpProxy


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    p = TcpProxy(settings.ami.host, settings.ami.port)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def proxied_engine(settings: Settings, proxy: TcpProxy) -> AsyncIterator[Engine]:
    """An engine whose AMI link runs through the recording proxy, with quick liveness."""
    ami = settings.ami.model_copy(update={"port": proxy.port, "ping_interval": 0.5,
                                          "ping_timeout": 1.5, "action_timeout": 3.0})
    eng = Engine(settings.model_copy(update={"ami": ami}))
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


async def _wait(event: asyncio.Event, within_s: float, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), within_s)
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {within_s}s")


async def test_crlf_values_are_refused_before_the_wire(proxied_engine: Engine,
                                                       proxy: TcpProxy) -> None:
    ami = proxied_engine.ami
    assert ami is not None
    with pytest.raises(UnsafeValueError):
        await ami.action("Setvar", Variable="X",
                         Value="a\r\nAction: Originate\r\nChannel: Local/9500@hotline")
    with pytest.raises(UnsafeValueError):
        await ami.originate(Channel="Local/9500@hotline\nAction: Logoff", Exten="s")
    with pytest.raises(UnsafeValueError):
        await SimCaller(ami).place("9500", "1\r\nAction: Originate")
    # The link is healthy and nothing of the refused actions crossed it.
    assert (await ami.action("Ping")).get("Ping") == "Pong"
    sent = bytes(proxy.to_server)
    assert b"Originate" not in sent and b"Logoff" not in sent and b"Setvar" not in sent
    # The login was challenge-response: the secret itself never crossed the wire.
    secret = proxied_engine.settings.ami_secret().get_secret_value().encode()
    assert b"Action: Login" in sent and secret not in sent
    assert await live_channels(ami) == []


async def test_half_open_link_is_noticed_and_nothing_is_resent(proxied_engine: Engine,
                                                               proxy: TcpProxy) -> None:
    ami = proxied_engine.ami
    controller = proxied_engine.controller
    assert ami is not None and controller is not None
    assert ami.connections == 1 and controller.resyncs == 1
    proxy.blackhole()
    # An Originate sent into the silent link fails; it must never be replayed after reconnect.
    with pytest.raises(AmiConnectionError):
        await SimCaller(ami).place("9500", "1#", hold_s=5)
    await _wait(ami.disconnected, 10, "noticing the half-open link")
    proxy.blackhole(False)
    await _wait(ami.connected, 20, "reconnecting")
    assert ami.connections >= 2 and controller.resyncs >= 2
    assert proxy.connections >= 2
    assert await live_channels(ami) == []  # the failed Originate was not resent
    assert controller.model.calls == {}


async def _calls_in_ivr(engine: Engine, caller: SimCaller, count: int) -> list[str]:
    """Place ``count`` long calls and return once each is inside the IVR."""
    assert engine.agi is not None and engine.controller is not None
    ids = [await caller.place("9502", "", hold_s=60) for _ in range(count)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while engine.agi.active_sessions < count:
        assert loop.time() < deadline, "calls did not reach the IVR"
        await asyncio.wait_for(engine.controller.wait_changed(), deadline - loop.time())
    return ids


async def _ended_records(engine: Engine, ids: list[str]) -> list[tuple[int | None, str]]:
    assert engine.recorder is not None and engine.db is not None
    await engine.recorder.flush()
    out = []
    for call_id in ids:
        record = await get_call(engine.db, call_id)
        assert record is not None and record.ended_at is not None, call_id
        out.append((record.end_cause, record.end_reason))
    return out


async def _count_calls(engine: Engine) -> int:
    assert engine.db is not None and engine.recorder is not None
    await engine.recorder.flush()
    async with engine.db.execute("SELECT COUNT(*) FROM calls") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_asterisk_restart_with_calls_up_resyncs_the_model(
        engine: Engine, caller: SimCaller, pbx: Pbx) -> None:
    ami, controller = engine.ami, engine.controller
    assert ami is not None and controller is not None
    ids = await _calls_in_ivr(engine, caller, 2)
    assert set(ids) <= set(controller.model.calls)
    placed = await _count_calls(engine)
    await asyncio.to_thread(pbx.cli, "core restart now")
    await _wait(ami.disconnected, 20, "seeing Asterisk go away")
    await _wait(ami.connected, 60, "reconnecting after the restart")
    await asyncio.to_thread(pbx.wait_ready, 60)
    assert controller.resyncs >= 2
    assert await wait_no_channels(ami) == []
    assert controller.model.calls == {} and controller.model.channels == {}
    assert len(await _ended_records(engine, ids)) == 2
    assert await _count_calls(engine) == placed  # no call was placed twice


async def test_asterisk_killed_then_started_again(engine: Engine, caller: SimCaller,
                                                  pbx: Pbx) -> None:
    ami, controller = engine.ami, engine.controller
    assert ami is not None and controller is not None
    ids = await _calls_in_ivr(engine, caller, 1)
    await asyncio.to_thread(pbx.kill)
    await _wait(ami.disconnected, 10, "seeing Asterisk die")
    await asyncio.to_thread(pbx.up)
    await _wait(ami.connected, 60, "reconnecting to the new Asterisk")
    assert controller.model.calls == {}
    # No hangup event ever came: the resync ended the call as lost.
    assert await _ended_records(engine, ids) == [(CAUSE_LOST, "ended while AMI was down")]
    # And the engine serves calls again.
    result = await caller.call("9502", "7#", hold_s=40, within_s=60)
    assert engine.recorder is not None and engine.db is not None
    await engine.recorder.flush()
    record = await get_call(engine.db, result.call_id)
    assert record is not None and {"digits": "7", "count": "1"} in [
        e.detail for e in record.events if e.kind == "ivr.digits"]
