"""A task's life, sans-IO: one state per task, moved by inputs through one table.

A task is work for an agent about one customer: a strategy's match (``strategies/``), a call-back
an agent promised, a campaign's call. It is OPEN until an agent CLAIMs it (or the progressive
dialer takes it for a free agent). A call attempt makes it DIALING; the attempt's row is written
before the call is placed, so an engine that dies mid-call finds it on restart and puts the task
in REVIEW (a person decides: it is never dialled again on its own). A reached customer makes it
REACHED until the agent records the outcome (DONE) or a new time (OPEN again). An attempt that
did not reach the customer (busy, no answer, a machine) waits in RETRY until its next time, or
ends FAILED when the attempts are used up. A supervisor may CANCEL anything not finished; an
agent may RELEASE a claimed task back to the team. DONE, FAILED and CANCELLED are final.

Who may do a task (the agent, the team) and when (due, deadline, next attempt) are the task's
fields, not its state: ``ASSIGN`` keeps the state and changes the owner. Allowed moves live in
``TRANSITIONS``; anything else raises ``TaskStateError`` and changes nothing.
``transitions_markdown()`` draws the table for ``docs/campaigns.md``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from callcenter.errors import TaskStateError

__all__ = ["ACTIVE", "DIALABLE", "FINAL", "TRANSITIONS", "TaskChange", "TaskInput", "TaskLife",
           "TaskState", "transitions_markdown"]


class TaskState(enum.Enum):
    OPEN = "open"
    CLAIMED = "claimed"
    DIALING = "dialing"
    REACHED = "reached"
    RETRY = "retry"
    REVIEW = "review"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskInput(enum.Enum):
    CLAIM = "claim"                # an agent takes it (or the dialer takes it for a free agent)
    RELEASE = "release"            # the agent gives it back to the team, not done
    ASSIGN = "assign"              # a supervisor gives it to an agent or a team (state kept)
    DIAL = "dial"                  # a call attempt is placed (its row written first)
    REACHED = "reached"            # the customer answered (a person, not a machine)
    NOT_REACHED = "not_reached"    # busy, no answer, a machine, a failed line: attempts left
    GIVE_UP = "give_up"            # the same, and no attempt is left (or none is allowed now)
    INTERRUPTED = "interrupted"    # found mid-call after a restart: a person decides
    OUTCOME = "outcome"            # the agent recorded what came of it
    RESCHEDULE = "reschedule"      # a new time (the customer asked, or a person decided)
    CANCEL = "cancel"              # a supervisor (or a do-not-call entry) ends it


S = TaskState
I = TaskInput  # noqa: E741

#: The single source of truth for a task's moves.
TRANSITIONS: dict[tuple[TaskState, TaskInput], TaskState] = {
    (S.OPEN, I.CLAIM): S.CLAIMED,
    (S.OPEN, I.ASSIGN): S.OPEN,
    (S.OPEN, I.DIAL): S.DIALING,
    (S.OPEN, I.OUTCOME): S.DONE,
    (S.OPEN, I.RESCHEDULE): S.OPEN,
    (S.OPEN, I.GIVE_UP): S.FAILED,
    (S.OPEN, I.CANCEL): S.CANCELLED,
    (S.CLAIMED, I.RELEASE): S.OPEN,
    (S.CLAIMED, I.ASSIGN): S.OPEN,
    (S.CLAIMED, I.DIAL): S.DIALING,
    (S.CLAIMED, I.OUTCOME): S.DONE,
    (S.CLAIMED, I.RESCHEDULE): S.OPEN,
    (S.CLAIMED, I.GIVE_UP): S.FAILED,
    (S.CLAIMED, I.CANCEL): S.CANCELLED,
    (S.DIALING, I.REACHED): S.REACHED,
    (S.DIALING, I.NOT_REACHED): S.RETRY,
    (S.DIALING, I.GIVE_UP): S.FAILED,
    (S.DIALING, I.INTERRUPTED): S.REVIEW,
    (S.REACHED, I.OUTCOME): S.DONE,
    (S.REACHED, I.RESCHEDULE): S.OPEN,
    (S.REACHED, I.INTERRUPTED): S.REVIEW,
    (S.RETRY, I.CLAIM): S.CLAIMED,
    (S.RETRY, I.ASSIGN): S.RETRY,
    (S.RETRY, I.DIAL): S.DIALING,
    (S.RETRY, I.RESCHEDULE): S.OPEN,
    (S.RETRY, I.GIVE_UP): S.FAILED,
    (S.RETRY, I.CANCEL): S.CANCELLED,
    (S.REVIEW, I.ASSIGN): S.REVIEW,
    (S.REVIEW, I.OUTCOME): S.DONE,
    (S.REVIEW, I.RESCHEDULE): S.OPEN,
    (S.REVIEW, I.GIVE_UP): S.FAILED,
    (S.REVIEW, I.CANCEL): S.CANCELLED,
}

#: Final states: nothing moves a task out of them.
FINAL = frozenset({S.DONE, S.FAILED, S.CANCELLED})
#: States in which a call attempt may be placed.
DIALABLE = frozenset({S.OPEN, S.CLAIMED, S.RETRY})
#: States in which a call of the task is (or may be) on: it is not offered to anyone else.
ACTIVE = frozenset({S.DIALING, S.REACHED})


@dataclass(frozen=True, slots=True)
class TaskChange:
    at: float
    from_state: TaskState
    to_state: TaskState
    input: TaskInput


class TaskLife:
    """One task's state. Every accepted move is appended to ``history``."""

    def __init__(self, task_id: int, state: TaskState = TaskState.OPEN, *,
                 now: float = 0.0) -> None:
        self.task_id = task_id
        self.state = state
        self.since = now
        self.history: list[TaskChange] = []

    def __repr__(self) -> str:
        return f"TaskLife({self.task_id}, {self.state.name})"

    def can(self, what: TaskInput) -> bool:
        return (self.state, what) in TRANSITIONS

    def check(self, what: TaskInput) -> None:
        """Raise ``TaskStateError`` unless ``what`` is allowed now."""
        if not self.can(what):
            raise TaskStateError(f"task {self.task_id}: cannot {what.value} while "
                                 f"{self.state.value}")

    def apply(self, what: TaskInput, now: float) -> TaskChange:
        """Make one move, or raise ``TaskStateError`` and change nothing."""
        self.check(what)
        change = TaskChange(now, self.state, TRANSITIONS[(self.state, what)], what)
        self.state, self.since = change.to_state, now
        self.history.append(change)
        return change


def transitions_markdown() -> str:
    """The transition table as markdown, for the docs."""
    order = {state: n for n, state in enumerate(TaskState)}
    inputs = {what: n for n, what in enumerate(TaskInput)}
    rows = ["| from state | input | to state |", "|---|---|---|"]
    for (src, what), dst in sorted(TRANSITIONS.items(),
                                   key=lambda kv: (order[kv[0][0]], inputs[kv[0][1]])):
        rows.append(f"| {src.value} | {what.value} | {dst.value} |")
    rows.append("")
    rows.append("Any other move raises `TaskStateError`. "
                + ", ".join(s.value for s in TaskState if s in FINAL) + " are final.")
    return "\n".join(rows) + "\n"
