"""Issue 9, finding 6 (the bus), against the real mosquitto: poison messages are parked as dead
letters with their reason and never block the next message, in either direction; the broker
bounds message sizes; and one service's broker user cannot take the engine's client id (and so
cannot kick the engine off the bus)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import socket
import sqlite3
from typing import Any

import aiosqlite
import pytest

from callcenter.channels.messages import (
    DeliveryReport,
    delivery_topic,
    inbound_topic,
    outbox_topic,
)
from callcenter.channels.mosquitto import connect_packet, mqtt_frame, user_password
from callcenter.config import load_settings
from tests.channels.conftest import Engine, Env, client, running_engine, until
from tests.channels.test_runner import engine_side, order, outbound, runner

S = "sms"
#: the broker's message_size_limit (``messages.MAX_PAYLOAD_BYTES``; a unit test checks the two)
MAX_PAYLOAD_BYTES = 256 * 1024


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def report(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"message_id": message_id, "channel": S, "state": "delivered", "attempt": 1,
            "at": _now(), **fields}


def contact(contact_id: str, **fields: Any) -> dict[str, Any]:
    return {"contact_id": contact_id, "channel": S, "sender": "13800000000",
            "received_at": _now(), **fields}


async def _sent_row(engine: Engine) -> str:
    """An outbox row for the sms channel, published; no sms server runs, so it waits."""
    await engine.request(channel=S)
    await until(lambda: engine.all_in("sent", count=1), engine.changed, "published")
    [message_id] = await engine.rows()
    return message_id


async def _dead_letters(engine: Engine) -> list[dict[str, Any]]:
    async with engine.db.execute("SELECT * FROM bus_dead_letters ORDER BY id") as cur:
        return [dict(r) for r in await cur.fetchall()]


async def _reports(engine: Engine, message_id: str) -> list[tuple[str, int]]:
    async with engine.db.execute("SELECT state, attempt FROM deliveries WHERE message_id = ?"
                                 " ORDER BY id", (message_id,)) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def test_a_poison_report_is_parked_and_the_next_real_one_processed(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: an absurd integer crashed the relay's intake into a reconnect loop (the broker
    sent the report again and again, also after a restart), and the real report behind it was
    never processed; unbounded strings were stored."""
    async with running_engine(env, env.channels) as engine:
        mid = await _sent_row(engine)
        poisons: list[tuple[str, bytes, str]] = [
            (delivery_topic(S), json.dumps(report(mid, attempt=10**30)).encode(),
             "attempt: Input should be less than or equal to"),
            (delivery_topic(S), json.dumps(report(mid, attempt=-1)).encode(),
             "attempt: Input should be greater than or equal to 1"),
            (delivery_topic(S), json.dumps(report(mid, reason="r" * 100_000)).encode(),
             "reason: String should have at most 500 characters"),
            (delivery_topic(S), json.dumps(report(mid, detail={"pages": 10**30})).encode(),
             "detail: "),
            (delivery_topic(S), json.dumps(report(mid, detail={"x": "y" * 50_000})).encode(),
             "detail: "),
            (delivery_topic(S), b"[" * 100_000, "nested too deeply"),
            (inbound_topic(S), json.dumps(contact("c-poison-01", pages=10**30)).encode(),
             "pages: Input should be less than or equal to"),
            (inbound_topic(S), json.dumps(contact("c-poison-02", pages=-1)).encode(),
             "pages: Input should be greater than or equal to 0"),
            (inbound_topic(S), json.dumps(contact("c-poison-03", attachment="/" * 10_000)
                                          ).encode(), "attachment: String should have at most"),
        ]
        # as the sms channel server's own broker user: the ACL lets it write these topics
        async with await client(env.channels, env.state_dir, S, "t-sms") as sms:
            for topic, payload, _ in poisons:
                await sms.publish(topic, payload, qos=1)
            await sms.publish(delivery_topic(S), json.dumps(report(mid)).encode(), qos=1)

        await until(lambda: engine.all_in("delivered", count=1), engine.changed,
                    "the real report, right after the poison")
        assert await _reports(engine, mid) == [("delivered", 1)]
        dead = await _dead_letters(engine)
        assert [(d["topic"], d["sender"]) for d in dead] == [(t, S) for t, _, _ in poisons]
        for d, (_, payload, reason) in zip(dead, poisons, strict=True):
            assert reason in d["reason"], d["reason"]
            assert d["size"] == len(payload) and len(d["payload"]) <= 4096
        assert [d["message_id"] for d in dead[:5]] == [mid] * 5
        assert dead[6]["message_id"] == "c-poison-01"
        async with engine.db.execute("SELECT COUNT(*) FROM contacts") as cur:
            assert (await cur.fetchone())[0] == 0
        assert engine.connects == 1, "the relay's connection never dropped"

    # operators see them
    from callcenter.channels.cli import run_dead_letters

    settings = load_settings(state_dir=env.state_dir, db_path=env.state_dir / "callcenter.db")
    capsys.readouterr()
    args = argparse.Namespace(limit=50, format="table")
    assert await run_dead_letters(args, settings) == 0
    out = capsys.readouterr().out
    assert "callcenter/delivery/sms" in out and "less than or equal to" in out
    assert mid in out and "nested too deeply" in out
    args = argparse.Namespace(limit=2, format="json")
    await run_dead_letters(args, settings)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and lines[0]["topic"] == inbound_topic(S)  # newest first

    # after an engine restart nothing comes back and nothing loops; the next report is applied
    async with running_engine(env, env.channels) as engine:
        async with await client(env.channels, env.state_dir, S, "t-sms") as sms:
            await sms.publish(delivery_topic(S), json.dumps(
                report(mid, state="delivered", attempt=2)).encode(), qos=1)

        async def applied() -> bool:
            return len(await _reports(engine, mid)) == 2

        await until(applied, engine.changed, "the report after the restart")
        assert len(await _dead_letters(engine)) == len(poisons)
        assert engine.connects == 1


