"""The audit of the administration API: one row per change asked (allowed or refused), with who
asked, what, and the outcome. ``detail`` is what the service says changed; never a secret (a new
password is recorded as ``"password": "changed"``)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import aiosqlite

from callcenter.store.tx import transaction

__all__ = ["AuditRow", "read_audit", "write_audit"]

AuditRow = dict[str, Any]


async def write_audit(db: aiosqlite.Connection, *, actor: str, role: str, method: str,
                      path: str, status: int, detail: Mapping[str, Any]) -> None:
    async with transaction(db):
        await db.execute("INSERT INTO api_audit (at, actor, role, method, path, status, detail)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (time.time(), actor, role, method, path, status,
                          json.dumps(dict(detail), ensure_ascii=False, default=str)))


async def read_audit(db: aiosqlite.Connection, *, since: float = 0.0,
                     limit: int = 100) -> list[AuditRow]:
    """The newest rows first."""
    async with db.execute("SELECT id, at, actor, role, method, path, status, detail"
                          " FROM api_audit WHERE at >= ? ORDER BY id DESC LIMIT ?",
                          (since, limit)) as cur:
        rows = await cur.fetchall()
    return [{"id": r[0], "at": r[1], "actor": r[2], "role": r[3], "method": r[4],
             "path": r[5], "status": r[6], "detail": json.loads(str(r[7]))} for r in rows]
