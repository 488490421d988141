"""The agent directory: who may log in to the console, their phone, skills and role.

An agent's phone is a *provisioned* endpoint (``check_endpoint``): a device dial string
(``PJSIP/1001``) or one of the sandbox's simulated phones, ``Local/<digits>@<context>`` with the
context in ``AcdSettings.sim_phone_contexts``. Never a free-form ``Local/...@<any context>``: the
ACD originates the phone into ``[acd-agent]``, and a Local channel into another context (the
supervisor's ``[supervisor-spy]``, the IVR, ``[outbound]``) would run that context instead.

Passwords are stored as scrypt hashes (``broker.passwords``); verifying one runs in a worker
thread. A failed lookup and a wrong password take the same path, so timing does not tell
whether an agent id exists.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field

import aiosqlite
from pydantic import SecretStr

from callcenter.broker.passwords import hash_password_async, verify_password_async
from callcenter.config import SIM_PHONE_CONTEXTS
from callcenter.errors import AgentConflict, ConfigError
from callcenter.store.tx import transaction

AGENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
#: a device Asterisk may ring: technology/resource, nothing that could smuggle options or legs
DEVICE = re.compile(r"(PJSIP|SIP|IAX2)/[A-Za-z0-9_.+-]{1,64}(@[A-Za-z0-9_.-]{1,64})?")
#: a simulated phone: an extension in a context of ``AcdSettings.sim_phone_contexts``
SIM_PHONE = re.compile(r"Local/([0-9]{1,12})@([a-z0-9_-]{1,40})")
ROLES = ("agent", "supervisor", "admin")
#: hashed once, used when the agent id is unknown so that path costs the same
_DUMMY_HASH: str | None = None


@dataclass(frozen=True)
class AgentRecord:
    agent_id: str
    name: str
    role: str
    endpoint: str
    skills: dict[str, int] = field(default_factory=dict)
    vip_team: bool = False


def check_endpoint(endpoint: str,
                   sim_contexts: Collection[str] = SIM_PHONE_CONTEXTS) -> str:
    """Return ``endpoint`` if it is a provisioned phone, else raise ``ConfigError``: a device
    (``PJSIP/1001``, ``SIP/…``, ``IAX2/…``) or ``Local/<digits>@<context>`` with the context in
    ``sim_contexts``."""
    if DEVICE.fullmatch(endpoint):
        return endpoint
    sim = SIM_PHONE.fullmatch(endpoint)
    if sim is not None and sim.group(2) in sim_contexts:
        return endpoint
    allowed = ", ".join(f"Local/1001@{c}" for c in sim_contexts) or "none allowed"
    raise ConfigError("not a provisioned phone: a device dial string like PJSIP/1001, or a "
                      f"simulated phone ({allowed})")


def check_agent(agent: AgentRecord, sim_contexts: Collection[str] = SIM_PHONE_CONTEXTS) -> None:
    """Refuse an agent record that could not work or could reach Asterisk unchecked."""
    if not AGENT_ID.fullmatch(agent.agent_id):
        raise ConfigError(f"agent id {agent.agent_id!r}: letters, digits, _ . - (1-32)")
    if agent.role not in ROLES:
        raise ConfigError(f"agent {agent.agent_id}: role must be one of {', '.join(ROLES)}")
    try:
        check_endpoint(agent.endpoint, sim_contexts)
    except ConfigError as exc:
        raise ConfigError(f"agent {agent.agent_id}: endpoint {agent.endpoint!r}: {exc}") from None
    for skill, level in agent.skills.items():
        if not re.fullmatch(r"[a-z0-9_-]{1,32}", skill) or not 1 <= level <= 10:
            raise ConfigError(f"agent {agent.agent_id}: skill {skill}={level} "
                              "(names a-z0-9_-, levels 1..10)")


async def save_agent(db: aiosqlite.Connection, agent: AgentRecord,
                     password: SecretStr | None, *,
                     sim_contexts: Collection[str] = SIM_PHONE_CONTEXTS,
                     create: bool | None = None) -> None:
    """Create or update an agent; the password is replaced only when one is given.
    ``create`` True: only a new agent; False: only an existing one (``AgentConflict``)."""
    check_agent(agent, sim_contexts)
    hashed = await hash_password_async(password) if password is not None else None
    async with transaction(db):
        async with db.execute("SELECT 1 FROM agents WHERE agent_id = ?",
                              (agent.agent_id,)) as cur:
            exists = await cur.fetchone() is not None
        if create is not None and exists == create:
            raise AgentConflict(f"agent {agent.agent_id} "
                                + ("exists" if exists else "does not exist"), exists=exists)
        if not exists and hashed is None:
            raise ConfigError(f"agent {agent.agent_id}: a new agent needs a password")
        if exists:
            await db.execute(
                "UPDATE agents SET name = ?, role = ?, endpoint = ?, skills = ?, vip_team = ?"
                " WHERE agent_id = ?",
                (agent.name, agent.role, agent.endpoint, json.dumps(agent.skills),
                 int(agent.vip_team), agent.agent_id))
            if hashed is not None:
                await db.execute("UPDATE agents SET password_hash = ? WHERE agent_id = ?",
                                 (hashed, agent.agent_id))
        else:
            await db.execute(
                "INSERT INTO agents (agent_id, name, role, password_hash, endpoint, skills,"
                " vip_team, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (agent.agent_id, agent.name, agent.role, hashed, agent.endpoint,
                 json.dumps(agent.skills), int(agent.vip_team), time.time()))


def _record(row: aiosqlite.Row | tuple[object, ...]) -> AgentRecord:
    agent_id, name, role, endpoint, skills, vip = row
    return AgentRecord(str(agent_id), str(name), str(role), str(endpoint),
                       {str(k): int(v) for k, v in json.loads(str(skills)).items()}, bool(vip))


async def load_agents(db: aiosqlite.Connection) -> list[AgentRecord]:
    async with db.execute("SELECT agent_id, name, role, endpoint, skills, vip_team FROM agents"
                          " ORDER BY agent_id") as cur:
        return [_record(tuple(row)) for row in await cur.fetchall()]


async def authenticate(db: aiosqlite.Connection, agent_id: str,
                       password: str) -> AgentRecord | None:
    """The agent if the password matches, else None (same cost whether or not the id exists)."""
    global _DUMMY_HASH
    async with db.execute("SELECT agent_id, name, role, endpoint, skills, vip_team,"
                          " password_hash FROM agents WHERE agent_id = ?", (agent_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = await hash_password_async("not-an-agent-password")
        await verify_password_async(password, _DUMMY_HASH)
        return None
    if not await verify_password_async(password, str(row[6])):
        return None
    return _record(tuple(row[:6]))


async def manager_of(db: aiosqlite.Connection, account: str) -> str | None:
    """The local override of a customer's named manager (an agent id), if there is one."""
    async with db.execute("SELECT agent_id FROM customer_managers WHERE account = ?",
                          (account,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row is not None else None
