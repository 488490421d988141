"""Tasks in the database: create them, move them through ``tasks/state.py``, read them.

Every move is one transaction: the row's state is read, the move checked against the table, the
row updated and the move appended to ``task_log`` with who made it and why. Two writers racing
for one task (two agents claiming it, the dialer and a supervisor) are serialised by the
transaction: the second sees the first's state and is refused with ``TaskStateError``.

A strategy's task is created at most once per customer and match key (``one_task_per_match``:
the run day, or a complaint's id), so a run repeated after a crash adds nothing.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiosqlite

from callcenter.errors import TaskStateError
from callcenter.store.tx import transaction
from callcenter.tasks.state import TaskInput, TaskLife, TaskState

__all__ = ["COLUMNS", "NewTask", "Task", "TaskStore"]

log = logging.getLogger(__name__)

#: the columns a ``Task`` is read from, in order
COLUMNS: Final = ("id", "created_at", "created_by", "agent_id", "account", "phone", "due_at",
                  "text", "state", "strategy", "run_day", "team", "priority", "script", "fields",
                  "reason", "deadline_at", "alerted_at", "dial", "attempts", "next_attempt_at",
                  "claimed_by", "outcome", "outcome_fields", "updated_at", "match_key",
                  "customer_name", "tier")
_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM tasks"  # noqa: S608 - fixed names
#: the columns a move may change besides the state
_CHANGEABLE: Final = frozenset({"agent_id", "team", "due_at", "deadline_at", "alerted_at",
                                "attempts", "next_attempt_at", "claimed_by", "outcome",
                                "outcome_fields", "priority", "phone"})


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to create. ``agent_id`` "" leaves it to ``team`` (anyone there may claim it)."""

    text: str
    created_by: str
    account: str = ""
    phone: str = ""
    agent_id: str = ""
    team: str = ""
    due_at: float | None = None
    deadline_at: float | None = None
    priority: int = 50
    script: str = ""
    #: the outcome form: a list of {"name", "label", "kind", "choices"...} (strategy-defined)
    fields: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    strategy: str = ""
    run_day: str = ""
    #: what the strategy makes one task of (default: ``run_day``)
    match_key: str = ""
    #: the customer as the strategy saw them, for the console's list
    customer_name: str = ""
    tier: str = ""
    #: how the dialer may call (``dialer`` reads it): mode, caller id, window, attempts, retries
    dial: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Task:
    """One row of ``tasks``."""

    id: int
    created_at: float
    created_by: str
    agent_id: str
    account: str
    phone: str
    due_at: float | None
    text: str
    state: TaskState
    strategy: str
    run_day: str
    team: str
    priority: int
    script: str
    fields: list[dict[str, Any]]
    reason: str
    deadline_at: float | None
    alerted_at: float | None
    dial: dict[str, Any]
    attempts: int
    next_attempt_at: float | None
    claimed_by: str
    outcome: str
    outcome_fields: dict[str, Any]
    updated_at: float | None
    match_key: str = ""
    customer_name: str = ""
    tier: str = ""

    @classmethod
    def from_row(cls, row: Any) -> Task:
        values = dict(zip(COLUMNS, row, strict=True))
        values["state"] = TaskState(values["state"])
        values["fields"] = json.loads(values["fields"] or "[]")
        values["dial"] = json.loads(values["dial"] or "{}")
        values["outcome_fields"] = json.loads(values["outcome_fields"] or "{}")
        return cls(**values)

    def overdue(self, now: float) -> bool:
        when = self.deadline_at if self.deadline_at is not None else self.due_at
        return when is not None and when < now and self.state not in (
            TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)

    def public(self) -> dict[str, Any]:
        """The task as JSON for the console and the CLI."""
        out = {name: getattr(self, name) for name in COLUMNS}
        out["state"] = self.state.value
        return out


