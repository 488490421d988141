"""The dialer through the real Asterisk: progressive campaigns with retries, refusals never
dialled, a recorded verification call, a restart mid-call, AMD on the simulated customers.

The simulated customers answer by number ([outbound-sim], docs/campaigns.md): 171000XXXXX is
busy, 171001XXXXX never answers, 171002XXXXX an answering machine, 171003XXXSS a person who
hangs up after SS seconds (00: stays). Agents are Local channels that answer at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callcenter.config import Settings, load_settings
from callcenter.dialer import store
from callcenter.engine import Engine
from callcenter.errors import ConsoleError, DialerError
from callcenter.tasks.state import TaskState
from callcenter.tasks.store import NewTask
from callcenter.telephony.ami_events import AmiEvent, NewChannel, NewState
from callcenter.telephony.pbx import Pbx
from tests.integration.acd_helpers import Clock, Factory, agent, engines_for, hang_up_all, until
from tests.integration.conftest import TRADING_TIME

pytestmark = pytest.mark.integration


BUSY, NO_ANSWER, MACHINE = "17100000001", "17100100001", "17100200001"


def person(n: int, hold_s: int) -> str:
    """A simulated person's number: says 喂 and hangs up after ``hold_s`` (0: stays)."""
    return f"171003{n:03d}{hold_s:02d}"


def every_day_plan(**plan: Any) -> dict[str, Any]:
    return {"window": {"start": "00:00", "end": "24:00", "days": [1, 2, 3, 4, 5, 6, 7]},
            "ring_s": 5, **plan}


def dialer_settings(tmp_path: Path) -> Settings:
    return load_settings(db_path=tmp_path / "callcenter.db", channels={"enabled": False},
                         backoffice_path=tmp_path / "backoffice.db",
                         console={"enabled": False, "port": 0},
                         acd={"queues": [{"name": "general", "announce_every_s": 0}],
                              "ring_timeout_s": 5, "wrap_up_s": 0,
                              "require_disposition": False})


def pinned_clock() -> Clock:
    """The engine's clock from the sandbox's Monday 10:00 on (real seconds pass): the calling
    windows and "today" never depend on the day or hour the suite runs (near midnight)."""
    clock = Clock()
    clock.offset = TRADING_TIME.timestamp() - clock()
    return clock


@pytest.fixture
async def start_engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Factory]:
    # one clock for every engine of a test: it never goes back
    async with engines_for(lambda: dialer_settings(tmp_path), pinned_clock()) as start:
        yield start


class Outgoing:
    """Asterisk's view: every number dialled out ([outbound]) and the caller ID it carried."""

    def __init__(self, engine: Engine) -> None:
        assert engine.ami is not None
        self.ami = engine.ami
        self.numbers: list[str] = []
        self.caller_ids: dict[str, str] = {}
        self.ami.add_handler(self)

    def __call__(self, event: AmiEvent) -> None:
        if isinstance(event, NewChannel) and "@outbound-" in event.info.channel \
                and event.info.channel.endswith(";1"):
            self.numbers.append(event.info.channel.split("/", 1)[1].split("@", 1)[0])
        elif isinstance(event, NewState) and "@outbound-" in event.info.channel \
                and event.info.channel.endswith(";2"):
            # the customer's side: the caller ID it sees
            number = event.info.channel.split("/", 1)[1].split("@", 1)[0]
            self.caller_ids[number] = event.info.caller_num

    def close(self) -> None:
        self.ami.remove_handler(self)


async def make_task(engine: Engine, phone: str, plan: dict[str, Any], *, priority: int = 50,
                    agent_id: str = "", account: str = "") -> int:
    assert engine.dialer is not None
    task_id = await engine.dialer.tasks.create(NewTask(
        f"call {phone}", "test", account=account or f"C{phone}", phone=phone,
        agent_id=agent_id, team="" if agent_id else "general", priority=priority, dial=plan))
    assert task_id is not None
    return task_id


async def attempts(engine: Engine, task_id: int) -> list[dict[str, Any]]:
    assert engine.db is not None
    cols = ("attempt", "call_id", "agent_id", "mode", "result", "ended_at", "talk_s",
            "recording")
    async with engine.db.execute(f"SELECT {', '.join(cols)} FROM task_attempts"
                                 " WHERE task_id = ? ORDER BY attempt", (task_id,)) as cur:
        return [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]


