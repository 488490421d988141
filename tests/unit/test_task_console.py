"""Tasks in the console backend (``seats/tasks.py`` behind ``seats/backend.py``) on a real
``Acd`` and database: the requests, who may send them, masking, pushes, the dialer's hook."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from callcenter.acd.service import Acd
from callcenter.config import AcdSettings, QueueSettings
from callcenter.errors import DialerError
from callcenter.seats import protocol as p
from callcenter.seats.backend import EngineConsoleBackend
from callcenter.seats.console_api import AgentIdentity
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.tasks.deadlines import DeadlineWatch
from callcenter.tasks.state import TaskInput
from callcenter.tasks.store import NewTask, TaskStore
from tests.unit.test_console_backend import (
    ACCOUNT,
    PHONE,
    Clock,
    FakeAmi,
    FakeBackOffice,
    Pushes,
    World,
)

A1 = AgentIdentity("1001", "Li Lei", p.Role.AGENT)
A2 = AgentIdentity("1002", "Wang Fang", p.Role.AGENT)
VIP = AgentIdentity("1003", "Zhao Min", p.Role.AGENT)
BOSS = AgentIdentity("2001", "Chen Jing", p.Role.SUPERVISOR)
FORM = [{"name": "outcome", "label": "结果 / Outcome", "kind": "choice", "required": True,
         "choices": ["bought", "declined"], "success": ["bought"]},
        {"name": "note", "kind": "text"}]


class FakeDialer:
    """The dialer's console-facing calls (``seats.tasks.TaskDialer``), recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.refuse: DialerError | None = None

    async def preview_call(self, agent_id: str, task_id: int, *,
                           override: bool = False) -> str:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append(("override" if override else "preview", (agent_id, task_id)))
        return f"task-{task_id}-1"

    def join(self, agent_id: str) -> None:
        self.calls.append(("join", agent_id))

    def leave(self, agent_id: str) -> None:
        self.calls.append(("leave", agent_id))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    db = await open_db(tmp_path / "cc.db")
    for who, skills in ((A1, {"sales": 5}), (A2, {"sales": 3}), (VIP, {"vip": 5}), (BOSS, {})):
        await save_agent(db, AgentRecord(who.agent_id, who.name, who.role.value,
                                         f"PJSIP/{who.agent_id}", skills=skills),
                         SecretStr(f"pw-{who.agent_id}"))
    clock = Clock()
    settings = AcdSettings(queues=[QueueSettings(name="sales", skill="sales"),
                                   QueueSettings(name="vip", skill="vip")])
    acd = Acd(settings, db, clock=clock)
    await acd.start()
    acd.attach(FakeAmi())  # type: ignore[arg-type]
    backoffice = FakeBackOffice()
    # the engine's one store, handed to the backend as the engine does (engine.py)
    backend = EngineConsoleBackend(acd, db, backoffice,  # type: ignore[arg-type]
                                   tasks=TaskStore(db, clock))
    pushes = Pushes()
    backend.push = pushes
    w = World(db, acd, FakeAmi(), backend, backoffice, pushes, clock)
    try:
        yield w
    finally:
        await backend.close()
        await acd.close()
        await db.close()


async def task(world: World, **kw: Any) -> int:
    task_id = await world.backend.tasks.store.create(
        NewTask(kw.pop("text", "基金到期回访 / fund expiry call"), "strategy", **kw))
    assert task_id is not None
    return task_id


