"""The pure parts of the bus: building messages from outbox rows, the report table, backoff,
payload decoding, the broker's generated configuration, the runner's state table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from callcenter.channels.bus import Malformed, decode, encode
from callcenter.channels.messages import DeliveryReport, DeliveryState, Inbound, Outbound
from callcenter.channels.mosquitto import connect_packet, render_acl, render_conf
from callcenter.channels.relay import (
    ON_REPORT,
    DeliveryUpdate,
    OutboxRow,
    OutboxState,
    Rejected,
    Relay,
    backoff,
    build_outbound,
    normalise_payload,
    on_report,
)
from callcenter.channels.runner import (
    INTERRUPTED,
    TRANSITIONS,
    MessageState,
    after_interruption,
    check_move,
)
from callcenter.channels.settings import ChannelsSettings
from callcenter.errors import ChannelError
from callcenter.store.db import open_db
from callcenter.store.hotline import add_request

KINDS = ("email", "fax", "log", "sms")
St, R = OutboxState, DeliveryState


def row(payload: object, channel: str = "sms", topic: str | None = None,
        ref: str | None = "12345678") -> OutboxRow:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return OutboxRow("a1b2c3d4e5f6", channel, topic or f"callcenter/outbox/{channel}", text,
                     ref, St.QUEUED, 0, 1_795_000_000.0)


# -- building ------------------------------------------------------------------------------------

def test_a_row_in_the_convention_becomes_an_outbound() -> None:
    built = build_outbound(row({"to": "13800000000", "template": "fill", "lang": "en",
                                "account": "310000000001", "data": {"code": "600000"}}), KINDS)
    assert isinstance(built, Outbound)
    assert (built.message_id, built.channel, built.to, built.template, built.lang) == (
        "a1b2c3d4e5f6", "sms", "13800000000", "fill", "en")
    assert built.ref == "12345678" and built.data == {"code": "600000"}
    assert built.created_at == dt.datetime.fromtimestamp(1_795_000_000.0, dt.UTC)


def test_older_rows_map_doc_to_template_and_keep_other_keys_as_data() -> None:
    legacy = {"kind": "statement", "doc": "trade_confirmations", "account": "310000000001",
              "to": "zhang@example.com", "lang": "zh", "ref": "87654321"}
    built = build_outbound(row(legacy, "email", ref=None), KINDS)
    assert isinstance(built, Outbound)
    assert built.template == "trade_confirmations" and built.ref == "87654321"
    assert built.data == {}
    console = {"to": "1", "account": "1", "template": "note", "lang": "zh", "text": "hi",
               "requested_by": "a1"}
    assert normalise_payload(console)["data"] == {"text": "hi", "requested_by": "a1"}
    assert normalise_payload({"data": {"x": 1}, "x": 2})["data"] == {"x": 1}


@pytest.mark.parametrize(("r", "reason"), [
    (row({"template": "fill"}), "to: Field required"),
    (row({"to": "1", "template": "fill", "lang": "fr"}), "lang: Input should be"),
    (row({"to": "1", "template": "Fill!"}), "template: String should match"),
    (row({"to": "1", "template": "fill", "data": [1]}), "data: Input should be"),
    (row({"to": "1", "template": "fill", "account": "abc"}), "account: String should match"),
    (row("not json"), "payload is not JSON"),
    (row("[1, 2]"), "payload is not a JSON object"),
    (row({"to": "1", "template": "fill"}, channel="wechat"), "unknown channel 'wechat'"),
    (row({"to": "1", "template": "fill"}, topic="callcenter/outbox/fax"), "does not match"),
])
def test_rows_that_cannot_be_messages_are_rejected_with_a_reason(r: OutboxRow,
                                                                  reason: str) -> None:
    built = build_outbound(r, KINDS)
    assert isinstance(built, Rejected) and reason in built.reason, built


# -- the report table ----------------------------------------------------------------------------

def test_the_report_table_is_complete() -> None:
    assert set(ON_REPORT) == {(o, r) for o in St for r in R}
    assert St.QUEUED not in ON_REPORT.values()


@pytest.mark.parametrize(("current", "report", "final_seen", "after"), [
    (St.QUEUED, R.DELIVERED, False, St.DELIVERED),   # report before our PUBACK bookkeeping
    (St.SENT, R.SENT, False, St.SENT),
    (St.SENT, R.RETRYING, False, St.SENT),
    (St.SENT, R.FAILED, False, St.FAILED),
    (St.DELIVERED, R.FAILED, True, St.DELIVERED),    # delivered is proof
    (St.FAILED, R.DELIVERED, True, St.DELIVERED),    # ... and wins
    (St.FAILED, R.SENT, True, St.FAILED),            # a stale 'sent' after the server's 'failed'
    (St.FAILED, R.SENT, False, St.SENT),             # we gave up for want of a report; it came
    (St.DELIVERED, R.SENT, True, St.DELIVERED),
])
def test_reports_move_rows(current: OutboxState, report: DeliveryState, final_seen: bool,
                           after: OutboxState) -> None:
    assert on_report(current, report, server_final_seen=final_seen) is after


def test_backoff_doubles_up_to_its_ceiling() -> None:
    assert [backoff(n, 1.0, 10.0) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff(10_000, 0.5, 60.0) == 60.0 and backoff(-1, 0.5, 60.0) == 0.5


# -- decoding ------------------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def test_decode_round_trips_each_model() -> None:
    out = Outbound(message_id="m-00000001", channel="sms", to="1", template="fill",
                   created_at=NOW)
    rep = DeliveryReport(message_id="m-00000001", channel="sms", state=R.SENT, at=NOW)
    inb = Inbound(contact_id="c-00000001", channel="fax", sender="021", received_at=NOW)
    assert decode("callcenter/outbox/sms", encode(out)) == out
    assert decode("callcenter/delivery/sms", encode(rep)) == rep
    assert decode("callcenter/inbound/fax", encode(inb)) == inb


@pytest.mark.parametrize(("topic", "payload", "reason", "message_id"), [
    ("callcenter/outbox/sms", b"\xff", "not UTF-8", None),
    ("callcenter/outbox/sms", b"{", "not JSON", None),
    ("callcenter/outbox/sms", b'{"message_id": "m-00000001", "channel": "sms"}',
     "invalid Outbound: to: Field required", "m-00000001"),
    ("callcenter/outbox/sms", b'{"message_id": "bad id!", "channel": "sms"}',
     "invalid Outbound", None),
    ("callcenter/outbox/fax", json.dumps({
        "message_id": "m-00000001", "channel": "sms", "to": "1", "template": "fill",
        "created_at": NOW.isoformat()}).encode(), "channel 'sms' on the topic of 'fax'",
     "m-00000001"),
    ("elsewhere/outbox/sms", b"{}", "not a callcenter topic", None),
    ("callcenter/inbound/fax", b'{"contact_id": "c-00000001"}', "invalid Inbound",
     "c-00000001"),
])
def test_malformed_payloads_say_why(topic: str, payload: bytes, reason: str,
                                    message_id: str | None) -> None:
    got = decode(topic, payload)
    assert isinstance(got, Malformed) and reason in got.reason, got
    assert got.message_id == message_id


# -- the broker's files --------------------------------------------------------------------------

def test_acl_gives_each_user_its_own_topics() -> None:
    acl = render_acl(("email", "sms"))
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n")[1:]}
    assert blocks["user engine"] == ["topic write callcenter/outbox/#",
                                     "topic read callcenter/delivery/#",
                                     "topic read callcenter/inbound/#"]
    assert blocks["user sms"] == ["topic read callcenter/outbox/sms",
                                  "topic write callcenter/delivery/sms",
                                  "topic write callcenter/inbound/sms"]


def test_conf_is_loopback_authenticated_and_persistent() -> None:
    conf = render_conf(ChannelsSettings(), Path("/state/mosquitto"), "mosquitto").splitlines()
    assert "listener 1884 127.0.0.1" in conf and "allow_anonymous false" in conf
    assert "persistence true" in conf and "persistence_location /state/mosquitto/data/" in conf
    assert "password_file /state/mosquitto/passwd" in conf
    assert "acl_file /state/mosquitto/acl" in conf


def test_settings_know_their_kinds_and_refuse_bad_ones() -> None:
    s = ChannelsSettings(servers=["sms"], extra={"wechat": {"app": "x"}})
    assert s.kinds == ("email", "fax", "sms", "wechat")
    assert s.users == ("engine", "email", "fax", "sms", "wechat")
    with pytest.raises(ValueError, match="not a channel kind"):
        ChannelsSettings(extra={"WeChat!": {}})
    with pytest.raises(ValueError, match="engine's broker user"):
        ChannelsSettings(servers=["engine"])


def test_connect_packet() -> None:
    packet = connect_packet("c", "u", "p")
    assert packet[0] == 0x10 and packet[1] == len(packet) - 2
    assert packet[2:8] == b"\x00\x04MQTT" and packet[8:10] == bytes([4, 0xC2])


# -- the runner's table --------------------------------------------------------------------------

def test_runner_moves_follow_the_table() -> None:
    check_move(MessageState.RECEIVED, MessageState.SENDING)
    check_move(MessageState.SENDING, MessageState.WAITING)
    for final in (MessageState.DONE, MessageState.FAILED):
        assert TRANSITIONS[final] == frozenset()
        with pytest.raises(ChannelError):
            check_move(final, MessageState.SENDING)
    with pytest.raises(ChannelError):
        check_move(MessageState.RECEIVED, MessageState.DONE)  # never delivered without sending


def test_interrupted_messages_are_resent_only_by_idempotent_plugins() -> None:
    assert after_interruption(True) == (MessageState.WAITING, "")
    assert after_interruption(False) == (MessageState.FAILED, INTERRUPTED)


# -- the relay's bookkeeping, without a broker ---------------------------------------------------

async def _relay(tmp_path: Path) -> tuple[Relay, list[float]]:
    db = await open_db(tmp_path / "cc.db")
    clock = [1000.0]
    relay = Relay(db, ChannelsSettings(backoff_min_s=2.0, backoff_max_s=8.0), tmp_path,
                  clock=lambda: clock[0])
    return relay, clock


async def _state(db: aiosqlite.Connection, mid: str) -> tuple[Any, ...]:
    sql = "SELECT state, next_attempt_at, last_error, attempts FROM outbox WHERE message_id = ?"
    async with db.execute(sql, (mid,)) as cur:
        return tuple(await cur.fetchone() or ())


async def test_unpublishable_rows_back_off_until_the_bus_is_back(tmp_path: Path) -> None:
    relay, clock = await _relay(tmp_path)
    db = relay.db
    try:
        await add_request(db, "note", "c1", account="1", phone=None, detail={}, outbox=[
            ("sms", "callcenter/outbox/sms", {"to": "1", "template": "note"})])
        [mid] = [r[0] for r in await (await db.execute("SELECT message_id FROM outbox")
                                      ).fetchall()]
        assert await relay.pump() == 0  # not connected: nothing published, nothing lost
        state, nxt, error, attempts = await _state(db, mid)
        assert (state, nxt, attempts) == ("queued", 1002.0, 0)
        assert error == "publish failed: not connected to the broker"
        assert await relay.pump() == 0  # not due yet: not even tried
        assert (await _state(db, mid))[1] == 1002.0
        clock[0] = 1002.0
        await relay.pump()
        assert (await _state(db, mid))[1] == 1006.0  # 2 s, then 4 s
        await relay._on_connected()  # the bus is back: no waiting out the backoff
        assert (await _state(db, mid))[1] == 1002.0
    finally:
        await db.close()


async def test_reports_are_applied_once_and_only_to_known_messages(tmp_path: Path) -> None:
    relay, _ = await _relay(tmp_path)
    db = relay.db
    heard: list[object] = []
    relay.add_listener(heard.append)
    relay.add_listener(lambda e: 1 / 0)  # a failing listener harms nobody
    try:
        await add_request(db, "note", "c1", account="310000000001", phone=None, detail={},
                          outbox=[("sms", "callcenter/outbox/sms", {
                              "to": "1", "template": "note", "account": "310000000001"})])
        [mid] = [r[0] for r in await (await db.execute("SELECT message_id FROM outbox")
                                      ).fetchall()]

        def rep(state: DeliveryState, reason: str = "", attempt: int = 1,
                channel: str = "sms", message_id: str = mid) -> DeliveryReport:
            return DeliveryReport(message_id=message_id, channel=channel, state=state,
                                  reason=reason, attempt=attempt, at=NOW)

        await relay.apply_report(rep(R.RETRYING, "throttled"))
        assert (await _state(db, mid))[:3] == ("sent", None, "throttled")
        await relay.apply_report(rep(R.DELIVERED, attempt=2))
        await relay.apply_report(rep(R.DELIVERED, attempt=2))       # heard twice: once
        await relay.apply_report(rep(R.FAILED, "late", attempt=3))  # delivered stays
        await relay.apply_report(rep(R.FAILED, channel="fax"))      # wrong channel: dropped
        await relay.apply_report(rep(R.FAILED, message_id="unknown-0001"))
        assert (await _state(db, mid))[:3] == ("delivered", None, "")
        async with db.execute("SELECT state, attempt FROM deliveries ORDER BY id") as cur:
            assert [tuple(r) for r in await cur.fetchall()] == [
                ("retrying", 1), ("delivered", 2), ("failed", 3)]
        states = [(e.state, e.report) for e in heard if isinstance(e, DeliveryUpdate)]
        assert states == [(St.SENT, R.RETRYING), (St.DELIVERED, R.DELIVERED),
                          (St.DELIVERED, R.FAILED)]
        assert all(e.account == "310000000001" for e in heard if isinstance(e, DeliveryUpdate))

        contact = Inbound(contact_id="c-00000001", channel="fax", sender="021",
                          received_at=NOW)
        await relay.store_contact(contact)
        await relay.store_contact(contact)
        async with db.execute("SELECT COUNT(*) FROM contacts") as cur:
            assert (await cur.fetchone())[0] == 1
    finally:
        await db.close()
