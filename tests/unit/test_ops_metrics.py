"""The engine's metrics (callcenter/ops/): the pure families and counters with small inputs, the
naming conventions, the text exposition read back by prometheus_client's own parser, and the
operations HTTP server on a real socket."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import urllib.error
import urllib.request

import pytest
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from callcenter.acd.figures import QueueEvent
from callcenter.config import load_settings
from callcenter.errors import ConfigError
from callcenter.ops.http import OpsServer, make_app
from callcenter.ops.metrics import (
    CALL_STATES,
    OTHER,
    AgiSample,
    EngineMetrics,
    EngineSample,
    LinkSample,
    OutboxSample,
    QueueSample,
    _Bounded,
    call_states,
    label_value,
    longest_wait,
    outbox_depth,
    seat_counts,
)
from callcenter.ops.service import OpsService

FULL = EngineSample(
    calls=call_states(["c1", "c2", "c3", "c4"], {"c1"}, {"c2"}, {"c3": "connected"}),
    queues=[QueueSample("general", 1, 12.5, 20.0, 0.75), QueueSample("vip", 0, 0.0, 10.0, None)],
    seats=seat_counts(["ready", "on_call", "ready"]),
    ami=[LinkSample("control", True, 1), LinkSample("phones", False, 2)],
    agi=AgiSample(active=2, limit=1000, started=9, refused_auth=1, refused_busy=0),
    outbox=OutboxSample(outbox_depth([("sms", "queued", 3)], ["sms", "email"]), 4.0))


def families(metrics: EngineMetrics) -> dict[str, list[Sample]]:
    text = metrics.exposition().decode()
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def value(metrics: EngineMetrics, name: str, **labels: str) -> float:
    for samples in families(metrics).values():
        for s in samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {name}{labels}")


# -- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["general", "hotline", "menu_main", "STREAM FILE", "Originate",
                                  "wrong_password", "flow.sub-1", "2nd-line"])
def test_plain_words_are_labels(text: str) -> None:
    assert label_value(text) == text


@pytest.mark.parametrize("text", ["13800000001", "acct 12345678", "600519", "pw12345", "",
                                  "a\nb", "tab\there", "x" * 65, "-leading", "汉字", "a=b",
                                  'quote"d'])
def test_anything_else_is_other(text: str) -> None:
    """Account and phone numbers, passwords, codes: five digits in a row never make a label."""
    assert label_value(text) == OTHER


def test_a_family_holds_a_bounded_number_of_label_sets() -> None:
    m = EngineMetrics(process=False)
    bounded = _Bounded(m.ivr_calls.metric, limit=3)
    for flow in ("a", "b", "c", "d", "e"):
        bounded.labels(flow).inc()
    bounded.labels("a").inc()  # known sets keep counting under their own name
    assert value(m, "callcenter_ivr_calls_total", flow="a") == 2
    assert value(m, "callcenter_ivr_calls_total", flow=OTHER) == 2
    assert {s.labels["flow"] for s in families(m)["callcenter_ivr_calls"]} == {"a", "b", "c",
                                                                             OTHER}


# -- scrape-time pure parts -------------------------------------------------------------------


def test_calls_by_state_seat_then_queue_then_ivr_then_other() -> None:
    counts = call_states(["c1", "c2", "c3", "c4", "c5"], in_ivr={"c1", "c2"},
                         waiting={"c2", "c3"}, at_seats={"c3": "ringing", "c5": "bogus"})
    assert set(counts) == set(CALL_STATES)
    assert counts["ivr"] == 1 and counts["waiting"] == 1 and counts["ringing"] == 1
    assert counts["other"] == 2  # c4 (nothing known) and c5 (an unknown state)
    assert sum(counts.values()) == 5
    assert "ended" not in counts


def test_seats_waits_and_outbox_depth() -> None:
    assert seat_counts(["ready", "ready", "wrap_up", "nonsense"]) == {
        "logged_out": 0, "ready": 2, "not_ready": 0, "ringing": 0, "on_call": 0,
        "on_hold": 0, "wrap_up": 1}
    assert longest_wait([100.0, 90.0, 130.0], now=120.0) == 30.0
    assert longest_wait([], now=120.0) == 0.0
    depth = outbox_depth([("sms", "queued", 2), ("sms", "sent", 1), ("wechat", "queued", 4),
                          ("email", "delivered", 9)], ["sms", "email"])
    assert depth == {("sms", "queued"): 2, ("sms", "sent"): 1, ("email", "queued"): 0,
                     ("email", "sent"): 0, (OTHER, "queued"): 4}


def test_every_scrape_time_family_has_values() -> None:
    m = EngineMetrics(lambda: FULL, process=False)
    assert value(m, "callcenter_calls", state="ivr") == 1
    assert value(m, "callcenter_calls", state="connected") == 1
    assert value(m, "callcenter_calls", state="other") == 1
    assert value(m, "callcenter_queue_waiting_calls", queue="general") == 1
    assert value(m, "callcenter_queue_longest_wait_seconds", queue="general") == 12.5
    assert value(m, "callcenter_queue_service_level_ratio", queue="general") == 0.75
    assert value(m, "callcenter_queue_service_level_target_seconds", queue="vip") == 10
    with pytest.raises(AssertionError):  # no service level yet: no sample (not 0, not NaN)
        value(m, "callcenter_queue_service_level_ratio", queue="vip")
    assert value(m, "callcenter_seats", state="ready") == 2
    assert value(m, "callcenter_ami_up", link="control") == 1
    assert value(m, "callcenter_ami_up", link="phones") == 0
    assert value(m, "callcenter_ami_connections_total", link="phones") == 2
    assert value(m, "callcenter_agi_sessions_active") == 2
    assert value(m, "callcenter_agi_sessions_total") == 9
    assert value(m, "callcenter_agi_sessions_refused_total", reason="auth") == 1
    assert value(m, "callcenter_outbox_messages", channel="sms", state="queued") == 3
    assert value(m, "callcenter_outbox_messages", channel="email", state="sent") == 0
    assert value(m, "callcenter_outbox_oldest_queued_seconds") == 4


# -- listener-fed families --------------------------------------------------------------------


def test_ivr_notes_count_calls_visits_actions_and_outcomes() -> None:
    m = EngineMetrics(process=False)
    m.on_note("c1", "ivr.flow", {"flow": "hotline", "version": "v1"})
    m.on_note("c1", "ivr.node", {"flow": "hotline", "node": "menu"})
    m.on_note("c1", "ivr.flow", {"flow": "login"})  # a sub-flow: the same call, not a new one
    m.on_note("c1", "ivr.node", {"flow": "login", "node": "ask_account"})
    m.on_note("c1", "ivr.input", {"node": "ask_account", "digits": "88001234"})
    m.on_note("c1", "ivr.action", {"action": "login", "outcome": "ok"})
    m.on_note("c1", "ivr.transfer", {"queue": "general"})
    m.on_note("c1", "ivr.caller_hangup", {})  # after leaving the IVR: not a second outcome
    m.on_note("c2", "ivr.start", {"flow": "first", "lang": "zh"})
    m.on_note("c2", "ivr.end", {"outcome": "completed"})
    m.on_note("c3", "ivr.flow", {"flow": "hotline"})
    m.on_note("c3", "ivr.end", {"reason": "retries_exhausted"})
    m.on_note("c4", "ivr.flow", {"flow": "hotline"})
    m.on_note("c4", "ivr.caller_hangup", {})
    m.on_note("c5", "ivr.refused", {"script": "nosuch"})
    assert value(m, "callcenter_ivr_calls_total", flow="hotline") == 3
    assert value(m, "callcenter_ivr_calls_total", flow="first") == 1
    assert value(m, "callcenter_ivr_node_visits_total", flow="login", node="ask_account") == 1
    assert value(m, "callcenter_ivr_action_results_total", action="login", outcome="ok") == 1
    assert value(m, "callcenter_ivr_outcomes_total", flow="hotline", outcome="transfer") == 1
    assert value(m, "callcenter_ivr_outcomes_total", flow="first", outcome="completed") == 1
    assert value(m, "callcenter_ivr_outcomes_total", flow="hotline",
                 outcome="retries_exhausted") == 1
    assert value(m, "callcenter_ivr_outcomes_total", flow="hotline",
                 outcome="caller_hangup") == 1
    assert value(m, "callcenter_ivr_outcomes_total", flow="none", outcome="refused") == 1
    assert "88001234" not in m.exposition().decode()


def test_calls_in_the_ivr_are_tracked_until_they_leave_or_end() -> None:
    m = EngineMetrics(process=False)
    m.on_note("c1", "ivr.flow", {"flow": "hotline"})
    m.on_note("c2", "ivr.flow", {"flow": "hotline"})
    m.on_note("c3", "ivr.flow", {"flow": "hotline"})
    m.on_note("c3", "ivr.end", {"reason": "hangup"})
    # c2 ended without a last note (its session failed): forgotten once it is not live
    assert m.ivr.current({"c1", "c3"}) == {"c1"}
    assert m.ivr.flow_of("c2") is None


def test_an_action_outcome_with_digits_is_counted_as_other() -> None:
    m = EngineMetrics(process=False)
    m.on_note("c1", "ivr.action", {"action": "transfer", "outcome": "limit_500000"})
    assert value(m, "callcenter_ivr_action_results_total", action="transfer", outcome=OTHER) == 1


def test_queue_events_waits_and_service_level_counts() -> None:
    m = EngineMetrics(process=False)
    m.on_queue_event(QueueEvent(1.0, "general", "c1", "enter"), 20.0)
    m.on_queue_event(QueueEvent(9.0, "general", "c1", "connect", "A1", wait_s=8.0), 20.0)
    m.on_queue_event(QueueEvent(2.0, "general", "c2", "enter"), 20.0)
    m.on_queue_event(QueueEvent(40.0, "general", "c2", "connect", "A1", wait_s=38.0), 20.0)
    m.on_queue_event(QueueEvent(3.0, "general", "c3", "abandon", wait_s=50.0), 20.0)
    m.on_queue_event(QueueEvent(4.0, "general", "c4", "made_up_event"), 20.0)
    assert value(m, "callcenter_queue_events_total", queue="general", event="enter") == 2
    assert value(m, "callcenter_queue_events_total", queue="general", event="connect") == 2
    assert value(m, "callcenter_queue_events_total", queue="general", event=OTHER) == 1
    assert value(m, "callcenter_queue_answered_within_target_total", queue="general") == 1
    assert value(m, "callcenter_queue_wait_seconds_count", queue="general",
                 outcome="answered") == 2
    assert value(m, "callcenter_queue_wait_seconds_sum", queue="general",
                 outcome="abandoned") == 50
    assert value(m, "callcenter_queue_wait_seconds_bucket", queue="general",
                 outcome="answered", le="10.0") == 1


def test_round_trips_deliveries_and_loop_lag() -> None:
    m = EngineMetrics(process=False)
    m.on_ami_action("Originate", 3.2, "answered")
    m.on_ami_action("Ping", 0.001, "answered")
    m.on_ami_action("Redirect", 10.0, "timeout")
    m.on_ami_action("Hangup", 0.2, "lost")
    m.on_agi_round_trip("GET VARIABLE", 0.0008)
    m.on_delivery("sms", "sent")
    m.on_delivery("sms", "delivered")
    m.on_loop_lag(0.003)
    assert value(m, "callcenter_ami_action_duration_seconds_count", action="Originate") == 1
    assert value(m, "callcenter_ami_action_duration_seconds_bucket", action="Ping",
                 le="0.001") == 1
    assert value(m, "callcenter_ami_action_failures_total", action="Redirect",
                 reason="timeout") == 1
    assert value(m, "callcenter_agi_command_duration_seconds_count",
                 command="GET VARIABLE") == 1
    assert value(m, "callcenter_outbox_delivery_results_total", channel="sms",
                 state="delivered") == 1
    assert value(m, "callcenter_event_loop_lag_seconds_count") == 1
    assert value(m, "callcenter_event_loop_lag_last_seconds") == 0.003


# -- naming -----------------------------------------------------------------------------------

NAME = re.compile(r"callcenter_[a-z][a-z0-9_]*[a-z0-9]")


def test_every_family_follows_the_prometheus_conventions() -> None:
    m = EngineMetrics(lambda: FULL)  # with the process collector, as the engine runs it
    m.on_ami_action("Ping", 0.001, "answered")
    m.on_agi_round_trip("ANSWER", 0.001)
    m.on_queue_event(QueueEvent(9.0, "general", "c1", "connect", "A1", wait_s=8.0), 20.0)
    m.on_loop_lag(0.001)
    text = m.exposition().decode()
    parsed = list(text_string_to_metric_families(text))
    ours = [f for f in parsed if not f.name.startswith("process_")]
    assert len(ours) >= 25
    for family in ours:
        assert NAME.fullmatch(family.name), family.name
        assert family.documentation, family.name
        words = family.name.split("_")
        assert not {"ms", "milliseconds", "minutes", "hours", "percent"} & set(words), family.name
        if family.type == "counter":
            assert all(s.name == family.name + "_total" for s in family.samples), family.name
        else:
            assert not family.name.endswith("_total"), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        if "seconds" in words:
            assert family.name.endswith("_seconds"), family.name
        if "ratio" in words:
            assert all(0 <= s.value <= 1 for s in family.samples), family.name
    assert len({f.name for f in parsed}) == len(parsed)


def test_two_engines_keep_their_own_registries() -> None:
    a, b = EngineMetrics(process=False), EngineMetrics(process=False)
    a.on_delivery("sms", "sent")
    assert value(a, "callcenter_outbox_delivery_results_total", channel="sms", state="sent") == 1
    with pytest.raises(AssertionError):
        value(b, "callcenter_outbox_delivery_results_total", channel="sms", state="sent")


def test_settings_and_a_service_without_an_engine() -> None:
    settings = load_settings(ops={"port": 0})
    assert (load_settings().ops.host, load_settings(ops={"port": 8090}).ops.port) == (
        "127.0.0.1", 8090)
    service = OpsService(settings)
    assert service.sample() == EngineSample(calls={})
    with pytest.raises(RuntimeError):
        _ = service.port
    with pytest.raises(ConfigError):
        load_settings(ops={"port": 70000})


# -- the HTTP server --------------------------------------------------------------------------


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.headers["Content-Type"], reply.read()


async def test_the_server_serves_metrics_health_and_routers_on_a_free_port() -> None:
    m = EngineMetrics(lambda: FULL, process=False)
    router = APIRouter()

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    async def scrape() -> bytes:
        return m.exposition()

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = OpsServer(make_app(metrics=scrape, routers=[("/api", router)]), "127.0.0.1", 0)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, kind, body = await asyncio.to_thread(_get, base + "/metrics")
        assert status == 200 and kind.startswith("text/plain; version=0.0.4")
        assert 'callcenter_calls{state="connected"} 1.0' in body.decode()
        assert (await asyncio.to_thread(_get, base + "/healthz"))[2] == b"ok\n"
        assert b'"pong"' in (await asyncio.to_thread(_get, base + "/api/ping"))[2]
        with pytest.raises(urllib.error.HTTPError) as missing:
            await asyncio.to_thread(_get, base + "/nothing")
        assert missing.value.code == 404
        missing.value.close()
        # the engine owns the signals: uvicorn installed none of its own
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    finally:
        await server.close()
    await server.close()  # twice is harmless
    with pytest.raises(OSError):
        await asyncio.to_thread(_get, base + "/healthz")


async def test_a_taken_port_is_a_clear_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = OpsServer(make_app(), "127.0.0.1", port)
        with pytest.raises(ConfigError, match=r"ops.port"):
            await server.start()
        with pytest.raises(RuntimeError):
            _ = server.port


# -- the Grafana dashboard --------------------------------------------------------------------


def test_the_dashboard_reads_only_series_the_engine_exposes() -> None:
    import json
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docker" / "grafana"
                            / "callcenter.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 25
    used = {name for e in exprs for name in re.findall(r"\b(?:callcenter|process)_[a-z0-9_]+", e)}
    m = EngineMetrics(lambda: FULL)
    m.on_note("c1", "ivr.flow", {"flow": "hotline"})
    m.on_note("c1", "ivr.node", {"flow": "hotline", "node": "menu"})
    m.on_note("c1", "ivr.action", {"action": "quote", "outcome": "ok"})
    m.on_note("c1", "ivr.end", {"reason": "completed"})
    m.on_queue_event(QueueEvent(9.0, "general", "c1", "connect", "A1", wait_s=8.0), 20.0)
    m.on_ami_action("Ping", 0.001, "answered")
    m.on_ami_action("Hangup", 0.001, "lost")
    m.on_agi_round_trip("GET VARIABLE", 0.001)
    m.on_delivery("sms", "delivered")
    m.on_loop_lag(0.001)
    exposed = {s.name for f in text_string_to_metric_families(m.exposition().decode())
               for s in f.samples}
    assert used <= exposed, sorted(used - exposed)
    # every family the issue names is on the board
    for family in ("callcenter_calls", "callcenter_ivr_node_visits_total",
                   "callcenter_ivr_outcomes_total", "callcenter_queue_waiting_calls",
                   "callcenter_queue_longest_wait_seconds", "callcenter_queue_service_level_ratio",
                   "callcenter_seats", "callcenter_ami_up", "callcenter_agi_sessions_active",
                   "callcenter_outbox_messages", "callcenter_outbox_delivery_results_total",
                   "callcenter_event_loop_lag_seconds_bucket"):
        assert family in used, family
