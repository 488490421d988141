"""Deadline alerts: a task with a ``deadline_at`` (a complaint's call-back) that is not finished
alerts supervisors ``before_s`` ahead of its deadline (``soon``), and once more when the
deadline passes (``overdue``). One column remembers both: ``alerted_at`` is set at each alert,
so ``alerted_at`` null means none was sent, earlier than the deadline means ``soon`` was sent,
and at or past it means ``overdue`` was too. ``due_alert`` is the sans-IO decision;
``DeadlineWatch`` the edge that looks every ``every_s``, marks the row (one writer wins, even
with two engines on one database) and hands each alert to ``on_alert``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from callcenter.periodic import Periodic
from callcenter.store.tx import transaction
from callcenter.tasks.state import FINAL, TaskState
from callcenter.tasks.store import Task, TaskStore

__all__ = ["DeadlineAlert", "DeadlineWatch", "due_alert"]

log = logging.getLogger(__name__)

_NOT_FINAL: Final = tuple(s.value for s in TaskState if s not in FINAL)


@dataclass(frozen=True, slots=True)
class DeadlineAlert:
    kind: str            # "soon" | "overdue"
    task: Task


def due_alert(task: Task, now: float, before_s: float) -> str | None:
    """The alert ``task`` is due for now ("soon", "overdue"), or None."""
    deadline = task.deadline_at
    if deadline is None or task.state in FINAL:
        return None
    sent = task.alerted_at
    if now >= deadline:
        return "overdue" if sent is None or sent < deadline else None
    if now >= deadline - before_s and sent is None:
        return "soon"
    return None


class DeadlineWatch:
    def __init__(self, store: TaskStore, on_alert: Callable[[DeadlineAlert], None], *,
                 before_s: float, every_s: float = 30.0) -> None:
        self.store, self.on_alert = store, on_alert
        self.before_s, self.every_s = before_s, every_s
        self._rounds = Periodic("task-deadlines", self.check, lambda: self.every_s, log,
                                "task deadline check failed; trying again in %.0f s")

    def start(self) -> None:
        self._rounds.start()

    async def close(self) -> None:
        await self._rounds.close()

    async def check(self) -> list[DeadlineAlert]:
        """Send the alerts due now; the ones sent."""
        now = self.store.clock()
        marks = ", ".join("?" * len(_NOT_FINAL))
        candidates = await self.store.select(
            f"deadline_at IS NOT NULL AND deadline_at - ? <= ? AND state IN ({marks})"
            " AND (alerted_at IS NULL OR alerted_at < deadline_at)",
            (self.before_s, now, *_NOT_FINAL), order="deadline_at, id")
        sent = []
        for task in candidates:
            kind = due_alert(task, now, self.before_s)
            if kind is None or not await self._mark(task, now):
                continue
            alert = DeadlineAlert(kind, task)
            log.warning("task %d (%s, agent %s, team %s): deadline %s (%s UTC)", task.id,
                        task.strategy or "agent's", task.agent_id or "-", task.team or "-",
                        "passed" if kind == "overdue" else "near",
                        dt.datetime.fromtimestamp(task.deadline_at or 0, dt.UTC)
                        .strftime("%Y-%m-%d %H:%M"))
            self.on_alert(alert)
            sent.append(alert)
        return sent

    async def _mark(self, task: Task, now: float) -> bool:
        """Set ``alerted_at`` unless another writer alerted first; log it with the task."""
        async with transaction(self.store.db):
            cur = await self.store.db.execute(
                "UPDATE tasks SET alerted_at = ? WHERE id = ? AND alerted_at IS ?",
                (now, task.id, task.alerted_at))
            if cur.rowcount != 1:
                return False
            await self.store.db.execute(
                "INSERT INTO task_log (task_id, at, by, from_state, input, to_state, detail)"
                " VALUES (?, ?, 'system', ?, 'deadline_alert', ?, '{}')",
                (task.id, now, task.state.value, task.state.value))
        return True
