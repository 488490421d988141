"""The ACD's sans-IO core (``acd/core.py``) tested with a plain list as ``emit``: no asyncio, no
database, no AMI, no Asterisk. Each test builds an ``AcdCore`` on a ``FakeClock``, makes the
inputs the edge would make (``enqueue``, ``set_state``, ``ring_answered``, AMI events,
``on_timer``...) and reads the effects it decided, in order. Bugs found are
``xfail(strict=True)``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from callcenter.acd.calls import CallInput, CallState
from callcenter.acd.core import AcdCore
from callcenter.acd.effects import (
    Announce,
    ArmTimer,
    ArmWrapUp,
    Effect,
    Hangup,
    Requeue,
    Ring,
    Row,
)
from callcenter.acd.notices import (
    CallConnected,
    CallEnded,
    CallOffered,
    QueueLogged,
    WrapUpOverdue,
)
from callcenter.acd.records import ActiveCall, SeatRuntime, Waiter
from callcenter.acd.seat import PHONE_GONE, SeatInput, SeatState
from callcenter.acd.targets import Target
from callcenter.config import AcdSettings, QueueSettings
from callcenter.errors import CallStateError, ConsoleError
from callcenter.store.agents import AgentRecord
from callcenter.telephony.ami_events import BridgeEnter, DialBegin
from callcenter.telephony.ami_events import Hangup as HangupEvent
from tests.unit.acd_world import FakeClock, default_settings, info

T0 = 1000.0
E = TypeVar("E")
Core = tuple[AcdCore, list[Effect], FakeClock]


A1 = AgentRecord("A1", "Agent A1", "agent", "PJSIP/1001")
A2 = AgentRecord("A2", "Agent A2", "agent", "PJSIP/1002")
#: a customer manager (not in the VIP team)
M1 = AgentRecord("M1", "Manager M1", "agent", "PJSIP/1101")


def make(agents: Sequence[AgentRecord] = (A1, A2), settings: AcdSettings | None = None) -> Core:
    """A core with ``agents`` (logged out) and ``settings``, its effects list and clock."""
    clock = FakeClock(T0)
    effects: list[Effect] = []
    core = AcdCore(settings or default_settings(), effects.append, clock)
    core.load(agents)
    core.linked = True  # Asterisk in reach, as the edge says after its resync
    return core, effects, clock


@pytest.fixture
def two() -> Core:
    """A1 (PJSIP/1001) and A2 (PJSIP/1002), queues general and english, no wrap-up."""
    return make()


def of(effects: Sequence[object], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def logged(effects: Sequence[object], event: str) -> list[QueueLogged]:
    return [e for e in of(effects, QueueLogged) if e.event == event]


def caller(core: AcdCore, call_id: str, queue: str = "general", *, tier: str = "",
           manager: str = "", phone: str = "") -> Waiter:
    """A caller (channel ``PJSIP/carrier-<id>``, uniqueid ``uid-<id>``) joins ``queue``."""
    context = {"customer.tier": tier} if tier else {}
    return core.enqueue(call_id, queue, f"PJSIP/carrier-{call_id}", f"uid-{call_id}", context,
                        phone=phone, manager=manager)


def offered(core: AcdCore, agent_id: str) -> str | None:
    call = core.seat(agent_id).call
    return call.call_id if call is not None else None


def ringing(core: AcdCore, agent_id: str) -> tuple[SeatRuntime, ActiveCall]:
    rt = core.seat(agent_id)
    assert rt.call is not None
    return rt, rt.call


def answer(core: AcdCore, agent_id: str) -> ActiveCall:
    """The agent's phone answers the ring (the originate's answer)."""
    rt, call = ringing(core, agent_id)
    core.ring_answered(rt, call, f"{rt.agent.endpoint}-0001")
    return call


def on_call(core: AcdCore, *, bridged: bool = False) -> ActiveCall:
    """A1 ready, caller c-1 queued and answered (ANSWERED); ``bridged``: Asterisk shows the
    agent's leg and the caller in one bridge (CONNECTED)."""
    core.set_state("A1", "ready")
    caller(core, "c-1")
    call = answer(core, "A1")
    if bridged:
        core.on_ami_event(BridgeEnter(info(call.agent_channel, call.agent_uniqueid), "b-1"))
        core.on_ami_event(BridgeEnter(info(call.waiter.channel, call.waiter.uniqueid), "b-1"))
        assert call.life.state is CallState.CONNECTED
    return call


