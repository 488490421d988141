"""The sandbox's demo agents: two managers in the VIP team, two general agents, a supervisor.

Their phones are simulated (``[agent-answer]`` answers at once), so the sandbox works without a
SIP phone; a site creates its own agents with ``callcenter agents add``. The passwords are demo
data, published in docs/acd.md, and exist only in the sandbox's database.
"""

from __future__ import annotations

import aiosqlite
from pydantic import SecretStr

from callcenter.store.agents import AgentRecord, save_agent

DEMO_AGENT_PASSWORD = "demo-agent-1"  # noqa: S105 - demo data, published in docs/acd.md
DEMO_AGENTS: tuple[AgentRecord, ...] = (
    AgentRecord("A1001", "周敏 Zhou Min", "agent", "Local/1001@agent-answer",
                {"general": 5, "vip": 8}, vip_team=True),
    AgentRecord("A1002", "吴磊 Wu Lei", "agent", "Local/1002@agent-answer",
                {"general": 5, "vip": 8}, vip_team=True),
    AgentRecord("A2001", "郑丽 Zheng Li", "agent", "Local/2001@agent-answer", {"general": 4}),
    AgentRecord("A2002", "孙浩 Sun Hao", "agent", "Local/2002@agent-answer", {"general": 3}),
    AgentRecord("S9001", "林静 Lin Jing", "supervisor", "Local/9001@agent-answer",
                {"general": 6}),
)


async def seed_agents(db: aiosqlite.Connection) -> None:
    for agent in DEMO_AGENTS:
        await save_agent(db, agent, SecretStr(DEMO_AGENT_PASSWORD))
