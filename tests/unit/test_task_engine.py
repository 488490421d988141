"""The engine's task wiring, on a real ``Engine`` (a scripted AMI peer stands in for Asterisk):
one ``TaskStore`` (``engine.tasks``) that the console backend listens to, so a task created
through it reaches the right consoles, and the deadline watch running with the console off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from callcenter.config import load_settings
from callcenter.engine import Engine
from callcenter.seats import protocol as p
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.db import open_db
from callcenter.tasks.store import NewTask
from callcenter.telephony.ami import event_headers
from tests.unit.test_console_backend import Pushes


async def asterisk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """AMI, scripted: a challenge, then every action succeeds (a list action: empty)."""
    writer.write(b"Asterisk Call Manager/9.0.0\r\n")
    try:
        while True:
            request = event_headers((await reader.readuntil(b"\r\n\r\n")).decode().strip())
            aid = request.get("ActionID", "")
            if request.get("Action") == "Challenge":
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nChallenge: 42\r\n\r\n"
                             .encode())
            else:
                writer.write(f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
                             f"Event: ListComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
                             "ListItems: 0\r\n\r\n".encode())
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    server = await asyncio.start_server(asterisk, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = load_settings(
        state_dir=tmp_path, agi={"key": "k" * 48, "port": 0},
        ami={"port": port, "secret": "s" * 20},
        acd={"queues": [{"name": "general"}, {"name": "sales", "skill": "sales"},
                        {"name": "vip", "skill": "vip"}]},
        # no bus (its mosquitto would take a fixed port): the tasks need none
        channels={"enabled": False},
        console={"enabled": False, "task_alert_before_s": 3600, "task_watch_s": 0.05})
    db = await open_db(settings.database)
    for agent_id, role, skills in (("1001", "agent", {"sales": 5}), ("1002", "agent", {"vip": 5}),
                                   ("2001", "supervisor", {})):
        await save_agent(db, AgentRecord(agent_id, agent_id, role, f"PJSIP/{agent_id}",
                                         skills=skills), SecretStr(f"pw-{agent_id}"))
    await db.close()
    eng = Engine(settings)
    try:
        async with asyncio.timeout(30):
            await eng.start()
        yield eng
    finally:
        await eng.stop()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def test_one_store_and_its_tasks_reach_the_right_consoles(engine: Engine) -> None:
    assert engine.tasks is not None and engine.console_backend is not None
    assert engine.console_backend.tasks.store is engine.tasks
    pushes = Pushes()
    engine.console_backend.push = pushes   # what the console server does when it runs
    # a strategy's task, created after the consoles logged in (the 09:00 complaint task)
    task_id = await engine.tasks.create(NewTask(
        "投诉回访 / complaint call-back", "strategy", team="sales", account="31000088",
        strategy="complaint_callback", match_key="C-7", customer_name="王五", tier="gold"))
    pushed = {who for who, kind, data in pushes.events
              if kind == "task" and data["id"] == task_id}
    assert pushed == {"1001", f"role:{p.Role.SUPERVISOR.value}"}   # not the VIP agent


async def test_the_deadline_watch_runs_with_the_console_off(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    assert engine.console is None and engine.tasks is not None
    task_id = await engine.tasks.create(NewTask(
        "投诉回访 / complaint call-back", "strategy", team="sales", account="31000088",
        strategy="complaint_callback", match_key="C-8",
        deadline_at=engine.acd_clock() + 600))
    assert task_id is not None
    async with asyncio.timeout(10):
        while (await engine.tasks.get(task_id)).alerted_at is None:
            await asyncio.sleep(0.02)
    assert f"task {task_id} (complaint_callback" in caplog.text
