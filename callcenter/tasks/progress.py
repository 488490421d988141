"""Where the tasks stand now, for supervisors: counts by state per strategy and per agent, of
the tasks not finished and those finished since ``since`` (the day's start). ``count`` is the
sans-IO part (rows in, figures out); ``read_progress`` the query.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiosqlite

from callcenter.tasks.state import FINAL, TaskState

__all__ = ["count", "read_progress"]

_FINAL = tuple(s.value for s in FINAL)
_MARKS = ", ".join("?" * len(_FINAL))
#: (strategy, holder, state, overdue) of tasks open or finished since a time; only
#: placeholders go into the text
_SQL = ("SELECT strategy, CASE WHEN claimed_by != '' THEN claimed_by ELSE agent_id END, state,"  # noqa: S608
        f" COALESCE(deadline_at, due_at) < ? AND state NOT IN ({_MARKS})"
        f" FROM tasks WHERE state NOT IN ({_MARKS}) OR updated_at >= ?")


def count(rows: Iterable[tuple[str, str, str, bool]]) -> dict[str, Any]:
    """``rows``: (strategy, agent (holder, "" none), state, overdue) per task. Figures:
    {strategies: [{strategy, total, overdue, by_state: {state: n}}], agents: [{agent_id, ...}]}
    sorted by name."""
    groups: dict[str, dict[str, dict[str, Any]]] = {"strategies": {}, "agents": {}}
    for strategy, agent, state, overdue in rows:
        for kind, key, name in (("strategies", "strategy", strategy),
                                ("agents", "agent_id", agent)):
            g = groups[kind].setdefault(name, {key: name, "total": 0, "overdue": 0,
                                               "by_state": {}})
            g["total"] += 1
            g["overdue"] += bool(overdue)
            g["by_state"][state] = g["by_state"].get(state, 0) + 1
    return {kind: [g[name] for name in sorted(g)] for kind, g in groups.items()}


async def read_progress(db: aiosqlite.Connection, since: float, now: float) -> dict[str, Any]:
    async with db.execute(_SQL, (now, *_FINAL, *_FINAL, since)) as cur:
        rows = [(str(s), str(a), str(st), bool(o)) for s, a, st, o in await cur.fetchall()]
    out = count(rows)
    out["states"] = [s.value for s in TaskState]
    out["at"] = now
    return out
