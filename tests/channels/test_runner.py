"""The channel server's runner in this process, against the real broker: retries, failures,
duplicates, a crash while sending, receipts and inbound contacts; plug-in discovery."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import aiomqtt
import pytest

from callcenter.channels.bus import Bus
from callcenter.channels.log_channel import LogChannel
from callcenter.channels.messages import (
    DeliveryReport,
    DeliveryState,
    Inbound,
    Outbound,
    outbox_topic,
)
from callcenter.channels.plugin import ChannelPlugin, Delivered
from callcenter.channels.relay import ContactArrived, Relay, RelayEvent
from callcenter.channels.runner import INTERRUPTED, ChannelRunner, load_plugin, open_channel_db
from callcenter.errors import BusError, ConfigError
from callcenter.store.db import open_db
from tests.channels.conftest import Env, client, until

S = DeliveryState


def outbound(n: int = 1, to: str = "13800000000") -> Outbound:
    return Outbound(message_id=f"test-message-{n:04d}", channel="log", to=to,
                    template="note", account="310000000001", data={"n": n},
                    created_at=dt.datetime.now(dt.UTC))


@asynccontextmanager
async def engine_side(env: Env) -> AsyncIterator[tuple[aiomqtt.Client, Callable[[], Any]]]:
    """A client of the engine's user: publish orders, read reports in order."""
    async with await client(env.channels, env.state_dir, "engine", "t-engine") as c:
        await c.subscribe("callcenter/delivery/log", qos=1)
        messages = aiter(c.messages)

        async def report() -> DeliveryReport:
            msg = await asyncio.wait_for(anext(messages), 20)
            assert isinstance(msg.payload, bytes)
            return DeliveryReport.model_validate_json(msg.payload)

        yield c, report


async def order(c: aiomqtt.Client, message: Outbound) -> None:
    await c.publish(outbox_topic("log"), message.model_dump_json().encode(), qos=1)


def runner(env: Env, cls: type[ChannelPlugin] = LogChannel, **log: Any) -> ChannelRunner:
    extra = {"path": str(env.log_path), **log}
    return ChannelRunner(cls, channels_for_env(env, extra), env.state_dir)


def channels_for_env(env: Env, extra: dict[str, Any], **kw: Any) -> Any:
    return env.channels.model_copy(update={"extra": {"log": extra}, **kw})


class OnceOnly(LogChannel):
    """The log channel, pretending it could not tell a repeat (like a fax machine)."""

    idempotent_deliver: ClassVar[bool] = False


async def test_retriable_failures_are_retried_then_delivered(env: Env) -> None:
    async with engine_side(env) as (c, report):
        r = runner(env, fail_attempts=2)
        await r.start()
        try:
            await order(c, outbound())
            got = [await report() for _ in range(3)]
        finally:
            await r.close()
    assert [(x.state, x.attempt) for x in got] == [(S.RETRYING, 1), (S.RETRYING, 2),
                                                   (S.DELIVERED, 3)]
    assert got[0].reason == "simulated temporary failure 1"
    assert len(env.lines()) == 1


async def test_permanent_failure_and_giving_up(env: Env) -> None:
    env.channels = env.channels.model_copy(update={"deliver_attempts": 2})
    async with engine_side(env) as (c, report):
        r = runner(env, fail_attempts=5, refuse=["bad-number"])
        await r.start()
        try:
            await order(c, outbound(1, to="bad-number"))
            refused = await report()
            await order(c, outbound(2))
            first, last = await report(), await report()
        finally:
            await r.close()
    assert (refused.state, refused.reason, refused.attempt) == (
        S.FAILED, "address bad-number refused", 1)
    assert (first.state, last.state, last.attempt) == (S.RETRYING, S.FAILED, 2)
    assert last.reason == "simulated temporary failure 2 (gave up after 2 attempts)"
    assert env.lines() == []


async def test_a_second_copy_is_not_delivered_but_reported_again(env: Env) -> None:
    async with engine_side(env) as (c, report):
        r = runner(env)
        await r.start()
        try:
            await order(c, outbound())
            first = await report()
            await order(c, outbound())  # the relay's resend, or the broker's redelivery
            again = await report()
        finally:
            await r.close()
    assert first == again and first.state is S.DELIVERED
    assert len(env.lines()) == 1


@pytest.mark.parametrize("cls", [OnceOnly, LogChannel])
async def test_a_message_interrupted_while_sending(env: Env, cls: type[ChannelPlugin]) -> None:
    """Killed between 'sending' and 'done': nobody knows if the peer got it. Not resent,
    reported failed, unless the plug-in is idempotent (then sent again, once)."""
    db = await open_channel_db(env.state_dir / "channel-log.db")
    message = outbound()
    await db.execute("INSERT INTO messages (message_id, payload, state, attempts, received_at,"
                     " updated_at) VALUES (?, ?, 'sending', 1, 0, 0)",
                     (message.message_id, message.model_dump_json()))
    await db.close()
    async with engine_side(env) as (_, report):
        r = runner(env, cls)
        await r.start()
        try:
            got = await report()
        finally:
            await r.close()
    if cls is OnceOnly:
        assert (got.state, got.reason, got.attempt) == (S.FAILED, INTERRUPTED, 1)
        assert env.lines() == []
    else:
        assert (got.state, got.attempt) == (S.DELIVERED, 2)
        assert len(env.lines()) == 1


