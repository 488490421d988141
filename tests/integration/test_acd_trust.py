"""Trust boundaries of the ACD through the real Asterisk (issue 9, findings 3-5): an agent's phone
is a provisioned one, never a free-form ``Local/...`` into another context (the supervisor's spy
context above all); a caller ID that is not a phone number never reaches ``Dial()``; and a ring
whose answer was lost with the AMI link is settled from Asterisk's channels, not guessed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin

from callcenter.acd.seat import SeatState
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import seed_demo
from callcenter.config import Settings, load_settings
from callcenter.engine import Engine
from callcenter.errors import AmiActionError
from callcenter.store.calls import get_call
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent, BridgeEnter, DialBegin, Hangup, NewChannel
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller, new_call_id
from tests.integration.acd_helpers import (
    AGENT_PASSWORD,
    ORDINARY_PHONE,
    add_agents,
    agent,
    press_while_waiting,
    queue_log,
    until,
    waiting_ids,
)
from tests.integration.conftest import live_channels, trading_clock, wait_no_channels
from tests.integration.proxy import TcpProxy

pytestmark = pytest.mark.integration

DEADLINE = 15.0


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                         backoffice_path=tmp_path / "backoffice.db",
                         acd={"wrap_up_s": 0, "ring_timeout_s": 10, "queues": [
                             {"name": "general", "announce_every_s": 0, "manager_first_s": 0,
                              "vip_team_s": 0}]},
                         **{"console": {"port": 0}, **overrides})


async def _stop(eng: Engine, watcher: AmiClient | None = None) -> None:
    """Hang up what is left (through ``watcher`` if given: the engine's link may be down), stop
    the engine, and fail if Asterisk still has channels."""
    leftovers: list[str] = []
    ami = watcher or eng.ami
    if ami is not None and ami.connected.is_set():
        for channel in await live_channels(ami):
            with contextlib.suppress(AmiActionError):
                await ami.action("Hangup", Channel=channel)
        leftovers = await wait_no_channels(ami)
    await eng.stop()
    assert leftovers == [], f"channels left in Asterisk after the test: {leftovers}"


@pytest.fixture
async def engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Engine]:
    settings = _settings(tmp_path)
    await add_agents(settings, [agent("A1", "1001"), agent("S1", "9001", role="supervisor")])
    eng = Engine(settings, backoffice_clock=trading_clock)
    await eng.start()
    assert isinstance(eng.backoffice, SandboxBackOffice)
    await seed_demo(eng.backoffice)
    try:
        yield eng
    finally:
        await _stop(eng)


class Console:
    """One agent's console websocket: requests out, their replies back (events set aside)."""

    def __init__(self, engine: Engine) -> None:
        assert engine.console is not None
        self.port = engine.console.port
        self._n = 0

    async def __aenter__(self) -> Console:
        self._cm = connect(f"ws://127.0.0.1:{self.port}/ws",
                           origin=Origin(f"http://127.0.0.1:{self.port}"),
                           open_timeout=DEADLINE)
        self.ws = await self._cm.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(None, None, None)

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._n += 1
        request_id = f"r{self._n}"
        await self.ws.send(json.dumps({"v": 1, "id": request_id, "type": kind, **fields}))
        async with asyncio.timeout(DEADLINE):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                if message["type"] != "event" and message.get("id") == request_id:
                    return message


# -- finding 3: an agent's phone ------------------------------------------------------------------


async def test_an_agent_cannot_make_another_context_its_phone(engine: Engine) -> None:
    acd = engine.acd
    assert acd is not None
    own = acd.seats["A1"].agent.endpoint
    async with Console(engine) as console:
        login = await console.call("login", agent_id="A1", password=AGENT_PASSWORD)
        assert login["type"] == "result", login
        # The supervisor's spy context (listen to whatever CC_SPY names), the IVR, the ACD's own
        # contexts, the outbound trunk: none of them is a phone.
        for trick in ("Local/listen@supervisor-spy", "Local/x@supervisor-spy",
                      "Local/9500@hotline", "Local/s@acd-agent", "Local/13800000001@outbound",
                      "Local/1001@default"):
            reply = await console.call("use_phone", phone=trick)
            assert reply["type"] == "error", (trick, reply)
            assert reply["code"] == "forbidden", (trick, reply)
            assert "phone" in reply["message"]
            assert acd.seats["A1"].agent.endpoint == own
        # What is provisioned is accepted: an extension (made a dial string by phone_endpoint),
        # a phone in the agents directory, a simulated phone in an allowed sandbox context.
        for phone, endpoint in (("1234", "PJSIP/1234"),
                                ("Local/9001@agent-answer", "Local/9001@agent-answer"),
                                ("Local/7001@agent-slow", "Local/7001@agent-slow")):
            reply = await console.call("use_phone", phone=phone)
            assert reply["type"] == "result", (phone, reply)
            assert reply["data"]["phone"] == endpoint
    # The seat was never given a phone in another context, and nothing was dialled.
    assert acd.seats["A1"].agent.endpoint == "Local/7001@agent-slow"


async def test_a_directory_phone_in_another_context_is_refused(pbx: Pbx, tmp_path: Path) -> None:
    """An agent saved with a spy-context phone (as an older version allowed) is refused on
    ``agents add`` and gets no phone at load: never rung, cannot go ready."""
    from pydantic import SecretStr

    from callcenter.errors import ConfigError, ConsoleError
    from callcenter.store.agents import AgentRecord, save_agent
    from callcenter.store.db import open_db

    settings = _settings(tmp_path, console={"enabled": False})
    bad = AgentRecord("A6", "Agent A6", "agent", "Local/listen@supervisor-spy", {"general": 5})
    db = await open_db(settings.database)
    try:
        with pytest.raises(ConfigError, match="provisioned"):
            await save_agent(db, bad, SecretStr(AGENT_PASSWORD))
        # written behind the check's back (an older version, or by hand)
        await save_agent(db, agent("A6", "1006"), SecretStr(AGENT_PASSWORD))
        await db.execute("UPDATE agents SET endpoint = ? WHERE agent_id = 'A6'", (bad.endpoint,))
        await db.commit()
    finally:
        await db.close()
    eng = Engine(settings, backoffice_clock=trading_clock)
    await eng.start()
    try:
        assert eng.acd is not None
        assert eng.acd.seats["A6"].agent.endpoint == ""
        with pytest.raises(ConsoleError) as refused:
            eng.acd.set_state("A6", "ready")
        assert refused.value.code == "invalid_state"
        eng.acd.use_phone("A6", "1006")  # an extension, but no phone is registered there
        with pytest.raises(ConsoleError, match="not registered"):
            eng.acd.set_state("A6", "ready")
        eng.acd.use_phone("A6", "Local/1006@agent-answer")  # a provisioned phone works
        eng.acd.set_state("A6", "ready")
        assert eng.acd.seats["A6"].seat.state is SeatState.READY
    finally:
        await _stop(eng)


# -- finding 4: caller IDs ------------------------------------------------------------------------

#: ``Dial(Local/${CC_NUMBER}@outbound)`` would ring a second leg, into another context
EVIL_CALLER_ID = "123&Local/9@hotline"


async def test_a_caller_id_with_an_ampersand_gets_no_callback_and_no_second_leg(
        engine: Engine) -> None:
    acd, ami, controller = engine.acd, engine.ami, engine.controller
    assert acd is not None and ami is not None and controller is not None
    seen: list[AmiEvent] = []
    ami.add_handler(seen.append)
    call_id = new_call_id()
    await ami.originate(Channel="Local/9500@hotline", Context="caller-sim", Exten="s",
                        Priority="1", ChannelId=call_id, OtherChannelId=f"{call_id}-b",
                        CallerID=f'"sim" <{EVIL_CALLER_ID}>', Timeout="30000",
                        Variable=["CALLER_DTMF=0", "CALLER_HOLD=90", "CALLER_WAIT=1",
                                  "CALLER_DTMF_GAP=60", "CALLER_DTMF_LEN=60"])
    await until(engine, lambda: call_id in waiting_ids(engine), 40, "queued")
    waiter = acd.find_waiter(call_id=call_id)
    assert waiter is not None
    assert waiter.phone == ""  # not a number: never kept as one
    # The caller presses 1 for a call-back that keeps the place.
    refused = asyncio.Event()

    def on_note(noted_call: str, kind: str, _detail: object) -> None:
        if noted_call == call_id and kind == "acd.callback_refused":
            refused.set()

    controller.note_listeners.append(on_note)
    try:
        await press_while_waiting(engine, call_id)
        await asyncio.wait_for(refused.wait(), 30)
    finally:
        controller.note_listeners.remove(on_note)
    assert engine.recorder is not None and engine.db is not None
    await engine.recorder.flush()
    record = await get_call(engine.db, call_id)
    assert record is not None and any(e.kind == "acd.callback_refused" for e in record.events)
    # No call-back was booked: the caller heard why and still waits, in the same place.
    assert not waiter.callback and waiter.channel
    assert waiting_ids(engine) == [call_id]
    async with engine.db.execute("SELECT COUNT(*) FROM service_requests") as cur:
        assert tuple(await cur.fetchone() or ()) == (0,)
    # The prompt played to its end, the caller is back in [queue-hold]'s music.
    assert engine.agi is not None
    await until(engine, lambda: engine.agi.active_sessions == 0, 30, "the prompt played")  # type: ignore[union-attr]
    # An agent takes the caller as any other: bridged, nothing dialled out.
    acd.set_state("A1", "ready")
    await until(engine, lambda: acd.seats["A1"].seat.state is SeatState.ON_CALL, 20, "on call")
    assert [c["call_id"] for c in await queue_log(engine, "connect")] == [call_id]
    # (an Originate's DialBegin has no calling channel: Dial() in the dialplan has one)
    assert [e.dest.channel for e in seen if isinstance(e, DialBegin)
            and (e.caller is not None or "@outbound" in e.dest.channel)] == []
    assert [e.info.channel for e in seen if isinstance(e, NewChannel)
            and e.info.channel.startswith(("Local/9@", "Local/123"))] == []
    ami.remove_handler(seen.append)


async def test_a_callback_restored_with_a_bad_number_is_never_dialled(
        pbx: Pbx, tmp_path: Path) -> None:
    """A call-back kept from an older version (phone stored unchecked) is dropped at restart."""
    from callcenter.store.db import open_db

    settings = _settings(tmp_path, console={"enabled": False})
    await add_agents(settings, [agent("A1", "1001")])
    db = await open_db(settings.database)
    try:
        await db.execute(
            "INSERT INTO queue_waiting (call_id, queue, tier, arrived_at, channel, uniqueid,"
            " account, manager, phone, callback, context) VALUES"
            " ('cb-evil', 'general', 'ordinary', 1.0, '', 'u-evil', '', '', ?, 1, '{}')",
            (EVIL_CALLER_ID,))
        await db.commit()
    finally:
        await db.close()
    eng = Engine(settings, backoffice_clock=trading_clock)
    seen: list[AmiEvent] = []
    await eng.start()
    try:
        assert eng.acd is not None and eng.ami is not None
        eng.ami.add_handler(seen.append)
        assert waiting_ids(eng) == []
        eng.acd.set_state("A1", "ready")
        assert eng.acd.seats["A1"].seat.state is SeatState.READY  # nothing offered
        assert [r["call_id"] for r in await queue_log(eng, "leave")] == ["cb-evil"]
        assert [e for e in seen if isinstance(e, DialBegin | NewChannel)] == []
    finally:
        await _stop(eng)


# -- finding 5: the AMI link lost while a phone rings --------------------------------------------


@pytest.fixture
async def proxied(pbx: Pbx, tmp_path: Path) -> AsyncIterator[tuple[Engine, TcpProxy, AmiClient]]:
    """An engine whose AMI link runs through a proxy the test can silence, and a second AMI
    client straight to Asterisk that sees what happens while the engine cannot."""
    base = _settings(tmp_path, console={"enabled": False})
    proxy = TcpProxy(base.ami.host, base.ami.port)
    await proxy.start()
    ami = base.ami.model_copy(update={"port": proxy.port, "ping_interval": 0.5,
                                      "ping_timeout": 1.5, "action_timeout": 3.0})
    settings = base.model_copy(update={"ami": ami})
    await add_agents(settings, [agent("A1", "3001", "agent-slow"), agent("A2", "1002")])
    watcher = AmiClient(base.ami, base.ami_secret())
    await watcher.connect()
    eng = Engine(settings, backoffice_clock=trading_clock)
    try:
        await eng.start()
        assert isinstance(eng.backoffice, SandboxBackOffice)
        await seed_demo(eng.backoffice)
        yield eng, proxy, watcher
    finally:
        proxy.blackhole(False)
        try:
            await _stop(eng, watcher)
        finally:
            await watcher.close()
            await proxy.close()


async def _event(ami: AmiClient, check: Any, within_s: float, what: str) -> None:
    got = asyncio.Event()

    def on_event(ev: AmiEvent) -> None:
        if check(ev):
            got.set()

    ami.add_handler(on_event)
    try:
        await asyncio.wait_for(got.wait(), within_s)
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {within_s}s")
    finally:
        ami.remove_handler(on_event)


async def test_ami_cut_while_the_phone_rings_then_the_agent_answers(
        proxied: tuple[Engine, TcpProxy, AmiClient]) -> None:
    engine, proxy, watcher = proxied
    acd, ami = engine.acd, engine.ami
    assert acd is not None and ami is not None and engine.controller is not None

    call_id = await SimCaller(watcher).place("9500", "0", hold_s=90, wait_s=1,
                                             caller_id=ORDINARY_PHONE, gap_ms=60, tone_ms=60)
    await until(engine, lambda: call_id in waiting_ids(engine), 40, "queued")
    acd.set_state("A1", "ready")
    call = acd.seats["A1"].call
    assert call is not None and acd.seats["A1"].seat.state is SeatState.RINGING
    agent_uid = call.agent_uniqueid
    # The phone rings (agent-slow answers after 2 s): now the engine's AMI link goes silent.
    await until(engine, lambda: agent_uid in engine.controller.model.channels, 10,  # type: ignore[union-attr]
                "the agent's phone ringing")
    answered = asyncio.ensure_future(_event(
        watcher, lambda ev: isinstance(ev, BridgeEnter) and ev.info.uniqueid == agent_uid,
        20, "the agent answering and being bridged"))
    proxy.blackhole()
    await asyncio.wait_for(ami.disconnected.wait(), 10)
    await answered  # the agent answered and was bridged while the engine could not see it
    # The engine does not guess: no "no answer", the caller is not offered to anyone else.
    assert acd.seats["A1"].seat.reason != "no answer"
    assert await queue_log(engine, "noanswer") == []
    proxy.blackhole(False)
    await asyncio.wait_for(ami.connected.wait(), 20)
    await until(engine, lambda: acd.seats["A1"].seat.state is SeatState.ON_CALL, 20,
                "the seat on call after the resync")
    rt = acd.seats["A1"]
    assert rt.call is not None and rt.call.call_id == call_id
    assert rt.call.agent_uniqueid == agent_uid
    assert waiting_ids(engine) == []
    # Another agent going ready gets nothing: the caller is not offered twice.
    acd.set_state("A2", "ready")
    assert acd.seats["A2"].seat.state is SeatState.READY and acd.seats["A2"].call is None
    rings = await queue_log(engine, "ring")
    assert [(r["call_id"], r["agent_id"]) for r in rings] == [(call_id, "A1")]
    assert [c["call_id"] for c in await queue_log(engine, "connect")] == [call_id]
    assert engine.db is not None
    async with engine.db.execute("SELECT agent_id, path FROM recordings WHERE call_id = ?",
                                 (call_id,)) as cur:
        rows = list(await cur.fetchall())
    assert [r[0] for r in rows] == ["A1"] and rows[0][1] == call.recording
    # The call ends normally afterwards: the seat frees.
    await ami.action("Hangup", Channel=agent_uid)
    await until(engine, lambda: acd.seats["A1"].seat.state is SeatState.READY, 20, "ready")
    assert [c["call_id"] for c in await queue_log(engine, "complete")] == [call_id]


async def test_ami_cut_while_the_phone_rings_and_it_still_rings(
        proxied: tuple[Engine, TcpProxy, AmiClient], tmp_path: Path) -> None:
    """The link comes back while the phone still rings: the ring is hung up, the seat is Ready
    again (not "no answer": not the agent's fault) and the caller keeps the place."""
    engine, proxy, watcher = proxied
    acd, ami = engine.acd, engine.ami
    assert acd is not None and ami is not None and engine.controller is not None

    acd.use_phone("A2", "Local/1002@agent-noanswer")
    call_id = await SimCaller(watcher).place("9500", "0", hold_s=90, wait_s=1,
                                             caller_id=ORDINARY_PHONE, gap_ms=60, tone_ms=60)
    await until(engine, lambda: call_id in waiting_ids(engine), 40, "queued")
    acd.set_state("A2", "ready")
    call = acd.seats["A2"].call
    assert call is not None
    agent_uid = call.agent_uniqueid
    await until(engine, lambda: agent_uid in engine.controller.model.channels, 10,  # type: ignore[union-attr]
                "the agent's phone ringing")
    proxy.blackhole()
    await asyncio.wait_for(ami.disconnected.wait(), 10)
    assert acd.seats["A2"].seat.state is SeatState.RINGING  # unknown yet: not "no answer"
    hung_up = asyncio.ensure_future(_event(
        watcher, lambda ev: isinstance(ev, Hangup) and ev.info.uniqueid == agent_uid,
        20, "the ringing phone hung up"))
    proxy.blackhole(False)
    await asyncio.wait_for(ami.connected.wait(), 20)
    await hung_up
    # settled: Ready, and (the caller still waiting) possibly offered again at once
    await until(engine, lambda: acd.seats["A2"].call is not call, 20, "the seat settled")
    assert acd.seats["A2"].seat.reason != "no answer"
    assert await queue_log(engine, "noanswer") == []
    assert acd.find_waiter(call_id=call_id) is not None  # the caller keeps the place
    assert await queue_log(engine, "connect") == []
