"""The sandbox's demo agents: two managers in the VIP team, two general agents, a supervisor.

Each has a browser phone made by the engine (extension = the digits of the agent id): log in to
the console and its phone registers, so a newcomer can answer a test call in the browser and
hear the caller (README). A site creates its own agents with ``callcenter agents add``. The
passwords are demo data, published in docs/acd.md, and exist only in the sandbox's database.
"""

from __future__ import annotations

import aiosqlite
from pydantic import SecretStr

from callcenter.phones.identity import PhoneKind
from callcenter.store.agents import AgentRecord, save_agent
from callcenter.store.phones import save_phone

DEMO_AGENT_PASSWORD = "demo-agent-1"  # noqa: S105 - demo data, published in docs/acd.md
DEMO_AGENTS: tuple[AgentRecord, ...] = (
    AgentRecord("A1001", "周敏 Zhou Min", "agent", "PJSIP/1001",
                {"general": 5, "vip": 8}, vip_team=True),
    AgentRecord("A1002", "吴磊 Wu Lei", "agent", "PJSIP/1002",
                {"general": 5, "vip": 8}, vip_team=True),
    AgentRecord("A2001", "郑丽 Zheng Li", "agent", "PJSIP/2001", {"general": 4}),
    AgentRecord("A2002", "孙浩 Sun Hao", "agent", "PJSIP/2002", {"general": 3}),
    AgentRecord("S9001", "林静 Lin Jing", "supervisor", "PJSIP/9001", {"general": 6}),
)


async def seed_agents(db: aiosqlite.Connection, realm: str) -> None:
    for agent in DEMO_AGENTS:
        await save_agent(db, agent, SecretStr(DEMO_AGENT_PASSWORD))
        await save_phone(db, agent.agent_id, agent.endpoint.removeprefix("PJSIP/"),
                         PhoneKind.BROWSER, realm)
