"""What the ACD tells its listeners (the console backend, the figures, tests), as typed notices.

One class per happening, frozen, carrying plain values (never the ACD's own objects): a listener
cannot change the ACD's state through a notice, and a new field is seen by mypy everywhere it
matters. The console backend turns them into the console protocol's events by type (``match``),
not by renaming strings. ``agent_id`` names the one agent a notice is for; notices without it are
for the supervisors' views.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from callcenter.acd.figures import QueueEvent

__all__ = [
    "Announced", "CallConnected", "CallEnded", "CallHeld", "CallOffered", "CallResumed",
    "ConferenceChanged", "ConsultChanged", "Listener", "MonitorChanged", "Notice", "Offer",
    "QueueLogged",
    "QueuesChanged", "RecordingChanged", "SeatChanged", "WrapUpOverdue",
]


@dataclass(frozen=True, slots=True)
class SeatChanged:
    """A seat moved (or its phone changed): ``seat`` is the seat as the consoles show it."""

    agent_id: str
    seat: Mapping[str, object]
    from_state: str


@dataclass(frozen=True, slots=True)
class QueuesChanged:
    """Someone joined, left or moved in a queue."""


#: a row of the queue log, as the figures read it (one class for both: ``figures.QueueEvent``)
QueueLogged = QueueEvent


@dataclass(frozen=True, slots=True)
class Offer:
    """What is known of a call when it is offered (the screen pop is built from it)."""

    call_id: str
    queue: str
    tier: str
    account: str
    phone: str
    manager: str
    callback: bool
    direct: bool
    arrived_at: float
    offered_at: float
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallOffered:
    agent_id: str
    offer: Offer


@dataclass(frozen=True, slots=True)
class CallConnected:
    agent_id: str
    call_id: str
    recording: bool


@dataclass(frozen=True, slots=True)
class CallHeld:
    agent_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class CallResumed:
    agent_id: str
    call_id: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The seat's call ended: ``answered`` false for a ring that did not connect.
    ``disposition_required``: the wrap-up must be saved before the seat can be ready.
    ``lost``: the ring's outcome is unknown (the AMI link was lost while it rang: the agent
    may have answered meanwhile), not a ring that failed."""

    agent_id: str
    call_id: str
    wrap_up_s: float
    answered: bool
    disposition_required: bool = False
    lost: bool = False


@dataclass(frozen=True, slots=True)
class RecordingChanged:
    agent_id: str
    call_id: str
    state: Literal["on", "paused"]


@dataclass(frozen=True, slots=True)
class ConsultChanged:
    """A consultation's progress: ``ringing`` (dialled), ``talking`` (answered), ``ended``."""

    agent_id: str
    call_id: str
    state: Literal["ringing", "talking", "ended"]
    target: str


@dataclass(frozen=True, slots=True)
class ConferenceChanged:
    agent_id: str
    call_id: str
    target: str


@dataclass(frozen=True, slots=True)
class MonitorChanged:
    """A supervisor's listen / whisper / barge on an agent's call began (Asterisk's
    ``ChanSpyStart``) or ended (the supervisor's spy leg hung up)."""

    supervisor_id: str
    agent_id: str
    call_id: str
    mode: str
    state: Literal["on", "off"]


@dataclass(frozen=True, slots=True)
class Announced:
    """A waiting caller was played ``files`` (position, long wait, closed queue)."""

    call_id: str
    files: str


@dataclass(frozen=True, slots=True)
class WrapUpOverdue:
    """The wrap-up time is over but the required disposition was not saved: the seat stays in
    wrap-up (it is not made ready with the form empty) and the agent and supervisors are told."""

    agent_id: str
    call_id: str
    since: float


Notice = (SeatChanged | QueuesChanged | QueueLogged | CallOffered | CallConnected | CallHeld
          | CallResumed | CallEnded | RecordingChanged | ConsultChanged | ConferenceChanged
          | MonitorChanged | Announced | WrapUpOverdue)

Listener = Callable[[Notice], None]
