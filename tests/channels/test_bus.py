"""The bus against a real mosquitto: ACLs, the outbox relay and the ``log`` channel server as a
real process, malformed payloads, and faults (broker killed, channel server killed) after which
every request is delivered exactly once."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest

from callcenter.channels.messages import outbox_topic
from callcenter.channels.mosquitto import Mosquitto, probe, user_password
from callcenter.channels.relay import (
    DeliveryUpdate,
    OutboxState,
)
from callcenter.channels.settings import ChannelsSettings
from callcenter.config import load_settings
from tests.channels.conftest import ACCOUNT, Engine, Env, client, running_engine, until
from tests.ports import free_port


def delivered_ids(env: Env) -> list[str]:
    return [json.loads(line)["message_id"] for line in env.lines()]


# -- users and ACLs -------------------------------------------------------------------------------

async def _next(c: aiomqtt.Client) -> aiomqtt.Message:
    return await asyncio.wait_for(anext(aiter(c.messages)), 10)


async def test_acls_keep_each_server_to_its_own_topics(env: Env, broker: Mosquitto) -> None:
    ch, sd = env.channels, env.state_dir
    # no anonymous users, no wrong passwords
    assert probe(ch.mqtt_host, ch.mqtt_port, "sms", "wrong") is not None
    assert probe(ch.mqtt_host, ch.mqtt_port, "", "") is not None
    good = user_password(sd, "sms").get_secret_value()
    assert probe(ch.mqtt_host, ch.mqtt_port, "sms", good) is None

    async with (await client(ch, sd, "engine", "t-engine") as engine,
                await client(ch, sd, "sms", "t-sms") as sms,
                await client(ch, sd, "email", "t-email") as email):
        await email.subscribe(outbox_topic("email"), qos=1)
        await sms.subscribe([(outbox_topic("email"), 1), (outbox_topic("sms"), 1)])
        await engine.subscribe("callcenter/delivery/#", qos=1)
        await engine.subscribe(outbox_topic("email"), qos=1)

        # sms forges an e-mail order and an e-mail report: the broker drops both. Each
        # publish is acknowledged before the next is sent, and one subscriber gets its
        # messages in the order the broker took them: had a forgery passed, it would come
        # before the genuine message that follows.
        await sms.publish(outbox_topic("email"), b"forged order", qos=1)
        await sms.publish("callcenter/delivery/email", b"forged report", qos=1)
        await sms.publish("callcenter/delivery/sms", b"own report", qos=1)
        await engine.publish(outbox_topic("email"), b"real order", qos=1)
        await engine.publish(outbox_topic("sms"), b"sms order", qos=1)

        first = await _next(email)
        assert (str(first.topic), first.payload) == (outbox_topic("email"), b"real order")
        # sms may not read e-mail's outbox: its first message is its own
        first = await _next(sms)
        assert (str(first.topic), first.payload) == (outbox_topic("sms"), b"sms order")
        # the engine may not read the outbox, and hears only sms's report on sms's topic
        first = await _next(engine)
        assert (str(first.topic), first.payload) == ("callcenter/delivery/sms", b"own report")


# -- the happy path -------------------------------------------------------------------------------

async def test_request_is_published_delivered_and_reported(
        env: Env, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    server = await env.server()
    ref = await engine.request()
    await until(lambda: engine.all_in("delivered", count=1), engine.changed, "delivered")

    [(message_id, row)] = (await engine.rows()).items()
    assert row["ref"] == ref and row["attempts"] == 1 and row["last_error"] == ""
    assert row["next_attempt_at"] is None
    [line] = [json.loads(x) for x in env.lines()]
    assert line["message_id"] == message_id and line["template"] == "statement"
    assert line["to"] == "13800000000" and line["data"] == {"month": "2026-10"}
    assert line["ref"] == ref and line["account"] == ACCOUNT
    async with engine.db.execute("SELECT state, attempt FROM deliveries WHERE message_id = ?",
                                 (message_id,)) as cur:
        assert [tuple(r) for r in await cur.fetchall()] == [("delivered", 1)]
    updates = [(e.state, e.report) for e in engine.events if isinstance(e, DeliveryUpdate)]
    assert updates == [(OutboxState.SENT, None), (OutboxState.DELIVERED, "delivered")]
    assert all(e.account == ACCOUNT and e.ref == ref for e in engine.events
               if isinstance(e, DeliveryUpdate))

    # the CLI shows it, by customer and by state
    settings = load_settings(state_dir=env.state_dir, db_path=env.state_dir / "callcenter.db")
    from callcenter.channels.cli import run_deliveries

    args = argparse.Namespace(account=ACCOUNT, state="delivered", limit=10, format="table")
    assert await run_deliveries(args, settings) == 0
    out = capsys.readouterr().out
    assert message_id in out and "delivered" in out and ref in out
    args = argparse.Namespace(account="999", state=None, limit=10, format="json")
    await run_deliveries(args, settings)
    assert capsys.readouterr().out == ""

    assert await server.stop() == 0
    assert "channel server log stopped" in server.log()


# -- bad input ------------------------------------------------------------------------------------

async def test_bad_rows_and_malformed_messages_end_failed_with_a_reason(
        env: Env, engine: Engine) -> None:
    server = await env.server()
    await engine.request({"template": "statement", "account": ACCOUNT})          # no address
    await engine.request({"to": "1", "template": "statement", "lang": "fr"})      # bad language
    await engine.request(channel="wechat")                                         # unknown kind
    await engine.request(topic="callcenter/outbox/sms")                            # wrong topic
    await until(lambda: engine.all_in("failed", count=4), engine.changed, "four failures")
    reasons = sorted(r["last_error"] for r in (await engine.rows()).values())
    assert any("to: Field required" in r for r in reasons), reasons
    assert any("lang: Input should be 'zh' or 'en'" in r for r in reasons), reasons
    assert any("unknown channel 'wechat'" in r for r in reasons), reasons
    assert any("does not match channel" in r for r in reasons), reasons
    assert sum(isinstance(e, DeliveryUpdate) and e.state is OutboxState.FAILED
               for e in engine.events) == 4

    # On the wire: a message the channel server cannot read. With a message id it is reported
    # failed (and the relay marks the row); without one it is logged, not reported.
    known = "m" * 8 + "-malformed"
    await engine.db.execute(
        "INSERT INTO outbox (message_id, channel, topic, payload, state, attempts, created_at,"
        " updated_at, published_at, next_attempt_at) VALUES (?, 'log', 'callcenter/outbox/log',"
        " '{}', 'sent', 1, 0, 0, 0, 1e12)", (known,))
    # (on the relay's own connection: one connection per broker user)
    bus = engine.relay.bus
    await bus.publish(outbox_topic("log"), b"\xff not even utf-8")
    await bus.publish(outbox_topic("log"), json.dumps(
        {"message_id": known, "channel": "log", "to": ""}).encode())
    await until(lambda: engine.all_in("failed", count=5), engine.changed, "malformed failed")
    row = (await engine.rows())[known]
    assert row["last_error"].startswith("malformed message: invalid Outbound:"), row
    assert "without a readable message id parked, not reported" in server.log()
    assert env.lines() == []


# -- resending ----------------------------------------------------------------------------------

async def test_unreported_rows_are_resent_then_failed_and_a_late_report_still_counts(
        env: Env) -> None:
    channels = env.channels.model_copy(update={"resend_after_s": 0.2, "max_publishes": 3})
    async with running_engine(env, channels) as engine:
        await engine.request()   # no channel server runs: nobody reports
        await until(lambda: engine.all_in("failed", count=1), engine.changed, "given up")
        [row] = (await engine.rows()).values()
        assert row["attempts"] == 3
        assert row["last_error"] == ("no delivery report after 3 publishes; is the 'log' "
                                     "channel server running?")
        # the server comes: three copies wait for it in the broker; it delivers one
        await env.server()
        await until(lambda: engine.all_in("delivered", count=1), engine.changed, "late")
        assert delivered_ids(env) == [row["message_id"]]


# -- faults ---------------------------------------------------------------------------------------

async def test_broker_killed_mid_flight_every_request_delivered_once(
        env: Env, engine: Engine, broker: Mosquitto) -> None:
    await env.server()
    for _ in range(15):
        await engine.request()
    await until(lambda: _at_least(engine, "delivered", 1), engine.changed, "first delivery")

    await asyncio.to_thread(broker.kill)  # SIGKILL, with messages in flight
    for _ in range(15):
        await engine.request()   # the relay cannot publish these now
    await asyncio.to_thread(broker.up)

    await until(lambda: engine.all_in("delivered", count=30), engine.changed,
                "all 30 delivered", 60)
    ids = delivered_ids(env)
    assert sorted(ids) == sorted(await engine.rows()), "each request delivered exactly once"


async def test_channel_server_killed_and_restarted_every_request_delivered_once(
        env: Env, engine: Engine) -> None:
    server = await env.server()
    for _ in range(20):
        await engine.request()
    await until(lambda: _at_least(engine, "delivered", 1), engine.changed, "first delivery")
    await server.kill()  # SIGKILL, likely mid-batch
    for _ in range(10):
        await engine.request()   # published while no server runs: they wait in the broker
    await until(lambda: _none_queued(engine, 30), engine.changed, "all published")

    await env.server()
    await until(lambda: engine.all_in("delivered", count=30), engine.changed,
                "all 30 delivered", 60)
    ids = delivered_ids(env)
    assert sorted(ids) == sorted(await engine.rows()), "each request delivered exactly once"


async def _at_least(engine: Engine, state: str, n: int) -> bool:
    return await engine.count(state) >= n


async def _none_queued(engine: Engine, n: int) -> bool:
    rows = await engine.rows()
    return len(rows) == n and all(r["state"] != "queued" for r in rows.values())


# -- the broker as the engine's child --------------------------------------------------------------

async def test_the_run_command_starts_and_stops_its_own_broker(
        tmp_path: Path, broker: Mosquitto) -> None:
    own = Mosquitto(ChannelsSettings(mqtt_port=free_port()), tmp_path)
    await own.start()
    try:
        assert own.pid() is not None and own.status().login is None
        assert not own.status().stale
        conf = (tmp_path / "mosquitto" / "mosquitto.conf").read_text()
        assert "use_username_as_clientid true" in conf and "message_size_limit" in conf
        assert (tmp_path / "mqtt-users.json").stat().st_mode & 0o777 == 0o600
        assert "engine" in (tmp_path / "mosquitto" / "acl").read_text()
        password = user_password(tmp_path, "engine").get_secret_value()
        assert password not in (tmp_path / "mosquitto" / "passwd").read_text()
        # a broker already running (say, `callcenter bus up`) is used, not started again
        again = Mosquitto(broker.channels, broker.state_dir)
        await again.start()
        await again.stop()
        assert broker.pid() is not None
        # started from an older configuration: status says so
        (tmp_path / "mosquitto" / "mosquitto.conf").write_text(conf.replace(
            "use_username_as_clientid true\n", ""))
        assert own.status().stale and "configuration: stale" in own.status().describe()
    finally:
        await own.stop()
    assert own.pid() is None