async def task_states(engine: Engine, ids: list[int]) -> dict[int, TaskState]:
    assert engine.dialer is not None
    return {i: (await engine.dialer.tasks.get(i)).state for i in ids}


async def wait_states(engine: Engine, expected: dict[int, TaskState], within_s: float,
                      what: str, *, settled: bool = True) -> None:
    """Wait until the tasks are in these states (and, if ``settled``, no dialer call is in
    flight): re-checked on every ACD or AMI event, and twice a second."""
    assert engine.dialer is not None and engine.ami is not None and engine.acd is not None
    dialer, changed = engine.dialer, asyncio.Event()
    current: dict[int, TaskState] = {}

    def poke(*_args: object) -> None:
        changed.set()

    engine.acd.listeners.append(poke)
    engine.ami.add_handler(poke)
    try:
        async with asyncio.timeout(within_s):
            while True:
                current = await task_states(engine, list(expected))
                if current == expected and not (settled and dialer._calls):
                    return
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await changed.wait()
    except TimeoutError:
        seats = {a: rt.seat.state.value for a, rt in engine.acd.seats.items()}
        logs = {i: [(h["input"], h["to"], h["detail"]) for h in await dialer.tasks.history(i)]
                for i in expected}
        raise AssertionError(f"{what}: {current} != {expected}; seats {seats}; "
                             f"pacer {dialer.pacer}; tasks {logs}") from None
    finally:
        engine.acd.listeners.remove(poke)
        engine.ami.remove_handler(poke)


# -- tests -------------------------------------------------------------------------------------


async def test_a_progressive_campaign_retries_and_never_dials_a_refused_number(
        start_engine: Factory) -> None:
    """Two agents, six tasks: two people reached, a busy line and one that never answers retried
    once (after the plan's minute, on the engine's clock) and given up; a number on the
    do-not-call list and a customer outside their calling window refused and never dialled."""
    clock = pinned_clock()
    engine = await start_engine([agent("A1", "7001"), agent("A2", "7002")], clock)
    assert engine.dialer is not None and engine.db is not None and engine.acd is not None
    dialer, watch = engine.dialer, Outgoing(engine)
    plan = every_day_plan(mode="progressive", max_attempts=2, caller_id="4008895500",
                          retry={"busy": 1, "no_answer": 1, "machine": 1, "failed": 1})
    today = dt.datetime.fromtimestamp(clock(), ZoneInfo("Asia/Shanghai")).isoweekday()
    not_today = {**plan, "window": {"start": "00:00", "end": "23:59",
                                    "days": [d for d in range(1, 8) if d != today]}}
    await store.add_dnc(engine.db, "+86" + person(9, 3), "test", "asked", clock())
    await store.add_opt_out(engine.db, "880077", "all", "test", clock())
    tasks = {
        "dnc": await make_task(engine, person(9, 3), plan, priority=0),
        "optout": await make_task(engine, person(7, 3), plan, priority=0, account="880077"),
        "window": await make_task(engine, person(8, 3), not_today, priority=0),
        "person1": await make_task(engine, person(1, 2), plan, priority=10),
        "busy": await make_task(engine, BUSY, plan, priority=20),
        "noanswer": await make_task(engine, NO_ANSWER, plan, priority=20),
        "person2": await make_task(engine, person(2, 2), plan, priority=30),
    }
    ids = {v: k for k, v in tasks.items()}
    try:
        for agent_id in ("A1", "A2"):
            engine.acd.set_state(agent_id, "ready")
            dialer.join(agent_id)
        S = TaskState
        await wait_states(engine, {tasks["dnc"]: S.CANCELLED, tasks["optout"]: S.CANCELLED,
                                   tasks["window"]: S.OPEN,
                                   tasks["person1"]: S.REACHED, tasks["person2"]: S.REACHED,
                                   tasks["busy"]: S.RETRY, tasks["noanswer"]: S.RETRY},
                          90, "the first round")
        window = await dialer.tasks.get(tasks["window"])
        assert window.next_attempt_at is not None and window.next_attempt_at > clock()
        assert [h["detail"].get("reason") for h in await dialer.tasks.history(tasks["dnc"])
                if h["input"] == "cancel"] == ["dnc"]
        busy = await dialer.tasks.get(tasks["busy"])
        [first] = await attempts(engine, tasks["busy"])
        assert busy.next_attempt_at == first["ended_at"] + 60  # the plan's minute for busy
        assert busy.claimed_by == ""  # a progressive retry is anyone's in the team
        assert await dialer.pace() == []  # the retries are not due yet

        clock.advance(61)
        dialer.kick()
        await wait_states(engine, {tasks["busy"]: S.FAILED, tasks["noanswer"]: S.FAILED},
                          60, "the retries")
        assert [a["result"] for a in await attempts(engine, tasks["busy"])] == ["busy", "busy"]
        assert [a["result"] for a in await attempts(engine, tasks["noanswer"])] == \
            ["no_answer", "no_answer"]
        for name in ("person1", "person2"):
            [reached] = await attempts(engine, tasks[name])
            assert reached["result"] == "answered" and reached["mode"] == "progressive"
            assert reached["talk_s"] is not None and reached["talk_s"] > 0
        # refused numbers never reached Asterisk; each other number was dialled per attempt
        for refused in (person(9, 3), person(8, 3), person(7, 3)):
            assert refused not in watch.numbers
        assert sorted(watch.numbers) == sorted([person(1, 2), person(2, 2), BUSY, BUSY,
                                                NO_ANSWER, NO_ANSWER])
        assert watch.caller_ids[person(1, 2)] == "4008895500"
        assert await attempts(engine, tasks["dnc"]) == []
        assert await attempts(engine, tasks["optout"]) == []
        # one line per agent: an agent's attempts never overlap
        async with engine.db.execute("SELECT agent_id, placed_at, ended_at FROM task_attempts"
                                     " ORDER BY agent_id, placed_at") as cur:
            rows = [tuple(r) for r in await cur.fetchall()]
        assert {r[0] for r in rows} == {"A1", "A2"}
        for before, after in itertools.pairwise(rows):
            if before[0] == after[0]:
                assert after[1] >= before[2], (before, after)
        assert await attempts(engine, tasks["window"]) == []
        # every call in the contact log, with its task
        async with engine.db.execute("SELECT task_id, channel, outcome FROM contact_log") as cur:
            logged = sorted((ids[t], c, o) for t, c, o in await cur.fetchall())
        assert logged == sorted([("busy", "call", "busy"), ("busy", "call", "busy"),
                                 ("noanswer", "call", "no_answer"),
                                 ("noanswer", "call", "no_answer"),
                                 ("person1", "call", "answered"),
                                 ("person2", "call", "answered")])
    finally:
        watch.close()