class TaskStore:
    """Tasks on the engine's database connection."""

    def __init__(self, db: aiosqlite.Connection, clock: Callable[[], float]) -> None:
        self.db, self.clock = db, clock
        #: told of every task this store created or moved, after the commit: ``(task, old)``,
        #: ``old`` the task before the move (None for a creation). The console pushes it; one
        #: listener failing is logged and neither stops the others nor undoes the change.
        self.on_change: list[Callable[[Task, Task | None], None]] = []

    async def create(self, new: NewTask) -> int | None:
        """Insert ``new``; its id, or None if its strategy already made it for that customer
        and run day."""
        now = self.clock()
        async with transaction(self.db):
            cur = await self.db.execute(
                "INSERT INTO tasks (created_at, created_by, agent_id, account, phone, due_at,"
                " text, state, strategy, run_day, team, priority, script, fields, reason,"
                " deadline_at, dial, updated_at, match_key, customer_name, tier) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (now, new.created_by, new.agent_id, new.account, new.phone, new.due_at, new.text,
                 new.strategy, new.run_day, new.team, new.priority, new.script,
                 json.dumps(new.fields, ensure_ascii=False), new.reason, new.deadline_at,
                 json.dumps(new.dial, ensure_ascii=False), now,
                 new.match_key or new.run_day, new.customer_name, new.tier))
            if cur.rowcount == 0:
                return None
            task_id = int(cur.lastrowid or 0)
            await self._log(task_id, now, new.created_by, "", "create", TaskState.OPEN.value,
                            {"strategy": new.strategy} if new.strategy else {})
        if self.on_change:
            self._tell(await self.get(task_id), None)
        return task_id

    async def get(self, task_id: int) -> Task:
        async with self.db.execute(f"{_SELECT} WHERE id = ?", (task_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise TaskStateError(f"no task {task_id}")
        return Task.from_row(row)

    async def select(self, where: str = "1", params: tuple[object, ...] = (),
                     order: str = "priority, COALESCE(deadline_at, due_at, created_at), id",
                     limit: int = 500) -> list[Task]:
        """Tasks matching a WHERE clause of the caller's (placeholders for every value)."""
        async with self.db.execute(f"{_SELECT} WHERE {where} ORDER BY {order} LIMIT ?",
                                   (*params, limit)) as cur:
            return [Task.from_row(row) for row in await cur.fetchall()]

    async def move(self, task_id: int, what: TaskInput, by: str, *,
                   detail: Mapping[str, Any] | None = None,
                   expect: Callable[[Task], Awaitable[None] | None] | None = None,
                   **changes: Any) -> Task:
        """Move one task (and change ``changes`` columns with it) in one transaction; raise
        ``TaskStateError`` and change nothing if the table does not allow it. ``expect`` is
        called with the task as read inside the transaction and may refuse it by raising
        (e.g. "claimed by someone else")."""
        bad = set(changes) - _CHANGEABLE
        if bad:
            raise ValueError(f"not changeable by a move: {sorted(bad)}")
        now = self.clock()
        async with transaction(self.db):
            async with self.db.execute(f"{_SELECT} WHERE id = ?", (task_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise TaskStateError(f"no task {task_id}")
            task = Task.from_row(row)
            if expect is not None:
                checked = expect(task)
                if inspect.isawaitable(checked):  # it may read other rows in the transaction
                    await checked
            life = TaskLife(task_id, task.state, now=now)
            change = life.apply(what, now)
            values = {name: (json.dumps(value, ensure_ascii=False)
                             if name == "outcome_fields" else value)
                      for name, value in changes.items()}
            values["state"], values["updated_at"] = change.to_state.value, now
            sets = ", ".join(f"{name} = ?" for name in values)
            # the names are _CHANGEABLE's (checked above); every value is a placeholder
            await self.db.execute(f"UPDATE tasks SET {sets} WHERE id = ?",  # noqa: S608
                                  (*values.values(), task_id))
            await self._log(task_id, now, by, change.from_state.value, what.value,
                            change.to_state.value, dict(detail or {}))
        moved = await self.get(task_id)
        self._tell(moved, task)
        return moved

    def _tell(self, task: Task, old: Task | None) -> None:
        """The listeners, after the commit: a failing one is logged, the change stands."""
        for listener in list(self.on_change):
            try:
                listener(task, old)
            except Exception:
                log.exception("task %d: a listener of its change failed (the change stands)",
                              task.id)

    async def history(self, task_id: int) -> list[dict[str, Any]]:
        async with self.db.execute(
                "SELECT at, by, from_state, input, to_state, detail FROM task_log"
                " WHERE task_id = ? ORDER BY id", (task_id,)) as cur:
            return [{"at": at, "by": by, "from": src, "input": what, "to": dst,
                     "detail": json.loads(detail)}
                    for at, by, src, what, dst, detail in await cur.fetchall()]

    async def _log(self, task_id: int, at: float, by: str, src: str, what: str, dst: str,
                   detail: Mapping[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO task_log (task_id, at, by, from_state, input, to_state, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (task_id, at, by, src, what, dst, json.dumps(dict(detail), ensure_ascii=False)))