async def test_an_agent_lists_claims_and_records_the_outcome(world: World) -> None:
    task_id = await task(world, team="sales", account=ACCOUNT, phone=PHONE, fields=FORM,
                         script="您好 / Hello", reason="fund matures in 3 days",
                         strategy="fund_expiry", run_day="d1")
    team = (await world.command(A1, {"type": "tasks", "view": "team"}))["tasks"]
    assert [t["id"] for t in team] == [task_id]
    seen = team[0]
    # the pop: masked, with the customer's name and tier and why the strategy matched
    assert seen["account_masked"] == "****0088" and seen["phone_masked"] == "*******8000"
    assert "account" not in seen and "phone" not in seen and ACCOUNT not in json.dumps(seen)
    assert seen["customer"] == {"name": "王五", "tier": "gold"}
    assert (seen["reason"], seen["script"], seen["fields"]) == (
        "fund matures in 3 days", "您好 / Hello", FORM)
    assert (await world.command(VIP, {"type": "tasks", "view": "team"}))["tasks"] == []
    claimed = (await world.command(A1, {"type": "claim_task", "task_id": task_id}))["task"]
    assert (claimed["state"], claimed["claimed_by"]) == ("claimed", A1.agent_id)
    error = await world.refused(A2, {"type": "claim_task", "task_id": task_id})
    assert error.code == "invalid_state"
    error = await world.refused(A1, {"type": "task_outcome", "task_id": task_id,
                                     "values": {"outcome": "maybe"}})
    assert (error.code, error.message) == ("malformed", "outcome: one of bought, declined")
    done = (await world.command(A1, {"type": "task_outcome", "task_id": task_id,
                                     "values": {"outcome": "bought", "note": "买了"}}))["task"]
    assert (done["state"], done["outcome"]) == ("done", "bought")
    assert (await world.command(A1, {"type": "tasks"}))["tasks"] == []


async def test_a_task_change_is_pushed_to_those_it_concerns(world: World) -> None:
    task_id = await task(world, team="sales", account=ACCOUNT)
    await world.command(A1, {"type": "claim_task", "task_id": task_id})
    pushed = {who for who, kind, _ in world.pushes.events if kind == "task"}
    # the team (both sales agents) and supervisors; not the VIP team
    assert pushed == {A1.agent_id, A2.agent_id, "role:supervisor"}
    assert all(d["account_masked"] == "****0088" for _, k, d in world.pushes.events
               if k == "task")
    # and the progress (of the creation, then of the claim), once the loop turns

    def claimed() -> bool:
        progress = world.pushes.of("role:supervisor", "task_progress")
        return bool(progress) and progress[-1]["agents"][0]["by_state"] == {"claimed": 1}

    assert await world.pushes.until(claimed)


async def test_reschedule_and_release(world: World) -> None:
    task_id = await task(world, agent_id=A1.agent_id, team="sales")
    await world.command(A1, {"type": "claim_task", "task_id": task_id})
    later = world.clock.now + 3600
    moved = (await world.command(A1, {"type": "reschedule_task", "task_id": task_id,
                                      "due_at": later, "note": "客户下午有空"}))["task"]
    assert (moved["state"], moved["due_at"]) == ("open", later)
    error = await world.refused(A2, {"type": "release_task", "task_id": task_id})
    assert error.code == "not_found"
    await world.command(A1, {"type": "claim_task", "task_id": task_id})
    released = (await world.command(A1, {"type": "release_task", "task_id": task_id}))["task"]
    assert (released["state"], released["claimed_by"]) == ("open", "")


async def test_supervisor_commands_are_refused_to_agents(world: World) -> None:
    assert "assign_task" not in p.ALLOWED[p.Role.AGENT]
    assert {"assign_task", "cancel_task", "task_progress", "task_report"} <= \
        p.ALLOWED[p.Role.SUPERVISOR]
    error = await world.refused(A1, {"type": "tasks", "view": "all"})
    assert error.code == "forbidden"


async def test_a_supervisor_assigns_cancels_and_sees_all(world: World) -> None:
    one = await task(world, team="sales", deadline_at=world.clock.now - 5)
    two = await task(world, team="sales")
    moved = (await world.command(BOSS, {"type": "assign_task", "task_id": one,
                                        "agent_id": VIP.agent_id}))["task"]
    assert (moved["agent_id"], moved["overdue"]) == (VIP.agent_id, True)
    assert VIP.agent_id in {who for who, kind, _ in world.pushes.events if kind == "task"}
    error = await world.refused(BOSS, {"type": "assign_task", "task_id": one,
                                       "agent_id": "9999"})
    assert error.code == "not_found"
    with pytest.raises(ValidationError, match="agent_id or team"):
        p.REQUEST.validate_python({"type": "assign_task", "task_id": one})
    overdue = (await world.command(BOSS, {"type": "tasks", "view": "all", "overdue": True}))
    assert [t["id"] for t in overdue["tasks"]] == [one]
    cancelled = (await world.command(BOSS, {"type": "cancel_task", "task_id": two,
                                            "reason": "duplicate"}))["task"]
    assert cancelled["state"] == "cancelled"
    error = await world.refused(BOSS, {"type": "cancel_task", "task_id": two})
    assert error.code == "invalid_state"
    progress = await world.command(BOSS, {"type": "task_progress"})
    assert {r["strategy"]: r["by_state"] for r in progress["strategies"]} == {
        "": {"open": 1, "cancelled": 1}}
    report = await world.command(BOSS, {"type": "task_report", "from": "2024-06-10",
                                        "to": "2024-06-10"})
    assert report["strategies"][0]["tasks"] == 2