async def test_a_recorded_verification_call_in_preview_and_refusals_raised(
        start_engine: Factory, pbx: Pbx) -> None:
    """The agent presses Call on a new account's verification task: recorded, the recording's
    file exists and is linked to the task (its attempt and the recordings row). A task whose
    number is on the do-not-call list raises DialerError and is never dialled; an agent who is
    not ready gets ConsoleError."""
    engine = await start_engine([agent("A1", "7001")])
    assert engine.dialer is not None and engine.db is not None and engine.acd is not None
    dialer, watch = engine.dialer, Outgoing(engine)
    plan = every_day_plan(mode="preview", record=True, caller_id="95500")
    verify = await make_task(engine, person(3, 3), plan, agent_id="A1", account="880001")
    await store.add_dnc(engine.db, person(4, 3), "test", "", 0.0)
    refused = await make_task(engine, person(4, 3), plan, agent_id="A1")
    try:
        with pytest.raises(ConsoleError) as not_ready:
            await dialer.preview_call("A1", verify)
        assert not_ready.value.code == "invalid_state"
        engine.acd.set_state("A1", "ready")
        with pytest.raises(DialerError) as dnc:
            await dialer.preview_call("A1", refused)
        assert dnc.value.reason == "dnc"
        assert (await dialer.tasks.get(refused)).state is TaskState.CANCELLED

        call_id = await dialer.preview_call("A1", verify)
        await wait_states(engine, {verify: TaskState.REACHED}, 60, "the verification call")
        [attempt] = await attempts(engine, verify)
        assert attempt["call_id"] == call_id and attempt["result"] == "answered"
        assert attempt["mode"] == "preview" and attempt["agent_id"] == "A1"
        await engine.acd.flush()
        async with engine.db.execute("SELECT path, account FROM recordings WHERE call_id = ?",
                                     (call_id,)) as cur:
            rows = [tuple(r) for r in await cur.fetchall()]
        assert rows == [(attempt["recording"], "880001")]
        recording = pbx.root / attempt["recording"].lstrip("/") if pbx.sandbox \
            else Path(attempt["recording"])
        assert recording.is_file() and recording.stat().st_size > 44  # more than a header
        assert watch.numbers == [person(3, 3)]
        assert watch.caller_ids[person(3, 3)] == "95500"
    finally:
        watch.close()


