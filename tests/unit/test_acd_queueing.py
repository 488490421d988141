"""The ACD's queueing rules, case by case, without Asterisk (docs/acd.md): tiers and aging, VIP
stages, ring-no-answer, call-backs, overflow, opening hours, transfers, consultations and
conferences, wrap-up, and phones lost. Each test drives ``Acd`` through a scripted AMI
(``tests/unit/acd_world.py``) on a fake clock; what time alone changes is run by calling the
queue timer (``AcdCore.on_timer``) after moving the clock. Bugs found are ``xfail(strict=True)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from callcenter.acd import control as control_module
from callcenter.acd import routing
from callcenter.acd.calls import CallState
from callcenter.acd.core import PHONE_CONFIRM_S
from callcenter.acd.notices import (
    Announced,
    CallEnded,
    CallOffered,
    ConferenceChanged,
    QueueLogged,
    WrapUpOverdue,
)
from callcenter.acd.records import ActiveCall
from callcenter.acd.seat import PHONE_GONE, SeatInput, SeatState
from callcenter.acd.service import Acd
from callcenter.acd.targets import Target
from callcenter.config import QueueSettings
from callcenter.errors import ConsoleError
from callcenter.store.agents import AgentRecord
from callcenter.telephony.ami_events import (
    AmiEvent,
    BridgeEnter,
    BridgeLeave,
    DialBegin,
    Hangup,
    OtherEvent,
)
from tests.unit.acd_world import (
    CALLER,
    CALLER_UID,
    CONSULTED,
    FakeClock,
    World,
    default_settings,
    info,
    make_world,
    parked,
)

T0 = 1000.0


def agent(agent_id: str, extension: str, **more: Any) -> AgentRecord:
    return AgentRecord(agent_id, f"Agent {agent_id}", "agent", f"PJSIP/{extension}", **more)


A1, A2 = agent("A1", "1001"), agent("A2", "1002")
#: a customer manager (not in the VIP team) and a VIP-team member
M1, V1 = agent("M1", "1101"), agent("V1", "1201", vip_team=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def two(tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    """Agents A1 and A2, queues general and english, no wrap-up."""
    async with make_world(tmp_path, agents=[A1, A2], clock=clock) as world:
        yield world


@pytest.fixture
async def vip(tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    """A1 (ordinary agent), M1 (the VIP callers' manager), V1 (VIP team); stages 20 s / 40 s."""
    async with make_world(tmp_path, agents=[A1, M1, V1], clock=clock) as world:
        yield world


def reason(world: World, call_id: str) -> dict[str, Any]:
    """The caller's ``reason`` in ``queue_snapshot()``."""
    for queue in world.acd.queue_snapshot():
        for row in queue["waiting"]:
            if row["call_id"] == call_id:
                return dict(row["reason"])
    raise AssertionError(f"{call_id} is not waiting")


def line(world: World, queue: str = "general") -> list[str]:
    """The queue's callers in the order they will be served."""
    [snapshot] = [q for q in world.acd.queue_snapshot() if q["name"] == queue]
    return [row["call_id"] for row in snapshot["waiting"]]


def logged(world: World, event: str) -> list[QueueLogged]:
    return [n for n in world.notices if isinstance(n, QueueLogged) and n.event == event]


def life(call: ActiveCall) -> CallState:
    """The call's state, read afresh (a control moved it meanwhile)."""
    return call.life.state


def state(world: World, agent_id: str) -> tuple[SeatState, str]:
    seat = world.acd.seat(agent_id).seat
    return seat.state, seat.reason


def asterisk(call: ActiveCall) -> Callable[[str, dict[str, Any]], list[AmiEvent]]:
    """What Asterisk sends for a transfer's Redirect (the caller leaves the agent's bridge and
    parks where sent), a consultation, its completion, and the engine's hang-up of the agent's
    leg."""
    agent_uid = call.agent_uniqueid

    def react(name: str, headers: dict[str, Any]) -> list[AmiEvent]:
        if name == "Redirect" and headers.get("ExtraExten") == "consult":
            return [parked(CALLER_UID, "hold"),
                    DialBegin(info("PJSIP/1001-0001", agent_uid), info(CONSULTED), "")]
        if name == "Redirect" and "ExtraChannel" not in headers:
            where = {"queue-hold": "queue", "acd-hold": "hold"}[headers["Context"]]
            return [BridgeLeave(info(CALLER, CALLER_UID), "b-1"), parked(CALLER_UID, where)]
        if name == "Bridge":
            return [BridgeEnter(info(CALLER, CALLER_UID), "b-9")]
        if name == "Hangup" and headers.get("Channel") == agent_uid:
            return [Hangup(info("PJSIP/1001-0001", agent_uid), 16, "Normal Clearing")]
        return []

    return react


# -- tiers and aging ---------------------------------------------------------------------------


async def test_a_platinum_caller_is_offered_before_an_earlier_ordinary_caller(
        two: World, clock: FakeClock) -> None:
    """Tiers: platinum's head start (90 s) beats an ordinary caller who came 10 s earlier."""
    two.caller("c-ord")
    clock.advance(10)
    two.caller("c-plat", tier="platinum")
    assert line(two) == ["c-plat", "c-ord"]
    two.acd.set_state("A1", "ready")
    assert two.offered("A1") == "c-plat"
    assert two.acd.waiting["general"]["c-ord"].ringing == ""


@pytest.mark.parametrize(("waited", "first"), [(89.0, "c-plat"), (91.0, "c-ord")])
async def test_aging_serves_an_ordinary_caller_who_waited_past_the_bound_first(
        two: World, clock: FakeClock, waited: float, first: str) -> None:
    """Aging: an ordinary caller who waited longer than max(weight) / aging_per_second (90 s)
    is ahead of a platinum caller who just arrived; shorter, the platinum caller is ahead."""
    two.caller("c-ord")
    clock.advance(waited)
    two.caller("c-plat", tier="platinum")
    two.acd.set_state("A1", "ready")
    assert two.offered("A1") == first


async def test_equal_tiers_are_served_in_arrival_order(two: World, clock: FakeClock) -> None:
    """Equal tiers: first come, first served."""
    for call_id in ("c-1", "c-2", "c-3"):
        two.caller(call_id, tier="silver")
        clock.advance(1)
    assert line(two) == ["c-1", "c-2", "c-3"]
    two.acd.set_state("A2", "ready")
    assert two.offered("A2") == "c-1"
    two.acd.set_state("A1", "ready")
    assert two.offered("A1") == "c-2"


# -- VIP stages ---------------------------------------------------------------------------------


async def test_a_present_ready_manager_rings_first(vip: World) -> None:
    """VIP stage 1: a gold/platinum caller's manager, ready, is rung before the VIP team and
    before the longest idle seat."""
    for agent_id in ("A1", "V1", "M1"):
        vip.acd.set_state(agent_id, "ready")
    vip.caller("c-vip", tier="platinum", manager="M1")
    assert vip.offered("M1") == "c-vip"
    assert vip.offered("A1") is None and vip.offered("V1") is None


async def test_a_busy_manager_is_waited_for_then_the_vip_team(vip: World,
                                                             clock: FakeClock) -> None:
    """VIP stages: a manager on a call is present, so the caller waits the manager stage
    (manager_first_s, 20 s) although others are free; then the VIP team is rung, not A1."""
    await vip.busy("M1")
    vip.acd.set_state("A1", "ready")
    vip.acd.set_state("V1", "ready")
    vip.caller("c-vip", tier="platinum", manager="M1")
    assert vip.offered("A1") is None and vip.offered("V1") is None
    assert reason(vip, "c-vip") | {"skill": None} == {
        "code": "manager_only", "until": T0 + 20, "agent": "M1", "skill": None, "agents": 1}
    clock.advance(19.5)
    vip.acd.on_timer()
    assert vip.offered("V1") is None
    clock.advance(0.5)
    vip.acd.on_timer()
    assert vip.offered("V1") == "c-vip"
    assert vip.offered("A1") is None


async def test_a_logged_out_manager_sends_the_caller_to_the_vip_team_at_once(
        vip: World) -> None:
    """VIP stages: the manager logged out, the manager stage is skipped: the VIP team at once."""
    vip.acd.set_state("A1", "ready")
    vip.acd.set_state("V1", "ready")
    vip.caller("c-vip", tier="gold", manager="M1")
    assert vip.offered("V1") == "c-vip"
    assert vip.offered("A1") is None


async def test_with_no_vip_member_present_everyone_may_take_the_caller_at_once(
        vip: World) -> None:
    """VIP stages: manager logged out and the VIP team absent (not ready): every seat at once."""
    vip.acd.set_state("V1", "not_ready", "break")
    vip.acd.set_state("A1", "ready")
    vip.caller("c-vip", tier="platinum", manager="M1")
    assert vip.offered("A1") == "c-vip"


async def test_wait_reasons_follow_the_stages(vip: World, clock: FakeClock) -> None:
    """wait_reason in queue_snapshot(): manager_only (manager busy), then vip_team_only (VIP
    team busy too) until vip_team_s, then anyone: the free seat A1 is rung."""
    await vip.busy("M1")
    await vip.busy("V1")
    vip.acd.set_state("A1", "ready")
    vip.caller("c-vip", tier="platinum", manager="M1")
    assert reason(vip, "c-vip")["code"] == "manager_only"
    clock.advance(20)
    vip.acd.on_timer()
    assert vip.offered("A1") is None
    why = reason(vip, "c-vip")
    assert (why["code"], why["until"], why["agents"]) == ("vip_team_only", T0 + 40, 2)
    clock.advance(20)
    vip.acd.on_timer()
    assert vip.offered("A1") == "c-vip"


async def test_wait_reason_all_busy(vip: World) -> None:
    """wait_reason all_busy: every present agent who may take the caller is on a call."""
    await vip.busy("A1")
    vip.caller("c-1")
    why = reason(vip, "c-1")
    assert (why["code"], why["agents"]) == ("all_busy", 1)


# -- ring-no-answer -----------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["no_answer", "down"])
async def test_ring_no_answer_keeps_the_head_of_the_line_for_the_next_agent(
        two: World, clock: FakeClock, failure: Any) -> None:
    """Ring-no-answer (originate refused, or the action failed): the seat goes not ready ("no
    answer"), the agent is excluded, and the caller keeps the head of the line: the next seat
    is offered them, not the caller behind."""
    two.ami.rings["PJSIP/1001"] = failure
    two.caller("c-1")
    clock.advance(1)
    two.caller("c-2")
    two.acd.set_state("A1", "ready")
    assert two.offered("A1") == "c-1"
    await two.until(lambda: two.acd.seat("A1").call is None)
    assert state(two, "A1") == (SeatState.NOT_READY, "no answer")
    waiter = two.acd.waiting["general"]["c-1"]
    assert waiter.excluded == {"A1"} and waiter.ringing == ""
    assert [n.agent_id for n in logged(two, "noanswer")] == ["A1"]
    assert CallEnded("A1", "c-1", 0, answered=False) in two.notices
    assert line(two) == ["c-1", "c-2"]
    two.acd.set_state("A2", "ready")
    assert two.offered("A2") == "c-1"


async def test_the_agent_who_let_it_ring_out_is_not_offered_that_call_again(
        two: World, clock: FakeClock) -> None:
    """Ring-no-answer: back to ready, the agent gets the caller behind, not the excluded one
    (which waits with excluded_all while nobody else is there)."""
    two.ami.rings["PJSIP/1001"] = "no_answer"
    two.caller("c-1")
    clock.advance(1)
    two.caller("c-2")
    two.acd.set_state("A1", "ready")
    await two.until(lambda: two.acd.seat("A1").seat.state is SeatState.NOT_READY)
    del two.ami.rings["PJSIP/1001"]
    two.acd.set_state("A1", "ready")
    assert two.offered("A1") == "c-2"
    assert reason(two, "c-1")["code"] == "excluded_all"


async def test_a_caller_who_hangs_up_while_the_phone_rings_frees_the_seat(two: World) -> None:
    """A ring in progress (wait reason "ringing"): the caller hanging up withdraws the offer,
    the agent's leg is hung up and the seat is ready again, without wrap-up."""
    two.ami.rings["PJSIP/1001"] = "hang"
    two.caller("c-1")
    two.acd.set_state("A1", "ready")
    await two.until(lambda: "PJSIP/1001" in two.ami.hanging)
    assert reason(two, "c-1")["code"] == "ringing"
    call = two.acd.seat("A1").call
    assert call is not None
    two.ami.feed(Hangup(info("PJSIP/carrier-c-1", "uid-c-1"), 16, "Normal Clearing"))
    assert two.acd.find_waiter(call_id="c-1") is None
    assert state(two, "A1") == (SeatState.READY, "") and two.offered("A1") is None
    await two.until(lambda: ("Hangup", {"Channel": call.agent_uniqueid}) in two.ami.actions)


# -- call-backs ---------------------------------------------------------------------------------


async def test_a_call_back_keeps_the_place_and_rings_the_agent_first(
        two: World, clock: FakeClock) -> None:
    """Call-back: the caller presses 1 and hangs up but keeps the position; when the turn comes
    the agent's phone is rung into [acd-agent] exten "callback" with CC_NUMBER to dial."""
    waiter = two.caller("c-1", phone="13800000001")
    clock.advance(5)
    two.caller("c-2")
    two.acd.keep_place_by_callback(waiter, "13800000001")
    two.ami.feed(Hangup(info("PJSIP/carrier-c-1", "uid-c-1"), 16, "Normal Clearing"))
    assert two.acd.find_waiter(call_id="c-1") is waiter and waiter.callback
    assert line(two) == ["c-1", "c-2"]
    assert [n.call_id for n in logged(two, "abandon")] == []
    two.acd.set_state("A1", "ready")
    assert two.offered("A1") == "c-1"
    await two.until(lambda: two.ami.originates("PJSIP/1001") != [])
    [ring] = two.ami.originates("PJSIP/1001")
    assert ring["Context"] == "acd-agent" and ring["Exten"] == "callback"
    assert "CC_NUMBER=13800000001" in ring["Variable"]
    assert not any(v.startswith("CC_CALLER=") for v in ring["Variable"])
    rt = two.acd.seat("A1")
    await two.until(lambda: rt.call is not None and rt.call.life.state is CallState.CONNECTED)
    assert line(two) == ["c-2"]


@pytest.mark.parametrize("caller_id", ["", "123&Local/9@hotline"])
async def test_a_call_back_without_a_phone_number_is_refused(two: World,
                                                             caller_id: str) -> None:
    """Call-back: no phone number (none, or dial syntax that is kept as none) -> refused
    (bad_number); the caller keeps waiting on the line, nothing is booked."""
    waiter = two.caller("c-1", phone=caller_id)
    assert waiter.phone == ""
    with pytest.raises(ConsoleError) as refused:
        two.acd.keep_place_by_callback(waiter, waiter.phone)
    assert refused.value.code == "bad_number"
    assert not waiter.callback and waiter.channel == "PJSIP/carrier-c-1"
    assert logged(two, "callback") == []


# -- overflow -----------------------------------------------------------------------------------


def overflow_settings() -> Any:
    return default_settings(queues=[
        QueueSettings(name="general", announce_every_s=0, overflow_after_s=30,
                      overflow_queue="english"),
        QueueSettings(name="english", announce_every_s=0)])


async def test_overflow_moves_the_caller_keeping_the_position_key(
        tmp_path: Path, clock: FakeClock) -> None:
    """Overflow: after overflow_after_s the caller moves to overflow_queue with the original
    position key, ahead of a caller who came to that queue later."""
    async with make_world(tmp_path, agents=[A1], settings=overflow_settings(),
                          clock=clock) as w:
        w.caller("c-1", "general")
        clock.advance(10)
        w.caller("c-2", "english")
        clock.advance(19.5)
        w.acd.on_timer()
        assert "c-1" in w.acd.waiting["general"]
        clock.advance(0.5)
        w.acd.on_timer()
        assert "c-1" not in w.acd.waiting["general"]
        moved = w.acd.waiting["english"]["c-1"]
        assert (moved.position_key, moved.arrived_at) == (T0, T0 + 30)
        assert [n.queue for n in logged(w, "overflow")] == ["general"]
        assert line(w, "english") == ["c-1", "c-2"]
        w.acd.set_state("A1", "ready")
        assert w.offered("A1") == "c-1"


async def test_an_overflowed_caller_keeps_the_place_across_a_restart(
        tmp_path: Path, clock: FakeClock) -> None:
    """Restarts: waiting callers are restored in their original order (docs/acd.md), an
    overflowed caller included."""
    settings = overflow_settings()
    async with make_world(tmp_path, agents=[A1], settings=settings, clock=clock) as w:
        w.caller("c-1", "general")
        clock.advance(10)
        w.caller("c-2", "english")
        clock.advance(20)
        w.acd.on_timer()
        assert line(w, "english") == ["c-1", "c-2"]
        await w.acd.flush()
        again = Acd(settings, w.acd.db, clock=clock)
        await again.start()
        try:
            calls = [r.view(None) for r in again.waiting["english"].values()]
            ranked = routing.ranked(calls, again.policies["english"], clock())
            assert [c.call_id for c in ranked] == ["c-1", "c-2"]
        finally:
            await again.close()


# -- opening hours and long waits ---------------------------------------------------------------


def hours_settings(action: str = "callback", **more: Any) -> Any:
    return default_settings(queues=[
        QueueSettings(name="general", announce_every_s=0, hours="agents",
                      closed_action=action, **more),
        QueueSettings(name="english", announce_every_s=0)])


@pytest.mark.parametrize(("action", "exten"), [("callback", "closed"), ("voicemail", "closed"),
                                               ("hangup", "closed-bye")])
async def test_a_closed_queue_offers_nobody_and_tells_the_caller(
        tmp_path: Path, clock: FakeClock, action: str, exten: str) -> None:
    """Hours: a closed queue rings no seat; the caller is redirected to [queue-hold]'s closed
    extension with the closed-queue prompt (Announced), and waits with queue_closed."""
    async with make_world(tmp_path, agents=[A1], settings=hours_settings(action),
                          clock=clock) as w:
        w.acd.is_open = lambda name: False if name == "agents" else None
        w.acd.set_state("A1", "ready")
        w.caller("c-1")
        assert w.offered("A1") is None and state(w, "A1")[0] is SeatState.READY
        await w.until(lambda: any(isinstance(n, Announced) for n in w.notices))
        [told] = [n for n in w.notices if isinstance(n, Announced)]
        assert told.call_id == "c-1" and "agent_closed_queue" in told.files
        assert ("Redirect", {"Channel": "PJSIP/carrier-c-1", "Context": "queue-hold",
                             "Exten": exten, "Priority": "1"}) in w.ami.actions
        assert reason(w, "c-1")["code"] == "queue_closed"
        assert [n.call_id for n in logged(w, "closed")] == ["c-1"]


async def test_opening_the_queue_dispatches_the_waiting_callers(tmp_path: Path,
                                                                clock: FakeClock) -> None:
    """Hours: while closed the queue is looked at again each minute; once open, that look
    offers the waiting caller to the ready seat."""
    async with make_world(tmp_path, agents=[A1], settings=hours_settings(),
                          clock=clock) as w:
        opened = {"agents": False}
        w.acd.is_open = opened.get
        w.acd.set_state("A1", "ready")
        w.caller("c-1")
        timer = w.acd._timer
        assert timer is not None
        assert timer.when() - asyncio.get_running_loop().time() <= 60
        clock.advance(60)
        w.acd.on_timer()
        assert w.offered("A1") is None
        opened["agents"] = True
        clock.advance(60)
        w.acd.on_timer()
        assert w.offered("A1") == "c-1"


async def test_a_long_wait_is_told_once_with_the_call_back_offer(tmp_path: Path,
                                                                 clock: FakeClock) -> None:
    """max_wait_s: a caller still waiting after it hears once that the wait is long, with the
    call-back offer."""
    settings = default_settings(queues=[QueueSettings(name="general", announce_every_s=0,
                                                      max_wait_s=60)])
    async with make_world(tmp_path, agents=[A1], settings=settings, clock=clock) as w:
        w.caller("c-1")
        clock.advance(59)
        w.acd.on_timer()
        clock.advance(1)
        w.acd.on_timer()
        await w.until(lambda: any(isinstance(n, Announced) for n in w.notices))
        clock.advance(120)
        w.acd.on_timer()
        await asyncio.sleep(0.01)
        [told] = [n for n in w.notices if isinstance(n, Announced)]
        assert "queue_long_wait" in told.files and "queue_callback_offer" in told.files


async def test_a_long_wait_falling_in_an_ami_outage_is_told_once_the_link_is_back(
        tmp_path: Path, clock: FakeClock) -> None:
    """max_wait_s while the AMI link is down (``link_lost``): the offer is not spent on a
    caller who cannot hear it; the link back (``resync``), the caller hears it."""
    settings = default_settings(queues=[QueueSettings(name="general", announce_every_s=0,
                                                      max_wait_s=60)])
    async with make_world(tmp_path, agents=[A1], settings=settings, clock=clock) as w:
        w.caller("c-1")
        w.acd.link_lost()
        clock.advance(61)
        w.acd.on_timer()
        await asyncio.sleep(0.01)
        assert not w.acd.waiting["general"]["c-1"].told_long_wait
        assert "Setvar" not in w.ami.names()
        await w.acd.resync({"uid-c-1": "PJSIP/carrier-c-1"})
        w.acd.on_timer()
        await w.until(lambda: any(isinstance(n, Announced) for n in w.notices))
        assert w.acd.waiting["general"]["c-1"].told_long_wait


async def test_a_phone_lost_while_asterisk_is_out_of_reach_waits_for_the_link(
        two: World, clock: FakeClock) -> None:
    """Presence: a phone gone (unregistered) mid-call while the AMI link is down: the caller
    cannot be moved, so nothing is taken from the agent yet (a Redirect would fail and leave the
    caller on no seat and in no queue); once the link is back the caller goes back to the
    queue, also when the phone registered again meanwhile (its old call's media is gone)."""
    problem: dict[str, str | None] = {}
    two.acd.phone_check = lambda endpoint: problem.get(endpoint)
    call = await two.connected_call()
    two.acd.link_lost()
    problem["PJSIP/1001"] = "phone 1001 is not registered"
    two.acd.phone_gone("PJSIP/1001")
    assert two.acd.seat("A1").call is call and call.life.state is CallState.CONNECTED
    clock.advance(PHONE_CONFIRM_S)
    two.acd.on_timer()
    await asyncio.sleep(0.01)  # (a Requeue's Redirect would be sent by now)
    assert two.acd.seat("A1").call is call and "Redirect" not in two.ami.names()
    # the browser registers again (a reload): the old call's media went with the old one
    del problem["PJSIP/1001"]
    two.acd.phone_back("PJSIP/1001")
    await two.acd.resync({CALLER_UID: CALLER, call.agent_uniqueid: "PJSIP/1001-0001"})
    assert two.acd.seat("A1").call is call
    clock.advance(PHONE_CONFIRM_S)
    two.acd.on_timer()
    assert two.acd.seat("A1").call is None and life(call) is CallState.WAITING
    await two.until(lambda: two.acd.find_waiter(call_id="c-1") is not None)


async def test_a_silent_phone_that_then_unregisters_is_gone_not_in_doubt(
        two: World, clock: FakeClock) -> None:
    """Presence: a phone in doubt (a missed probe) whose registration then ends, with Asterisk
    out of reach: the doubt becomes a loss, and the phone registering again (a reload) does not
    keep the old call; the link back, the caller goes back to the queue."""
    call, problem = await silent_mid_call(two)
    two.acd.link_lost()
    two.acd.phone_gone("PJSIP/1001")  # its last contact removed
    del problem["PJSIP/1001"]
    two.acd.phone_back("PJSIP/1001")
    assert two.acd.phone_silent_since("A1") is not None
    await two.acd.resync({CALLER_UID: CALLER, call.agent_uniqueid: "PJSIP/1001-0001"})
    clock.advance(PHONE_CONFIRM_S)
    two.acd.on_timer()
    assert two.acd.seat("A1").call is None and call.life.state is CallState.WAITING


# -- transfers, consultations, conferences ------------------------------------------------------


async def test_a_transfer_to_a_queue_keeps_the_place_and_excludes_the_sender(
        two: World, clock: FakeClock) -> None:
    """Transfer to a queue: the caller goes back with the original position key and never to
    the agent who sent them: that agent, ready again, gets the caller behind."""
    call = await two.connected_call()
    clock.advance(5)
    two.caller("c-2")
    two.ami.react = asterisk(call)
    await two.control.transfer("A1", Target(kind="queue", value="general"))
    back = two.acd.waiting["general"]["c-1"]
    assert back.position_key == T0 and back.excluded == {"A1"}
    assert call.life.state is CallState.WAITING
    await two.until(lambda: two.offered("A1") == "c-2")
    rt = two.acd.seat("A1")
    await two.until(lambda: rt.call is not None and rt.call.answered)
    assert line(two) == ["c-1"]
    two.acd.set_state("A2", "ready")
    assert two.offered("A2") == "c-1"


async def test_a_transfer_to_an_agent_rings_them_directly(two: World) -> None:
    """Transfer to an agent: the caller is parked and that agent's phone is rung with them
    (a direct offer, not queued); the sender wraps up."""
    call = await two.connected_call()
    two.acd.set_state("A2", "ready")
    two.ami.react = asterisk(call)
    await two.control.transfer("A1", Target(kind="agent", value="A2"))
    assert call.life.state is CallState.ENDED
    [offer] = [n.offer for n in two.notices if isinstance(n, CallOffered)
               and n.agent_id == "A2"]
    assert offer.call_id == "c-1" and offer.direct
    await two.until(lambda: two.ami.originates("PJSIP/1002") != [])
    [ring] = two.ami.originates("PJSIP/1002")
    assert f"CC_CALLER={CALLER}" in ring["Variable"] and ring["Exten"] == "s"
    assert two.acd.find_waiter(call_id="c-1") is None
    await two.until(lambda: state(two, "A2")[0] is SeatState.ON_CALL
                    and two.acd.seat("A1").call is None)
    assert state(two, "A1")[0] is SeatState.READY


async def test_a_transfer_to_an_agent_who_does_not_answer_does_not_strand_the_caller(
        two: World) -> None:
    """Transfer to an agent who does not answer: the caller must not be left on hold with
    nobody (back in the queue, where a supervisor sees them and a seat can take them)."""
    call = await two.connected_call()
    two.acd.set_state("A2", "ready")
    two.ami.rings["PJSIP/1002"] = "no_answer"
    two.ami.react = asterisk(call)
    await two.control.transfer("A1", Target(kind="agent", value="A2"))
    await two.until(lambda: state(two, "A2") == (SeatState.NOT_READY, "no answer"))
    assert two.acd.find_waiter(call_id="c-1") is not None


async def test_a_completed_consultation_hands_the_caller_to_the_consulted_party(
        two: World) -> None:
    """Consultation: the caller is held while the agent's leg dials the third party; complete
    bridges the caller with them, the call is ours no more, the consulted party stays."""
    call = await two.connected_call()
    two.ami.react = asterisk(call)
    await two.control.consult("A1", Target(kind="number", value="13912345678"))
    assert call.life.state is CallState.CONSULTING
    assert state(two, "A1")[0] is SeatState.ON_HOLD
    await two.control.consult_complete("A1")
    assert ("Bridge", {"Channel1": CALLER, "Channel2": CONSULTED, "Tone": "no"}) \
        in two.ami.actions
    assert life(call) is CallState.ENDED
    await two.until(lambda: two.acd.seat("A1").call is None)
    await asyncio.sleep(0.01)  # whatever the call's end sends
    assert ("Hangup", {"Channel": call.agent_uniqueid}) in two.ami.actions
    assert ("Hangup", {"Channel": CONSULTED}) not in two.ami.actions
    assert state(two, "A1")[0] is SeatState.READY


async def test_a_conference_is_conferenced_only_after_both_legs_joined(
        two: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Conference: CONFERENCED once Asterisk shows both the caller's and the agent's
    ConfbridgeJoin; one join alone proves nothing; then the third party is originated in."""
    monkeypatch.setattr(control_module, "PROOF_S", 0.05)
    call = await two.connected_call()

    def joins(*uids: str) -> Callable[[str, dict[str, Any]], list[AmiEvent]]:
        def react(name: str, headers: dict[str, Any]) -> list[AmiEvent]:
            if name == "Redirect" and headers.get("Context") == "acd-conference":
                return [OtherEvent("ConfbridgeJoin", {"Uniqueid": uid}) for uid in uids]
            return []
        return react

    target = Target(kind="number", value="13912345678")
    two.ami.react = joins(CALLER_UID)
    with pytest.raises(ConsoleError) as refused:
        await two.control.conference("A1", target)
    assert refused.value.code == "unavailable"
    assert call.life.state is CallState.CONNECTED and call.conference == ""
    two.ami.react = joins(CALLER_UID, call.agent_uniqueid)
    await two.control.conference("A1", target)
    assert life(call) is CallState.CONFERENCED and call.conference
    [third] = two.ami.originates("Local/13912345678@outbound")
    assert third["Context"] == "acd-conference" and third["Exten"] == call.conference
    assert ConferenceChanged("A1", "c-1", "13912345678") in two.notices


# -- wrap-up ------------------------------------------------------------------------------------


async def test_a_required_disposition_keeps_the_seat_in_wrap_up_until_saved(
        tmp_path: Path, clock: FakeClock) -> None:
    """Wrap-up with require_disposition: the timer does not make the seat ready (WrapUpOverdue
    instead), Ready is refused until the disposition is saved, then it is accepted."""
    settings = default_settings(wrap_up_s=0.05, require_disposition=True)
    async with make_world(tmp_path, agents=[A1], settings=settings, clock=clock) as w:
        await w.connected_call()
        w.agent_hangs_up("A1")
        assert state(w, "A1")[0] is SeatState.WRAP_UP
        assert CallEnded("A1", "c-1", 0.05, answered=True, disposition_required=True) \
            in w.notices
        await w.until(lambda: any(isinstance(n, WrapUpOverdue) for n in w.notices))
        assert state(w, "A1")[0] is SeatState.WRAP_UP
        with pytest.raises(ConsoleError) as refused:
            w.acd.set_state("A1", "ready", by="A1")
        assert refused.value.code == "disposition_required"
        w.acd.disposition_saved("A1", "c-1")
        w.acd.set_state("A1", "ready", by="A1")
        assert state(w, "A1")[0] is SeatState.READY


async def test_without_a_required_disposition_the_timer_makes_the_seat_ready(
        tmp_path: Path, clock: FakeClock) -> None:
    """Wrap-up without require_disposition: wrap_up_s over, the seat is ready on its own."""
    settings = default_settings(wrap_up_s=0.05, require_disposition=False)
    async with make_world(tmp_path, agents=[A1], settings=settings, clock=clock) as w:
        await w.connected_call()
        w.agent_hangs_up("A1")
        assert state(w, "A1")[0] is SeatState.WRAP_UP
        await w.until(lambda: state(w, "A1")[0] is SeatState.READY)
        assert w.acd.seat("A1").seat.history[-1].input is SeatInput.WRAP_DONE
        assert not any(isinstance(n, WrapUpOverdue) for n in w.notices)


async def test_no_wrap_up_time_goes_straight_back_to_ready(tmp_path: Path,
                                                           clock: FakeClock) -> None:
    """wrap_up_s = 0: the seat is ready as the call ends (no disposition required even when
    require_disposition is on)."""
    settings = default_settings(wrap_up_s=0, require_disposition=True)
    async with make_world(tmp_path, agents=[A1], settings=settings, clock=clock) as w:
        await w.connected_call()
        w.agent_hangs_up("A1")
        assert state(w, "A1")[0] is SeatState.READY
        assert CallEnded("A1", "c-1", 0, answered=True, disposition_required=False) \
            in w.notices
        assert [c.to_state for c in w.acd.seat("A1").seat.history[-2:]] == [
            SeatState.WRAP_UP, SeatState.READY]


async def test_saving_the_wrap_up_under_a_backlog_leaves_the_seat_ringing_the_next_caller(
        tmp_path: Path, clock: FakeClock) -> None:
    """A command's moves are made as one: saving the disposition and going ready from wrap-up
    with callers waiting offers the next caller only after the moves (no illegal READY from
    RINGING): the seat is ringing the next caller, no error."""
    settings = default_settings(wrap_up_s=30, require_disposition=True)
    async with make_world(tmp_path, agents=[A1], settings=settings, clock=clock) as w:
        await w.connected_call()
        clock.advance(5)
        w.caller("c-2")
        w.agent_hangs_up("A1")
        assert state(w, "A1")[0] is SeatState.WRAP_UP and w.offered("A1") is None
        w.acd.disposition_saved("A1", "c-1")
        rt = w.acd.set_state("A1", "ready", by="A1")
        assert rt.seat.state is SeatState.RINGING and w.offered("A1") == "c-2"


@pytest.mark.parametrize("start", ["logged_out", "not_ready"])
async def test_going_not_ready_through_ready_under_a_backlog_offers_nothing(
        two: World, start: str) -> None:
    """A command's moves are made as one: logging in to a reason, or changing the not-ready
    reason, passes through READY; a waiting caller is not offered in between."""
    if start == "not_ready":
        two.acd.set_state("A1", "not_ready", "break")
    two.caller("c-1")
    two.acd.set_state("A1", "not_ready", "meal")
    assert state(two, "A1") == (SeatState.NOT_READY, "meal")
    assert two.offered("A1") is None and two.acd.waiting["general"]["c-1"].ringing == ""


# -- phones lost --------------------------------------------------------------------------------


async def test_a_ready_seat_whose_phone_is_gone_goes_not_ready(two: World) -> None:
    """Presence: phone_gone on a ready seat -> not ready "phone unregistered", offered nothing;
    other phones are not touched."""
    two.acd.set_state("A1", "ready")
    two.acd.set_state("A2", "ready")
    two.acd.phone_gone("PJSIP/1001")
    assert state(two, "A1") == (SeatState.NOT_READY, PHONE_GONE)
    assert state(two, "A2") == (SeatState.READY, "")
    two.caller("c-1")
    assert two.offered("A1") is None and two.offered("A2") == "c-1"


async def test_a_phone_lost_mid_call_requeues_the_caller_with_the_place(
        two: World, clock: FakeClock) -> None:
    """Presence: the phone lost during a call: the caller is taken back to [queue-hold] and
    queued with the original place (not to that agent again), the seat not ready."""
    call = await two.connected_call()
    clock.advance(10)
    two.caller("c-2")
    two.acd.phone_gone("PJSIP/1001")
    assert state(two, "A1") == (SeatState.NOT_READY, PHONE_GONE)
    assert call.life.state is CallState.WAITING
    await two.until(lambda: two.acd.find_waiter(call_id="c-1") is not None)
    back = two.acd.waiting["general"]["c-1"]
    assert back.position_key == T0 and back.excluded == {"A1"}
    assert line(two) == ["c-1", "c-2"]
    assert ("Redirect", {"Channel": CALLER, "Context": "queue-hold", "Exten": "s",
                         "Priority": "1"}) in two.ami.actions
    two.acd.set_state("A2", "ready")
    assert two.offered("A2") == "c-1"


async def silent_mid_call(two: World) -> tuple[ActiveCall, dict[str, str | None]]:
    """A1 on a call (c-1) whose phone then misses a qualify probe (``unreachable``); the
    phone's problem, as ``phone_check`` reads it, for the test to change."""
    problem: dict[str, str | None] = {}
    two.acd.phone_check = lambda endpoint: problem.get(endpoint)
    call = await two.connected_call()
    problem["PJSIP/1001"] = "phone 1001 does not answer"
    two.acd.phone_gone("PJSIP/1001", unreachable=True)
    return call, problem


async def test_a_phone_that_stops_answering_mid_call_keeps_the_call_if_it_answers_again(
        two: World, clock: FakeClock) -> None:
    """Presence: a phone still registered but missing a qualify probe (``unreachable``) during a
    call: the call goes on; the queue timer is armed for ``PHONE_CONFIRM_S``; the phone answered
    again (``phone_back``), nothing is taken from the agent (a moment's silence never cuts a
    caller off). A later miss starts a new doubt, counted from then."""
    call, problem = await silent_mid_call(two)
    assert state(two, "A1")[0] is SeatState.ON_CALL and two.acd.seat("A1").call is call
    assert two.acd.find_waiter(call_id="c-1") is None
    timer = two.acd._timer
    assert timer is not None
    assert PHONE_CONFIRM_S - 1 < timer.when() - asyncio.get_running_loop().time() \
        <= PHONE_CONFIRM_S
    assert two.acd.phone_silent_since("A1") == clock.now
    clock.advance(3)
    del problem["PJSIP/1001"]  # it answered the phones link's re-check
    two.acd.phone_back("PJSIP/1001")
    assert two.acd.phone_silent_since("A1") is None
    clock.advance(2)
    # it misses a probe again: a new doubt, counted from now, not from the first
    problem["PJSIP/1001"] = "phone 1001 does not answer"
    two.acd.phone_gone("PJSIP/1001", unreachable=True)
    clock.advance(PHONE_CONFIRM_S - 5)  # the first doubt would be up now
    two.acd.on_timer()
    assert state(two, "A1")[0] is SeatState.ON_CALL and two.acd.seat("A1").call is call
    assert call.life.state is CallState.CONNECTED
    clock.advance(4.5)
    two.acd.on_timer()
    assert two.acd.seat("A1").call is call
    assert not any(n == "Redirect" for n, _h in two.ami.actions)
    clock.advance(0.5)
    two.acd.on_timer()
    assert state(two, "A1") == (SeatState.NOT_READY, PHONE_GONE)
    await two.until(lambda: two.acd.find_waiter(call_id="c-1") is not None)


async def test_a_phone_still_silent_after_the_confirmation_loses_the_call_to_the_queue(
        two: World, clock: FakeClock) -> None:
    """Presence: the phone did not answer again within ``PHONE_CONFIRM_S``: as a phone gone,
    the caller back in the queue with the place, the seat not ready; not a moment before."""
    call, _problem = await silent_mid_call(two)
    clock.advance(PHONE_CONFIRM_S - 0.5)
    two.acd.on_timer()
    assert state(two, "A1")[0] is SeatState.ON_CALL
    clock.advance(0.5)
    two.acd.on_timer()
    assert state(two, "A1") == (SeatState.NOT_READY, PHONE_GONE)
    assert call.life.state is CallState.WAITING
    await two.until(lambda: two.acd.find_waiter(call_id="c-1") is not None)
    assert two.acd.waiting["general"]["c-1"].excluded == {"A1"}


async def test_a_call_over_before_the_confirmation_is_left_alone(
        two: World, clock: FakeClock) -> None:
    """Presence: the agent hung up while the phone was in doubt: the call ended as usual (the
    seat not ready, its phone still silent; no wrap-up here), nothing is taken back when the
    confirmation is up."""
    _call, _problem = await silent_mid_call(two)
    two.agent_hangs_up("A1")
    clock.advance(PHONE_CONFIRM_S)
    assert state(two, "A1") == (SeatState.NOT_READY, PHONE_GONE)
    two.acd.on_timer()
    assert state(two, "A1") == (SeatState.NOT_READY, PHONE_GONE)
    assert two.acd.find_waiter(call_id="c-1") is None
    assert not any(n == "Redirect" for n, _h in two.ami.actions)


async def test_a_phone_doubt_about_an_earlier_call_does_not_shield_the_next_one(
        two: World, clock: FakeClock) -> None:
    """Presence: the phone missed a probe during c-1, which then ended; it answered, A1 took
    c-2, and it missed a probe again within the 10 s: c-2 gets its own doubt and is taken back
    when it is up (a dead phone never keeps a caller for good)."""
    _call, problem = await silent_mid_call(two)
    two.agent_hangs_up("A1")
    del problem["PJSIP/1001"]  # it answers (no phone_back: the call's end drops the doubt)
    two.acd.set_state("A1", "ready")
    clock.advance(2)
    two.caller("c-2")
    rt = two.acd.seat("A1")
    await two.until(lambda: rt.call is not None and rt.call.answered)
    second = rt.call
    assert second is not None and second.call_id == "c-2"
    two.ami.feed(BridgeEnter(info("PJSIP/1001-0002", second.agent_uniqueid), "b-2"))
    two.ami.feed(BridgeEnter(info("PJSIP/carrier-c-2", "uid-c-2"), "b-2"))
    problem["PJSIP/1001"] = "phone 1001 does not answer"
    two.acd.phone_gone("PJSIP/1001", unreachable=True)
    clock.advance(PHONE_CONFIRM_S)
    two.acd.on_timer()
    assert second.life.state is CallState.WAITING
    await two.until(lambda: two.acd.find_waiter(call_id="c-2") is not None)


async def test_ready_is_refused_while_the_phone_is_unregistered(two: World) -> None:
    """Presence: set_state ready is refused while phone_check says the phone cannot ring; the
    phone back, it is accepted and the waiting caller offered."""
    problem: dict[str, str | None] = {"PJSIP/1001": "phone 1001 is not registered"}
    two.acd.phone_check = lambda endpoint: problem.get(endpoint)
    two.caller("c-1")
    with pytest.raises(ConsoleError) as refused:
        two.acd.set_state("A1", "ready", by="A1")
    assert refused.value.code == "invalid_state" and "not registered" in refused.value.message
    assert state(two, "A1")[0] is SeatState.LOGGED_OUT and two.offered("A1") is None
    problem.clear()
    two.acd.set_state("A1", "ready", by="A1")
    assert two.offered("A1") == "c-1"


async def test_a_phone_lost_during_wrap_up_is_not_made_ready_by_the_timer(
        tmp_path: Path, clock: FakeClock) -> None:
    """Presence: no call is offered to a phone that cannot ring, also when its seat was in
    wrap-up as the phone went."""
    settings = default_settings(wrap_up_s=0.05, require_disposition=False)
    async with make_world(tmp_path, agents=[A1], settings=settings, clock=clock) as w:
        await w.connected_call()
        w.agent_hangs_up("A1")
        assert state(w, "A1")[0] is SeatState.WRAP_UP
        w.acd.phone_check = lambda _endpoint: "phone 1001 is not registered"
        w.acd.phone_gone("PJSIP/1001")
        w.caller("c-2")
        rt = w.acd.seat("A1")
        await w.until(lambda: rt.wrap_up_due is None)
        assert w.offered("A1") is None
        assert rt.seat.state is not SeatState.READY


# -- the standing lineups (issue 12) ------------------------------------------------------------


def lines_match(world: World) -> None:
    """Each queue's lineup holds exactly what routing would see of its waiters, afresh."""
    acd = world.acd
    for name, queue in acd.waiting.items():
        skill = acd.policies[name].skill
        kept = acd.lines[name]
        assert sorted(c.call_id for c in kept) == sorted(queue), name
        for call_id, waiter in queue.items():
            assert kept.get(call_id) == waiter.view(skill), (name, call_id)


async def test_the_lineups_follow_arrivals_exclusions_moves_and_leaves(
        tmp_path: Path, clock: FakeClock) -> None:
    """The lineups AcdCore keeps for routing stay equal to the waiters, step by step: callers
    arrive, one is refused by an agent (an exclusion), one overflows to another queue, one is
    answered, one hangs up; and a restart rebuilds them."""
    settings = overflow_settings()
    async with make_world(tmp_path, agents=[A1, A2], settings=settings, clock=clock) as w:
        w.ami.rings["PJSIP/1001"] = "no_answer"
        w.caller("c-1", "general")
        clock.advance(1)
        w.caller("c-2", "general")
        w.caller("c-3", "english")
        lines_match(w)
        w.acd.set_state("A1", "ready")
        assert w.offered("A1") == "c-1"
        await w.until(lambda: w.acd.seat("A1").call is None)
        assert w.acd.waiting["general"]["c-1"].excluded == {"A1"}
        lines_match(w)
        clock.advance(30)
        w.acd.on_timer()  # c-1 and c-2 overflow to english, keeping their places
        assert "c-1" in w.acd.waiting["english"] and not w.acd.waiting["general"]
        lines_match(w)
        w.caller("c-4", "general")
        w.acd.set_state("A2", "ready")  # answers the head of english: c-1, the oldest
        await w.until(lambda: (call := w.acd.seat("A2").call) is not None and call.answered)
        assert w.offered("A2") == "c-1" and "c-1" not in w.acd.lines["english"]
        lines_match(w)
        w.ami.feed(Hangup(info("PJSIP/carrier-c-3", "uid-c-3"), 16, "Normal Clearing"))
        await w.until(lambda: "c-3" not in w.acd.waiting["english"])
        lines_match(w)
        await w.acd.flush()
        again = Acd(settings, w.acd.db, clock=clock)
        await again.start()
        try:
            assert sorted(c.call_id for c in again.lines["english"]) == ["c-2"]
            assert sorted(c.call_id for c in again.lines["general"]) == ["c-4"]
        finally:
            await again.close()
