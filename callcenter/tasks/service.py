"""What agents and supervisors do with tasks: list, claim, release, record the outcome,
reschedule, assign, cancel. Every change is one ``TaskStore.move`` (checked by the state table,
logged in ``task_log``); who may do it is checked inside the move's transaction (``expect``), so
two agents racing for one task get one winner and one ``TaskStateError``.

An agent's tasks are *mine* (assigned to them, or claimed by them) and *team* (assigned to no
agent, in a queue the agent serves, not claimed). A supervisor sees them all. The outcome's
values are checked against the task's form (``form.py``); the ``outcome`` column is
``outcome_of(values)`` and stays with the task for good. A task whose dial plan records its
calls (``record: true``: the call is the proof, e.g. a new account's verification) takes an
outcome only after a call reached the customer (``REACHED``, or ``REVIEW`` after an interrupted
call); other tasks may take one without a call (the agent may have handled it otherwise).
Refusals that are no move are ``TaskRefused``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from callcenter.errors import TaskRefused, TaskStateError
from callcenter.tasks.form import check_values, outcome_of
from callcenter.tasks.state import FINAL, TaskInput, TaskState
from callcenter.tasks.store import Task, TaskStore

__all__ = ["AFTER_A_CALL", "OPEN_TO_TEAM", "TaskFilter", "TaskService", "needs_call"]

#: the states in which a team's unclaimed task is offered to its agents
OPEN_TO_TEAM: Final = (TaskState.OPEN.value, TaskState.RETRY.value)
_NOT_FINAL: Final = tuple(s.value for s in TaskState if s not in FINAL)
_Q: Final = ", ".join("?" * len(_NOT_FINAL))
#: the states a recorded task (``needs_call``) takes its outcome in: a call reached the customer
AFTER_A_CALL: Final = frozenset({TaskState.REACHED, TaskState.REVIEW})


def needs_call(task: Task) -> bool:
    """Whether ``task``'s outcome must follow a call that reached the customer: its dial plan
    records the call (``record: true``) as the proof."""
    return isinstance(task.dial, dict) and task.dial.get("record") is True


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """A supervisor's view: every field optional ("" / False: any)."""

    state: str = ""
    strategy: str = ""
    agent_id: str = ""
    team: str = ""
    overdue: bool = False
    #: leave finished tasks (done, failed, cancelled) out unless ``state`` names one
    open_only: bool = True