def hung_up(uniqueid: str) -> HangupEvent:
    return HangupEvent(info(f"chan-{uniqueid}", uniqueid), 16, "Normal Clearing")


def life(call: ActiveCall) -> CallState:
    """The call's state, read afresh (a step moved it meanwhile)."""
    return call.life.state


def state(core: AcdCore, agent_id: str) -> tuple[SeatState, str]:
    seat = core.seat(agent_id).seat
    return seat.state, seat.reason


def first(effects: Sequence[object], test: Callable[[object], bool]) -> int:
    """The index of the first effect passing ``test``."""
    return next(n for n, e in enumerate(effects) if test(e))


def test_a_caller_queued_with_a_ready_seat_is_rung_at_once(two: Core) -> None:
    """Queued with a ready seat: the queue_waiting row, the 'enter' log, the offer, the ring to
    the agent's phone with the call and the caller's channel, then the timer, in that order."""
    core, effects, _ = two
    core.set_state("A1", "ready")
    effects.clear()
    caller(core, "c-1")
    order = [
        first(effects, lambda e: isinstance(e, Row) and "INTO queue_waiting" in e.sql),
        first(effects, lambda e: isinstance(e, QueueLogged) and e.event == "enter"),
        first(effects, lambda e: isinstance(e, CallOffered) and e.agent_id == "A1"),
        first(effects, lambda e: isinstance(e, Ring)),
        first(effects, lambda e: isinstance(e, ArmTimer)),
    ]
    assert order == sorted(order)
    [ring] = of(effects, Ring)
    assert (ring.endpoint, ring.exten, ring.ring_s) == ("PJSIP/1001", "s", 15.0)
    assert "CC_CALL=c-1" in ring.variables and "CC_CALLER=PJSIP/carrier-c-1" in ring.variables
    [offer] = of(effects, CallOffered)
    assert (offer.offer.call_id, offer.offer.direct) == ("c-1", False)
    assert state(core, "A1")[0] is SeatState.RINGING
    assert core.waiting["general"]["c-1"].ringing == "A1"


def test_an_answered_ring_connects_and_the_agent_hanging_up_starts_wrap_up() -> None:
    """ring_answered: CallConnected, the queue_waiting row deleted, the seat on call; the
    agent's leg hung up ends the call: CallEnded, the wrap-up timer armed, the seat wraps up."""
    core, effects, clock = make([A1], default_settings(wrap_up_s=30))
    call = on_call(core)
    assert CallConnected("A1", "c-1", recording=True) in effects
    assert Row("DELETE FROM queue_waiting WHERE call_id = ?", ("c-1",)) in effects
    assert state(core, "A1")[0] is SeatState.ON_CALL and "c-1" not in core.waiting["general"]
    assert call.life.state is CallState.ANSWERED
    clock.advance(60)
    effects.clear()
    core.on_ami_event(hung_up(call.agent_uniqueid))
    assert CallEnded("A1", "c-1", 30, answered=True, disposition_required=True) in effects
    assert ArmWrapUp("A1", 30) in effects
    assert [e.talk_s for e in logged(effects, "complete")] == [60]
    assert state(core, "A1")[0] is SeatState.WRAP_UP and core.seat("A1").call is None


