"""The administration API on a running engine: an agent's phone and a flow changed through
``/api`` take effect on the next call (real Asterisk, real calls), and a rollback restores the
flows in service; every change is in the audit."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from callcenter.acd.seat import SeatState
from callcenter.admin.tokens import Role, issue_token
from callcenter.config import REPO_ROOT
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.integration.acd_helpers import (
    ORDINARY_PHONE,
    Factory,
    agent,
    engines_for,
    hang_up,
    queue_to_agent,
    until,
)
from tests.integration.hotline import hotline_call
from tests.integration.test_acd import acd_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def start_engine(pbx: Pbx, tmp_path: Path) -> AsyncIterator[Factory]:
    shutil.copytree(REPO_ROOT / "ivr_flows", tmp_path / "flows")
    flows = {"flows_dir": tmp_path / "flows"}
    async with engines_for(lambda **queue: acd_settings(tmp_path, **queue).model_copy(
            update=flows)) as start:
        yield start


async def test_an_agent_and_a_flow_changed_through_the_api_serve_the_next_call(
        start_engine: Factory) -> None:
    engine = await start_engine([agent("A1", "1001")])
    acd = engine.acd
    assert acd is not None and engine.ami is not None and engine.db is not None
    assert engine.ops is not None
    token = await issue_token(engine.db, "ops-desk", Role.ADMIN)
    caller = SimCaller(engine.ami)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.ops.port}/api",
                                 headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as http:
        # The agent's phone, changed while the engine runs: the next call rings the new one.
        r = await http.put("/agents/A1", json={"name": "Agent A1",
                                               "endpoint": "Local/7001@agent-answer",
                                               "skills": {"general": 5}})
        assert r.status_code == 200, r.text
        assert r.json()["changed"] == {"endpoint": "Local/7001@agent-answer"}
        await queue_to_agent(engine, caller, ORDINARY_PHONE)
        acd.set_state("A1", "ready")
        await until(engine, lambda: acd.seats["A1"].seat.state is SeatState.ON_CALL,
                    what="on call")
        call = acd.seats["A1"].call
        assert call is not None and call.agent_channel.startswith("Local/7001@agent-answer-")
        await hang_up(engine, call.agent_channel)
        await until(engine, lambda: acd.seats["A1"].call is None, what="the call over")

        # A flow: staged, checked, published; the next call takes the new menu.
        live = (await http.get("/flows/files")).json()
        assert live["version"] == engine.flows.current.version
        text = live["files"]["hotline.yaml"]
        edited = text.replace("quotes: {type: subflow, flow: quotes, next: main_menu}",
                              "quotes: {type: hangup, prompts: [goodbye]}")
        assert edited != text
        staged = (await http.post("/flows/releases", json={"files": {"hotline.yaml": edited},
                                                           "comment": "quotes closed"})).json()
        assert staged["state"] == "staged", staged["problems"]
        r = await http.post(f"/flows/releases/{staged['id']}/publish")
        assert r.status_code == 200, r.text
        assert engine.flows.current.version == staged["version"] != live["version"]
        heard = await hotline_call(engine, caller, "1", until="zh/goodbye")
        assert heard.ivr("ivr.flow")[0]["version"] == staged["version"]
        assert heard.outcomes("quote") == [] and "zh/goodbye" in heard.prompts()

        # Rolled back: the next call is served by the version before.
        r = await http.post("/flows/rollback")
        assert r.status_code == 200 and r.json()["state"] == "rolled_back"
        assert engine.flows.current.version == live["version"]
        heard = await hotline_call(engine, caller, "1w600519", until="zh/quote_last")
        assert heard.ivr("ivr.flow")[0]["version"] == live["version"]
        assert heard.outcomes("quote") == ["ok"]

        audit = (await http.get("/audit")).json()
        assert [(a["actor"], a["method"], a["path"], a["status"]) for a in reversed(audit)] == [
            ("ops-desk", "PUT", "/api/agents/A1", 200),
            ("ops-desk", "POST", "/api/flows/releases", 201),
            ("ops-desk", "POST", f"/api/flows/releases/{staged['id']}/publish", 200),
            ("ops-desk", "POST", "/api/flows/rollback", 200)]
