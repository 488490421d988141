"""``kill -9`` of a real ``callcenter run`` mid-campaign (issue 14): no customer is called twice
for the same task, and no task is lost.

The engine runs as its own process. An agent (a simulated phone that answers) logs in to the
console over its websocket, goes Ready and joins progressive dialling; a task's customer (a
simulated person who stays on the line) is reached; the engine is killed with SIGKILL while they
talk. Started again, the engine finds the attempt it left in flight: the task waits in REVIEW for a
person. The agent joins again and a second task proves the dialer paces again: only that task's
number is dialled, never the first one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from callcenter.config import load_settings
from callcenter.errors import AmiActionError
from callcenter.store.db import open_db
from callcenter.tasks.store import NewTask, TaskStore
from callcenter.telephony.ami import AmiClient
from callcenter.telephony.ami_events import AmiEvent, NewChannel
from callcenter.telephony.pbx import Pbx
from tests.integration.acd_helpers import AGENT_PASSWORD, add_agents, agent
from tests.integration.conftest import wait_no_channels
from tests.integration.test_crash_records import _eventually, _start_run
from tests.ports import free_port

pytestmark = pytest.mark.integration

T = TypeVar("T")
PLAN = {"mode": "progressive", "max_attempts": 3, "ring_s": 10,
        "window": {"start": "00:00", "end": "24:00", "days": [1, 2, 3, 4, 5, 6, 7]}}
FIRST, SECOND = "17100300100", "17100300207"   # a person who stays; one who hangs up after 7 s


@asynccontextmanager
async def _console(port: int) -> AsyncIterator[Callable[..., Awaitable[dict[str, Any]]]]:
    """Agent A1's console: ``await call(type, **fields)`` is a request and its reply."""
    async with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=30,
                       origin=Origin(f"http://127.0.0.1:{port}")) as ws:
        n = 0

        async def call(kind: str, **fields: Any) -> dict[str, Any]:
            nonlocal n
            n += 1
            await _send(ws, {"v": 1, "id": f"r{n}", "type": kind, **fields})
            while True:
                async with asyncio.timeout(30):
                    message: dict[str, Any] = json.loads(await ws.recv())
                if message.get("id") == f"r{n}":
                    assert message.get("type") != "error", message
                    return message

        await call("login", agent_id="A1", password=AGENT_PASSWORD)
        yield call


async def _send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def _task(db_path: Path, task_id: int) -> dict[str, Any]:
    async with aiosqlite.connect(db_path) as db:  # reads only
        db.row_factory = aiosqlite.Row
        async with db.execute("SELECT state, attempts FROM tasks WHERE id = ?",
                              (task_id,)) as cur:
            task = dict(await cur.fetchone() or {})
        async with db.execute("SELECT result FROM task_attempts WHERE task_id = ? ORDER BY"
                              " attempt", (task_id,)) as cur:
            task["results"] = [row[0] for row in await cur.fetchall()]
    return task


async def test_kill_9_mid_campaign_no_customer_twice_no_task_lost(
        pbx: Pbx, tmp_path: Path) -> None:
    base = load_settings()
    db_path, console_port = tmp_path / "run.db", free_port()
    env = {**os.environ, "CALLCENTER_DB_PATH": str(db_path),
           "CALLCENTER_STATE_DIR": str(tmp_path / "state"),
           "CALLCENTER_BACKOFFICE_PATH": str(tmp_path / "backoffice.db"),
           "CALLCENTER_AMI__SECRET_FILE": str(base.ami_secret_file),
           "CALLCENTER_CHANNELS__ENABLED": "false",
           "CALLCENTER_CONSOLE__PORT": str(console_port),
           "CALLCENTER_CONSOLE__FANOUT": "inline",
           "CALLCENTER_ACD__WRAP_UP_S": "0",
           "CALLCENTER_ACD__REQUIRE_DISPOSITION": "false"}
    if (base.state_dir / "agi.key").exists():
        env["CALLCENTER_AGI__KEY_FILE"] = str(base.state_dir / "agi.key")
    await add_agents(load_settings(db_path=db_path), [agent("A1", "7001")])
    db = await open_db(db_path)
    store = TaskStore(db, lambda: 0.0)
    first_id = await store.create(NewTask("call", "test", account="C1", phone=FIRST,
                                          team="general", dial=PLAN))
    assert first_id is not None

    dialled: list[str] = []

    def outgoing(event: AmiEvent) -> None:
        if isinstance(event, NewChannel) and "@outbound-" in event.info.channel \
                and event.info.channel.endswith(";1"):
            dialled.append(event.info.channel.split("/", 1)[1].split("@", 1)[0])

    ami = AmiClient(base.ami, base.ami_secret())
    await ami.connect()
    ami.add_handler(outgoing)
    procs: list[asyncio.subprocess.Process] = []
    try:
        first = await _start_run(env)
        procs.append(first)
        async with _console(console_port) as call:
            await call("set_state", state="ready")
            await call("dialer_join")

            async def reached() -> bool:
                state: str = (await _task(db_path, first_id))["state"]
                return state == "reached"

            await _eventually(reached, 60, "the first customer reached")
            first.send_signal(signal.SIGKILL)
            await first.wait()
        assert dialled == [FIRST]
        # nobody is left to end the call: the test does, as a person hanging up would
        for row in await ami.action_list("CoreShowChannels"):
            with contextlib.suppress(AmiActionError):  # gone with its other half
                await ami.action("Hangup", Channel=row["Channel"])
        assert await wait_no_channels(ami, 30) == []

        second_id = await store.create(NewTask("call", "test", account="C2", phone=SECOND,
                                               team="general", dial=PLAN))
        assert second_id is not None
        second = await _start_run(env)
        procs.append(second)
        task = await _task(db_path, first_id)
        assert task["state"] == "review" and task["results"] == ["interrupted"], task
        async with _console(console_port) as call:
            await call("set_state", state="ready")
            await call("dialer_join")

            async def second_done() -> bool:
                return (await _task(db_path, second_id))["results"] not in ([], [""])

            await _eventually(second_done, 60, "the second task's call over")
        # the dialer paced again and called only the new task's customer
        assert dialled == [FIRST, SECOND]
        assert (await _task(db_path, first_id))["state"] == "review"
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        ami.remove_handler(outgoing)
        for row in await ami.action_list("CoreShowChannels"):
            with contextlib.suppress(AmiActionError):  # gone with its other half
                await ami.action("Hangup", Channel=row["Channel"])
        await wait_no_channels(ami, 30)
        await ami.close()
        await db.close()
