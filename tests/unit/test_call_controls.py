"""Call controls as steps proven by Asterisk's events (``acd/control.py``), without Asterisk: a
scripted AMI answers each action with the events Asterisk would send (or none), and the tests
check that no step is sent before the previous one was proven, that the call's state moves only
then, and that a missing proof or a call ending meanwhile changes nothing. The same controls
through the real Asterisk: tests/integration/test_call_controls.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from callcenter.acd import control as control_module
from callcenter.acd.calls import CallState
from callcenter.acd.control import CallControl
from callcenter.acd.notices import (
    CallHeld,
    CallResumed,
    ConsultChanged,
    MonitorChanged,
    Notice,
)
from callcenter.acd.service import Acd, ActiveCall
from callcenter.config import AcdSettings, QueueSettings
from callcenter.errors import ConsoleError
from callcenter.seats.protocol import Target
from callcenter.seats.state import PHONE_GONE, SeatState
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.telephony.ami_events import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    ChannelInfo,
    DialBegin,
    Hangup,
    OtherEvent,
)

CALLER, CALLER_UID = "PJSIP/carrier-0001", "caller-uid"
CONSULTED = "Local/13912345678@outbound-0001;1"
Reaction = Callable[[str, dict[str, Any]], list[AmiEvent]]


def info(name: str, uniqueid: str = "") -> ChannelInfo:
    return ChannelInfo(uniqueid or name, uniqueid or name, name, 6, "Up", "", "", "", "")


def parked(uniqueid: str, where: str) -> OtherEvent:
    return OtherEvent("UserEvent", {"UserEvent": "CallCenterLegParked", "Uniqueid": uniqueid,
                                    "Where": where})


class ScriptedAmi:
    """Actions are recorded; ``react`` gives the events Asterisk sends for one (fed a moment
    later, as over a socket). Originates answer at once (the agent picks up)."""

    def __init__(self) -> None:
        self.handlers: list[Callable[[AmiEvent], None]] = []
        self.actions: list[tuple[str, dict[str, Any]]] = []
        self.react: Reaction = lambda _name, _headers: []
        self.connected = asyncio.Event()
        self.connected.set()

    def add_handler(self, handler: Callable[[AmiEvent], None]) -> None:
        self.handlers.append(handler)

    def feed(self, event: AmiEvent) -> None:
        for handler in list(self.handlers):
            handler(event)

    async def action(self, name: str, **headers: Any) -> dict[str, str]:
        self.actions.append((name, headers))
        loop = asyncio.get_running_loop()
        for n, event in enumerate(self.react(name, headers)):
            loop.call_later(0.001 * (n + 1), self.feed, event)
        return {}

    async def originate(self, **headers: Any) -> tuple[dict[str, str], dict[str, str]]:
        self.actions.append(("Originate", headers))
        return {}, {"Channel": "PJSIP/1001-0001"}

    def names(self) -> list[str]:
        return [name for name, _ in self.actions]


class World:
    def __init__(self, acd: Acd, ami: ScriptedAmi) -> None:
        self.acd, self.ami = acd, ami
        self.control = CallControl(acd)
        self.notices: list[Notice] = []
        acd.listeners.append(self.notices.append)

    async def connected_call(self, *, bridged: bool = True) -> ActiveCall:
        """A queued caller answered by A1; with ``bridged`` Asterisk shows both legs in one
        bridge (else the agent's ``Bridge()`` is still taking the caller in)."""
        self.acd.enqueue("c-1", "general", CALLER, CALLER_UID, {})
        self.acd.set_state("A1", "ready")
        rt = self.acd.seat("A1")
        async with asyncio.timeout(2):
            while rt.call is None or rt.call.life.state is CallState.RINGING:
                await asyncio.sleep(0.001)
        call = rt.call
        assert call is not None and call.life.state is CallState.ANSWERED
        if bridged:
            self.bridge(call)
        return call

    def bridge(self, call: ActiveCall) -> None:
        self.ami.feed(BridgeEnter(info("PJSIP/1001-0001", call.agent_uniqueid), "b-1"))
        self.ami.feed(BridgeEnter(info(CALLER, CALLER_UID), "b-1"))
        assert call.life.state is CallState.CONNECTED


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    db = await open_db(tmp_path / "cc.db")
    await save_agent(db, AgentRecord("A1", "Li Lei", "agent", "PJSIP/1001"),
                     SecretStr("pw-A1"))
    await save_agent(db, AgentRecord("S1", "Han Mei", "supervisor", "PJSIP/9001"),
                     SecretStr("pw-S1"))
    settings = AcdSettings(queues=[QueueSettings(name="general", announce_every_s=0),
                                   QueueSettings(name="english", announce_every_s=0)],
                           wrap_up_s=0)
    acd = Acd(settings, db)
    await acd.start()
    ami = ScriptedAmi()
    acd.attach(ami)  # type: ignore[arg-type]
    try:
        yield World(acd, ami)
    finally:
        await acd.close()
        await db.close()


def on_hold(name: str, headers: dict[str, Any], agent_uid: str) -> list[AmiEvent]:
    """What Asterisk sends for the hold Redirect: both legs parked."""
    if name == "Redirect" and headers.get("ExtraExten") == "held":
        return [parked(CALLER_UID, "hold"), parked(agent_uid, "agent")]
    return []


async def test_hold_moves_the_call_once_both_legs_are_parked(world: World) -> None:
    call = await world.connected_call()
    world.ami.react = lambda n, h: on_hold(n, h, call.agent_uniqueid)
    await world.control.hold("A1")
    assert call.life.state is CallState.HELD
    assert world.acd.seat("A1").seat.state is SeatState.ON_HOLD
    assert any(isinstance(n, CallHeld) for n in world.notices)
    # resume: the Bridge is proven by the caller entering it
    world.ami.react = lambda n, h: [BridgeEnter(info(CALLER, CALLER_UID), "b-2")] \
        if n == "Bridge" else []
    call.agent_parked = True
    await world.control.resume("A1")
    assert call.life.state is CallState.CONNECTED
    assert any(isinstance(n, CallResumed) for n in world.notices)


async def test_without_the_proof_nothing_moves(world: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control_module, "PROOF_S", 0.05)
    call = await world.connected_call()
    with pytest.raises(ConsoleError) as refused:
        await world.control.hold("A1")
    assert refused.value.code == "unavailable" and "did not confirm" in refused.value.message
    assert call.life.state is CallState.CONNECTED
    assert world.acd.seat("A1").seat.state is SeatState.ON_CALL
    await asyncio.sleep(0)
    assert world.acd._proofs == []  # nothing left waiting


async def test_a_control_waits_until_the_caller_is_bridged(world: World) -> None:
    """Just after the answer the agent's Bridge() is still taking the caller in: the control
    waits for Asterisk to show both legs bridged instead of retrying on error strings."""
    call = await world.connected_call(bridged=False)
    world.ami.react = lambda n, h: on_hold(n, h, call.agent_uniqueid)
    hold = asyncio.create_task(world.control.hold("A1"))
    await asyncio.sleep(0.02)
    assert not hold.done() and world.ami.names()[-1] == "Originate"  # nothing sent yet
    world.bridge(call)
    await hold
    assert call.life.state is CallState.HELD


async def test_a_call_that_ends_during_a_step_answers_no_call(world: World) -> None:
    call = await world.connected_call()

    def caller_hangs_up(name: str, headers: dict[str, Any]) -> list[AmiEvent]:
        if name != "Redirect":
            return []
        # the caller reaches [acd-hold], then the agent's leg hangs up before it parks
        return [parked(CALLER_UID, "hold"),
                Hangup(info("PJSIP/1001-0001", call.agent_uniqueid), 16, "Normal Clearing")]

    world.ami.react = caller_hangs_up
    hold = asyncio.create_task(world.control.hold("A1"))
    with pytest.raises(ConsoleError) as refused:
        await hold
    assert refused.value.code == "no_call"  # at once, not after the proof's time-out
    assert call.life.state is CallState.ENDED


async def test_a_cancelled_consultation_bridges_back_only_after_the_agent_leg_waits(
        world: World) -> None:
    """The flake of the old sequence: Bridge was sent while the agent's Dial was still ending
    ("Unable to add Channel1 to bridge"). Now: hang up the consulted party, wait for its
    Hangup and the agent's leg parked, then Bridge."""
    call = await world.connected_call()
    agent_uid = call.agent_uniqueid

    def asterisk(name: str, headers: dict[str, Any]) -> list[AmiEvent]:
        if name == "Redirect" and headers.get("ExtraExten") == "consult":
            return [parked(CALLER_UID, "hold"),
                    DialBegin(info("PJSIP/1001-0001", agent_uid), info(CONSULTED), "")]
        if name == "Hangup" and headers.get("Channel") == CONSULTED:
            return [Hangup(info(CONSULTED), 16, "Normal Clearing"), parked(agent_uid, "agent")]
        if name == "Bridge":
            return [BridgeEnter(info(CALLER, CALLER_UID), "b-3")]
        return []

    world.ami.react = asterisk
    await world.control.consult("A1", Target(kind="number", value="13912345678"))
    assert call.life.state is CallState.CONSULTING and call.consult_channel == CONSULTED
    assert [n.state for n in world.notices if isinstance(n, ConsultChanged)] == ["ringing"]
    await world.control.consult_cancel("A1")
    names = world.ami.names()
    assert names[-2:] == ["Hangup", "Bridge"]
    assert call.life.state is CallState.CONNECTED
    assert world.acd.seat("A1").seat.state is SeatState.ON_CALL
    assert [n.state for n in world.notices if isinstance(n, ConsultChanged)] == [
        "ringing", "ended"]


async def test_a_blind_transfer_to_a_queue_requeues_with_the_place_and_ends_the_agent_leg(
        world: World) -> None:
    call = await world.connected_call()

    def asterisk(name: str, headers: dict[str, Any]) -> list[AmiEvent]:
        if name == "Redirect" and headers.get("Context") == "queue-hold":
            return [BridgeLeave(info(CALLER, CALLER_UID), "b-1"), parked(CALLER_UID, "queue")]
        if name == "Hangup" and headers.get("Channel") == call.agent_uniqueid:
            return [Hangup(info("PJSIP/1001-0001", call.agent_uniqueid), 16, "Normal Clearing")]
        return []

    world.ami.react = asterisk
    await world.control.transfer("A1", Target(kind="queue", value="english"))
    waiter = world.acd.waiting["english"]["c-1"]
    assert waiter.position_key is not None and "A1" in waiter.excluded
    assert call.life.state is CallState.WAITING
    async with asyncio.timeout(2):  # the engine hangs up the agent's leg: the seat wraps up
        while world.acd.seat("A1").call is not None:
            await asyncio.sleep(0.001)
    assert ("Hangup", {"Channel": call.agent_uniqueid}) in world.ami.actions


async def test_losing_the_phone_during_a_consultation_requeues_the_caller(
        world: World) -> None:
    call = await world.connected_call()
    agent_uid = call.agent_uniqueid
    world.ami.react = lambda n, h: [
        parked(CALLER_UID, "hold"), DialBegin(info("PJSIP/1001-0001", agent_uid),
                                              info(CONSULTED), "")] \
        if n == "Redirect" and h.get("ExtraExten") == "consult" else []
    await world.control.consult("A1", Target(kind="number", value="13912345678"))
    world.ami.react = lambda _n, _h: []
    world.acd.phone_gone("PJSIP/1001")
    rt = world.acd.seat("A1")
    assert (rt.seat.state, rt.seat.reason) == (SeatState.NOT_READY, PHONE_GONE)
    assert call.life.state is CallState.WAITING
    async with asyncio.timeout(2):
        while world.acd.find_waiter(call_id="c-1") is None:
            await asyncio.sleep(0.001)


async def test_monitoring_is_told_to_both_sides_and_stops(world: World) -> None:
    call = await world.connected_call()
    await world.control.spy("S1", "A1", "listen")
    [(_, originate)] = [a for a in world.ami.actions[-1:] if a[0] == "Originate"]
    spy_uid = originate["ChannelId"]
    assert originate["Variable"] == ["CC_SPY=PJSIP/1001-0001"]
    assert [n for n in world.notices if isinstance(n, MonitorChanged)] == []  # not yet
    world.ami.feed(OtherEvent("ChanSpyStart", {"SpyerUniqueid": spy_uid,
                                               "SpyeeUniqueid": call.agent_uniqueid}))
    on = MonitorChanged("S1", "A1", "c-1", "listen", "on")
    assert [n for n in world.notices if isinstance(n, MonitorChanged)] == [on]
    with pytest.raises(ConsoleError):
        await world.control.spy_stop("S1", "A2")  # not monitoring A2
    await world.control.spy_stop("S1", "A1")
    assert world.ami.actions[-1] == ("Hangup", {"Channel": spy_uid})
    world.ami.feed(Hangup(info("PJSIP/9001-0001", spy_uid), 16, "Normal Clearing"))
    assert [n.state for n in world.notices if isinstance(n, MonitorChanged)] == ["on", "off"]
    assert world.acd.monitors == {}
