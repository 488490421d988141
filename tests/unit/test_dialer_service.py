"""The dialer's edge (``dialer/service.py``) on a real ACD (``acd/service.py``, scripted AMI)
and a real SQLite database: what reaches the task and attempt rows when a ring is lost with the
AMI link, withdrawn, or never placed; a task whose plan is broken; a retry not yet due."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callcenter.acd.records import SeatRuntime, Waiter
from callcenter.dialer.service import Dialer
from callcenter.errors import ConsoleError, DialerError
from callcenter.store.tx import transaction
from callcenter.tasks.state import TaskState
from callcenter.tasks.store import NewTask, TaskStore
from callcenter.telephony.ami_events import OtherEvent
from tests.unit.acd_world import FakeClock, World, make_world

#: Monday 23 November 2026, 10:00 in Shanghai
MONDAY_10 = dt.datetime(2026, 11, 23, 10, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
PLAN: dict[str, Any] = {"mode": "preview", "max_attempts": 3, "caller_id": "95500"}


@dataclass
class Rig:
    world: World
    dialer: Dialer
    tasks: TaskStore
    clock: FakeClock

    async def until(self, condition: Callable[[], Any], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.005)

    async def task(self, **kw: Any) -> int:
        task_id = await self.tasks.create(NewTask("回访 / follow-up", "t", account="880001",
                                                  phone="13812345678", agent_id="A1",
                                                  dial=kw.pop("dial", PLAN), **kw))
        assert task_id is not None
        return task_id

    async def state(self, task_id: int) -> TaskState:
        return (await self.tasks.get(task_id)).state

    async def attempts(self) -> list[tuple[str, ...]]:
        async with self.tasks.db.execute("SELECT result FROM task_attempts ORDER BY id") as cur:
            return [tuple(r) for r in await cur.fetchall()]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FakeClock(MONDAY_10)
    async with make_world(tmp_path, clock=clock) as world:
        tasks = TaskStore(world.acd.db, clock)
        dialer = Dialer(world.acd.db, world.acd, clock, tick_s=3600, tasks=tasks)
        await dialer.start()
        world.acd.set_state("A1", "ready")
        try:
            yield Rig(world, dialer, tasks, clock)
        finally:
            await dialer.close()


def report(call_id: str, stage: str, **headers: str) -> OtherEvent:
    return OtherEvent("UserEvent", {"UserEvent": "CallCenterDialer", "Attempt": call_id,
                                    "Stage": stage, **headers})


async def test_a_ring_lost_with_the_ami_link_goes_to_review_never_redialled(rig: Rig) -> None:
    """C1: the link dropped while the agent's phone rang and the leg is gone when it is back.
    The agent may have answered and the customer been called: the task goes to review, the
    attempt counts (interrupted), the contact is logged. Never "retry now"."""
    rig.world.ami.rings["PJSIP/1001"] = "hang"
    task_id = await rig.task()
    await rig.dialer.preview_call("A1", task_id)
    rt = rig.world.acd.seat("A1")
    call = rt.call
    assert call is not None
    assert rig.world.acd.ring_link_lost(rt, call, "link lost")
    rig.world.acd.settle_rings({})
    await rig.until(lambda: _is(rig, task_id, TaskState.REVIEW))
    task = await rig.tasks.get(task_id)
    assert task.attempts == 1
    assert await rig.attempts() == [("interrupted",)]
    async with rig.tasks.db.execute("SELECT outcome FROM contact_log") as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [("interrupted",)]
    assert "A1" not in rig.dialer.pacer.busy


async def test_a_forced_state_change_while_it_rings_frees_the_agent_and_the_task(
        rig: Rig) -> None:
    """M2: a supervisor forces the ringing seat Not Ready: the customer was never dialled
    (the agent's phone never answered), the task may be called again, the attempt given back."""
    rig.world.ami.rings["PJSIP/1001"] = "hang"
    task_id = await rig.task()
    await rig.dialer.preview_call("A1", task_id)
    rig.world.acd.set_state("A1", "not_ready", "meeting", by="S1", force=True)
    await rig.until(lambda: _is(rig, task_id, TaskState.RETRY))
    assert (await rig.tasks.get(task_id)).attempts == 0
    assert await rig.attempts() == [("not_placed",)]
    assert "A1" not in rig.dialer.pacer.busy


async def test_the_dialplans_reports_reach_the_task(rig: Rig) -> None:
    task_id = await rig.task()
    call_id = await rig.dialer.preview_call("A1", task_id)
    await rig.world.until(lambda: rig.world.acd.seat("A1").call is not None
                          and rig.world.acd.seat("A1").call.answered)  # type: ignore[union-attr]
    rig.dialer._on_ami(report(call_id, "ended", DialStatus="CANCEL", Talk=""))
    await rig.until(lambda: _is(rig, task_id, TaskState.RETRY))
    # the agent hung up while it rang: the attempt is given back
    assert (await rig.tasks.get(task_id)).attempts == 0
    assert await rig.attempts() == [("cancelled",)]


async def test_a_task_whose_plan_is_broken_fails_once_with_the_reason(rig: Rig) -> None:
    """M1: a broken plan is not picked again and again (pacing spun on it)."""
    task_id = await rig.task(dial={"mode": "progressive", "max_attempts": 99})
    rig.dialer.join("A1")
    rig.dialer._kick.clear()
    assert await rig.dialer.pace() == []
    task = await rig.tasks.get(task_id)
    assert task.state is TaskState.FAILED
    assert (await rig.tasks.history(task_id))[-1]["detail"]["reason"] == "plan"
    assert await rig.dialer.pace() == []  # not picked again
    assert await rig.attempts() == []


async def test_pacing_looks_again_at_once_only_when_a_failure_moved_the_task(
        rig: Rig) -> None:
    """M1: after a failed placement pacing is kicked again only if the task changed (a refusal
    moved it); a failure that changed nothing waits for the next tick (no busy loop)."""
    pacing = rig.dialer._workers[1]  # the test paces itself and reads the kick
    pacing.cancel()
    await asyncio.gather(pacing, return_exceptions=True)
    task_id = await rig.task(dial={**PLAN, "mode": "progressive"})
    task = await rig.tasks.get(task_id)
    assert not await rig.dialer._moved(task)
    await rig.tasks.db.execute("INSERT INTO dnc (number, added_at, added_by, reason)"
                               " VALUES ('13812345678', 1, 'ops', '')")
    await rig.tasks.db.commit()
    rig.dialer.join("A1")
    rig.dialer._kick.clear()
    assert await rig.dialer.pace() == []
    assert await rig.state(task_id) is TaskState.CANCELLED
    assert rig.dialer._kick.is_set()  # moved: the agent may take the next task now
    assert await rig.dialer._moved(task)


async def test_a_retry_is_not_previewed_before_its_time_unless_overridden(rig: Rig) -> None:
    """m8: preview respects the next attempt's time; a supervisor may override it."""
    task_id = await rig.task()
    await rig.tasks.db.execute("UPDATE tasks SET next_attempt_at = ? WHERE id = ?",
                               (MONDAY_10 + 600, task_id))
    await rig.tasks.db.commit()
    with pytest.raises(DialerError) as refused:
        await rig.dialer.preview_call("A1", task_id)
    assert refused.value.reason == "not_due"
    assert await rig.dialer.preview_call("A1", task_id, override=True)


async def test_a_late_failure_leaves_no_call_and_gives_the_attempt_back(rig: Rig) -> None:
    """m6: the ring cannot be placed after the attempt was written: nothing stays DIALING, the
    agent is free again, the attempt is not counted."""
    task_id = await rig.task()

    def broken(rt: SeatRuntime, waiter: Waiter) -> None:
        raise RuntimeError("the ACD broke")

    rig.world.acd.offer_direct = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await rig.dialer.preview_call("A1", task_id)
    task = await rig.tasks.get(task_id)
    assert (task.state, task.attempts) == (TaskState.RETRY, 0)
    assert await rig.attempts() == [("not_placed",)]
    assert rig.dialer.pacer.busy == {} and rig.dialer._calls == {}


async def _is(rig: Rig, task_id: int, state: TaskState) -> bool:
    return await rig.state(task_id) is state


@pytest.mark.parametrize("record", [True, False])
async def test_a_call_whose_plan_says_record_cannot_be_paused(rig: Rig, record: bool) -> None:
    """M6: ``record: true`` is the call's proof: the agent may not pause its recording."""
    task_id = await rig.task(dial={**PLAN, "record": record})
    await rig.dialer.preview_call("A1", task_id)
    rt = rig.world.acd.seat("A1")
    await rig.world.until(lambda: rt.call is not None and rt.call.answered)
    if record:
        with pytest.raises(ConsoleError, match="must be recorded"):
            await rig.world.control.recording("A1", pause=True)
    else:
        await rig.world.control.recording("A1", pause=True)
        assert rt.call is not None and rt.call.recording_paused


async def test_a_number_listed_while_the_call_is_set_up_is_not_dialled(rig: Rig) -> None:
    """m1: the do-not-call list is read again inside the DIAL move's transaction: an entry
    written after the first check (here while the move waits for the database) refuses it."""
    task_id = await rig.task()
    async with transaction(rig.tasks.db):
        placing = asyncio.create_task(rig.dialer.preview_call("A1", task_id))
        await asyncio.sleep(0.1)  # it read the lists and waits for the move's transaction
        assert not placing.done()
        await rig.tasks.db.execute("INSERT INTO dnc (number, added_at, added_by, reason)"
                                   " VALUES ('13812345678', 1, 'ops', 'asked just now')")
    with pytest.raises(DialerError) as refused:
        await placing
    assert refused.value.reason == "dnc"
    assert await rig.state(task_id) is TaskState.CANCELLED
    assert await rig.attempts() == [] and rig.world.acd.seat("A1").call is None


async def test_a_caller_id_not_the_sites_own_is_refused_and_never_dialled(rig: Rig) -> None:
    """M3: presenting someone else's number (a bank's 95588) is refused at dial time; the task
    fails with the reason (it is not tried again and again)."""
    task_id = await rig.task(dial={**PLAN, "caller_id": "95588"})
    with pytest.raises(DialerError) as refused:
        await rig.dialer.preview_call("A1", task_id)
    assert refused.value.reason == "caller_id"
    assert await rig.state(task_id) is TaskState.FAILED
    assert (await rig.tasks.history(task_id))[-1]["detail"]["reason"] == "caller_id"
    assert await rig.attempts() == [] and rig.world.ami.originates() == []