def test_a_ring_not_answered_excludes_the_agent_and_rings_the_next(two: Core) -> None:
    """Ring-no-answer: the agent is excluded and goes not ready ("no answer"); the caller keeps
    the head of the line and the other ready agent is rung."""
    core, effects, clock = two
    core.set_state("A1", "ready")
    clock.advance(1)
    core.set_state("A2", "ready")
    caller(core, "c-1")
    rt, call = ringing(core, "A1")
    effects.clear()
    core.ring_failed(rt, call, "no answer")
    assert state(core, "A1") == (SeatState.NOT_READY, "no answer")
    assert core.waiting["general"]["c-1"].excluded == {"A1"}
    assert [e.agent_id for e in logged(effects, "noanswer")] == ["A1"]
    assert CallEnded("A1", "c-1", 0, answered=False) in effects
    [ring] = of(effects, Ring)
    assert ring.endpoint == "PJSIP/1002" and offered(core, "A2") == "c-1"


@pytest.mark.parametrize("tier", ["gold", "platinum"])
def test_the_better_tier_is_offered_first(tier: str) -> None:
    """Tiers: with one seat, a gold or platinum caller goes before an ordinary caller who came
    10 s earlier (a head start of 60 / 90 s)."""
    core, _, clock = make([A1])
    caller(core, "c-ord")
    clock.advance(10)
    caller(core, "c-vip", tier=tier)
    core.set_state("A1", "ready")
    assert offered(core, "A1") == "c-vip"
    assert core.waiting["general"]["c-ord"].ringing == ""


@pytest.mark.parametrize(("manager_ready", "rung"), [(False, "A1"), (True, "M1")])
def test_a_vip_caller_is_not_held_for_a_logged_out_manager(manager_ready: bool,
                                                           rung: str) -> None:
    """VIP stages: the manager logged out, the caller is not held for them (no VIP team
    either): the ready seat is rung at once; the manager ready, the manager is rung first,
    although A1 waited longer."""
    core, _, clock = make([A1, M1])
    core.set_state("A1", "ready")
    clock.advance(1)
    if manager_ready:
        core.set_state("M1", "ready")
    caller(core, "c-vip", tier="gold", manager="M1")
    assert offered(core, rung) == "c-vip"


def test_the_timer_overflows_a_waiter_keeping_the_place() -> None:
    """Overflow: after overflow_after_s, on_timer moves the caller to the overflow queue with
    the original position key (logged 'overflow' then 'enter')."""
    settings = default_settings(queues=[
        QueueSettings(name="general", announce_every_s=0, overflow_after_s=30,
                      overflow_queue="english"),
        QueueSettings(name="english", announce_every_s=0)])
    core, effects, clock = make([A1], settings)
    caller(core, "c-1")
    assert of(effects, ArmTimer)[-1] == ArmTimer(T0 + 30)
    clock.advance(29)
    core.on_timer()
    assert "c-1" in core.waiting["general"]
    clock.advance(1)
    effects.clear()
    core.on_timer()
    moved = core.waiting["english"]["c-1"]
    assert "c-1" not in core.waiting["general"]
    assert (moved.position_key, moved.arrived_at) == (T0, T0 + 30)
    assert [(e.queue, e.event) for e in of(effects, QueueLogged)] == [
        ("general", "overflow"), ("english", "enter")]


def test_the_timer_announces_the_position_to_all_but_the_head() -> None:
    """Announcements (Asterisk linked): every announce_every_s, callers behind the head hear
    how many are ahead and the wait, with the call-back offer; the head hears nothing."""
    settings = default_settings(queues=[QueueSettings(name="general", announce_every_s=30)])
    core, effects, clock = make([A1], settings)
    core.linked = True
    caller(core, "c-1")
    clock.advance(1)
    caller(core, "c-2")
    clock.advance(30)
    effects.clear()
    core.on_timer()
    [told] = of(effects, Announce)
    assert told.waiter.call_id == "c-2" and told.exten == "announce"
    files = told.files.split("&")
    assert files[0] == "callcenter/zh/queue_ahead"
    assert "callcenter/zh/queue_minutes" in files
    assert files[-1] == "callcenter/zh/queue_callback_offer"