async def test_preview_call_and_progressive_dialling_go_to_the_dialer(world: World) -> None:
    task_id = await task(world, team="sales")
    error = await world.refused(A1, {"type": "dialer_join"})
    assert error.code == "unavailable"   # no dialer in this engine
    dialer = FakeDialer()
    world.backend.tasks.dialer = dialer
    error = await world.refused(A1, {"type": "task_call", "task_id": task_id})
    assert error.code == "invalid_state"  # claim it first
    await world.command(A1, {"type": "claim_task", "task_id": task_id})
    assert await world.command(A1, {"type": "task_call", "task_id": task_id}) == {
        "call_id": f"task-{task_id}-1"}
    dialer.refuse = DialerError("dnc", "the number is on the do-not-call list")
    error = await world.refused(A1, {"type": "task_call", "task_id": task_id})
    assert error.code == "invalid_state" and "(dnc)" in error.message
    assert await world.command(A1, {"type": "dialer_join"}) == {"dialer": True}
    assert await world.command(A1, {"type": "dialer_leave"}) == {"dialer": False}
    assert dialer.calls == [("preview", (A1.agent_id, task_id)), ("join", A1.agent_id),
                            ("leave", A1.agent_id)]


async def test_deadline_alerts_reach_supervisors(world: World) -> None:
    await task(world, team="sales", account=ACCOUNT, deadline_at=world.clock.now + 600)
    tasks = world.backend.tasks
    watch = DeadlineWatch(tasks.store, tasks.on_alert, before_s=3600)
    await watch.check()
    alerts = world.pushes.of("role:supervisor", "task_deadline")
    assert [(a["kind"], a["task"]["account_masked"]) for a in alerts] == [("soon", "****0088")]
    world.clock.now += 601
    await watch.check()
    await watch.check()
    assert [a["kind"] for a in world.pushes.of("role:supervisor", "task_deadline")] == [
        "soon", "overdue"]


async def test_create_task_is_a_task_of_the_store(world: World) -> None:
    world.give_call(A1.agent_id, "c-1")
    reply = await world.command(A1, {"type": "create_task", "text": "回电 / call back",
                                     "call_id": "c-1", "due_at": world.clock.now + 60})
    mine = (await world.command(A1, {"type": "tasks"}))["tasks"]
    assert [t["id"] for t in mine] == [reply["task_id"]]
    assert mine[0]["phone_masked"] == "*******8000"
    history = await world.backend.tasks.store.history(reply["task_id"])
    assert [h["input"] for h in history] == ["create"]
    assert A1.agent_id in {who for who, kind, _ in world.pushes.events if kind == "task"}


async def test_tasks_created_or_moved_through_the_shared_store_are_pushed(
        world: World) -> None:
    """The store the backend was handed is the one the dialer and the strategies' runner write
    to: a strategy's new task reaches the team's consoles and supervisors (logged in before it
    was made), and the dialer's moves reach the agent."""
    shared = world.backend.tasks.store
    complaint = await shared.create(NewTask(
        "投诉回访 / complaint call-back", "strategy", team="sales", account=ACCOUNT,
        strategy="complaint_callback", match_key="C-42", customer_name="王五", tier="gold",
        deadline_at=world.clock.now + 7200))
    pushed = {who for who, kind, d in world.pushes.events
              if kind == "task" and d["id"] == complaint}
    assert pushed == {A1.agent_id, A2.agent_id, "role:supervisor"}   # not the VIP team
    data = world.pushes.of("role:supervisor", "task")[-1]
    assert data["customer"] == {"name": "王五", "tier": "gold"} and "account" not in data
    own = await task(world, agent_id=A1.agent_id, team="sales")
    await shared.move(own, TaskInput.DIAL, "dialer")
    assert [(d["id"], d["state"]) for d in world.pushes.of(A1.agent_id, "task")][-1] == (
        own, "dialing")
    # a closed backend stops listening
    await world.backend.tasks.close()
    before = len(world.pushes.events)
    await shared.move(own, TaskInput.REACHED, "dialer")
    assert len(world.pushes.events) == before


