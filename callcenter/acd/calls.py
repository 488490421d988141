"""A call's life in the ACD, sans-IO: one state per call, moved by inputs through one table.

A caller who reaches the ACD is WAITING in a queue. Offered to a seat, the call is RINGING (the
agent's phone is originated); if the originate's answer is lost with the AMI link the ring is
UNSETTLED until Asterisk's channel list says what happened. The agent answers: ANSWERED (the
agent's leg runs ``Bridge()`` to take the caller) and, once Asterisk shows the caller in that
bridge, CONNECTED. From there the agent holds (HELD), consults a third party (CONSULTING, the
caller held), or opens a conference (CONFERENCED). The call is ENDED when the caller or the agent
hangs up, or the caller is handed on for good (a blind transfer to a number, a completed
consultation). A transfer to a queue, a ring that was not answered and an agent who lost their
phone mid-call take the caller back to WAITING with their place.

Allowed moves live in ``TRANSITIONS``; anything else raises ``CallStateError`` and changes
nothing. ``transitions_markdown()`` draws the table for ``docs/acd.md``. Call controls check
``can()`` before touching Asterisk and ``apply()`` once Asterisk's event proved the step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from callcenter.errors import CallStateError

__all__ = ["CONTROLLABLE", "LIVE", "TRANSITIONS", "CallChange", "CallInput", "CallLife",
           "CallState", "transitions_markdown"]


class CallState(enum.Enum):
    WAITING = "waiting"
    RINGING = "ringing"
    UNSETTLED = "unsettled"
    ANSWERED = "answered"
    CONNECTED = "connected"
    HELD = "held"
    CONSULTING = "consulting"
    CONFERENCED = "conferenced"
    ENDED = "ended"


class CallInput(enum.Enum):
    OFFER = "offer"                    # a seat was chosen: its phone rings
    RING_FAILED = "ring_failed"        # no answer, refused, withdrawn: the caller keeps the place
    LINK_LOST = "link_lost"            # the originate's answer was lost with the AMI link
    ANSWER = "answer"                  # the agent answered
    BRIDGED = "bridged"                # Asterisk shows the caller in the agent's bridge
    HOLD = "hold"
    RESUME = "resume"
    CONSULT = "consult"                # caller held, the agent's leg dials a third party
    CONSULT_ENDED = "consult_ended"    # the consulted party is gone: the caller stays held
    CONFERENCE = "conference"
    REQUEUE = "requeue"                # back to a queue with the place (transfer, lost phone)
    TRANSFER = "transfer"              # to another agent directly: their phone rings
    HANDED_ON = "handed_on"            # to a number, or to the consulted party: ours no more
    HANGUP = "hangup"                  # the caller or the agent hung up
    ABANDON = "abandon"                # the caller hung up while waiting


S = CallState
I = CallInput  # noqa: E741

#: The single source of truth for a call's moves.
TRANSITIONS: dict[tuple[CallState, CallInput], CallState] = {
    (S.WAITING, I.OFFER): S.RINGING,
    (S.WAITING, I.ABANDON): S.ENDED,
    (S.RINGING, I.RING_FAILED): S.WAITING,
    (S.RINGING, I.LINK_LOST): S.UNSETTLED,
    (S.RINGING, I.ANSWER): S.ANSWERED,
    (S.RINGING, I.ABANDON): S.ENDED,
    (S.UNSETTLED, I.ANSWER): S.ANSWERED,
    (S.UNSETTLED, I.RING_FAILED): S.WAITING,
    (S.UNSETTLED, I.ABANDON): S.ENDED,
    (S.ANSWERED, I.BRIDGED): S.CONNECTED,
    (S.ANSWERED, I.HANGUP): S.ENDED,
    (S.ANSWERED, I.REQUEUE): S.WAITING,
    (S.CONNECTED, I.BRIDGED): S.CONNECTED,
    (S.CONNECTED, I.HOLD): S.HELD,
    (S.CONNECTED, I.CONSULT): S.CONSULTING,
    (S.CONNECTED, I.CONFERENCE): S.CONFERENCED,
    (S.CONNECTED, I.REQUEUE): S.WAITING,
    (S.CONNECTED, I.TRANSFER): S.RINGING,
    (S.CONNECTED, I.HANDED_ON): S.ENDED,
    (S.CONNECTED, I.HANGUP): S.ENDED,
    (S.HELD, I.RESUME): S.CONNECTED,
    (S.HELD, I.CONSULT): S.CONSULTING,
    (S.HELD, I.REQUEUE): S.WAITING,
    (S.HELD, I.HANGUP): S.ENDED,
    (S.CONSULTING, I.CONSULT_ENDED): S.HELD,
    (S.CONSULTING, I.RESUME): S.CONNECTED,
    (S.CONSULTING, I.HANDED_ON): S.ENDED,
    (S.CONSULTING, I.REQUEUE): S.WAITING,
    (S.CONSULTING, I.HANGUP): S.ENDED,
    (S.CONFERENCED, I.CONFERENCE): S.CONFERENCED,
    (S.CONFERENCED, I.REQUEUE): S.WAITING,
    (S.CONFERENCED, I.HANGUP): S.ENDED,
}

#: States in which the caller and an agent are on the call (the agent may end it).
LIVE = frozenset({S.ANSWERED, S.CONNECTED, S.HELD, S.CONSULTING, S.CONFERENCED})
#: States in which an agent's call controls act (an ANSWERED call waits to be bridged first).
CONTROLLABLE = frozenset({S.CONNECTED, S.HELD, S.CONSULTING, S.CONFERENCED})


@dataclass(frozen=True, slots=True)
class CallChange:
    at: float
    from_state: CallState
    to_state: CallState
    input: CallInput


class CallLife:
    """One call's state. Starts WAITING; every accepted move is appended to ``history``."""

    def __init__(self, call_id: str, *, now: float = 0.0,
                 state: CallState = CallState.WAITING) -> None:
        self.call_id = call_id
        self.state = state
        self.since = now
        self.history: list[CallChange] = []

    def __repr__(self) -> str:
        return f"CallLife({self.call_id!r}, {self.state.name})"

    def can(self, what: CallInput) -> bool:
        return (self.state, what) in TRANSITIONS

    def check(self, what: CallInput) -> None:
        """Raise ``CallStateError`` unless ``what`` is allowed now."""
        if not self.can(what):
            raise CallStateError(f"call {self.call_id}: cannot {what.name} while "
                                 f"{self.state.name}")

    def apply(self, what: CallInput, now: float) -> CallChange:
        """Make one move, or raise ``CallStateError`` and change nothing."""
        self.check(what)
        change = CallChange(now, self.state, TRANSITIONS[(self.state, what)], what)
        self.state, self.since = change.to_state, now
        self.history.append(change)
        return change

    @property
    def live(self) -> bool:
        return self.state in LIVE


def transitions_markdown() -> str:
    """The transition table as markdown, for the docs."""
    order = {state: n for n, state in enumerate(CallState)}
    inputs = {what: n for n, what in enumerate(CallInput)}
    rows = ["| from state | input | to state |", "|---|---|---|"]
    for (src, what), dst in sorted(TRANSITIONS.items(),
                                   key=lambda kv: (order[kv[0][0]], inputs[kv[0][1]])):
        rows.append(f"| {src.name} | {what.name} | {dst.name} |")
    rows.append("")
    rows.append("Any other move raises `CallStateError`. Call controls act on CONNECTED, HELD, "
                "CONSULTING and CONFERENCED calls; an ANSWERED call is waited for until Asterisk "
                "shows the caller bridged.")
    return "\n".join(rows) + "\n"
