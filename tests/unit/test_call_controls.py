"""Call controls as steps proven by Asterisk's events (``acd/control.py``), without Asterisk: a
scripted AMI answers each action with the events Asterisk would send (or none), and the tests
check that no step is sent before the previous one was proven, that the call's state moves only
then, and that a missing proof or a call ending meanwhile changes nothing. The same controls
through the real Asterisk: tests/integration/test_call_controls.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callcenter.acd import control as control_module
from callcenter.acd.calls import CallState
from callcenter.acd.notices import (
    CallHeld,
    CallResumed,
    ConsultChanged,
    MonitorChanged,
)
from callcenter.acd.records import ActiveCall
from callcenter.acd.seat import PHONE_GONE, SeatState
from callcenter.acd.targets import Target
from callcenter.errors import ConsoleError
from callcenter.telephony.ami_events import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    DialBegin,
    Hangup,
    OtherEvent,
)
from tests.unit.acd_world import CALLER, CALLER_UID, CONSULTED, World, info, parked


def life(call: ActiveCall) -> CallState:
    """The call's state, read afresh (a control moved it meanwhile)."""
    return call.life.state


def on_hold(name: str, headers: dict[str, Any], agent_uid: str) -> list[AmiEvent]:
    """What Asterisk sends for the hold Redirect: both legs parked."""
    if name == "Redirect" and headers.get("ExtraExten") == "held":
        return [parked(CALLER_UID, "hold"), parked(agent_uid, "agent")]
    return []


async def test_hold_moves_the_call_once_both_legs_are_parked(acd_world: World) -> None:
    call = await acd_world.connected_call()
    acd_world.ami.react = lambda n, h: on_hold(n, h, call.agent_uniqueid)
    await acd_world.control.hold("A1")
    assert call.life.state is CallState.HELD
    assert acd_world.acd.seat("A1").seat.state is SeatState.ON_HOLD
    assert any(isinstance(n, CallHeld) for n in acd_world.notices)
    # resume: the Bridge is proven by the caller entering it
    acd_world.ami.react = lambda n, h: [BridgeEnter(info(CALLER, CALLER_UID), "b-2")] \
        if n == "Bridge" else []
    call.agent_parked = True
    await acd_world.control.resume("A1")
    assert life(call) is CallState.CONNECTED
    assert any(isinstance(n, CallResumed) for n in acd_world.notices)


async def test_without_the_proof_nothing_moves(acd_world: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control_module, "PROOF_S", 0.05)
    call = await acd_world.connected_call()
    with pytest.raises(ConsoleError) as refused:
        await acd_world.control.hold("A1")
    assert refused.value.code == "unavailable" and "did not confirm" in refused.value.message
    assert call.life.state is CallState.CONNECTED
    assert acd_world.acd.seat("A1").seat.state is SeatState.ON_CALL
    await asyncio.sleep(0)
    assert acd_world.acd._proofs == []  # nothing left waiting


async def test_a_control_waits_until_the_caller_is_bridged(acd_world: World) -> None:
    """Just after the answer the agent's Bridge() is still taking the caller in: the control
    waits for Asterisk to show both legs bridged instead of retrying on error strings."""
    call = await acd_world.connected_call(bridged=False)
    acd_world.ami.react = lambda n, h: on_hold(n, h, call.agent_uniqueid)
    hold = asyncio.create_task(acd_world.control.hold("A1"))
    await asyncio.sleep(0.02)
    assert not hold.done() and acd_world.ami.names()[-1] == "Originate"  # nothing sent yet
    acd_world.bridge(call)
    await hold
    assert call.life.state is CallState.HELD


async def test_a_call_that_ends_during_a_step_answers_no_call(acd_world: World) -> None:
    call = await acd_world.connected_call()

    def caller_hangs_up(name: str, headers: dict[str, Any]) -> list[AmiEvent]:
        if name != "Redirect":
            return []
        # the caller reaches [acd-hold], then the agent's leg hangs up before it parks
        return [parked(CALLER_UID, "hold"),
                Hangup(info("PJSIP/1001-0001", call.agent_uniqueid), 16, "Normal Clearing")]

    acd_world.ami.react = caller_hangs_up
    hold = asyncio.create_task(acd_world.control.hold("A1"))
    with pytest.raises(ConsoleError) as refused:
        await hold
    assert refused.value.code == "no_call"  # at once, not after the proof's time-out
    assert call.life.state is CallState.ENDED


