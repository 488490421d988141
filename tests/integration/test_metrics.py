"""/metrics scraped over HTTP while real calls run through the sandbox Asterisk (issue 15, item
2): a SIP caller in the IVR, a caller who waits in the queue and is answered by a simulated agent,
a caller whose statement goes out by SMS through the bus, the SMS server and the SMSC simulator.
Every family the issue names has values, and the counters moved with the calls."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from callcenter.acd.seat import SeatState
from callcenter.broker.sandbox import SandboxBackOffice
from callcenter.broker.seed import seed_demo
from callcenter.config import load_settings
from callcenter.engine import Engine
from callcenter.telephony.pbx import Pbx
from callcenter.telephony.simcall import SimCaller
from tests.integration.acd_helpers import (
    ORDINARY_PHONE,
    add_agents,
    agent,
    hang_up,
    hang_up_all,
    queue_to_agent,
    until,
)
from tests.integration.conftest import trading_clock, wait_no_channels
from tests.integration.test_channels_e2e import reported, statement_by
from tests.integration.test_sip_caller import quote_call
from tests.ports import free_port, start_ready

pytestmark = pytest.mark.integration

SMSC_USER, SMSC_PASSWORD = "callcenter", "smsc-pw"
DEADLINE = 60.0


@dataclass
class World:
    engine: Engine


@pytest.fixture
async def world(pbx: Pbx, tmp_path: Path) -> AsyncIterator[World]:
    smsc, smsc_port = await start_ready(
        "-m", "callcenter.channels.smsc_sim", "--port", "0", "--system-id", SMSC_USER,
        "--password", SMSC_PASSWORD, "--out", str(tmp_path / "sms.jsonl"), deadline=DEADLINE)
    real = load_settings()
    settings = load_settings(
        db_path=tmp_path / "callcenter.db", backoffice_path=tmp_path / "backoffice.db",
        state_dir=tmp_path / "state", ami={"secret_file": str(real.ami_secret_file)},
        agi={"key_file": str(real.agi_key_file)},
        console={"enabled": False, "port": 0}, ops={"port": 0},
        acd={"queues": [{"name": "general", "announce_every_s": 0, "manager_first_s": 0,
                         "vip_team_s": 0}], "ring_timeout_s": 5, "wrap_up_s": 1,
             "require_disposition": False},
        channels={"mqtt_port": free_port(), "servers": ["sms"], "extra": {
            "sms": {"port": smsc_port, "system_id": SMSC_USER, "password": SMSC_PASSWORD,
                    "state_db": str(tmp_path / "sms-receipts.sqlite3")}}})
    await add_agents(settings, [agent("A1", "1001")])
    engine = Engine(settings, backoffice_clock=trading_clock)
    try:
        await engine.start()
        assert isinstance(engine.backoffice, SandboxBackOffice)
        await seed_demo(engine.backoffice)
        yield World(engine)
    finally:
        leftovers: list[str] = []
        if engine.ami is not None and engine.ami.connected.is_set():
            await hang_up_all(engine)
            leftovers = await wait_no_channels(engine.ami)
        await engine.stop()
        if smsc.returncode is None:
            smsc.terminate()
        await asyncio.wait_for(smsc.wait(), DEADLINE)
        assert leftovers == []


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: list(f.samples)
                         for f in text_string_to_metric_families(text)}

    def samples(self, name: str, **labels: str) -> list[Sample]:
        return [s for samples in self.families.values() for s in samples
                if s.name == name and labels.items() <= s.labels.items()]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0: none)."""
        return sum(float(s.value) for s in self.samples(name, **labels))


async def scrape(engine: Engine) -> Scrape:
    assert engine.ops is not None

    def get() -> str:
        url = f"http://127.0.0.1:{engine.ops.port}/metrics"  # type: ignore[union-attr]
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return str(reply.read().decode())

    return Scrape(await asyncio.to_thread(get))


def seat_state(engine: Engine) -> SeatState:
    assert engine.acd is not None
    return engine.acd.seats["A1"].seat.state