class Receipts(LogChannel):
    """Hands over (SENT), then a receipt comes later; and a customer writes back."""

    later: ClassVar[set[asyncio.Task[None]]] = set()

    async def deliver(self, message: Outbound) -> Delivered:
        await super().deliver(message)
        # the receipt may well come before the runner has recorded the hand-over
        task = asyncio.create_task(self._later(message))
        self.later.add(task)
        task.add_done_callback(self.later.discard)
        return Delivered(S.SENT, {"peer_id": "p-1"})

    async def _later(self, message: Outbound) -> None:
        await self.report_later(message.message_id, S.DELIVERED, "", {"receipt": "DELIVRD"})
        await self.publish_inbound(Inbound(
            contact_id=f"reply-{message.message_id}", channel="log", sender=message.to,
            subject="re: note", text="thanks", received_at=dt.datetime.now(dt.UTC)))


async def test_receipts_and_inbound_contacts_reach_the_engine(env: Env) -> None:
    db = await open_db(env.state_dir / "callcenter.db")
    relay = Relay(db, env.channels, env.state_dir)
    changed, events = asyncio.Event(), []

    def heard(event: RelayEvent) -> None:
        events.append(event)
        changed.set()

    relay.add_listener(heard)
    r = runner(env, Receipts)
    await relay.start()
    await r.start()
    try:
        from callcenter.store.hotline import add_request

        await add_request(db, "note", "call-9", account="310000000001", phone=None, detail={},
                          outbox=[("log", outbox_topic("log"), {
                              "to": "13800000000", "template": "note", "lang": "en",
                              "account": "310000000001", "text": "hello"})])
        relay.kick()

        async def settled() -> bool:
            async with db.execute("SELECT state FROM outbox") as cur:
                states = [row[0] for row in await cur.fetchall()]
            async with db.execute("SELECT COUNT(*) FROM contacts") as cur:
                counted = await cur.fetchone()
                assert counted is not None
                contacts = counted[0]
            async with db.execute("SELECT COUNT(*) FROM deliveries") as cur:
                counted = await cur.fetchone()
                assert counted is not None
                reports = counted[0]
            return states == ["delivered"] and contacts == 1 and reports == 2

        await until(settled, changed, "receipt and contact")
    finally:
        await r.close()
        await relay.close()
    async with db.execute("SELECT state, detail FROM deliveries ORDER BY state") as cur:
        reports = [(row[0], json.loads(row[1])) for row in await cur.fetchall()]
    async with db.execute("SELECT sender, subject, text FROM contacts") as cur:
        row = await cur.fetchone()
        assert row is not None
        contact = tuple(row)
    await db.close()
    assert reports == [("delivered", {"receipt": "DELIVRD"}), ("sent", {"peer_id": "p-1"})]
    assert contact == ("13800000000", "re: note", "thanks")
    assert [e.contact.subject for e in events if isinstance(e, ContactArrived)] == ["re: note"]
    [line] = [json.loads(x) for x in env.lines()]
    assert line["data"] == {"text": "hello"} and line["lang"] == "en"


# -- start-up problems ----------------------------------------------------------------------------

async def test_a_wrong_password_is_fatal(env: Env) -> None:
    secrets_file = env.state_dir / "mqtt-users.json"
    data = json.loads(secrets_file.read_text())
    data["log"] = "not-the-password"
    secrets_file.write_text(json.dumps(data))
    bus = Bus(env.channels, env.state_dir, "log", client_id="t-bad")
    with pytest.raises(BusError, match="refused user 'log'"):
        await asyncio.wait_for(bus.run(), 20)


async def test_plugin_settings_are_checked(env: Env) -> None:
    with pytest.raises(ConfigError, match=r"\[channels.extra.log\]: path"):
        ChannelRunner(LogChannel, channels_for_env(env, {}), env.state_dir)


def test_plugins_are_found_through_the_entry_point_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A site's own channel: its package registers an entry point; nothing in the engine."""
    site = tmp_path / "site"
    (site / "acme_wechat-1.0.dist-info").mkdir(parents=True)
    (site / "acme_wechat-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-wechat\nVersion: 1.0\n")
    (site / "acme_wechat-1.0.dist-info" / "entry_points.txt").write_text(
        "[callcenter.channels]\nwechat = acme_wechat:WeChat\nbroken = acme_wechat:Nothing\n")
    (site / "acme_wechat.py").write_text(textwrap.dedent("""
        from pydantic import BaseModel
        from callcenter.channels.plugin import ChannelPlugin

        class WeChat(ChannelPlugin):
            kind = "wechat"
            Settings = BaseModel
    """))
    monkeypatch.syspath_prepend(str(site))
    cls = load_plugin("wechat")
    assert cls.__name__ == "WeChat" and issubclass(cls, ChannelPlugin)
    assert load_plugin("log") is LogChannel  # from this checkout's pyproject (or metadata)
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_plugin("broken")
    with pytest.raises(ConfigError, match="no channel plug-in for kind 'pager'"):
        load_plugin("pager")
    sys.modules.pop("acme_wechat", None)


async def test_unconfigured_kind_is_refused(env: Env) -> None:
    from callcenter.channels.runner import run_channel
    from callcenter.config import load_settings

    settings = load_settings(state_dir=env.state_dir, channels=env.channels)
    with pytest.raises(ConfigError, match="channel kind 'pager' is not configured"):
        await run_channel(settings, "pager")
