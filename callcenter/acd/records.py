"""The ACD core's records: a caller waiting (``Waiter``), a call offered to or connected with a
seat (``ActiveCall``, its state a ``CallLife``), a seat at run time (``SeatRuntime``) and a
supervisor's spy leg (``Monitor``). Plain data: the core (``acd/core.py``) owns and changes them;
effects (``acd/effects.py``) and call controls (``acd/control.py``) name them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from callcenter.acd import routing
from callcenter.acd.calls import CallLife, CallState
from callcenter.acd.seat import Seat
from callcenter.broker.interface import Tier
from callcenter.ivr.speech import Lang
from callcenter.store.agents import AgentRecord

__all__ = ["ActiveCall", "Monitor", "SeatRuntime", "Waiter"]


@dataclass
class Waiter:
    """A caller in a queue (or holding a place there by call-back)."""

    call_id: str
    queue: str
    tier: Tier
    arrived_at: float
    channel: str
    uniqueid: str
    account: str = ""
    manager: str = ""
    phone: str = ""
    callback: bool = False
    context: dict[str, str] = field(default_factory=dict)
    position_key: float | None = None
    excluded: set[str] = field(default_factory=set)
    ringing: str = ""
    announced_at: float = 0.0
    #: offered to one agent directly (click-to-call, transfer to an agent), not queued
    direct: bool = False
    #: the caller was told the wait is long (max_wait_s) or the queue is closed
    told_long_wait: bool = False
    #: the caller arrived while the queue was closed (told so): served once it opens
    arrived_closed: bool = False
    #: a dialer call's variables (``dialer/``: CC_ATTEMPT, CC_CID, CC_AMD, CC_DIAL_TIMEOUT):
    #: the call-back is rung into ``[acd-agent]`` exten ``task`` with them
    dial: dict[str, str] = field(default_factory=dict)

    @property
    def lang(self) -> Lang:
        """The language the caller chose in the IVR (Chinese unless English)."""
        return "en" if self.context.get("lang") == "en" else "zh"

    def view(self, skill: str | None) -> routing.WaitingCall:
        return routing.WaitingCall(self.call_id, self.tier, self.arrived_at,
                                   manager=self.manager or None, skill=skill,
                                   position_key=self.position_key,
                                   excluded=frozenset(self.excluded))


@dataclass
class ActiveCall:
    """A call offered to or connected with a seat; its state is ``life`` (``acd/calls.py``)."""

    waiter: Waiter
    agent_uniqueid: str
    offered_at: float
    recording: str = ""
    agent_channel: str = ""
    connected_at: float | None = None
    recording_paused: bool = False
    #: the consulted party's channel once Asterisk named it (the agent leg's DialBegin)
    consult_channel: str = ""
    consult_target: str = ""
    conference: str = ""
    #: the consulted party's uniqueid (with ``consult_channel``)
    consult_uniqueid: str = ""
    #: the consulted agent, when an agent is consulted (their seat is busy meanwhile)
    consult_agent: str = ""
    #: the consulted party answered (their channel entered a bridge)
    consult_talking: bool = False
    #: the agent's leg waits in ``[acd-agent]`` (held, or after a consultation): Asterisk's
    #: ``CallCenterLegParked`` UserEvent said so and it has not entered a bridge or dialled since
    agent_parked: bool = False
    #: the bridges Asterisk last showed the agent's leg and the caller in
    agent_bridge: str = ""
    caller_bridge: str = ""
    #: the agent's leg hung up before the originate's answer came (a call-back whose customer
    #: was busy at once): the call ends as soon as that answer connects it
    gone_early: bool = False
    life: CallLife = field(init=False)
    #: the state the call starts in (RINGING; UNSETTLED or CONNECTED when re-attached)
    state: dataclasses.InitVar[CallState] = CallState.RINGING

    def __post_init__(self, state: CallState) -> None:
        self.life = CallLife(self.waiter.call_id, now=self.offered_at, state=state)

    @property
    def call_id(self) -> str:
        return self.waiter.call_id

    @property
    def held(self) -> bool:
        """The caller is on hold (held, or during a consultation)."""
        return self.life.state in (CallState.HELD, CallState.CONSULTING)

    @property
    def unsettled(self) -> bool:
        """The originate's answer was lost with the AMI link: ringing, answered or gone is not
        known until ``_settle_rings`` reads Asterisk's channels."""
        return self.life.state is CallState.UNSETTLED

    @property
    def answered(self) -> bool:
        return self.life.live


@dataclass
class SeatRuntime:
    agent: AgentRecord
    seat: Seat
    ready_since: float | None = None
    calls_taken: int = 0
    call: ActiveCall | None = None
    last_call: ActiveCall | None = None
    #: when the wrap-up timer (``ArmWrapUp``) fires, while one is armed
    wrap_up_due: float | None = None
    #: the call whose disposition must be saved before the seat is ready (``require_disposition``)
    disposition_due: str = ""
    #: the call another agent consults this one on (``consult_offered``): the seat rings, then
    #: talks, and is offered nothing else meanwhile
    consulted_on: str = ""
    #: the phone the directory gave the agent during a call (``add_agent``): rung from the
    #: seat's next offer on, once this call is over
    next_endpoint: str = ""

    def data(self) -> dict[str, Any]:
        return {"agent_id": self.agent.agent_id, "name": self.agent.name,
                "state": self.seat.state.value, "reason": self.seat.reason,
                "since": self.seat.since,
                "call_id": self.call.call_id if self.call else ""}


@dataclass
class Monitor:
    """A supervisor's spy leg on an agent's call (originated with ``uniqueid``)."""

    supervisor_id: str
    agent_id: str
    call_id: str
    mode: str
    uniqueid: str
    on: bool = False