def test_two_callers_ahead_are_liang_wei() -> None:
    """Readback rule: a count before a measure word says 两 (您前面还有两位客户), not 二."""
    settings = default_settings(queues=[QueueSettings(name="general", announce_every_s=30)])
    core, effects, clock = make([A1], settings)
    core.linked = True
    for n in (1, 2, 3):
        caller(core, f"c-{n}")
        clock.advance(1)
    clock.advance(30)
    effects.clear()
    core.on_timer()
    told = {a.waiter.call_id: a.files.split("&") for a in of(effects, Announce)}
    assert told["c-3"][:3] == ["callcenter/zh/queue_ahead", "callcenter/zh/num/liang",
                               "callcenter/zh/queue_callers"]


@pytest.mark.parametrize(("action", "exten"), [("callback", "closed"), ("voicemail", "closed"),
                                               ("hangup", "closed-bye")])
def test_a_closed_queue_tells_the_caller_and_offers_nobody(action: str, exten: str) -> None:
    """Hours: a caller reaching a closed queue is told so ('closed', or 'closed-bye' when the
    queue hangs up) and no seat is rung, though one is ready."""
    settings = default_settings(queues=[QueueSettings(name="general", announce_every_s=0,
                                                      hours="agents", closed_action=action)])
    core, effects, _ = make([A1], settings)
    core.is_open = lambda _schedule: False
    core.set_state("A1", "ready")
    caller(core, "c-1")
    [told] = of(effects, Announce)
    assert told.exten == exten and told.files == "callcenter/zh/agent_closed_queue"
    assert [e.call_id for e in logged(effects, "closed")] == ["c-1"]
    assert of(effects, Ring) == [] and state(core, "A1")[0] is SeatState.READY


def test_callers_waiting_when_the_queue_closes_are_still_served() -> None:
    """Closing time: callers already waiting are worked off (a seat that becomes ready is
    offered them); a caller who arrives closed and a call-back wait for the opening."""
    settings = default_settings(queues=[QueueSettings(name="general", announce_every_s=0,
                                                      hours="agents")])
    core, _, clock = make([A1], settings)
    hours = {"agents": True}
    core.is_open = hours.get
    early = caller(core, "c-1")
    booked = caller(core, "c-2", phone="13800000002")
    core.keep_place_by_callback(booked, "13800000002")
    hours["agents"] = False  # closes
    late = caller(core, "c-3")
    assert late.arrived_closed and not early.arrived_closed
    clock.advance(10)
    core.set_state("A1", "ready")
    assert offered(core, "A1") == "c-1"
    waits = {row["call_id"]: row["reason"]["code"] for row in core.queue_snapshot()[0]["waiting"]}
    assert waits["c-2"] == waits["c-3"] == "queue_closed"
    answer(core, "A1")
    core.on_ami_event(hung_up(core.seat("A1").call.agent_uniqueid))  # type: ignore[union-attr]
    assert state(core, "A1")[0] is SeatState.READY and offered(core, "A1") is None
    hours["agents"] = True  # opens: the next look offers the longest waiting
    core.on_timer()
    assert offered(core, "A1") in ("c-2", "c-3")


def test_a_call_back_rings_the_agent_to_dial_the_number(two: Core) -> None:
    """Call-back: the caller keeps the place by call-back; a ready seat is rung into the
    'callback' extension with CC_NUMBER (no caller channel to bridge)."""
    core, effects, _ = two
    waiter = caller(core, "c-1", phone="13800000001")
    core.keep_place_by_callback(waiter, "13800000001")
    assert [e.call_id for e in logged(effects, "callback")] == ["c-1"]
    core.set_state("A1", "ready")
    [ring] = of(effects, Ring)
    assert ring.exten == "callback" and "CC_NUMBER=13800000001" in ring.variables
    assert not any(v.startswith("CC_CALLER=") for v in ring.variables)


