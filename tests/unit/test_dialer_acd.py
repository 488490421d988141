"""What the dialer needs of the ACD core (``acd/core.py``, a list as ``emit``): a dialer call
rings the agent into ``[acd-agent]`` exten ``task`` with its variables; a call-back leg that
hangs up before its originate's answer (a customer busy at once) still ends the seat's call.
And the dialplan's reports as values (``dialer/events.py``)."""

from __future__ import annotations

from callcenter.acd.core import AcdCore
from callcenter.acd.effects import Effect, Ring, Row
from callcenter.acd.notices import CallEnded
from callcenter.acd.records import Waiter
from callcenter.acd.seat import SeatState
from callcenter.broker.interface import Tier
from callcenter.dialer.events import DialerReport, report_of
from callcenter.store.agents import AgentRecord
from callcenter.telephony.ami_events import Hangup as HangupEvent
from callcenter.telephony.ami_events import OtherEvent
from tests.unit.acd_world import FakeClock, default_settings, info

A1 = AgentRecord("A1", "Agent A1", "agent", "PJSIP/1001")


def ready_core() -> tuple[AcdCore, list[Effect]]:
    effects: list[Effect] = []
    core = AcdCore(default_settings(), effects.append, FakeClock(1000.0))
    core.load([A1])
    core.set_state("A1", "ready")
    return core, effects


def dialer_waiter(call_id: str = "task-0123456789abcdef") -> Waiter:
    return Waiter(call_id, "", Tier.ORDINARY, 1000.0, "", "", "880001", phone="17100000001",
                  callback=True, dial={"CC_ATTEMPT": call_id, "CC_CID": "95500",
                                       "CC_AMD": "1", "CC_DIAL_TIMEOUT": "25"})


def test_a_dialer_call_rings_the_agent_into_the_task_extension_with_its_variables() -> None:
    core, effects = ready_core()
    core.offer_direct(core.seat("A1"), dialer_waiter())
    [ring] = [e for e in effects if isinstance(e, Ring)]
    assert ring.exten == "task"
    assert "CC_NUMBER=17100000001" in ring.variables
    assert {"CC_ATTEMPT=task-0123456789abcdef", "CC_CID=95500", "CC_AMD=1"} <= set(ring.variables)
    # the plan's ring time replaces the call-back's 60 s
    assert [v for v in ring.variables if v.startswith("CC_DIAL_TIMEOUT=")] \
        == ["CC_DIAL_TIMEOUT=25"]


def test_a_plain_call_back_keeps_its_extension() -> None:
    core, effects = ready_core()
    waiter = dialer_waiter()
    waiter.dial = {}
    core.offer_direct(core.seat("A1"), waiter)
    [ring] = [e for e in effects if isinstance(e, Ring)]
    assert ring.exten == "callback" and "CC_DIAL_TIMEOUT=60" in ring.variables


def test_a_leg_gone_before_the_originates_answer_ends_the_call() -> None:
    core, effects = ready_core()
    rt = core.seat("A1")
    core.offer_direct(rt, dialer_waiter())
    call = rt.call
    assert call is not None
    # the customer was busy at once: the agent's leg hung up before Originate answered
    core.on_ami_event(HangupEvent(info("Local/7001@agent-answer-1;1", call.agent_uniqueid),
                                  16, "Normal Clearing"))
    assert rt.call is call  # the originate's answer settles it
    core.ring_answered(rt, call, "Local/7001@agent-answer-1;1")
    assert rt.call is None and rt.seat.state is not SeatState.ON_CALL
    ended = [e for e in effects if isinstance(e, CallEnded)]
    assert [(e.call_id, e.answered) for e in ended] == [("task-0123456789abcdef", True)]


def event(**headers: str) -> OtherEvent:
    return OtherEvent("UserEvent", {"UserEvent": "CallCenterDialer", **headers})