async def test_a_report_the_engine_cannot_store_is_parked_not_looped(env: Env) -> None:
    """A report that fits its model but cannot be applied (here: the database refuses it) is
    parked after the first failure, with the error as its reason."""
    async with running_engine(env, env.channels) as engine:
        mid = await _sent_row(engine)
        await engine.db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON deliveries WHEN NEW.attempt = 7"
            " BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END")
        async with await client(env.channels, env.state_dir, S, "t-sms") as sms:
            await sms.publish(delivery_topic(S), json.dumps(report(mid, attempt=7)).encode(),
                              qos=1)
            await sms.publish(delivery_topic(S), json.dumps(report(mid)).encode(), qos=1)
        await until(lambda: engine.all_in("delivered", count=1), engine.changed, "delivered")
        [dead] = await _dead_letters(engine)
        assert "refused by a test trigger" in dead["reason"] and dead["message_id"] == mid
        assert engine.connects == 1


async def test_a_busy_database_gets_the_report_again_not_parked(env: Env) -> None:
    """``sqlite3.OperationalError`` (locked, busy) is not the message's fault: the relay asks
    the broker to send it again, and takes it then."""
    async with running_engine(env, env.channels) as engine:
        mid = await _sent_row(engine)
        apply = engine.relay.apply_report
        calls = 0

        async def busy_twice(report: DeliveryReport) -> str | None:
            nonlocal calls
            calls += 1
            if calls <= 3:  # more often than POISON_AFTER: still never parked
                raise sqlite3.OperationalError("database is locked")
            return await apply(report)

        engine.relay.apply_report = busy_twice  # type: ignore[method-assign]
        async with await client(env.channels, env.state_dir, S, "t-sms") as sms:
            await sms.publish(delivery_topic(S), json.dumps(report(mid)).encode(), qos=1)
        await until(lambda: engine.all_in("delivered", count=1), engine.changed, "delivered")
        assert calls == 4 and engine.connects == 4  # the broker sent it again each time
        assert await _dead_letters(engine) == []


async def test_the_broker_drops_oversized_messages(env: Env) -> None:
    async with (await client(env.channels, env.state_dir, "engine", "t-engine") as eng,
                await client(env.channels, env.state_dir, S, "t-sms") as sms):
        await eng.subscribe(delivery_topic(S), qos=1)
        await sms.publish(delivery_topic(S), b"x" * (MAX_PAYLOAD_BYTES + 1), qos=1)
        await sms.publish(delivery_topic(S), b"small", qos=1)
        first = await asyncio.wait_for(anext(aiter(eng.messages)), 10)
        assert first.payload == b"small"


