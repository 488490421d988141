"""Progressive pacing, sans-IO: which agent gets which task's call now.

One line per agent: an agent who joined progressive dialing, Ready with no call, and with no
inbound caller waiting in any of their queues (inbound first: agents are blended) gets the best
due task they may do: their own tasks and their teams' (``tasks.team`` is a queue), in the order
priority, deadline, due time, next attempt, id. ``Pacer`` remembers who joined and which task
is being dialled for whom, so no agent gets two calls and no task two agents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from callcenter.dialer.plan import DialMode
from callcenter.tasks.state import DIALABLE
from callcenter.tasks.store import Task

__all__ = ["AgentView", "Pacer", "due", "rank"]

_LAST = float("inf")


@dataclass(frozen=True, slots=True)
class AgentView:
    """What pacing needs of a seat, read from the ACD at the moment."""

    agent_id: str
    ready: bool             # Ready, with no call ringing or on
    queues: frozenset[str]  # the queues (teams) the agent serves
    inbound_waiting: bool   # a caller waits in one of those queues


def due(task: Task, agent_id: str, queues: frozenset[str], now: float) -> bool:
    """Whether ``agent_id`` (serving ``queues``) may dial ``task`` now (progressive mode)."""
    if task.state not in DIALABLE or task.dial.get("mode") != DialMode.PROGRESSIVE.value:
        return False
    if task.agent_id:
        if task.agent_id != agent_id:
            return False
    elif not task.team or task.team not in queues:
        return False
    if task.claimed_by and task.claimed_by != agent_id:
        return False
    return all(when is None or when <= now for when in (task.due_at, task.next_attempt_at))


def rank(task: Task) -> tuple[float, ...]:
    """Best first: priority (0 first), deadline, due time, next attempt (none last), id."""
    return (task.priority,
            _LAST if task.deadline_at is None else task.deadline_at,
            _LAST if task.due_at is None else task.due_at,
            _LAST if task.next_attempt_at is None else task.next_attempt_at,
            task.id)


@dataclass
class Pacer:
    """Who dials progressively, and what is being dialled for whom."""

    joined: set[str] = field(default_factory=set)
    #: agent id -> the task being dialled for them (claimed until its call ends)
    busy: dict[str, int] = field(default_factory=dict)

    def join(self, agent_id: str) -> None:
        self.joined.add(agent_id)

    def leave(self, agent_id: str) -> None:
        self.joined.discard(agent_id)

    def taken(self, agent_id: str, task_id: int) -> None:
        """A call for ``task_id`` is being set up or placed for ``agent_id``."""
        if agent_id in self.busy:
            raise ValueError(f"agent {agent_id} already has a dialer call")
        if task_id in self.busy.values():
            raise ValueError(f"task {task_id} is already being dialled")
        self.busy[agent_id] = task_id

    def done(self, agent_id: str) -> None:
        self.busy.pop(agent_id, None)

    def plan(self, agents: Iterable[AgentView], tasks: Sequence[Task],
             now: float) -> list[tuple[str, Task]]:
        """The calls to place now: (agent, task) pairs, at most one per agent and per task.
        ``tasks``: candidates (any order); agents in the order they should be served."""
        ordered = sorted(tasks, key=rank)
        used = set(self.busy.values())
        out: list[tuple[str, Task]] = []
        for view in agents:
            if view.agent_id not in self.joined or view.agent_id in self.busy \
                    or not view.ready or view.inbound_waiting:
                continue
            for task in ordered:
                if task.id not in used and due(task, view.agent_id, view.queues, now):
                    out.append((view.agent_id, task))
                    used.add(task.id)
                    break
        return out

