"""The pure parts of the bus: building messages from outbox rows, the report table, backoff,
payload decoding, the broker's generated configuration, the runner's state table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from callcenter.channels.bus import (
    POISON_AFTER,
    Bus,
    Malformed,
    decode,
    encode,
    list_dead_letters,
    park,
)
from callcenter.channels.cli import render_dead_letters
from callcenter.channels.messages import (
    MAX_PAYLOAD_BYTES,
    DeliveryReport,
    DeliveryState,
    Inbound,
    Outbound,
    bounded_json,
)
from callcenter.channels.mosquitto import (
    MAX_PACKET_BYTES,
    PROBE_USER,
    connect_packet,
    render_acl,
    render_conf,
)
from callcenter.channels.relay import (
    ENGINE_CLIENT_ID,
    ON_REPORT,
    DeliveryUpdate,
    OutboxRow,
    OutboxState,
    Rejected,
    Relay,
    RelayEvent,
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
from callcenter.channels.settings import ENGINE_USER, ChannelsSettings
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
    # poison: never an exception, always a reason
    ("callcenter/delivery/sms", b"[" * 100_000, "nested too deeply", None),
    ("callcenter/delivery/sms", b" " * (MAX_PAYLOAD_BYTES + 1), "more than", None),
    ("callcenter/delivery/sms", json.dumps({
        "message_id": "m-00000001", "channel": "sms", "state": "sent", "attempt": 10**30,
        "at": NOW.isoformat()}).encode(), "attempt: Input should be less than", "m-00000001"),
    ("callcenter/delivery/sms", json.dumps({
        "message_id": "m-00000001", "channel": "sms", "state": "sent",
        "at": "9999-01-01T00:00:00Z"}).encode(), "at: Value error, a time between",
     "m-00000001"),
    ("callcenter/delivery/sms", b'{"message_id": "m-00000001", "channel": "sms",'
     b' "state": "sent", "at": "2026-01-01T00:00:00Z", "detail": {"x": NaN}}',
     "detail: Value error, a number that is not finite", "m-00000001"),
    ("callcenter/inbound/fax", json.dumps({
        "contact_id": "c-00000001", "channel": "fax", "sender": "1", "pages": -1,
        "received_at": NOW.isoformat()}).encode(), "pages: Input should be greater",
     "c-00000001"),
    ("callcenter/outbox/sms", json.dumps({
        "message_id": "m-00000001", "channel": "sms", "to": "1", "template": "fill",
        "data": {"k" * 65: 1}, "created_at": NOW.isoformat()}).encode(),
     "data: Value error, keys must be strings", "m-00000001"),
    ("callcenter/outbox/sms", json.dumps({      # a field name from the wire, made printable
        "message_id": "m-00000001", "channel": "sms", "to": "1", "template": "fill",
        "\x1b[2J\n": 1, "created_at": NOW.isoformat()}).encode(),
     "?[2J?: Extra inputs are not permitted", "m-00000001"),
])
def test_malformed_payloads_say_why(topic: str, payload: bytes, reason: str,
                                    message_id: str | None) -> None:
    got = decode(topic, payload)
    assert isinstance(got, Malformed) and reason in got.reason, got
    assert got.message_id == message_id
    assert got.reason.isprintable() and len(got.reason) < 500


@pytest.mark.parametrize(("value", "error"), [
    ({"a": {"b": {"c": {"d": [1]}}}}, "nested deeper than 4"),
    ({"k" * 65: 1}, "keys must be strings"),
    ({"n": 2**63}, "64-bit"),
    ({"n": -(2**63) - 1}, "64-bit"),
    ({"f": float("inf")}, "not finite"),
    ({"s": "x" * 9000}, "more than 8192"),
    ({"o": object()}, "not JSON"),
])
def test_free_form_objects_are_bounded(value: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        bounded_json(value, max_bytes=8192, max_depth=4)


def test_bounded_json_lets_ordinary_data_through() -> None:
    data = {"fills": [{"qty": 2**63 - 1, "price": "9.99", "ok": True, "x": None, "f": 1.5}]}
    assert bounded_json(data, max_bytes=8192, max_depth=4) is data
    # a statement with a busy day's fills fits the message
    fills = [{"time": "09:30:00", "order_id": f"O{i:08d}", "code": "600000", "name": "浦发银行",
              "side": "buy", "qty": 100, "price": "10.00"} for i in range(300)]
    out = Outbound(message_id="m-00000001", channel="sms", to="1", template="statement",
                   data={"fills": fills}, created_at=NOW)
    assert len(encode(out)) < MAX_PAYLOAD_BYTES


def test_a_row_too_big_for_the_bus_is_rejected() -> None:
    big = {"to": "1", "template": "fill", "data": {"blob": "x" * (200 * 1024)}}
    built = build_outbound(row(big), KINDS)
    assert isinstance(built, Rejected) and "data: Value error" in built.reason, built


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


def test_conf_binds_client_ids_to_users_and_bounds_sizes() -> None:
    conf = render_conf(ChannelsSettings(), Path("/state/mosquitto"), "mosquitto").splitlines()
    assert "use_username_as_clientid true" in conf
    assert f"message_size_limit {MAX_PAYLOAD_BYTES}" in conf
    assert f"max_packet_size {MAX_PACKET_BYTES}" in conf and MAX_PACKET_BYTES > MAX_PAYLOAD_BYTES
    assert MAX_PAYLOAD_BYTES == 256 * 1024  # tests/channels/test_bus_poison.py relies on it
    # the engine's client id is its user name (what the broker makes of it anyway)
    assert ENGINE_CLIENT_ID == ENGINE_USER
    # the probe user is no channel kind and has no topic at all
    with pytest.raises(ValueError, match="not a channel kind"):
        ChannelsSettings(extra={PROBE_USER: {}})
    assert f"user {PROBE_USER}" not in render_acl(("sms",)).replace(f"# user {PROBE_USER}", "")


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

    def failing(_event: RelayEvent) -> None:
        raise ZeroDivisionError("division by zero")

    relay.add_listener(failing)  # a failing listener harms nobody
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
            row = await cur.fetchone()
            assert row is not None and row[0] == 1
    finally:
        await db.close()


# -- dead letters and poison ---------------------------------------------------------------------

async def test_parked_messages_are_kept_once_with_a_count(tmp_path: Path) -> None:
    db = await open_db(tmp_path / "cc.db")
    try:
        payload = b"\xff" + b"x" * 10_000
        assert await park(db, "callcenter/delivery/sms", payload, "why", "m-00000001", 5.0)
        assert not await park(db, "callcenter/delivery/sms", payload, "why", "m-00000001", 9.0)
        assert await park(db, "callcenter/inbound/fax", b"{}", "other", "not an id!", 7.0)
        [sms, fax] = await list_dead_letters(db)   # the latest first
        assert (sms.topic, sms.sender, sms.message_id, sms.reason) == (
            "callcenter/delivery/sms", "sms", "m-00000001", "why")
        assert (sms.seen, sms.size, sms.first_at, sms.last_at) == (2, 10_001, 5.0, 9.0)
        assert len(sms.payload.encode()) <= 4096 + 2 and sms.payload.startswith("\ufffd")
        assert (fax.sender, fax.message_id) == ("fax", "")
    finally:
        await db.close()


def test_dead_letters_print_safely() -> None:
    from callcenter.channels.bus import DeadLetter

    d = DeadLetter(1, "callcenter/delivery/sms", "sms", "m-00000001",
                   "invalid: \x1b[2Jdetail.\x07: bad", "{}", 2, 3, 1.0, 2.0)
    out = render_dead_letters([("engine", d)])
    assert "\x1b" not in out and "\x07" not in out
    assert "m-00000001" in out and "engine" in out and "reason: invalid: ?[2Jdetail.?: bad" in out
    assert render_dead_letters([]) == "no dead letters\n"


async def test_a_message_the_handler_keeps_failing_on_is_parked(tmp_path: Path) -> None:
    parked: list[tuple[str, bytes, str]] = []

    async def on_poison(topic: str, payload: bytes, reason: str) -> None:
        parked.append((topic, payload, reason))

    bus = Bus(ChannelsSettings(), tmp_path, "engine", client_id="engine", on_poison=on_poison)
    boom = RuntimeError("boom")
    for _ in range(POISON_AFTER - 1):
        assert not await bus._poisoned("t/a", b"1", boom)
    assert not await bus._poisoned("t/b", b"2", boom)  # another message counts on its own
    assert await bus._poisoned("t/a", b"1", boom)
    assert parked == [("t/a", b"1", f"the receiver failed {POISON_AFTER} times on it: "
                                    "RuntimeError: boom")]


async def test_dead_letters_are_bounded_oldest_first(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.channels import bus as bus_module

    monkeypatch.setattr(bus_module, "MAX_DEAD_LETTERS", 3)
    db = await open_db(tmp_path / "cc.db")
    try:
        for n in range(5):
            await bus_module.park(db, "callcenter/delivery/sms", f"junk {n}".encode(), "bad",
                                  None, at=float(n))
        kept = await bus_module.list_dead_letters(db)
        assert [d.payload for d in kept] == ["junk 4", "junk 3", "junk 2"]
    finally:
        await db.close()


async def test_channel_server_databases_are_private(tmp_path: Path) -> None:
    import stat

    from callcenter.channels.runner import open_channel_db
    from callcenter.channels.sms import ReceiptBook

    db = await open_channel_db(tmp_path / "state" / "channel-sms.db")
    await db.close()
    book = ReceiptBook(tmp_path / "state" / "sms-receipts.sqlite3", ttl_s=60)
    await book.open()
    await book.close()
    for name in ("channel-sms.db", "sms-receipts.sqlite3"):
        assert stat.S_IMODE((tmp_path / "state" / name).stat().st_mode) == 0o600, name