async def test_a_cancelled_consultation_bridges_back_only_after_the_agent_leg_waits(
        acd_world: World) -> None:
    """The flake of the old sequence: Bridge was sent while the agent's Dial was still ending
    ("Unable to add Channel1 to bridge"). Now: hang up the consulted party, wait for its
    Hangup and the agent's leg parked, then Bridge."""
    call = await acd_world.connected_call()
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

    acd_world.ami.react = asterisk
    await acd_world.control.consult("A1", Target(kind="number", value="13912345678"))
    assert call.life.state is CallState.CONSULTING and call.consult_channel == CONSULTED
    assert [n.state for n in acd_world.notices if isinstance(n, ConsultChanged)] == ["ringing"]
    await acd_world.control.consult_cancel("A1")
    names = acd_world.ami.names()
    assert names[-2:] == ["Hangup", "Bridge"]
    assert life(call) is CallState.CONNECTED
    assert acd_world.acd.seat("A1").seat.state is SeatState.ON_CALL
    assert [n.state for n in acd_world.notices if isinstance(n, ConsultChanged)] == [
        "ringing", "ended"]


async def test_a_blind_transfer_to_a_queue_requeues_with_the_place_and_ends_the_agent_leg(
        acd_world: World) -> None:
    call = await acd_world.connected_call()

    def asterisk(name: str, headers: dict[str, Any]) -> list[AmiEvent]:
        if name == "Redirect" and headers.get("Context") == "queue-hold":
            return [BridgeLeave(info(CALLER, CALLER_UID), "b-1"), parked(CALLER_UID, "queue")]
        if name == "Hangup" and headers.get("Channel") == call.agent_uniqueid:
            return [Hangup(info("PJSIP/1001-0001", call.agent_uniqueid), 16, "Normal Clearing")]
        return []

    acd_world.ami.react = asterisk
    await acd_world.control.transfer("A1", Target(kind="queue", value="english"))
    waiter = acd_world.acd.waiting["english"]["c-1"]
    assert waiter.position_key is not None and "A1" in waiter.excluded
    assert call.life.state is CallState.WAITING
    async with asyncio.timeout(2):  # the engine hangs up the agent's leg: the seat wraps up
        while acd_world.acd.seat("A1").call is not None:
            await asyncio.sleep(0.001)
    assert ("Hangup", {"Channel": call.agent_uniqueid}) in acd_world.ami.actions


async def test_losing_the_phone_during_a_consultation_requeues_the_caller(
        acd_world: World) -> None:
    call = await acd_world.connected_call()
    agent_uid = call.agent_uniqueid
    acd_world.ami.react = lambda n, h: [
        parked(CALLER_UID, "hold"), DialBegin(info("PJSIP/1001-0001", agent_uid),
                                              info(CONSULTED), "")] \
        if n == "Redirect" and h.get("ExtraExten") == "consult" else []
    await acd_world.control.consult("A1", Target(kind="number", value="13912345678"))
    acd_world.ami.react = lambda _n, _h: []
    acd_world.acd.phone_gone("PJSIP/1001")
    rt = acd_world.acd.seat("A1")
    assert (rt.seat.state, rt.seat.reason) == (SeatState.NOT_READY, PHONE_GONE)
    assert call.life.state is CallState.WAITING
    async with asyncio.timeout(2):
        while acd_world.acd.find_waiter(call_id="c-1") is None:
            await asyncio.sleep(0.001)


async def test_monitoring_is_told_to_both_sides_and_stops(acd_world: World) -> None:
    call = await acd_world.connected_call()
    await acd_world.control.spy("S1", "A1", "listen")
    [(_, originate)] = [a for a in acd_world.ami.actions[-1:] if a[0] == "Originate"]
    spy_uid = originate["ChannelId"]
    assert originate["Variable"] == ["CC_SPY=PJSIP/1001-0001"]
    assert [n for n in acd_world.notices if isinstance(n, MonitorChanged)] == []  # not yet
    acd_world.ami.feed(OtherEvent("ChanSpyStart", {"SpyerUniqueid": spy_uid,
                                               "SpyeeUniqueid": call.agent_uniqueid}))
    on = MonitorChanged("S1", "A1", "c-1", "listen", "on")
    assert [n for n in acd_world.notices if isinstance(n, MonitorChanged)] == [on]
    with pytest.raises(ConsoleError):
        await acd_world.control.spy_stop("S1", "A2")  # not monitoring A2
    await acd_world.control.spy_stop("S1", "A1")
    assert acd_world.ami.actions[-1] == ("Hangup", {"Channel": spy_uid})
    acd_world.ami.feed(Hangup(info("PJSIP/9001-0001", spy_uid), 16, "Normal Clearing"))
    assert [n.state for n in acd_world.notices if isinstance(n, MonitorChanged)] == ["on", "off"]
    assert acd_world.acd.monitors == {}
