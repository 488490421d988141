"""The agents' SIP phones as the engine keeps them (table ``sip_phones``).

One phone per agent. The agent's ``endpoint`` in the directory is the phone's dial string
(``PJSIP/<extension>``), written in the same transaction, so the ACD rings what was provisioned.
Only the secret's digest is stored; ``save_phone`` returns the generated secret of a desk phone
for the CLI to show once.
"""

from __future__ import annotations

import time

import aiosqlite

from callcenter.errors import ConfigError
from callcenter.phones.identity import PhoneIdentity, PhoneKind, check_extension, ha1, new_secret
from callcenter.store.tx import transaction


async def save_phone(db: aiosqlite.Connection, agent_id: str, extension: str, kind: PhoneKind,
                     realm: str, *, auto_answer: bool = False) -> str | None:
    """Give ``agent_id`` a SIP phone; return a desk phone's new secret (shown once), else None.

    Saving again makes a new secret (re-provisioning a desk phone is how a secret is rotated).
    """
    try:
        check_extension(extension)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    secret = new_secret() if kind is PhoneKind.DESK else None
    digest = ha1(extension, realm, secret) if secret is not None else None
    async with transaction(db):
        async with db.execute("SELECT 1 FROM agents WHERE agent_id = ?", (agent_id,)) as cur:
            if await cur.fetchone() is None:
                raise ConfigError(f"no agent {agent_id}: add the agent first")
        async with db.execute("SELECT agent_id FROM sip_phones WHERE extension = ?",
                              (extension,)) as cur:
            row = await cur.fetchone()
        if row is not None and row[0] != agent_id:
            raise ConfigError(f"extension {extension} is agent {row[0]}'s phone")
        await db.execute(
            "INSERT INTO sip_phones (agent_id, extension, kind, ha1, auto_answer, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(agent_id) DO UPDATE SET"
            " extension = excluded.extension, kind = excluded.kind, ha1 = excluded.ha1,"
            " auto_answer = excluded.auto_answer",
            (agent_id, extension, kind.value, digest, int(auto_answer), time.time()))
        await db.execute("UPDATE agents SET endpoint = ? WHERE agent_id = ?",
                         (f"PJSIP/{extension}", agent_id))
    return secret


_SELECT = ("SELECT p.agent_id, p.extension, p.kind, p.ha1, a.name FROM sip_phones p"
           " JOIN agents a USING (agent_id)")


def _identity(ext: object, kind: object, digest: object, name: object) -> PhoneIdentity:
    return PhoneIdentity(str(ext), PhoneKind(str(kind)),
                         str(digest) if digest is not None else None, str(name))


async def load_phones(db: aiosqlite.Connection) -> dict[str, PhoneIdentity]:
    """Agent id -> their phone, for every agent that has one."""
    async with db.execute(_SELECT + " ORDER BY p.extension") as cur:
        rows = await cur.fetchall()
    return {str(agent_id): _identity(ext, kind, digest, name)
            for agent_id, ext, kind, digest, name in rows}


async def phone_of(db: aiosqlite.Connection, agent_id: str) -> PhoneIdentity | None:
    """One agent's phone (a console login needs only its own)."""
    async with db.execute(_SELECT + " WHERE p.agent_id = ?", (agent_id,)) as cur:
        row = await cur.fetchone()
    return _identity(*row[1:]) if row is not None else None


async def auto_answer(db: aiosqlite.Connection, agent_id: str) -> bool:
    async with db.execute("SELECT auto_answer FROM sip_phones WHERE agent_id = ?",
                          (agent_id,)) as cur:
        row = await cur.fetchone()
    return bool(row[0]) if row is not None else False
