"""What happens to a placed dialer call, sans-IO: one happening in, one ``Decision`` out.

The edge (``dialer/service.py``) reads the task, asks ``decide`` and writes what it says: the
attempt's result, the task's move, whether the attempt counts, a contact-log row, whether a
progressive task goes back to the team. The happenings:

- ``answered``: the dialplan says a person picked up (after AMD, if any): the task is REACHED.
- ``ended``: the dialplan's hang-up report (``DIALSTATUS``, AMD, the hang-up cause).
- ``agent_missed``: the ACD says the agent's phone never answered (the Originate *failed*): the
  customer was never dialled, the attempt is given back. Only this proves it.
- ``not_placed``: the edge never placed the ring (the seat took another call meanwhile).
- ``lost``: the ring's outcome was lost with the AMI link (the ACD withdrew it): the agent may
  have answered and the customer been dialled. Unknown: the task goes to REVIEW, never
  redialled on its own (as after an engine restart, ``recovery.py``).
- ``settle``: the agent's call ended and the dialplan's report never came (lost with the link):
  reached if the person's answer was reported, else unknown -> REVIEW.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from callcenter.dialer.plan import DialMode, DialPlan
from callcenter.dialer.rules import Move, Result, result_move, result_of
from callcenter.tasks.state import TaskInput

__all__ = ["CallView", "Decision", "Happening", "decide"]


class Happening(enum.StrEnum):
    ANSWERED = "answered"
    ENDED = "ended"
    AGENT_MISSED = "agent_missed"
    NOT_PLACED = "not_placed"
    LOST = "lost"
    SETTLE = "settle"


@dataclass(frozen=True, slots=True)
class CallView:
    """What the decision needs of one call and its task."""

    plan: DialPlan
    mode: DialMode
    #: the task's attempts, this one included
    attempts: int
    #: the dialplan reported a person's answer
    answered: bool = False
    #: AMD's status, if reported
    amd: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    #: the attempt's result; None: the call goes on
    result: Result | None
    #: the task's move; None: the task stays as it is
    move: Move | None
    #: False: the attempt is given back (the task's attempts less one)
    counts: bool = True
    #: a row in the contact log (the customer's phone rang, or may have)
    contact: bool = False
    #: a progressive task is the team's again (not only this agent's)
    release: bool = False

    @property
    def final(self) -> bool:
        """The call is over for the dialer."""
        return self.result is not None


def _finished(call: CallView, result: Result, now: float) -> Decision:
    counts = result not in (Result.NOT_PLACED, Result.CANCELLED)
    used = call.attempts if counts else max(0, call.attempts - 1)
    move = None if result is Result.ANSWERED else result_move(call.plan, result, used, now)
    release = (call.mode is DialMode.PROGRESSIVE and move is not None
               and move.input in (TaskInput.NOT_REACHED, TaskInput.GIVE_UP))
    return Decision(result, move, counts, contact=result is not Result.NOT_PLACED,
                    release=release)


def decide(call: CallView, what: Happening, now: float, *, dial_status: str = "",
           cause: str = "") -> Decision:
    """What ``what`` does to the call's attempt and task."""
    match what:
        case Happening.ANSWERED:
            if call.answered:
                return Decision(None, None)
            return Decision(None, Move(TaskInput.REACHED))
        case Happening.ENDED:
            result = Result.ANSWERED if call.answered else result_of(dial_status, call.amd,
                                                                     cause)
            if result is Result.ANSWERED and not call.answered:
                # Dial says answered, but no person's answer was reported (lost): unknown
                result = Result.INTERRUPTED
            return _finished(call, result, now)
        case Happening.AGENT_MISSED | Happening.NOT_PLACED:
            return _finished(call, Result.NOT_PLACED, now)
        case Happening.LOST:
            return _finished(call, Result.INTERRUPTED, now)
        case Happening.SETTLE:
            return _finished(call, Result.ANSWERED if call.answered else Result.INTERRUPTED,
                             now)
