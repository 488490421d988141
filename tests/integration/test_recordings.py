"""A phone order's proof on the real Asterisk: the IVR records the order's readback, the
caller's "1" and the order number read back (MixMonitor on the caller's channel), never the
login before it; the engine seals the file with the site key, and the recording is found from
the order number through the administration API, with the call record it belongs to, and
played back (the playback logged)."""

from __future__ import annotations

import json

import httpx
import pytest

from callcenter.admin.tokens import Role, issue_token
from callcenter.broker.seed import DEMO_TRADING_PASSWORD, ORDINARY
from callcenter.engine import Engine
from callcenter.recordings import store
from callcenter.telephony.simcall import SimCaller

from .hotline import hotline_call, sealed

pytestmark = pytest.mark.integration


async def test_a_phone_orders_proof_is_recorded_sealed_and_found_by_its_number(
        engine: Engine, caller: SimCaller) -> None:
    assert engine.db is not None and engine.recordings is not None and engine.ops is not None
    heard = await hotline_call(
        engine, caller, f"2w{ORDINARY}#w{DEMO_TRADING_PASSWORD}w1w600000w10*20#w100#w1",
        until="zh/order_after")
    assert heard.outcomes("place_order") == ["ok"]
    # the proof starts after the login (the passwords) and ends before the next question
    kinds = [(e.kind, e.detail) for e in heard.record.events
             if e.kind in ("ivr.proof", "ivr.action", "ivr.prompts")]
    start = kinds.index(("ivr.proof", {"state": "start"}))
    login = next(i for i, (k, d) in enumerate(kinds) if k == "ivr.action"
                 and d["action"] == "login")
    assert login < start
    assert "zh/order_readback" in kinds[start + 1][1].get("ids", "")
    async with engine.db.execute("SELECT key, result FROM intents WHERE kind = 'order'") as cur:
        (key, result), = [tuple(r) for r in await cur.fetchall()]
    order_no = json.loads(result)["order_no"]

    # filed at once, sealed once it has ended
    (rec,) = await store.search(engine.db, {"reference": order_no})
    assert (rec.kind, rec.intent_key, rec.account, rec.call_id) == (
        "proof", key, ORDINARY, heard.record.id)
    rec = await sealed(engine, rec)
    assert rec.bytes is not None and rec.bytes > 8000
    stored = engine.settings.pbx_path(rec.stored_path).read_bytes()
    assert not stored.startswith(b"RIFF") and not engine.settings.pbx_path(rec.path).exists()

    token = await issue_token(engine.db, "compliance", Role.OPERATOR)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.ops.port}/api",
                                 headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as http:
        found = (await http.get("/recordings", params={"reference": order_no})).json()
        assert [(f["id"], f["call_id"], f["intent"]["kind"]) for f in found] == [
            (rec.id, heard.record.id, "order")]
        audio = await http.get(f"/recordings/{rec.id}/audio")
        assert audio.status_code == 200 and audio.content.startswith(b"RIFF")
        assert len(audio.content) == rec.bytes
        detail = (await http.get(f"/recordings/{rec.id}")).json()
        assert [(a["actor"], a["action"]) for a in detail["access"]] == [("compliance", "play")]
