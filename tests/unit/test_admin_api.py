"""The administration API over loopback HTTP: tokens and roles, agents, flow and strategy
releases (stage, check, publish, roll back), the audit, and the committed OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from callcenter.admin.cli import openapi_document
from callcenter.admin.tokens import revoke_token
from callcenter.config import REPO_ROOT

from .admin_world import TRUNK_PASSWORD, AdminWorld, admin_world, sealed_order_recording

PASSWORD = "s3cret-agent-pw"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[AdminWorld]:
    async with admin_world(tmp_path) as w:
        yield w


@pytest.fixture
async def http(world: AdminWorld) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=world.base_url, timeout=30) as client:
        yield client


async def test_a_token_is_needed_and_its_role_opens_the_routes(world: AdminWorld,
                                                                http: httpx.AsyncClient) -> None:
    r = await http.get("/queues")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["code"] == "unauthenticated"
    r = await http.get("/queues", headers={"Authorization": "Bearer cc_not-a-token"})
    assert r.status_code == 401
    r = await http.get("/whoami", headers=world.auth("viewer"))
    assert r.json() == {"name": "test-viewer", "role": "viewer"}
    assert (await http.get("/queues", headers=world.auth("viewer"))).status_code == 200
    r = await http.get("/agents", headers=world.auth("viewer"))
    assert r.status_code == 403 and "operator" in r.json()["message"]
    r = await http.put("/agents/A9", headers=world.auth("operator"),
                       json={"name": "x", "endpoint": "PJSIP/1009", "password": PASSWORD})
    assert r.status_code == 403
    await revoke_token(world.db, "test-admin")
    assert (await http.get("/whoami", headers=world.auth("admin"))).status_code == 401


async def test_an_agent_is_created_and_changed_and_every_change_is_audited(
        world: AdminWorld, http: httpx.AsyncClient) -> None:
    admin = world.auth("admin")
    body = {"name": "王小明", "endpoint": "PJSIP/1009", "skills": {"general": 7},
            "password": PASSWORD}
    r = await http.post("/agents", headers=admin, json={**body, "agent_id": "A9"})
    assert r.status_code == 201, r.text
    assert r.json()["created"] is True and r.json()["changed"]["password"] == "changed"
    r = await http.post("/agents", headers=admin, json={**body, "agent_id": "A9"})
    assert r.status_code == 409 and r.json()["code"] == "exists"
    r = await http.put("/agents/A9", headers=admin,
                       json={**body, "endpoint": "PJSIP/1010", "password": None})
    assert r.json() == {"agent_id": "A9", "created": False,
                        "changed": {"endpoint": "PJSIP/1010"}}
    r = await http.get("/agents/A9", headers=admin)
    assert r.json()["endpoint"] == "PJSIP/1010" and r.json()["skills"] == {"general": 7}
    skills = (await http.get("/skills", headers=admin)).json()
    assert {"agent_id": "A9", "level": 7} in next(s for s in skills
                                                  if s["skill"] == "general")["agents"]
    # refused: a free-form Local channel (it could run any context), an unknown agent
    for endpoint in ("Local/1@supervisor-spy", "Local/1@sim", "PJSIP/1001;x"):
        r = await http.put("/agents/A9", headers=admin, json={**body, "endpoint": endpoint})
        assert r.status_code == 422 and r.json()["problems"][0].startswith("body.endpoint:")
    assert (await http.get("/agents/nobody", headers=admin)).status_code == 404
    assert (await http.put("/agents/nobody", headers=admin, json=body)).status_code == 404
    # a new agent without a password; a skill out of range (JSON's "5" is not 5)
    r = await http.post("/agents", headers=admin, json={"agent_id": "A10", "name": "n",
                                                        "endpoint": "PJSIP/1"})
    assert r.status_code == 422 and r.json()["problems"] == ["body.password: Field required"]
    r = await http.put("/agents/A9", headers=admin, json={**body, "skills": {"general": "5"}})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    marker = "Leak-Marker-" + "x" * 130   # too long: refused, and never echoed back
    r = await http.put("/agents/A9", headers=admin, json={**body, "password": marker})
    assert r.status_code == 422 and r.json()["problems"][0].startswith("body.password:")
    assert "Leak-Marker" not in r.text
    # refused attempts are audited too, and no password is ever in the audit
    await http.put("/agents/A11", headers=world.auth("viewer"), json=body)
    rows = (await http.get("/audit", headers=admin)).json()
    assert [(r["actor"], r["method"], r["path"], r["status"]) for r in reversed(rows)] == [
        ("test-admin", "POST", "/api/agents", 201),
        ("test-admin", "POST", "/api/agents", 409),
        ("test-admin", "PUT", "/api/agents/A9", 200),
        ("test-admin", "PUT", "/api/agents/A9", 422),
        ("test-admin", "PUT", "/api/agents/A9", 422),
        ("test-admin", "PUT", "/api/agents/A9", 422),
        ("test-admin", "PUT", "/api/agents/nobody", 404),
        ("test-admin", "POST", "/api/agents", 422),
        ("test-admin", "PUT", "/api/agents/A9", 422),
        ("test-admin", "PUT", "/api/agents/A9", 422),
        ("test-viewer", "PUT", "/api/agents/A11", 403)]
    assert rows[-3]["detail"]["changed"] == {"endpoint": "PJSIP/1010"}
    # a request without a live token is refused and only logged (anyone can send one)
    r = await http.put("/agents/A9", json=body)
    assert r.status_code == 401
    assert len((await http.get("/audit", headers=admin)).json()) == len(rows)
    async with world.db.execute("SELECT group_concat(detail) FROM api_audit") as cur:
        everything = str((await cur.fetchone() or [""])[0])
    assert PASSWORD not in everything
    async with world.db.execute("SELECT digest FROM api_tokens") as cur:
        digests = {str(r[0]) for r in await cur.fetchall()}
    assert not digests & set(world.tokens.values())   # only digests are kept


async def test_a_flow_release_is_checked_published_and_rolled_back(
        world: AdminWorld, http: httpx.AsyncClient) -> None:
    op = world.auth("operator")
    live = (await http.get("/flows/files", headers=op)).json()
    assert live["version"] == world.flows.current.version
    text = live["files"]["hotline.yaml"]
    # a broken edit: refused with file:line:col problems, nothing written
    broken = text.replace("next: main_menu", "next: nowhere", 1)
    r = await http.post("/flows/releases", headers=op, json={"files": {"hotline.yaml": broken}})
    assert r.status_code == 201 and r.json()["state"] == "refused"
    assert any(p.startswith("hotline.yaml:") and "nowhere" in p for p in r.json()["problems"])
    assert str(world.settings.flows_dir) not in json.dumps(r.json()["problems"])
    r = await http.post(f"/flows/releases/{r.json()['id']}/publish", headers=op)
    assert r.status_code == 409 and r.json()["code"] == "not_staged"
    # a good one
    edited = text.replace("quotes: {type: subflow, flow: quotes, next: main_menu}",
                          "quotes: {type: hangup, prompts: [goodbye]}")
    assert edited != text
    r = await http.post("/flows/releases", headers=op,
                        json={"files": {"hotline.yaml": edited}, "comment": "quotes closed"})
    staged = r.json()
    assert staged["state"] == "staged" and staged["base_version"] == live["version"]
    assert world.flows.current.version == live["version"]    # staging changes nothing live
    r = await http.post(f"/flows/releases/{staged['id']}/publish", headers=op)
    assert r.status_code == 200 and r.json()["state"] == "published"
    assert world.flows.current.version == staged["version"] != live["version"]
    assert (world.settings.flows_dir / "hotline.yaml").read_text() == edited
    # publishing it again, or a release staged on the old files, is refused
    r = await http.post(f"/flows/releases/{staged['id']}/publish", headers=op)
    assert r.status_code == 409
    # rolled back: the old files and version are in service again
    r = await http.post("/flows/rollback", headers=op)
    assert r.status_code == 200 and r.json()["state"] == "rolled_back"
    assert world.flows.current.version == live["version"]
    assert (world.settings.flows_dir / "hotline.yaml").read_text() == text
    r = await http.post("/flows/rollback", headers=op)
    assert r.status_code == 409 and r.json()["code"] == "nothing_to_roll_back"
    history = (await http.get("/flows/releases", headers=op)).json()
    assert [h["state"] for h in history] == ["rolled_back", "refused"]
    # a viewer reads but does not publish; bad file names are refused
    r = await http.post("/flows/releases", headers=world.auth("viewer"),
                        json={"files": {"hotline.yaml": edited}})
    assert r.status_code == 403
    r = await http.post("/flows/releases", headers=op, json={"files": {"../x.yaml": "a: 1"}})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"


async def test_a_hand_edit_after_staging_makes_publishing_refused(
        world: AdminWorld, http: httpx.AsyncClient) -> None:
    op = world.auth("operator")
    r = await http.post("/strategies/releases", headers=op,
                        json={"files": {"new-one.yaml": "id: x\n"}})
    assert r.json()["state"] == "refused" and r.json()["problems"]
    r = await http.post("/strategies/releases", headers=op,
                        json={"files": {"unbound-bank.yaml": None}})
    removal = r.json()
    assert removal["state"] == "staged", removal["problems"]
    (world.settings.strategies.dir / "holiday-greeting.yaml").write_text(
        (world.settings.strategies.dir / "holiday-greeting.yaml").read_text() + "\n")
    r = await http.post(f"/strategies/releases/{removal['id']}/publish", headers=op)
    assert r.status_code == 409 and r.json()["code"] == "changed_since"
    assert (world.settings.strategies.dir / "unbound-bank.yaml").exists()
    listed = (await http.get("/strategies", headers=op)).json()
    assert "unbound-bank" in {s["id"] for s in listed["strategies"]}


async def test_reads_of_queues_trunks_and_reports(world: AdminWorld,
                                                  http: httpx.AsyncClient) -> None:
    op = world.auth("operator")
    queues = (await http.get("/queues", headers=op)).json()
    assert {q["name"] for q in queues} == {q.name for q in world.settings.acd.queues}
    trunks = await http.get("/trunks", headers=op)
    assert [(t["name"], t["has_credentials"]) for t in trunks.json()] == [("carrier", True)]
    assert TRUNK_PASSWORD not in trunks.text
    report = (await http.get("/reports/calls", headers=op, params={"day": "2026-12-01"})).json()
    assert report["day"] == "2026-12-01" and isinstance(report["queues"], list)
    r = await http.get("/reports/calls", headers=op, params={"day": "2026-02-30"})
    assert r.status_code == 422
    r = await http.get("/queues", headers=op, params={"queue": "general"})
    assert r.status_code == 422 and "unknown query parameter" in r.json()["message"]


async def test_an_orders_recording_is_found_by_its_number_played_and_held(
        world: AdminWorld, http: httpx.AsyncClient) -> None:
    """The proof of an order (the IVR's recording of its confirmation), sealed by the keeper:
    found from the order number, played back to an operator (logged), held by an admin."""
    keeper = world.services.recording_service.keeper
    assert keeper is not None
    audio = await sealed_order_recording(world.settings, world.db, keeper)
    op = world.auth("operator")
    found = (await http.get("/recordings", headers=op,
                            params={"reference": "30000001"})).json()
    assert [(r["kind"], r["sealed"], r["intent"]) for r in found] == [
        ("proof", True, {"kind": "order", "state": "done", "reference": "30000001"})]
    assert (await http.get("/recordings", headers=op, params={"reference": "1"})).json() == []
    assert (await http.get("/recordings", headers=op,
                           params={"account": "10000001", "day_from": "2026-01-01"})).json()
    r = await http.get("/recordings", headers=op, params={"account": ""})
    assert r.status_code == 422   # an empty filter never widens the search
    assert (await http.get("/recordings", headers=world.auth("viewer"))).status_code == 403
    rec_id = found[0]["id"]
    played = await http.get(f"/recordings/{rec_id}/audio", headers=op)
    assert played.status_code == 200 and played.content == audio
    assert played.headers["content-type"] == "audio/wav"
    detail = (await http.get(f"/recordings/{rec_id}", headers=op)).json()
    assert [(a["actor"], a["via"], a["action"]) for a in detail["access"]] == [
        ("test-operator", "api", "play")]
    r = await http.put(f"/recordings/{rec_id}/hold", headers=op, json={"reason": "inquiry"})
    assert r.status_code == 403
    r = await http.put(f"/recordings/{rec_id}/hold", headers=world.auth("admin"),
                       json={"reason": "  x  "})
    assert r.status_code == 422     # three characters once the blanks around are cut
    r = await http.put(f"/recordings/{rec_id}/hold", headers=world.auth("admin"),
                       json={"reason": "CSRC inquiry 17"})
    assert r.status_code == 200 and r.json()["held"] is True
    assert (await http.get("/recordings/999", headers=op)).status_code == 404


async def test_the_committed_openapi_document_is_the_served_one(world: AdminWorld,
                                                                http: httpx.AsyncClient) -> None:
    served = (await http.get("/openapi.json")).json()
    committed = json.loads((REPO_ROOT / "docs" / "admin-api.openapi.json").read_text())
    assert served == committed == await openapi_document(world.settings), \
        "run: callcenter api openapi -o docs/admin-api.openapi.json"


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
        world: AdminWorld, http: httpx.AsyncClient) -> None:
    from callcenter.admin.api import MAX_BODY

    r = await http.post("/flows/releases", content=b"x" * (MAX_BODY + 1),
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "too_large"