async def test_the_list_takes_the_customer_from_the_task(world: World) -> None:
    """A strategy's task carries its customer's name and tier: no back office look-up per
    task; agents' own tasks (without them) ask once per account and request."""
    for n in range(3):
        await task(world, team="sales", account=f"3100000{n}", strategy="s", run_day="d1",
                   customer_name=f"客户{n}", tier="silver")
    await task(world, team="sales", account=ACCOUNT)
    await task(world, team="sales", account=ACCOUNT, text="second")
    world.backoffice.asked.clear()
    listed = (await world.command(A1, {"type": "tasks", "view": "team"}))["tasks"]
    assert sorted(str(t["customer"]["name"]) for t in listed) == [
        "客户0", "客户1", "客户2", "王五", "王五"]
    assert world.backoffice.asked == [ACCOUNT]


async def test_a_failing_push_or_pop_does_not_undo_the_move(world: World) -> None:
    """The move is committed before the push and the pop: their failure is logged, the reply
    is the moved task."""
    task_id = await task(world, team="sales", account=ACCOUNT)

    async def down(account: str) -> Any:
        raise ConnectionResetError("back office link dropped")

    world.backoffice.customer = down  # type: ignore[method-assign]

    class Broken:
        def to_agent(self, agent_id: str, event: p.Event) -> None:
            raise RuntimeError("the console server is gone")

        to_role = state_to_role = lambda self, role, event: None

    world.backend.push = Broken()  # type: ignore[assignment]
    reply = await world.command(A1, {"type": "claim_task", "task_id": task_id})
    assert (reply["task"]["state"], reply["task"]["customer"]) == ("claimed", None)
    assert (await world.backend.tasks.store.get(task_id)).claimed_by == A1.agent_id


async def test_a_recorded_tasks_outcome_waits_for_the_call(world: World) -> None:
    task_id = await task(world, team="sales", fields=FORM, dial={"record": True})
    claimed = (await world.command(A1, {"type": "claim_task", "task_id": task_id}))["task"]
    assert claimed["record"] is True   # the page shows the form once the call reached them
    error = await world.refused(A1, {"type": "task_outcome", "task_id": task_id,
                                     "values": {"outcome": "bought"}})
    assert error.code == "invalid_state" and "only after a call reached" in error.message
    store = world.backend.tasks.store
    await store.move(task_id, TaskInput.DIAL, "dialer")
    await store.move(task_id, TaskInput.REACHED, "dialer")
    done = (await world.command(A1, {"type": "task_outcome", "task_id": task_id,
                                     "values": {"outcome": "bought"}}))["task"]
    assert done["state"] == "done"


async def test_the_assigned_agent_may_call_without_claiming(world: World) -> None:
    """The server's rule for a preview call: the task's holder, its claimer or else its
    assigned agent (the page's Call button follows it)."""
    dialer = FakeDialer()
    world.backend.tasks.dialer = dialer
    task_id = await task(world, agent_id=A1.agent_id, team="sales")
    assert await world.command(A1, {"type": "task_call", "task_id": task_id}) == {
        "call_id": f"task-{task_id}-1"}
    error = await world.refused(A2, {"type": "task_call", "task_id": task_id})
    assert error.code == "not_found"
    # a supervisor's call may come before a retry's time (override); an agent's never does
    mine = await task(world, agent_id=BOSS.agent_id, team="sales")
    await world.command(BOSS, {"type": "task_call", "task_id": mine})
    assert dialer.calls == [("preview", (A1.agent_id, task_id)),
                            ("override", (BOSS.agent_id, mine))]
