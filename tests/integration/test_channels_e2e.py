"""Requests delivered end to end with every real part: a caller asks the IVR for a statement by
e-mail and by SMS; the engine's outbox relay publishes on our mosquitto; the e-mail and SMS
channel servers (in the engine's process) deliver to a real SMTP server process and to the SMSC
simulator process; the delivery reports come back and the outbox rows end sent / delivered."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import DEMO_TRADING_PASSWORD, ORDINARY, seed_demo
from callcenter.config import load_settings
from callcenter.engine import Engine
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.integration.conftest import trading_clock, wait_no_channels
from tests.integration.hotline import hotline_call
from tests.ports import free_port, start_ready

pytestmark = pytest.mark.integration

#: run as a module: the file's own folder holds an ``email.py`` that would shadow the stdlib
SINK = ("-m", "callcenter.channels.mail_sink")
SMSC_USER, SMSC_PASSWORD = "callcenter", "smsc-pw"
DEADLINE = 60.0


@dataclass
class World:
    engine: Engine
    mail_dir: Path
    sms_file: Path


@pytest.fixture
async def world(pbx: Pbx, tmp_path: Path) -> AsyncIterator[World]:
    mail_dir, sms_file = tmp_path / "mail", tmp_path / "sms.jsonl"
    sink, sink_port = await start_ready(*SINK, "--dir", str(mail_dir), deadline=DEADLINE)
    smsc, smsc_port = await start_ready("-m", "callcenter.channels.smsc_sim", "--port", "0",
                                        "--system-id", SMSC_USER, "--password", SMSC_PASSWORD,
                                        "--out", str(sms_file), deadline=DEADLINE)
    real = load_settings()
    settings = load_settings(
        db_path=tmp_path / "callcenter.db", backoffice_path=tmp_path / "backoffice.db",
        state_dir=tmp_path / "state", ami={"secret_file": str(real.ami_secret_file)},
        agi={"key_file": str(real.agi_key_file)},
        console={"enabled": False},
        channels={"mqtt_port": free_port(), "servers": ["email", "sms"], "extra": {
            "email": {"smtp_port": sink_port, "security": "none",
                      "from_address": "service@example-securities.cn"},
            "sms": {"port": smsc_port, "system_id": SMSC_USER, "password": SMSC_PASSWORD,
                    "state_db": str(tmp_path / "sms-receipts.sqlite3")}}})
    engine = Engine(settings, backoffice_clock=trading_clock)
    try:
        await engine.start()
        assert isinstance(engine.backoffice, SandboxBackOffice)
        await seed_demo(engine.backoffice)
        yield World(engine, mail_dir, sms_file)
    finally:
        leftovers: list[str] = []
        if engine.ami is not None:
            leftovers = await wait_no_channels(engine.ami)
        await engine.stop()
        for proc in (sink, smsc):
            if proc.returncode is None:
                proc.terminate()
            await asyncio.wait_for(proc.wait(), DEADLINE)
        assert leftovers == []


async def reported(engine: Engine, ref: str, wanted: str) -> dict[str, Any]:
    """Wait (on the relay's own events) until the channel server reported ``wanted`` (or
    failed) for the request's message: the ``deliveries`` history, not just the publish."""
    assert engine.relay is not None and engine.db is not None
    changed = asyncio.Event()

    def listener(_event: object) -> None:
        changed.set()

    engine.relay.add_listener(listener)
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                async with engine.db.execute(
                        "SELECT o.message_id, o.channel, o.state, o.last_error, d.state"
                        " FROM outbox o LEFT JOIN deliveries d ON d.message_id = o.message_id"
                        " WHERE o.ref = ? ORDER BY d.id", (ref,)) as cur:
                    rows = [tuple(r) for r in await cur.fetchall()]
                if any(r[4] in (wanted, "failed") or r[2] == "failed" for r in rows):
                    last = rows[-1]
                    return dict(zip(("message_id", "channel", "state", "last_error",
                                     "report"), last, strict=True))
                changed.clear()
                await changed.wait()
    finally:
        engine.relay.remove_listener(listener)


async def statement_by(world: World, key: str) -> str:
    """A logged-in caller asks for a statement (3 3, then 1) on channel ``key``; the request's
    ref."""
    caller = SimCaller(world.engine.ami)  # type: ignore[arg-type]
    heard = await hotline_call(world.engine, caller,
                               f"3w3w{ORDINARY}#w{DEMO_TRADING_PASSWORD}w1w{key}",
                               until="zh/statement_queued", caller_id="13800000001")
    assert heard.outcomes("request_statement") == ["ok"], (heard.nodes(), heard.prompts())
    assert world.engine.db is not None
    async with world.engine.db.execute(
            "SELECT ref FROM service_requests WHERE call_id = ?", (heard.record.id,)) as cur:
        [(ref,)] = [tuple(r) for r in await cur.fetchall()]
    return str(ref)


async def test_an_ivr_statement_by_email_arrives_with_its_pdf(world: World) -> None:
    ref = await statement_by(world, "2")
    row = await reported(world.engine, ref, "sent")
    assert (row["state"], row["report"]) == ("sent", "sent"), row["last_error"]
    [eml] = list(world.mail_dir.glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "zhang.wei@example.com"
    assert message["X-Callcenter-Message-Id"] == row["message_id"]
    [pdf] = [part for part in message.iter_attachments()
             if part.get_content_type() == "application/pdf"]
    filename = pdf.get_filename()
    assert filename is not None and filename.endswith("0001.pdf")
    assert pdf.get_content().startswith(b"%PDF")


async def test_an_ivr_statement_by_sms_is_delivered_with_a_receipt(world: World) -> None:
    ref = await statement_by(world, "3")
    row = await reported(world.engine, ref, "delivered")
    assert (row["state"], row["report"]) == ("delivered", "delivered"), row["last_error"]
    [line] = world.sms_file.read_text(encoding="utf-8").splitlines()
    sms = json.loads(line)
    assert sms["dest"].endswith("13800000001")
    assert "对账单" in sms["text"] or "statement" in sms["text"].lower()


async def test_an_agents_note_by_sms_is_delivered_end_to_end(world: World,
                                                            tmp_path: Path) -> None:
    from pydantic import SecretStr

    from callcenter.seats import protocol as p
    from callcenter.seats.console_api import AgentIdentity
    from callcenter.store.agents import AgentRecord, save_agent

    engine = world.engine
    assert engine.db is not None and engine.console_backend is not None
    await save_agent(engine.db, AgentRecord("A9", "Agent A9", "agent", "Local/1009@agent-answer",
                                            {"general": 5}), SecretStr("agent-pw-9"))
    me = await engine.console_backend.authenticate("A9", "agent-pw-9")
    assert me == AgentIdentity("A9", "Agent A9", p.Role.AGENT)
    request = p.REQUEST.validate_python({"type": "send_message", "id": "1", "account": ORDINARY,
                                         "channel": "sms", "template": "note",
                                         "text": "张先生您好，您咨询的转账额度已调整。"})
    data = await engine.console_backend.command(me, request)
    row = await reported(engine, data["ref"], "delivered")
    assert (row["state"], row["report"]) == ("delivered", "delivered"), row["last_error"]
    [line] = world.sms_file.read_text(encoding="utf-8").splitlines()
    assert "您咨询的转账额度已调整" in json.loads(line)["text"]