async def test_an_engine_stopped_mid_call_leaves_the_task_in_review_never_redialled(
        start_engine: Factory) -> None:
    """The engine stops while the agent talks to the customer; started again, the attempt is
    'interrupted' and the task waits in REVIEW: pacing does not call the customer again."""
    engine = await start_engine([agent("A1", "7001")])
    assert engine.dialer is not None and engine.acd is not None
    plan = every_day_plan(mode="progressive", max_attempts=3)
    task_id = await make_task(engine, person(5, 0), plan)  # stays on the line
    engine.acd.set_state("A1", "ready")
    engine.dialer.join("A1")
    await wait_states(engine, {task_id: TaskState.REACHED}, 30, "the customer answered",
                      settled=False)
    await engine.stop()

    again = await start_engine([])
    assert again.dialer is not None and again.acd is not None
    watch = Outgoing(again)
    try:
        task = await again.dialer.tasks.get(task_id)
        assert task.state is TaskState.REVIEW and task.attempts == 1
        assert [a["result"] for a in await attempts(again, task_id)] == ["interrupted"]
        # the customer was called: the contact caps count it
        assert again.db is not None
        async with again.db.execute("SELECT outcome FROM contact_log WHERE task_id = ?",
                                    (task_id,)) as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [("interrupted",)]
        again.dialer.join("A1")
        await hang_up_all(again)
        await until(again, lambda: again.acd is not None
                    and again.acd.seats["A1"].call is None, 20, "the old call gone")
        again.acd.set_state("A1", "ready")
        assert await again.dialer.pace() == []
        assert watch.numbers == []
    finally:
        watch.close()


#: calls of each kind (``DIALER_AMD_ROUNDS`` for a longer measurement)
AMD_ROUNDS = int(os.environ.get("DIALER_AMD_ROUNDS", "5"))


async def test_amd_tells_a_machine_from_a_person(start_engine: Factory) -> None:
    """With ``amd`` on, the sandbox's answering machine (a recorded greeting of continuous
    speech) is hung up as 'machine' and a person (a short 喂 then silence) reaches the agent:
    every time, over AMD_ROUNDS of each (docs/campaigns.md gives the rate)."""
    engine = await start_engine([agent("A1", "7001")])
    assert engine.dialer is not None and engine.acd is not None
    plan = every_day_plan(mode="preview", amd=True, max_attempts=2)
    engine.acd.set_state("A1", "ready")
    results: dict[str, list[str]] = {"machine": [], "person": []}
    for n in range(AMD_ROUNDS):
        for kind, number in (("machine", f"1710020{n:04d}"), ("person", person(n, 1))):
            task_id = await make_task(engine, number, plan, agent_id="A1")
            await until(engine, lambda: engine.acd is not None
                        and engine.acd.seats["A1"].seat.state.value == "ready", 20, "ready")
            await engine.dialer.preview_call("A1", task_id)
            await wait_states(engine, {}, 40, f"{kind} {n}")  # its result is in
            [attempt] = await attempts(engine, task_id)
            results[kind].append(attempt["result"])
    print(f"AMD over {AMD_ROUNDS} calls each: {results}")
    assert results == {"machine": ["machine"] * AMD_ROUNDS, "person": ["answered"] * AMD_ROUNDS}


async def test_an_agent_who_does_not_answer_costs_the_customer_no_attempt(
        start_engine: Factory) -> None:
    """The agent's phone rings out: the customer was never dialled, the attempt is
    'not_placed' and not counted, the task may be dialled again at once."""
    engine = await start_engine([agent("A3", "7003", "agent-noanswer")])
    assert engine.dialer is not None and engine.acd is not None
    watch = Outgoing(engine)
    task_id = await make_task(engine, person(6, 3), every_day_plan(mode="preview"),
                              agent_id="A3")
    try:
        engine.acd.set_state("A3", "ready")
        call_id = await engine.dialer.preview_call("A3", task_id)
        await wait_states(engine, {task_id: TaskState.RETRY}, 30, "the ring out")
        task = await engine.dialer.tasks.get(task_id)
        assert task.attempts == 0 and task.next_attempt_at is not None
        [attempt] = await attempts(engine, task_id)
        assert (attempt["call_id"], attempt["result"]) == (call_id, "not_placed")
        assert watch.numbers == []
    finally:
        watch.close()
