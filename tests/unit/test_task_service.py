"""The tasks service (``tasks/service.py``), deadline alerts (``tasks/deadlines.py``) and the
progress figures (``tasks/progress.py``) on a real SQLite database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from callcenter.errors import TaskRefused, TaskStateError
from callcenter.store.db import open_db
from callcenter.tasks.deadlines import DeadlineAlert, DeadlineWatch, due_alert
from callcenter.tasks.progress import read_progress
from callcenter.tasks.service import TaskFilter, TaskService
from callcenter.tasks.state import TaskInput, TaskState
from callcenter.tasks.store import NewTask, Task, TaskStore

T0 = 1_800_000_000.0
FORM: list[dict[str, Any]] = [
    {"name": "outcome", "kind": "choice", "required": True,
     "choices": ["bought", "declined", "later"], "success": ["bought"]},
    {"name": "amount", "kind": "number"},
    {"name": "note", "kind": "text", "max": 20},
]
TEAMS = {"a1": frozenset({"sales"}), "a2": frozenset({"sales"}), "b1": frozenset({"vip"})}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "t.db")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(db: aiosqlite.Connection, clock: Clock) -> TaskService:
    return TaskService(TaskStore(db, clock), lambda a: TEAMS.get(a, frozenset()),
                       agents=lambda: frozenset(TEAMS), teams=lambda: frozenset({"sales", "vip"}))


async def new(service: TaskService, **kw: Any) -> int:
    task_id = await service.store.create(NewTask(kw.pop("text", "call"), "strategy", **kw))
    assert task_id is not None
    return task_id


async def test_mine_and_team_lists(service: TaskService) -> None:
    assigned = await new(service, agent_id="a1", team="sales")
    team = await new(service, team="sales", account="31000001")
    other_team = await new(service, team="vip")
    assert [t.id for t in await service.mine("a1")] == [assigned]
    assert [t.id for t in await service.team("a1")] == [team]
    assert [t.id for t in await service.team("b1")] == [other_team]
    await service.claim("a2", team)
    # claimed: it left the team's list and is a2's
    assert await service.team("a1") == []
    assert [t.id for t in await service.mine("a2")] == [team]


async def test_two_agents_racing_for_a_task_one_wins(service: TaskService) -> None:
    task_id = await new(service, team="sales")
    results = await asyncio.gather(service.claim("a1", task_id), service.claim("a2", task_id),
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1
    assert isinstance(lost[0], TaskStateError | TaskRefused)
    task = await service.store.get(task_id)
    assert task.state is TaskState.CLAIMED and task.claimed_by == won[0].claimed_by
    claims = [h for h in await service.store.history(task_id) if h["input"] == "claim"]
    assert len(claims) == 1


async def test_an_agent_cannot_claim_another_teams_or_agents_task(service: TaskService) -> None:
    vip = await new(service, team="vip")
    theirs = await new(service, agent_id="a2", team="sales")
    for task_id in (vip, theirs):
        with pytest.raises(TaskRefused) as caught:
            await service.claim("a1", task_id)
        assert caught.value.reason == "not_yours"
    with pytest.raises(TaskRefused):
        await service.claim("a1", 999)
    assert (await service.store.get(vip)).state is TaskState.OPEN


async def test_release_gives_it_back_to_the_team(service: TaskService) -> None:
    task_id = await new(service, team="sales")
    await service.claim("a1", task_id)
    with pytest.raises(TaskRefused):
        await service.release("a2", task_id)  # not a2's to release
    task = await service.release("a1", task_id)
    assert task.state is TaskState.OPEN and task.claimed_by == ""
    assert [t.id for t in await service.team("a2")] == [task_id]


async def test_outcome_is_checked_against_the_form_and_kept(service: TaskService) -> None:
    task_id = await new(service, team="sales", fields=FORM)
    await service.claim("a1", task_id)
    with pytest.raises(TaskRefused, match="outcome: required") as caught:
        await service.outcome("a1", task_id, {"note": "x"})
    assert caught.value.reason == "bad_values"
    with pytest.raises(TaskRefused, match="amount: a number"):
        await service.outcome("a1", task_id, {"outcome": "bought", "amount": "lots"})
    with pytest.raises(TaskRefused, match="not fields of this task: colour"):
        await service.outcome("a1", task_id, {"outcome": "bought", "colour": "red"})
    with pytest.raises(TaskRefused, match="not yours"):
        await service.outcome("a2", task_id, {"outcome": "bought"})
    assert (await service.store.get(task_id)).state is TaskState.CLAIMED
    done = await service.outcome("a1", task_id, {"outcome": "bought", "amount": "1200.50"})
    assert done.state is TaskState.DONE
    assert done.outcome == "bought"
    assert done.outcome_fields == {"outcome": "bought", "amount": "1200.50"}
    assert (await service.store.history(task_id))[-1]["detail"] == {"outcome": "bought"}
    with pytest.raises(TaskStateError):  # final: stored for good
        await service.outcome("a1", task_id, {"outcome": "declined"}, supervisor=True)


async def test_a_recorded_task_takes_its_outcome_only_after_a_call_reached_them(
        service: TaskService) -> None:
    """``record: true`` (the call is the proof): no outcome without a call that reached the
    customer, whoever records it; REACHED, or REVIEW after an interrupted call, take one."""
    verify = {"mode": "preview", "record": True}
    task_id = await new(service, team="sales", fields=FORM, dial=verify)
    await service.claim("a1", task_id)
    for supervisor in (False, True):
        with pytest.raises(TaskRefused, match="only after a call reached") as caught:
            await service.outcome("a1", task_id, {"outcome": "bought"}, supervisor=supervisor)
        assert caught.value.reason == "needs_call"
    store = service.store
    await store.move(task_id, TaskInput.DIAL, "dialer")
    await store.move(task_id, TaskInput.NOT_REACHED, "dialer")   # busy: RETRY
    with pytest.raises(TaskRefused, match="only after a call reached"):
        await service.outcome("a1", task_id, {"outcome": "bought"})
    await store.move(task_id, TaskInput.DIAL, "dialer")
    await store.move(task_id, TaskInput.REACHED, "dialer")
    done = await service.outcome("a1", task_id, {"outcome": "bought"})
    assert (done.state, done.outcome) == (TaskState.DONE, "bought")
    # an interrupted call (the engine restarted mid-call): a person records it from REVIEW
    other = await new(service, agent_id="a1", team="sales", dial=verify, account="2")
    await store.move(other, TaskInput.DIAL, "dialer")
    await store.move(other, TaskInput.INTERRUPTED, "system")
    assert (await service.outcome("a1", other, {}, supervisor=True)).state is TaskState.DONE
    # a task that is not recorded may take an outcome without a call
    plain = await new(service, agent_id="a1", dial={"mode": "preview"}, account="3")
    assert (await service.outcome("a1", plain, {})).state is TaskState.DONE


async def test_the_store_tells_its_listeners_of_creations_and_moves(
        service: TaskService, caplog: pytest.LogCaptureFixture) -> None:
    store = service.store
    seen: list[tuple[int, str, str | None]] = []

    def broken(task: Task, old: Task | None) -> None:
        raise RuntimeError("the console's push failed")

    store.on_change += [broken, lambda t, o: seen.append(
        (t.id, t.state.value, None if o is None else o.state.value))]
    task_id = await new(service, team="sales")
    claimed = await service.claim("a1", task_id)   # the failing listener does not undo it
    assert claimed.state is TaskState.CLAIMED
    assert (await store.get(task_id)).claimed_by == "a1"
    assert seen == [(task_id, "open", None), (task_id, "claimed", "open")]
    assert "a listener of its change failed" in caplog.text
    # a repeated strategy task is no creation: nobody is told
    again = NewTask("call", "strategy", account="9", strategy="s", run_day="d1")
    assert await store.create(again) is not None
    assert await store.create(again) is None
    assert len(seen) == 3


async def test_a_task_without_a_form_is_done(service: TaskService) -> None:
    task_id = await new(service, agent_id="a1")
    done = await service.outcome("a1", task_id, {})
    assert (done.state, done.outcome) == (TaskState.DONE, "done")


async def test_reschedule_keeps_the_holder_and_notes_why(service: TaskService,
                                                         clock: Clock) -> None:
    task_id = await new(service, team="sales", due_at=T0)
    await service.claim("a1", task_id)
    moved = await service.reschedule("a1", task_id, T0 + 3600, "customer asked for 3 pm")
    assert (moved.state, moved.due_at, moved.claimed_by) == (TaskState.OPEN, T0 + 3600, "a1")
    assert [t.id for t in await service.mine("a1")] == [task_id]
    assert await service.team("a2") == []
    assert (await service.store.history(task_id))[-1]["detail"] == {
        "due_at": T0 + 3600, "note": "customer asked for 3 pm"}
    with pytest.raises(TaskRefused):
        await service.reschedule("a2", task_id, T0 + 7200)


async def test_assign_to_an_agent_or_a_team_and_cancel(service: TaskService) -> None:
    task_id = await new(service, team="sales")
    await service.claim("a1", task_id)
    to_b1 = await service.assign("boss", task_id, agent_id="b1")
    # a claimed task given to someone else is open for them (the claim ends)
    assert (to_b1.state, to_b1.agent_id, to_b1.claimed_by, to_b1.team) == (
        TaskState.OPEN, "b1", "", "sales")
    assert await service.mine("a1") == []
    to_vip = await service.assign("boss", task_id, team="vip")
    assert (to_vip.agent_id, to_vip.team) == ("", "vip")
    with pytest.raises(TaskRefused, match="no agent"):
        await service.assign("boss", task_id, agent_id="nobody")
    with pytest.raises(TaskRefused, match="no team"):
        await service.assign("boss", task_id, team="nowhere")
    cancelled = await service.cancel("boss", task_id, "customer complained")
    assert cancelled.state is TaskState.CANCELLED
    with pytest.raises(TaskStateError):
        await service.cancel("boss", task_id)
    assert [h["input"] for h in await service.store.history(task_id)] == [
        "create", "claim", "assign", "assign", "cancel"]


async def test_supervisors_filter(service: TaskService, clock: Clock) -> None:
    late = await new(service, team="sales", strategy="s1", account="1", run_day="d",
                     deadline_at=T0 - 10)
    fine = await new(service, agent_id="a1", strategy="s2", account="2", run_day="d",
                     due_at=T0 + 100)
    done = await new(service, agent_id="a1")
    await service.outcome("a1", done, {})
    assert {t.id for t in await service.all(TaskFilter())} == {late, fine}
    assert [t.id for t in await service.all(TaskFilter(overdue=True))] == [late]
    assert [t.id for t in await service.all(TaskFilter(strategy="s2"))] == [fine]
    assert [t.id for t in await service.all(TaskFilter(agent_id="a1"))] == [fine]
    assert [t.id for t in await service.all(TaskFilter(state="done"))] == [done]
    assert [t.id for t in await service.all(TaskFilter(team="sales"))] == [late]


async def test_deadline_alerts_once_before_and_once_when_passed(
        service: TaskService, clock: Clock) -> None:
    task_id = await new(service, team="sales", deadline_at=T0 + 3 * 3600)
    later = await new(service, team="sales", deadline_at=T0 + 10 * 3600)
    got: list[DeadlineAlert] = []
    watch = DeadlineWatch(service.store, got.append, before_s=2 * 3600)
    assert await watch.check() == []
    clock.now = T0 + 3600 + 1                   # within 2 h of the first deadline
    assert [(a.kind, a.task.id) for a in await watch.check()] == [("soon", task_id)]
    assert await watch.check() == []            # once
    clock.now = T0 + 3 * 3600                   # the deadline passes
    assert [(a.kind, a.task.id) for a in await watch.check()] == [("overdue", task_id)]
    clock.now += 600
    assert await watch.check() == []
    assert [a.kind for a in got] == ["soon", "overdue"]
    assert (await service.store.get(later)).alerted_at is None
    log = [h["input"] for h in await service.store.history(task_id)]
    assert log.count("deadline_alert") == 2


async def test_a_done_task_is_not_alerted_and_a_late_one_only_once(
        service: TaskService, clock: Clock) -> None:
    done = await new(service, agent_id="a1", deadline_at=T0 + 60)
    await service.outcome("a1", done, {})
    skipped = await new(service, team="sales", deadline_at=T0 + 60)
    clock.now = T0 + 120                        # first look after the deadline: overdue only
    watch = DeadlineWatch(service.store, lambda a: None, before_s=3600)
    assert [(a.kind, a.task.id) for a in await watch.check()] == [("overdue", skipped)]
    assert await watch.check() == []
    task = await service.store.get(skipped)
    assert due_alert(task, clock.now, 3600) is None


async def test_two_watchers_on_one_database_alert_once(service: TaskService,
                                                       clock: Clock) -> None:
    await new(service, team="sales", deadline_at=T0 + 60)
    clock.now = T0 + 30
    one = DeadlineWatch(service.store, lambda a: None, before_s=3600)
    two = DeadlineWatch(service.store, lambda a: None, before_s=3600)
    sent = await asyncio.gather(one.check(), two.check())
    assert sorted(len(s) for s in sent) == [0, 1]


async def test_progress_counts_by_strategy_and_agent(service: TaskService, clock: Clock) -> None:
    a = await new(service, team="sales", strategy="s1", account="1", run_day="d")
    b = await new(service, team="sales", strategy="s1", account="2", run_day="d",
                  deadline_at=T0 - 1)
    c = await new(service, agent_id="a2", strategy="s2", account="3", run_day="d")
    await service.claim("a1", a)
    await service.outcome("a2", c, {})
    old = await new(service, agent_id="a2")
    await service.outcome("a2", old, {})
    progress = await read_progress(service.store.db, since=T0 - 1, now=T0)
    by_strategy = {r["strategy"]: r for r in progress["strategies"]}
    assert by_strategy["s1"] == {"strategy": "s1", "total": 2, "overdue": 1,
                                 "by_state": {"claimed": 1, "open": 1}}
    assert by_strategy["s2"]["by_state"] == {"done": 1}
    by_agent = {r["agent_id"]: r for r in progress["agents"]}
    assert by_agent["a1"]["by_state"] == {"claimed": 1}
    assert by_agent["a2"]["by_state"] == {"done": 2}
    assert by_agent[""]["total"] == 1 and b
    # finished before ``since``: left out
    later = await read_progress(service.store.db, since=T0 + 1, now=T0 + 2)
    assert {r["strategy"] for r in later["strategies"]} == {"s1"}
