"""Tasks: the life table (``tasks/state.py``) and the rows (``tasks/store.py``) on a real
SQLite database: moves checked in one transaction, logged, a strategy's task made once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from callcenter.errors import TaskStateError
from callcenter.store.db import open_db
from callcenter.tasks.form import check_values, outcome_of, parse_form, success
from callcenter.tasks.state import (
    FINAL,
    TRANSITIONS,
    TaskInput,
    TaskLife,
    TaskState,
    transitions_markdown,
)
from callcenter.tasks.store import NewTask, Task, TaskStore


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "t.db")
    try:
        yield conn
    finally:
        await conn.close()


def test_final_states_have_no_way_out_and_every_other_state_can_end() -> None:
    for (src, _what), _dst in TRANSITIONS.items():
        assert src not in FINAL
    for state in TaskState:
        if state not in FINAL:
            assert any(s is state and d in FINAL for (s, _w), d in TRANSITIONS.items()), state


def test_a_refused_move_changes_nothing() -> None:
    life = TaskLife(7)
    with pytest.raises(TaskStateError, match="cannot reached while open"):
        life.apply(TaskInput.REACHED, 1.0)
    # one comparison, so the state is not narrowed to OPEN for the check after the move
    assert (life.state, life.history) == (TaskState.OPEN, [])
    life.apply(TaskInput.DIAL, 2.0)
    assert life.state is TaskState.DIALING and life.since == 2.0


def test_the_docs_table_lists_every_move() -> None:
    table = transitions_markdown()
    assert table.count("\n| ") == len(TRANSITIONS)  # (the header starts the text)
    assert "| dialing | interrupted | review |" in table


async def test_a_strategy_task_is_made_once_per_customer_and_day(
        db: aiosqlite.Connection) -> None:
    store = TaskStore(db, lambda: 100.0)
    new = NewTask("call back", "strategy", account="10000001", strategy="complaint",
                  run_day="2026-12-03", fields=[{"name": "solved", "kind": "yes_no"}],
                  dial={"mode": "preview"})
    first = await store.create(new)
    assert first is not None
    assert await store.create(new) is None
    # an agent's own tasks are never folded together
    assert await store.create(NewTask("x", "A1", account="10000001")) is not None
    assert await store.create(NewTask("x", "A1", account="10000001")) is not None
    task = await store.get(first)
    assert task.fields == [{"name": "solved", "kind": "yes_no"}] and task.dial["mode"] == "preview"
    assert task.state is TaskState.OPEN


async def test_moves_are_logged_and_two_claims_race_to_one_winner(
        db: aiosqlite.Connection) -> None:
    store = TaskStore(db, lambda: 5.0)
    task_id = await store.create(NewTask("t", "S1", team="general"))
    assert task_id is not None

    def free(task: Task) -> None:
        if task.claimed_by:
            raise TaskStateError("claimed by someone else")

    results = await asyncio.gather(
        store.move(task_id, TaskInput.CLAIM, "A1", claimed_by="A1", expect=free),
        store.move(task_id, TaskInput.CLAIM, "A2", claimed_by="A2", expect=free),
        return_exceptions=True)
    won = [r for r in results if isinstance(r, Task)]
    assert len(won) == 1 and isinstance(results[1], TaskStateError)
    assert won[0].claimed_by == "A1" and won[0].state is TaskState.CLAIMED
    done = await store.move(task_id, TaskInput.OUTCOME, "A1", outcome="reached",
                            outcome_fields={"note": "好"}, detail={"why": "test"})
    assert done.state is TaskState.DONE and done.outcome_fields == {"note": "好"}
    with pytest.raises(TaskStateError):
        await store.move(task_id, TaskInput.CANCEL, "S1")
    log = await store.history(task_id)
    assert [(e["input"], e["to"], e["by"]) for e in log] == [
        ("create", "open", "S1"), ("claim", "claimed", "A1"), ("outcome", "done", "A1")]
    with pytest.raises(ValueError, match="not changeable"):
        await store.move(task_id, TaskInput.CANCEL, "S1", state="open")


def test_an_outcome_form_checks_what_the_agent_sent() -> None:
    form: list[dict[str, Any]] = [
        {"name": "outcome", "kind": "choice", "choices": ["verified", "refused"],
         "success": ["verified"], "required": True},
        {"name": "note", "kind": "text", "max": 5},
        {"name": "amount", "kind": "number"},
        {"name": "when", "kind": "date"},
        {"name": "risk_ok", "kind": "yes_no"}]
    got = check_values(form, {"outcome": "verified", "note": "ok", "amount": "1.50",
                              "when": "2026-12-03", "risk_ok": True})
    assert got == {"outcome": "verified", "note": "ok", "amount": "1.50",
                   "when": "2026-12-03", "risk_ok": True}
    assert outcome_of(got) == "verified" and success(form, "verified")
    assert not success(form, "refused") and success([], "done")
    for bad, match in (({}, "outcome: required"), ({"outcome": "maybe"}, "one of"),
                       ({"outcome": "refused", "note": "too long"}, "at most 5"),
                       ({"outcome": "refused", "amount": "NaN"}, "a number"),
                       ({"outcome": "refused", "when": "03/12"}, "a date"),
                       ({"outcome": "refused", "risk_ok": "yes"}, "yes or no"),
                       ({"outcome": "refused", "extra": 1}, "not fields")):
        with pytest.raises(ValueError, match=match):
            check_values(form, bad)


def test_a_malformed_form_is_refused() -> None:
    bad: list[dict[str, Any]]
    for bad in ([{"name": "outcome", "kind": "text"}],
                [{"name": "x", "kind": "choice"}],
                [{"name": "outcome", "kind": "choice", "choices": ["a"], "success": ["b"]}],
                [{"name": "x", "kind": "text"}, {"name": "x", "kind": "text"}]):
        with pytest.raises(ValueError):
            parse_form(bad)


def test_the_operators_page_shows_the_table_as_it_is() -> None:
    doc = Path(__file__).parents[2] / "docs" / "campaigns.md"
    assert transitions_markdown() in doc.read_text(encoding="utf-8")
