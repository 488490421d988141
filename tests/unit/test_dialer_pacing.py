"""Progressive pacing (``dialer/pacing.py``): one line per agent, inbound first, the best due
task, never two calls for one agent nor one task for two agents."""

from __future__ import annotations

import dataclasses

import pytest

from callcenter.dialer.pacing import AgentView, Pacer, due, rank
from callcenter.tasks.state import TaskState
from callcenter.tasks.store import Task

NOW = 1_000_000.0
PROGRESSIVE = {"mode": "progressive"}


def task(task_id: int, **values: object) -> Task:
    base: dict[str, object] = dict(
        id=task_id, created_at=0.0, created_by="strategy", agent_id="", account=f"A{task_id}",
        phone="13812345678", due_at=None, text="", state=TaskState.OPEN, strategy="s",
        run_day="", team="general", priority=50, script="", fields=[], reason="",
        deadline_at=None, alerted_at=None, dial=PROGRESSIVE, attempts=0, next_attempt_at=None,
        claimed_by="", outcome="", outcome_fields={}, updated_at=None)
    base.update(values)
    return Task(**base)  # type: ignore[arg-type]


def agent(agent_id: str, *, ready: bool = True, queues: tuple[str, ...] = ("general",),
          inbound: bool = False) -> AgentView:
    return AgentView(agent_id, ready, frozenset(queues), inbound)


def test_only_progressive_dialable_due_tasks_of_the_agent_or_their_team() -> None:
    q = frozenset({"general"})
    assert due(task(1), "A1", q, NOW)
    assert not due(task(1, dial={"mode": "preview"}), "A1", q, NOW)
    assert not due(task(1, dial={}), "A1", q, NOW)
    for state in (TaskState.DIALING, TaskState.REACHED, TaskState.REVIEW, TaskState.DONE,
                  TaskState.CANCELLED):
        assert not due(task(1, state=state), "A1", q, NOW)
    assert due(task(1, state=TaskState.RETRY), "A1", q, NOW)
    assert not due(task(1, team="vip"), "A1", q, NOW)
    assert not due(task(1, team=""), "A1", q, NOW)
    assert due(task(1, agent_id="A1", team=""), "A1", q, NOW)
    assert not due(task(1, agent_id="A2"), "A1", q, NOW)
    assert not due(task(1, claimed_by="A2"), "A1", q, NOW)
    assert not due(task(1, due_at=NOW + 1), "A1", q, NOW)
    assert not due(task(1, next_attempt_at=NOW + 1), "A1", q, NOW)
    assert due(task(1, next_attempt_at=NOW, due_at=NOW - 5), "A1", q, NOW)


def test_the_best_task_first() -> None:
    tasks = [task(1, priority=50), task(2, priority=10, deadline_at=NOW + 99),
             task(3, priority=10, deadline_at=NOW + 50), task(4, priority=10),
             task(5, priority=10, deadline_at=NOW + 50, due_at=NOW - 10)]
    assert [t.id for t in sorted(tasks, key=rank)] == [5, 3, 2, 4, 1]


def test_one_call_per_free_agent_and_one_agent_per_task() -> None:
    pacer = Pacer()
    for a in ("A1", "A2", "A3", "A4"):
        pacer.join(a)
    tasks = [task(1), task(2, priority=1), task(3, agent_id="A3", team="")]
    plan = pacer.plan([agent("A1"), agent("A2"), agent("A3"), agent("A4")], tasks, NOW)
    assert [(a, t.id) for a, t in plan] == [("A1", 2), ("A2", 1), ("A3", 3)]


def test_inbound_first_and_only_ready_joined_agents_without_a_dialer_call() -> None:
    pacer = Pacer()
    pacer.join("A1")
    pacer.join("A2")
    pacer.join("A3")
    tasks = [task(1), task(2), task(3)]
    views = [agent("A1", inbound=True), agent("A2", ready=False), agent("A3"), agent("A4")]
    assert [(a, t.id) for a, t in pacer.plan(views, tasks, NOW)] == [("A3", 1)]
    pacer.taken("A3", 1)
    # A3 has its call: nothing more for it, and task 1 is nobody else's
    assert pacer.plan([agent("A3")], tasks, NOW) == []
    pacer.join("A5")
    assert [(a, t.id) for a, t in pacer.plan([agent("A5")], tasks, NOW)] == [("A5", 2)]
    pacer.done("A3")
    pacer.leave("A3")
    assert pacer.plan([agent("A3")], tasks, NOW) == []


def test_taken_refuses_a_second_call_for_an_agent_or_a_task() -> None:
    pacer = Pacer()
    pacer.taken("A1", 1)
    with pytest.raises(ValueError, match="already has"):
        pacer.taken("A1", 2)
    with pytest.raises(ValueError, match="already being dialled"):
        pacer.taken("A2", 1)
    pacer.done("A1")
    pacer.taken("A2", 1)


def test_a_task_not_yet_due_waits() -> None:
    pacer = Pacer()
    pacer.join("A1")
    later = task(1, next_attempt_at=NOW + 600)
    assert pacer.plan([agent("A1")], [later], NOW) == []
    assert pacer.plan([agent("A1")], [later], NOW + 600)[0][1] == dataclasses.replace(later)