def test_an_undialable_call_back_rings_without_variables_and_is_dropped(two: Core) -> None:
    """Call-back: a phone number the dial rules refuse (a short code) gives a Ring without
    variables; callback_refused drops the caller ('leave') and the seat is ready again."""
    core, effects, _ = two
    waiter = caller(core, "c-1", phone="12345")
    core.keep_place_by_callback(waiter, "12345")
    core.set_state("A1", "ready")
    [ring] = of(effects, Ring)
    assert ring.exten == "callback" and list(ring.variables) == []
    core.callback_refused(ring.seat, ring.call)
    assert [e.call_id for e in logged(effects, "leave")] == ["c-1"]
    assert core.find_waiter(call_id="c-1") is None
    assert state(core, "A1")[0] is SeatState.READY and core.seat("A1").call is None


def test_a_required_disposition_holds_the_seat_in_wrap_up_until_saved() -> None:
    """Wrap-up with require_disposition: Ready is refused (disposition_required); the timer
    over, WrapUpOverdue and the seat stays in wrap-up; saved, Ready is accepted."""
    core, effects, _ = make([A1], default_settings(wrap_up_s=30, require_disposition=True))
    call = on_call(core)
    core.on_ami_event(hung_up(call.agent_uniqueid))
    with pytest.raises(ConsoleError) as refused:
        core.set_state("A1", "ready", by="A1")
    assert refused.value.code == "disposition_required"
    core.wrap_up_expired("A1")
    assert of(effects, WrapUpOverdue) == [WrapUpOverdue("A1", "c-1", T0)]
    assert state(core, "A1")[0] is SeatState.WRAP_UP
    core.disposition_saved("A1", "c-1")
    core.set_state("A1", "ready", by="A1")
    assert state(core, "A1") == (SeatState.READY, "")


def test_a_ready_seat_whose_phone_is_gone_goes_not_ready(two: Core) -> None:
    """Presence: phone_gone on a ready seat's phone -> not ready (PHONE_GONE); the other seat
    is untouched and gets the next caller."""
    core, _, _ = two
    core.set_state("A1", "ready")
    core.set_state("A2", "ready")
    core.phone_gone("PJSIP/1001")
    assert state(core, "A1") == (SeatState.NOT_READY, PHONE_GONE)
    caller(core, "c-1")
    assert offered(core, "A1") is None and offered(core, "A2") == "c-1"


def test_a_phone_lost_mid_call_requeues_the_caller_with_the_place(two: Core) -> None:
    """Presence: the phone lost during a queued call -> Requeue (hanging up the agent's leg),
    the seat not ready; requeued puts the caller back with the original place, not to A1."""
    core, effects, clock = two
    call = on_call(core)
    clock.advance(10)
    caller(core, "c-2")
    effects.clear()
    core.phone_gone("PJSIP/1001")
    [requeue] = of(effects, Requeue)
    assert (requeue.queue, requeue.exclude, requeue.hang_up) == \
        ("general", "A1", "PJSIP/1001-0001")
    assert state(core, "A1") == (SeatState.NOT_READY, PHONE_GONE)
    assert call.life.state is CallState.WAITING and core.seat("A1").call is None
    clock.advance(1)
    core.requeued(requeue.waiter, requeue.queue, requeue.exclude)
    back = core.waiting["general"]["c-1"]
    assert back.position_key == T0 and back.excluded == {"A1"}
    core.set_state("A2", "ready")
    assert offered(core, "A2") == "c-1"


def test_an_illegal_move_raises_and_leaves_the_seat_as_it_was(two: Core) -> None:
    """Resume of a call that is connected, not held: CallStateError, call and seat unchanged."""
    core, effects, _ = two
    call = on_call(core, bridged=True)
    rt = core.seat("A1")
    before = len(effects)
    with pytest.raises(CallStateError):
        core.call_moved(rt, CallInput.RESUME, SeatInput.RESUME, by="A1")
    assert call.life.state is CallState.CONNECTED and state(core, "A1")[0] is SeatState.ON_CALL
    assert len(effects) == before


