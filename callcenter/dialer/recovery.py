"""On engine start: calls an engine left in flight (it died or was stopped mid-call).

Their attempts (result '') become ``interrupted`` (with the agent's recording, if any, and a
contact-log row: the customer may have been called) and their tasks go to REVIEW through the task
table's INTERRUPTED: a person decides; nothing is redialled on its own, so no customer is
called twice for one task and no task is lost.
"""

from __future__ import annotations

import logging

from callcenter.dialer import store
from callcenter.dialer.rules import Result
from callcenter.errors import TaskStateError
from callcenter.tasks.state import ACTIVE, TaskInput, TaskState
from callcenter.tasks.store import TaskStore

__all__ = ["recover"]

log = logging.getLogger(__name__)


async def recover(tasks: TaskStore) -> int:
    """Mark the attempts in flight interrupted and their tasks for review; how many tasks."""
    db, now = tasks.db, tasks.clock()
    interrupted = set()
    for call_id, task_id in await store.in_flight(db):
        # the recording (if the agent answered) is the reviewer's proof of what was said
        await store.finish_attempt(db, call_id, Result.INTERRUPTED.value, now,
                                   recording=await store.recording_of(db, call_id))
        interrupted.add(task_id)
        try:
            task = await tasks.get(task_id)
        except TaskStateError:
            continue
        # the customer may have been called: the contact caps count it
        await store.log_contact(db, task.account, now, task.strategy, task_id,
                                Result.INTERRUPTED.value)
    moved = 0
    for task in await tasks.select("state IN (?, ?)", tuple(s.value for s in ACTIVE)):
        # DIALING with no attempt row: the engine died between the move and the row
        if task.state is TaskState.DIALING or task.id in interrupted:
            await tasks.move(task.id, TaskInput.INTERRUPTED, "dialer",
                             detail={"reason": "the engine stopped mid-call"})
            log.warning("task %s was mid-call when the engine stopped: to review", task.id)
            moved += 1
    return moved