async def test_a_service_user_cannot_take_the_engines_client_id(env: Env) -> None:
    """Before: the sms server's user could connect with the engine's client id; the broker
    then closed the engine's connection (a session take-over)."""
    async with running_engine(env, env.channels) as engine:
        mid = await _sent_row(engine)
        for attempt, client_id in enumerate(("callcenter-engine", "engine"), start=1):
            async with await client(env.channels, env.state_dir, S, client_id,
                                    clean=False) as intruder:
                # the intruder's own (allowed) report: had it kicked the relay, the relay
                # would only hear it after reconnecting
                await intruder.publish(delivery_topic(S), json.dumps(
                    report(mid, state="sent", attempt=attempt)).encode(), qos=1)

                async def heard(n: int = attempt) -> bool:
                    return len(await _reports(engine, mid)) == n

                await until(heard, engine.changed, f"report {attempt}")
        assert engine.connects == 1, "the engine was kicked off the bus"
        assert engine.relay.bus.connected


# -- the other direction: a channel server reading requests ----------------------------------------

async def test_a_poison_request_is_parked_and_the_next_one_delivered(env: Env) -> None:
    """Before: a request nested too deeply crashed the channel server's intake into the same
    reconnect loop; the request behind it waited for ever."""
    bad = json.loads(outbound(1).model_dump_json())
    bad["data"] = {"n": 10**30}
    async with engine_side(env) as (c, next_report):
        r = runner(env)
        await r.start()
        try:
            await c.publish(outbox_topic("log"), b"[" * 100_000, qos=1)
            await c.publish(outbox_topic("log"), json.dumps(bad).encode(), qos=1)
            await order(c, outbound(2))
            got: list[DeliveryReport] = [await next_report(), await next_report()]
            assert r.bus.connections == 1
        finally:
            await r.close()
    assert [(g.message_id, g.state) for g in got] == [
        ("test-message-0001", "failed"), ("test-message-0002", "delivered")]
    assert got[0].reason.startswith("malformed message: invalid Outbound: data")
    assert [json.loads(x)["message_id"] for x in env.lines()] == ["test-message-0002"]
    db = await aiosqlite.connect(env.state_dir / "channel-log.db")
    try:
        async with db.execute("SELECT topic, message_id, reason FROM bus_dead_letters"
                              " ORDER BY id") as cur:
            dead = [tuple(x) for x in await cur.fetchall()]
    finally:
        await db.close()
    assert [d[:2] for d in dead] == [(outbox_topic("log"), ""),
                                     (outbox_topic("log"), "test-message-0001")]
    assert "nested too deeply" in dead[0][2] and "data" in dead[1][2]


def _publish_packet(topic: str, payload: bytes) -> bytes:
    """An MQTT PUBLISH at QoS 0."""
    body = len(topic.encode()).to_bytes(2, "big") + topic.encode() + payload
    return mqtt_frame(0x30, body)


def _send_and_wait_closed(env: Env, payload: bytes) -> bytes:
    """Log in as sms, publish ``payload``, and return what the broker sends next (b"": it
    closed the connection)."""
    password = user_password(env.state_dir, S).get_secret_value()
    with socket.create_connection((env.channels.mqtt_host, env.channels.mqtt_port), 5) as sock:
        sock.settimeout(5)
        sock.sendall(connect_packet("t-sms", S, password))
        assert sock.recv(4)[:1] == b"\x20"  # CONNACK
        try:
            sock.sendall(_publish_packet(delivery_topic(S), payload))
            sock.sendall(b"\xc0\x00")  # PINGREQ: answered (PINGRESP) unless disconnected
            return sock.recv(2)
        except (ConnectionResetError, BrokenPipeError):  # closed while we were still sending
            return b""


async def test_a_sender_over_the_packet_limit_is_disconnected(env: Env) -> None:
    assert await asyncio.to_thread(_send_and_wait_closed, env, b"x" * 100) == b"\xd0\x00"
    assert await asyncio.to_thread(_send_and_wait_closed, env,
                                   b"x" * (4 * MAX_PAYLOAD_BYTES)) == b""