def test_a_transfer_to_an_agent_hangs_up_the_sender_and_rings_the_other(two: Core) -> None:
    """Handed on to agent A2: A2's phone is rung with the caller (a direct offer) and A1's leg
    is hung up; when it is gone, A1 wraps up (no wrap-up time: ready)."""
    core, effects, _ = two
    call = on_call(core, bridged=True)
    core.set_state("A2", "ready")
    effects.clear()
    core.hand_on(core.seat("A1"), call, CallInput.HANDED_ON, Target(kind="agent", value="A2"),
                 by="A1")
    assert call.life.state is CallState.ENDED
    [ring] = of(effects, Ring)
    assert ring.endpoint == "PJSIP/1002" and "CC_CALLER=PJSIP/carrier-c-1" in ring.variables
    assert [e.offer.direct for e in of(effects, CallOffered)] == [True]
    assert first(effects, lambda e: isinstance(e, Ring)) \
        < first(effects, lambda e: e == Hangup(call.agent_uniqueid))
    assert state(core, "A2")[0] is SeatState.RINGING
    core.on_ami_event(hung_up(call.agent_uniqueid))
    assert state(core, "A1")[0] is SeatState.READY and core.seat("A1").call is None


def consulting(core: AcdCore) -> ActiveCall:
    """A1 on call c-1 (bridged), A2 ready; A1 consults A2 and Asterisk dials A2's phone."""
    call = on_call(core, bridged=True)
    core.set_state("A2", "ready")
    core.consult_offered(core.seat("A1"), call, Target(kind="agent", value="A2"))
    core.on_ami_event(DialBegin(info(call.agent_channel, call.agent_uniqueid),
                                info("PJSIP/1002-0002", "uid-a2"), "PJSIP/1002"))
    return call


def test_a_consulted_agent_rings_with_the_pop_and_is_offered_nothing_else(two: Core) -> None:
    """Consulting agent A2: A2's seat rings with the caller's pop (saying who consults) and a
    caller arriving meanwhile is not offered to A2; A2 answering makes the seat on call."""
    core, effects, _ = two
    effects.clear()
    call = consulting(core)
    [offer] = [e for e in of(effects, CallOffered) if e.agent_id == "A2"]
    assert offer.offer.call_id == "c-1" and offer.offer.context["consulted_by"] == "A1"
    assert state(core, "A2")[0] is SeatState.RINGING and core.seat("A2").call is None
    effects.clear()
    caller(core, "c-2")
    assert offered(core, "A2") is None and not of(effects, Ring)
    core.on_ami_event(BridgeEnter(info("PJSIP/1002-0002", "uid-a2"), "b-consult"))
    assert state(core, "A2")[0] is SeatState.ON_CALL and call.consult_talking
    assert CallConnected("A2", "c-1", False) in effects


def test_a_consultation_that_ends_frees_the_consulted_agent_at_once(two: Core) -> None:
    """The consulted agent hangs up (or is hung up on): their seat is ready again at once (no
    after-call work for an internal consultation) and the next caller may be offered."""
    core, effects, _ = two
    consulting(core)
    core.on_ami_event(BridgeEnter(info("PJSIP/1002-0002", "uid-a2"), "b-consult"))
    caller(core, "c-2")
    effects.clear()
    core.on_ami_event(HangupEvent(info("PJSIP/1002-0002", "uid-a2"), 16, "Normal Clearing"))
    assert CallEnded("A2", "c-1", 0, answered=False) in effects  # nothing to wrap up
    assert offered(core, "A2") == "c-2" and state(core, "A2")[0] is SeatState.RINGING


def test_the_consulting_agent_losing_the_phone_frees_the_consulted_agent(two: Core) -> None:
    """A1's phone is gone while A1 consults A2: the caller goes back to the queue, the
    consultation's leg is hung up and A2's seat is free at once (it stayed on a call with
    nobody, offered nothing, for good)."""
    core, effects, _ = two
    call = consulting(core)
    core.on_ami_event(BridgeEnter(info("PJSIP/1002-0002", "uid-a2"), "b-consult"))
    effects.clear()
    core.phone_gone("PJSIP/1001")
    assert of(effects, Requeue) and Hangup("PJSIP/1002-0002") in effects
    assert CallEnded("A2", "c-1", 0, answered=False) in effects
    assert core.seat("A2").consulted_on == "" and state(core, "A2")[0] is SeatState.READY
    assert call.consult_agent == ""