def test_the_dialplans_reports() -> None:
    call_id = "task-0123456789abcdef"
    assert report_of(event(Attempt=call_id, Stage="answered")) == \
        DialerReport(call_id, "answered")
    assert report_of(event(Attempt=call_id, Stage="amd", Status="MACHINE",
                           Cause="LONGGREETING-1600-1500")) == \
        DialerReport(call_id, "amd", "MACHINE")
    assert report_of(event(Attempt=call_id, Stage="ended", DialStatus="ANSWER", Talk="12")) == \
        DialerReport(call_id, "ended", "ANSWER", 12.0)
    assert report_of(event(Attempt=call_id, Stage="ended", DialStatus="BUSY", Talk="")) == \
        DialerReport(call_id, "ended", "BUSY", None)
    # not ours, or malformed: ignored
    assert report_of(event(Attempt="out-0123", Stage="ended")) is None
    assert report_of(event(Attempt=call_id, Stage="dance")) is None
    assert report_of(OtherEvent("UserEvent", {"UserEvent": "CallCenterLegParked"})) is None


def test_a_dialer_ring_lost_with_the_ami_link_ends_as_lost_not_as_missed() -> None:
    """The reviewer's C1: the AMI link dropped while the agent's phone rang; when it is back,
    the agent's leg is gone (answered, customer dialled and hung up while unseen?). The ACD
    says "lost", so the dialer never treats it as "the customer was never dialled"."""
    core, effects = ready_core()
    rt = core.seat("A1")
    core.offer_direct(rt, dialer_waiter())
    call = rt.call
    assert call is not None and core.ring_link_lost(rt, call, "link lost")
    effects.clear()
    core.settle_rings({})  # the agent's leg is gone
    assert [(e.answered, e.lost) for e in effects if isinstance(e, CallEnded)] == [(False, True)]
    # a failed Originate is the one proof that the customer was never dialled
    core.set_state("A1", "ready")
    core.offer_direct(rt, dialer_waiter("task-00000000000000ff"))
    call = rt.call
    assert call is not None
    effects.clear()
    core.ring_failed(rt, call, "no answer")
    assert [(e.answered, e.lost) for e in effects if isinstance(e, CallEnded)] \
        == [(False, False)]


def test_a_forced_state_change_while_a_dialer_call_rings_ends_it() -> None:
    """The reviewer's M2: a supervisor forces the ringing seat Not Ready: the ring is withdrawn
    and its end told (the dialer frees the agent and the task)."""
    core, effects = ready_core()
    rt = core.seat("A1")
    core.offer_direct(rt, dialer_waiter())
    effects.clear()
    core.set_state("A1", "not_ready", "meeting", by="sup", force=True)
    assert rt.call is None
    assert [(e.call_id, e.answered) for e in effects if isinstance(e, CallEnded)] \
        == [("task-0123456789abcdef", False)]


def test_answering_a_dialer_call_closes_no_call_back_request() -> None:
    """The reviewer's M5: the agent answering a dialer (or click-to-call) ring is not the
    customer's queue call-back done (the customer may be busy); a queue call-back's is."""
    core, effects = ready_core()
    rt = core.seat("A1")
    core.offer_direct(rt, dialer_waiter())
    call = rt.call
    assert call is not None
    core.ring_answered(rt, call, "PJSIP/1001-0001")
    assert rt.seat.state is SeatState.ON_CALL
    assert not [e for e in effects if isinstance(e, Row) and "service_requests" in e.sql]
    # a queue call-back (the caller pressed 1, their place kept) is the caller's request done
    core, effects = ready_core()
    core.set_state("A1", "not_ready", "break")
    waiter = core.enqueue("c-1", "general", "PJSIP/carrier-c-1", "uid-c-1", {},
                          phone="13812345678")
    core.keep_place_by_callback(waiter, "13812345678")
    core.set_state("A1", "ready")
    call = rt2.call if (rt2 := core.seat("A1")).call is not None else None
    assert call is not None and call.call_id == "c-1"
    core.ring_answered(rt2, call, "PJSIP/1001-0002")
    assert [e.params for e in effects if isinstance(e, Row) and "service_requests" in e.sql] \
        == [("13812345678",)]
