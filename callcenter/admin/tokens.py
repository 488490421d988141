"""API tokens: a name, a role, and only the SHA-256 digest of the token itself.

A token is 32 random bytes (``cc_`` + URL-safe base64), shown once when it is issued. A fast
digest is enough for a secret of that entropy (a password needs scrypt, a random token does
not), so a request costs one indexed lookup. Roles are ordered: a ``viewer`` reads, an
``operator`` also stages and publishes flows and strategies, an ``admin`` also changes agents
and reads the audit.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import time
from dataclasses import dataclass

import aiosqlite

from callcenter.errors import AdminError
from callcenter.store.tx import transaction

__all__ = ["Caller", "Role", "issue_token", "list_tokens", "revoke_token", "verify_token"]

TOKEN_PREFIX = "cc_"  # noqa: S105 (a prefix, not a token)
NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class Role(enum.IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def word(self) -> str:
        return self.name.lower()

    @classmethod
    def of(cls, word: str) -> Role:
        try:
            return cls[word.upper()]
        except KeyError:
            raise AdminError(400, "bad_role", f"role {word!r}: one of "
                             + ", ".join(r.word for r in cls)) from None


@dataclass(frozen=True)
class Caller:
    """Who made a request: a token's name and role."""

    name: str
    role: Role


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(db: aiosqlite.Connection, name: str, role: Role) -> str:
    """A new token for ``name`` (replacing a revoked one of that name); returned once."""
    if not NAME.fullmatch(name):
        raise AdminError(400, "bad_name", f"token name {name!r}: letters, digits, _ . @ -"
                         " (1-64)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with transaction(db):
        async with db.execute("SELECT revoked_at FROM api_tokens WHERE name = ?",
                              (name,)) as cur:
            row = await cur.fetchone()
        if row is not None and row[0] is None:
            raise AdminError(409, "exists", f"token {name!r} exists: revoke it first")
        await db.execute("DELETE FROM api_tokens WHERE name = ?", (name,))
        await db.execute("INSERT INTO api_tokens (name, role, digest, created_at)"
                         " VALUES (?, ?, ?, ?)", (name, role.word, digest(token), time.time()))
    return token


async def revoke_token(db: aiosqlite.Connection, name: str) -> bool:
    async with transaction(db):
        cur = await db.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ?"
                               " AND revoked_at IS NULL", (time.time(), name))
        return cur.rowcount > 0


async def list_tokens(db: aiosqlite.Connection) -> list[tuple[str, str, float, float | None]]:
    """(name, role, created_at, revoked_at) of every token."""
    async with db.execute("SELECT name, role, created_at, revoked_at"
                          " FROM api_tokens ORDER BY name") as cur:
        return [(str(r[0]), str(r[1]), float(r[2]), r[3]) for r in await cur.fetchall()]


async def verify_token(db: aiosqlite.Connection, token: str) -> Caller | None:
    """The caller a live token belongs to, else None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    async with db.execute("SELECT name, role FROM api_tokens WHERE digest = ?"
                          " AND revoked_at IS NULL", (digest(token),)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return Caller(str(row[0]), Role.of(str(row[1])))