def test_losing_the_phone_in_a_conference_leaves_it_to_the_others(two: Core) -> None:
    """A1's phone is gone during a conference: the caller talks on with the third party in the
    room (not pulled back to the queue); A1's leg is hung up, and its hang-up ends the seat's
    call as an agent leaving does, the seat then not ready (the phone cannot ring)."""
    core, effects, _ = two
    call = on_call(core, bridged=True)
    core.call_moved(core.seat("A1"), CallInput.CONFERENCE, None, by="A1")
    gone = "phone 1001 is not registered"
    core.phone_check = lambda _endpoint: gone
    effects.clear()
    core.phone_gone("PJSIP/1001")
    assert not of(effects, Requeue) and Hangup(call.agent_channel) in effects
    assert core.seat("A1").call is call and call.life.state is CallState.CONFERENCED
    core.on_ami_event(hung_up(call.agent_uniqueid))
    assert core.seat("A1").call is None and life(call) is CallState.ENDED
    assert state(core, "A1") == (SeatState.NOT_READY, PHONE_GONE)


def test_a_handed_on_call_is_not_taken_back_when_the_phone_goes(two: Core) -> None:
    """A call the agent already handed on (a blind transfer: ended for the seat, its leg not
    yet gone) is not the queue's to take back when the phone goes meanwhile."""
    core, effects, _ = two
    call = on_call(core, bridged=True)
    core.hand_on(core.seat("A1"), call, CallInput.HANDED_ON,
                 Target(kind="number", value="13912345678"), by="A1")
    effects.clear()
    core.phone_gone("PJSIP/1001")
    assert not of(effects, Requeue)


def test_a_consultation_to_an_agent_who_is_not_ready_is_refused(two: Core) -> None:
    core, effects, _ = two
    call = on_call(core, bridged=True)
    effects.clear()
    with pytest.raises(ConsoleError) as refused:
        core.consult_offered(core.seat("A1"), call, Target(kind="agent", value="A2"))
    assert refused.value.code == "invalid_state" and effects == []
    assert call.consult_target == "" and state(core, "A2")[0] is SeatState.LOGGED_OUT


def test_a_completed_consultation_gives_the_call_to_the_consulted_agent(two: Core) -> None:
    """Completing: the caller joins A2, A1's leg is hung up; the call is A2's from then on,
    ended by A2's leg hanging up (A2 then wraps up, with the call's disposition due)."""
    core, effects, clock = two
    call = consulting(core)
    core.on_ami_event(BridgeEnter(info("PJSIP/1002-0002", "uid-a2"), "b-consult"))
    effects.clear()
    core.hand_on(core.seat("A1"), call, CallInput.HANDED_ON, Target(kind="agent", value="A2"),
                 by="A1", consulted=True)
    assert Hangup(call.agent_uniqueid) in effects and not of(effects, Ring)
    taken = core.seat("A2").call
    assert taken is not None and taken.call_id == "c-1" and taken.agent_uniqueid == "uid-a2"
    assert taken.life.state is CallState.CONNECTED and core.seat("A2").consulted_on == ""
    assert [e.event for e in of(effects, QueueLogged)] == ["transfer"]  # not a 2nd connect
    core.on_ami_event(hung_up(call.agent_uniqueid))
    clock.advance(30)
    core.on_ami_event(HangupEvent(info("PJSIP/1002-0002", "uid-a2"), 16, "Normal Clearing"))
    assert core.seat("A2").call is None and core.seat("A2").last_call is taken
    [complete] = [e for e in logged(effects, "complete") if e.agent_id == "A2"]
    assert complete.talk_s == 30