class TaskService:
    """Tasks as agents and supervisors see them. ``teams_of(agent_id)`` are the queues the agent
    serves; ``agents`` and ``teams`` say which names exist (for assign)."""

    def __init__(self, store: TaskStore, teams_of: Callable[[str], frozenset[str]], *,
                 agents: Callable[[], frozenset[str]], teams: Callable[[], frozenset[str]]
                 ) -> None:
        self.store = store
        self.teams_of = teams_of
        self.agents = agents
        self.teams = teams

    @property
    def clock(self) -> Callable[[], float]:
        return self.store.clock

    # -- reading -------------------------------------------------------------------------------

    async def mine(self, agent_id: str) -> list[Task]:
        return await self.store.select(
            f"(agent_id = ? OR claimed_by = ?) AND state IN ({_Q})",
            (agent_id, agent_id, *_NOT_FINAL))

    async def team(self, agent_id: str) -> list[Task]:
        teams = sorted(self.teams_of(agent_id))
        if not teams:
            return []
        marks = ", ".join("?" * len(teams))
        return await self.store.select(
            f"agent_id = '' AND claimed_by = '' AND team IN ({marks}) AND state IN (?, ?)",
            (*teams, *OPEN_TO_TEAM))

    async def all(self, f: TaskFilter) -> list[Task]:
        where, params = ["1"], []
        for column in ("state", "strategy", "agent_id", "team"):
            value = getattr(f, column)
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if f.open_only and not f.state:
            where.append(f"state IN ({_Q})")
            params.extend(_NOT_FINAL)
        if f.overdue:
            where.append(f"COALESCE(deadline_at, due_at) < ? AND state IN ({_Q})")
            params.extend((self.clock(), *_NOT_FINAL))
        return await self.store.select(" AND ".join(where), tuple(params))

    async def visible(self, agent_id: str, task_id: int, *, supervisor: bool = False) -> Task:
        """The task if ``agent_id`` may see it (theirs, or their team's), else ``TaskRefused``."""
        task = await self._get(task_id)
        if not supervisor:
            self._may_see(agent_id, task)
        return task

    # -- an agent's moves ------------------------------------------------------------------------

    async def claim(self, agent_id: str, task_id: int) -> Task:
        """The agent takes a task of theirs or an unclaimed one of their team."""
        await self.visible(agent_id, task_id)

        def free(task: Task) -> None:
            self._may_see(agent_id, task)
            if task.claimed_by not in ("", agent_id):
                raise TaskRefused("taken", f"task {task.id} is taken by {task.claimed_by}")

        return await self.store.move(task_id, TaskInput.CLAIM, agent_id, expect=free,
                                     claimed_by=agent_id)

    async def release(self, agent_id: str, task_id: int, *, supervisor: bool = False) -> Task:
        """Back to its team (or its assigned agent), not done."""
        await self.visible(agent_id, task_id, supervisor=supervisor)
        return await self.store.move(task_id, TaskInput.RELEASE, agent_id,
                                     expect=self._holder(agent_id, supervisor), claimed_by="")

    async def outcome(self, agent_id: str, task_id: int, values: dict[str, Any], *,
                      supervisor: bool = False) -> Task:
        """Record what came of it: the values checked against the task's form; DONE."""
        task = await self.visible(agent_id, task_id, supervisor=supervisor)
        holder = self._holder(agent_id, supervisor)

        def may_record(now: Task) -> None:
            holder(now)
            if needs_call(now) and now.state not in AFTER_A_CALL:
                raise TaskRefused(
                    "needs_call", f"task {now.id} is recorded as proof: its outcome is taken "
                    "only after a call reached the customer (call first)")

        may_record(task)   # a clear answer before the values are looked at; again in the move
        try:
            checked = check_values(task.fields, values)
        except ValueError as exc:
            raise TaskRefused("bad_values", str(exc)) from exc
        return await self.store.move(
            task_id, TaskInput.OUTCOME, agent_id, expect=may_record,
            detail={"outcome": outcome_of(checked)}, outcome=outcome_of(checked),
            outcome_fields=checked, claimed_by=task.claimed_by or agent_id)

    async def reschedule(self, agent_id: str, task_id: int, due_at: float, note: str = "", *,
                         supervisor: bool = False) -> Task:
        """A new time; the task is OPEN again and stays with whoever holds it."""
        await self.visible(agent_id, task_id, supervisor=supervisor)
        detail: dict[str, Any] = {"due_at": due_at}
        if note:
            detail["note"] = note
        return await self.store.move(task_id, TaskInput.RESCHEDULE, agent_id,
                                     expect=self._holder(agent_id, supervisor), detail=detail,
                                     due_at=due_at, next_attempt_at=None)

    # -- a supervisor's moves --------------------------------------------------------------------

    async def assign(self, by: str, task_id: int, *, agent_id: str = "", team: str = "") -> Task:
        """Give it to an agent (and their ``team`` if named) or to a team (anyone there)."""
        if not agent_id and not team:
            raise TaskRefused("no_such", "assign to an agent or a team")
        if agent_id and agent_id not in self.agents():
            raise TaskRefused("no_such", f"no agent {agent_id}")
        if team and team not in self.teams():
            raise TaskRefused("no_such", f"no team (queue) {team}")
        old = await self._get(task_id)
        return await self.store.move(
            task_id, TaskInput.ASSIGN, by, detail={"agent_id": agent_id, "team": team},
            agent_id=agent_id, team=team or old.team, claimed_by="")

    async def cancel(self, by: str, task_id: int, reason: str = "") -> Task:
        return await self.store.move(task_id, TaskInput.CANCEL, by,
                                     detail={"reason": reason} if reason else None)

    # -- helpers ---------------------------------------------------------------------------------

    async def _get(self, task_id: int) -> Task:
        try:
            return await self.store.get(task_id)
        except TaskStateError as exc:
            raise TaskRefused("not_yours", f"no task {task_id}") from exc

    def _may_see(self, agent_id: str, task: Task) -> None:
        if agent_id in (task.agent_id, task.claimed_by):
            return
        if not task.agent_id and task.team and task.team in self.teams_of(agent_id):
            return
        raise TaskRefused("not_yours", f"no task {task.id} of yours or your team's")

    @staticmethod
    def _holder(agent_id: str, supervisor: bool) -> Callable[[Task], None]:
        """``expect`` for moves only the task's holder (or a supervisor) may make."""
        def check(task: Task) -> None:
            if supervisor:
                return
            holder = task.claimed_by or task.agent_id
            if holder != agent_id:
                raise TaskRefused("not_yours", f"task {task.id} is not yours: claim it first")
        return check
