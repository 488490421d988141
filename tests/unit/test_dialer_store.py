"""The dialer's rows (``dialer/store.py``) and the restart rule (``dialer/recovery.py``) on a
real SQLite database; the ``dnc`` command line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from callcenter.dialer import store
from callcenter.dialer.recovery import recover
from callcenter.errors import DialerError
from callcenter.phones.dialrules import DEFAULT_RULES
from callcenter.sip.settings import DialRules
from callcenter.store.db import open_db
from callcenter.tasks.state import TaskInput, TaskState
from callcenter.tasks.store import NewTask, TaskStore


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "t.db")
    try:
        yield conn
    finally:
        await conn.close()


async def test_the_do_not_call_list_keeps_numbers_in_national_form(
        db: aiosqlite.Connection) -> None:
    assert await store.add_dnc(db, "+8613812345678", "ops", "asked", 1.0) == "13812345678"
    key = store.dial_key("+8613812345678", "agent", DEFAULT_RULES)
    assert key == "13812345678"
    assert await store.facts(db, key, "") == (True, False)
    assert await store.facts(db, "13812345679", "") == (False, False)
    with pytest.raises(DialerError, match="not a phone number"):
        await store.add_dnc(db, "12-ab", "ops", "", 1.0)
    assert await store.remove_dnc(db, "13812345678")
    assert not await store.remove_dnc(db, "13812345678")
    assert await store.list_dnc(db) == []


async def test_the_do_not_call_key_is_what_the_sites_dial_rules_would_dial(
        db: aiosqlite.Connection) -> None:
    """A site with a local area code dials a local number with it: the list's entry, written
    either way, is found for a task holding the local number (DEFAULT_RULES refuse it)."""
    shanghai = DialRules(local_area_code="021")
    assert await store.add_dnc(db, "021-5234 5678", "ops", "asked", 1.0, shanghai) \
        == "02152345678"
    key = store.dial_key("52345678", "agent", shanghai)
    assert key == "02152345678"
    assert await store.facts(db, key, "") == (True, False)
    # a number the rules refuse is never dialled: no key (``rules.check`` refuses the call)
    assert store.dial_key("52345678", "agent", DEFAULT_RULES) == ""
    assert await store.facts(db, "", "") == (False, False)
    # any syntactically valid number may be listed, dialable today or not
    assert await store.add_dnc(db, "+852 9123 4567", "ops", "", 1.0) == "+85291234567"


async def test_opt_outs_of_calls_or_everything_count_for_calls(db: aiosqlite.Connection) -> None:
    await store.add_opt_out(db, "A1", "sms", "ops", 1.0)
    assert await store.facts(db, "13812345678", "A1") == (False, False)
    await store.add_opt_out(db, "A1", "all", "ops", 1.0)
    assert await store.facts(db, "13812345678", "A1") == (False, True)
    await store.remove_opt_out(db, "A1", "all")
    await store.add_opt_out(db, "A1", "call", "ops", 1.0)
    assert await store.facts(db, "13812345678", "A1") == (False, True)
    with pytest.raises(DialerError, match="channel is one of"):
        await store.add_opt_out(db, "A1", "pigeon", "ops", 1.0)


async def test_attempts_are_numbered_per_task(db: aiosqlite.Connection) -> None:
    tasks = TaskStore(db, lambda: 5.0)
    task_id = await tasks.create(NewTask("call", "t", phone="13812345678"))
    assert task_id is not None
    first = await store.insert_attempt(db, task_id, "task-a", "A1", "preview", 1.0)
    second = await store.insert_attempt(db, task_id, "task-b", "A1", "preview", 2.0)
    assert (first.attempt, second.attempt) == (1, 2)
    assert await store.in_flight(db) == [("task-a", task_id), ("task-b", task_id)]
    await store.finish_attempt(db, "task-a", "busy", 3.0)
    assert await store.in_flight(db) == [("task-b", task_id)]


async def test_on_start_calls_in_flight_go_to_review_and_are_never_redialled(
        db: aiosqlite.Connection) -> None:
    tasks = TaskStore(db, lambda: 9.0)
    ids = [await tasks.create(NewTask(f"t{n}", "t", phone="13812345678")) for n in range(4)]
    dialing, talking, between, done = (i for i in ids if i is not None)
    for task_id in (dialing, talking, between, done):
        await tasks.move(task_id, TaskInput.DIAL, "dialer", attempts=1)
    await store.insert_attempt(db, dialing, "task-1", "A1", "progressive", 1.0)
    await store.insert_attempt(db, talking, "task-2", "A2", "progressive", 1.0)
    await tasks.move(talking, TaskInput.REACHED, "dialer")
    # ``between``: moved DIALING, the engine died before its attempt's row was written
    await store.insert_attempt(db, done, "task-4", "A4", "progressive", 1.0)
    await tasks.move(done, TaskInput.REACHED, "dialer")
    await store.finish_attempt(db, "task-4", "answered", 2.0, 30.0)
    # the agent had answered task-2's ring: its recording is the reviewer's
    await db.execute("INSERT INTO recordings (call_id, agent_id, account, path, started_at)"
                     " VALUES ('task-2', 'A2', '', '/rec/20261123/task-2-A2.wav', 1.0)")
    await db.commit()

    assert await recover(tasks) == 3
    for task_id in (dialing, talking, between):
        task = await tasks.get(task_id)
        assert task.state is TaskState.REVIEW
        assert (await tasks.history(task_id))[-1]["input"] == "interrupted"
    assert (await tasks.get(done)).state is TaskState.REACHED
    async with db.execute("SELECT call_id, result FROM task_attempts ORDER BY id") as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [
            ("task-1", "interrupted"), ("task-2", "interrupted"), ("task-4", "answered")]
    async with db.execute("SELECT recording FROM task_attempts WHERE call_id = 'task-2'") as cur:
        assert tuple(await cur.fetchone() or ()) == ("/rec/20261123/task-2-A2.wav",)
    # the customers may have been called: the contact caps count them
    async with db.execute("SELECT task_id, outcome FROM contact_log ORDER BY task_id") as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [
            (dialing, "interrupted"), (talking, "interrupted")]
    assert await recover(tasks) == 0


def test_the_dnc_command_line(tmp_path: Path) -> None:
    env = {"CALLCENTER_DB_PATH": str(tmp_path / "cli.db"), "PATH": "/usr/bin:/bin"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callcenter", *argv], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    added = run("dnc", "add", "+86 13812345678".replace(" ", ""), "--reason", "asked")
    assert added.returncode == 0 and "13812345678 is on the do-not-call list" in added.stdout
    listed = run("dnc", "list")
    assert listed.stdout.startswith("13812345678\t") and "asked" in listed.stdout
    bad = run("dnc", "add", "95588x")
    assert bad.returncode == 2 and "not a phone number" in bad.stderr
    missing = run("dnc", "remove", "13900000000")
    assert missing.returncode == 2 and "is not on the do-not-call list" in missing.stderr
    assert run("dnc", "add").returncode == 2