def waiting_row(call_id: str, arrived: float, *, phone: str = "",
                callback: bool = False) -> tuple[Any, ...]:
    """A ``RESTORE_WAITING`` row (an ordinary caller in general)."""
    return (call_id, "general", "ordinary", arrived, "" if callback else f"PJSIP/carrier-{call_id}",
            f"uid-{call_id}", "", "", phone, int(callback), json.dumps({}), None)


def test_restored_waiters_keep_their_order_and_a_bad_call_back_is_dropped(two: Core) -> None:
    """Restart: waiting callers come back in order; a call-back whose number is not a phone
    number (dial syntax) is dropped ('leave'), never dialled."""
    core, effects, _ = two
    core.restore_waiting([waiting_row("c-1", T0 - 30), waiting_row("c-2", T0 - 20),
                          waiting_row("c-3", T0 - 10, phone="123&Local/9@hotline",
                                      callback=True)])
    assert list(core.waiting["general"]) == ["c-1", "c-2"]
    assert [e.call_id for e in logged(effects, "leave")] == ["c-3"]
    core.set_state("A1", "ready")
    assert offered(core, "A1") == "c-1"


def test_a_ring_answered_while_the_engine_was_down_is_connected_on_restart(two: Core) -> None:
    """Restart: a seat left ringing with its agent leg still there is re-attached unsettled;
    Asterisk's channel row Up settles it as connected, answered when the leg's age says."""
    core, effects, clock = two
    clock.advance(100)
    core.restore_waiting([waiting_row("c-1", T0)])
    core.restore_seats([("A1", "ringing", "", T0 + 50, None, 3)],
                       [("A1", "c-1", "acd-uid-1", "PJSIP/carrier-c-1", "general", T0 + 50)])
    live = {"acd-uid-1": "PJSIP/1001-0001", "uid-c-1": "PJSIP/carrier-c-1"}
    core.restore_rings(live)
    rt, call = ringing(core, "A1")
    assert call.unsettled and core.unsettled()
    channels = {"acd-uid-1": {"Channel": "PJSIP/1001-0001", "ChannelState": "6",
                              "Duration": "00:00:40"}}
    assert core.stale_rings(channels) == []
    core.settle_rings(channels)
    assert CallConnected("A1", "c-1", recording=True) in effects
    assert state(core, "A1")[0] is SeatState.ON_CALL and rt.calls_taken == 4
    assert call.connected_at == T0 + 60 and "c-1" not in core.waiting["general"]


# -- the timer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["ringing", "unlinked", "unknown_overflow"])
def test_the_timer_is_not_rearmed_at_once_for_what_it_will_not_do(case: str) -> None:
    """What time alone changes: after on_timer, the next timer is not due at once for an
    announcement that is skipped (the caller is being rung, or Asterisk is unlinked) or an
    overflow to a queue that does not exist."""
    overflow = case == "unknown_overflow"
    queue = QueueSettings(name="general", announce_every_s=0 if overflow else 30,
                          overflow_after_s=30 if overflow else 0, overflow_queue="nowhere")
    # (the settings refuse an overflow to no queue; the core must not spin on one either)
    core, effects, clock = make([A1], default_settings().model_copy(update={"queues": [queue]}))
    core.linked = case != "unlinked"
    caller(core, "c-1")
    clock.advance(25)
    if case == "ringing":
        core.set_state("A1", "ready")
        assert offered(core, "A1") == "c-1"
    clock.advance(5)
    core.on_timer()
    at = of(effects, ArmTimer)[-1].at
    assert at is None or at >= clock() + 1


def test_the_settings_refuse_an_overflow_to_no_queue_and_twice_the_same_name() -> None:
    with pytest.raises(ValidationError, match="overflow_queue 'nowhere' is not a queue"):
        AcdSettings(queues=[QueueSettings(name="general", overflow_queue="nowhere")])
    with pytest.raises(ValidationError, match="queue names must differ"):
        AcdSettings(queues=[QueueSettings(name="general"), QueueSettings(name="general")])