async def test_metrics_during_real_calls(world: World) -> None:
    engine = world.engine
    assert engine.acd is not None and engine.ami is not None and engine.controller is not None
    before = await scrape(engine)
    assert before.value("callcenter_ami_up", link="control") == 1
    assert before.value("callcenter_seats", state="logged_out") == 1

    # 1. A SIP caller presses RFC 4733 keys in the IVR and hears a quote.
    heard = await quote_call(engine, "1w600519")
    assert heard.outcomes("quote") == ["ok"]

    # 2. A caller waits in the queue (the agent is on a break), scraped while waiting...
    engine.acd.set_state("A1", "not_ready", "break")
    caller = SimCaller(engine.ami)
    call_id = await queue_to_agent(engine, caller, ORDINARY_PHONE)
    waiting = await scrape(engine)
    assert waiting.value("callcenter_calls", state="waiting") == 1
    assert waiting.value("callcenter_queue_waiting_calls", queue="general") == 1
    assert waiting.value("callcenter_queue_longest_wait_seconds", queue="general") > 0
    assert waiting.value("callcenter_seats", state="not_ready") == 1
    assert waiting.value("callcenter_agi_sessions_active") >= 0

    # ... then answered by the simulated agent, scraped while they talk ...
    engine.acd.set_state("A1", "ready")
    await until(engine, lambda: seat_state(engine) is SeatState.ON_CALL, what="on call")
    talking = await scrape(engine)
    assert talking.value("callcenter_calls", state="connected") + \
        talking.value("callcenter_calls", state="answered") == 1
    assert talking.value("callcenter_seats", state="on_call") == 1
    assert talking.value("callcenter_queue_waiting_calls", queue="general") == 0

    # ... and the caller hangs up.
    await hang_up(engine, engine.controller.model.channels[call_id].name)
    await until(engine, lambda: seat_state(engine) is SeatState.READY, what="ready again")

    # 3. A caller asks for a statement by SMS: the outbox publishes it, the SMSC delivers it.
    ref = await statement_by(world, "3")  # type: ignore[arg-type]
    row = await reported(engine, ref, "delivered")
    assert (row["state"], row["report"]) == ("delivered", "delivered"), row["last_error"]

    after = await scrape(engine)
    # calls by state: every state has a sample
    assert {s.labels["state"] for s in after.samples("callcenter_calls")} >= {
        "ivr", "waiting", "ringing", "connected", "held", "other"}
    # IVR node visits and outcomes
    assert after.value("callcenter_ivr_calls_total", flow="hotline") >= \
        before.value("callcenter_ivr_calls_total", flow="hotline") + 3
    assert after.value("callcenter_ivr_node_visits_total") > \
        before.value("callcenter_ivr_node_visits_total")
    assert after.value("callcenter_ivr_outcomes_total", outcome="transfer") >= 1
    assert after.value("callcenter_ivr_outcomes_total") >= 3
    assert after.value("callcenter_ivr_action_results_total", action="quote", outcome="ok") >= 1
    assert after.value("callcenter_ivr_action_results_total",
                       action="request_statement", outcome="ok") == 1
    # queue waiting, longest wait, service level
    assert after.samples("callcenter_queue_waiting_calls", queue="general")
    assert after.samples("callcenter_queue_longest_wait_seconds", queue="general")
    assert after.value("callcenter_queue_events_total", queue="general", event="enter") == 1
    assert after.value("callcenter_queue_events_total", queue="general", event="connect") == 1
    assert after.value("callcenter_queue_events_total", queue="general", event="complete") == 1
    assert after.value("callcenter_queue_wait_seconds_count", queue="general",
                       outcome="answered") == 1
    assert after.value("callcenter_queue_answered_within_target_total", queue="general") == 1
    assert after.value("callcenter_queue_service_level_ratio", queue="general") == 1.0
    assert after.value("callcenter_queue_service_level_target_seconds", queue="general") == 20
    # seat states
    assert after.value("callcenter_seats", state="ready") == 1
    assert {s.labels["state"] for s in after.samples("callcenter_seats")} >= {
        "logged_out", "ready", "not_ready", "on_call", "wrap_up"}
    # AMI and FastAGI health and latency
    assert after.value("callcenter_ami_up", link="control") == 1
    assert after.value("callcenter_ami_up", link="phones") == 1
    assert after.value("callcenter_ami_connections_total", link="control") >= 1
    assert after.value("callcenter_ami_action_duration_seconds_count", action="Originate") >= 1
    assert after.value("callcenter_ami_action_duration_seconds_count") > \
        before.value("callcenter_ami_action_duration_seconds_count")
    assert after.value("callcenter_agi_sessions_total") >= \
        before.value("callcenter_agi_sessions_total") + 3
    assert after.value("callcenter_agi_sessions_refused_total") == 0
    assert after.value("callcenter_agi_sessions_limit") > 0
    assert after.value("callcenter_agi_command_duration_seconds_count") > \
        before.value("callcenter_agi_command_duration_seconds_count")
    # outbox depth and delivery results
    assert after.samples("callcenter_outbox_messages", channel="sms", state="queued")
    assert after.value("callcenter_outbox_delivery_results_total", channel="sms",
                       state="delivered") == 1
    assert after.value("callcenter_outbox_delivery_results_total", channel="sms",
                       state="sent") >= 1
    assert after.samples("callcenter_outbox_oldest_queued_seconds")
    # event-loop lag
    assert after.value("callcenter_event_loop_lag_seconds_count") > \
        before.value("callcenter_event_loop_lag_seconds_count")
    assert after.samples("callcenter_event_loop_lag_last_seconds")
    # nothing a caller typed or a customer's number is in the exposition
    for secret in ("600519", "135790", "10000001", ORDINARY_PHONE, "13800000004"):
        assert secret not in after.text
