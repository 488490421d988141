"""The ``sms-http`` channel server as it runs: the channel runner with the HTTP gateway plug-in
(httpx) on a real mosquitto of its own (the session broker knows only the ``log`` user),
delivering to a small local HTTP gateway. A busy gateway is retried until it takes the message;
a second copy of an order is reported again, never POSTed twice. No Asterisk."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.channels.messages import DeliveryReport, DeliveryState, Outbound, outbox_topic
from callcenter.channels.mosquitto import Mosquitto
from callcenter.channels.runner import ChannelRunner, load_plugin
from callcenter.channels.settings import ChannelsSettings
from callcenter.channels.sms import HttpGatewayPlugin
from tests.channels.conftest import channels_for, client
from tests.channels.test_sms import Gateway, gateway_handler, http_answer
from tests.ports import free_port

KIND = "sms-http"


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    if shutil.which("mosquitto") is None:
        pytest.fail("Debian's mosquitto is not installed (./dev installs it)")
    state = tmp_path / "bus"
    state.mkdir()
    mosquitto = Mosquitto(ChannelsSettings(mqtt_port=free_port(), extra={KIND: {}},
                                           reconnect_min=0.05, reconnect_max=0.5), state)
    await asyncio.to_thread(mosquitto.up)
    try:
        yield mosquitto
    finally:
        await asyncio.to_thread(mosquitto.down)
    assert mosquitto.pid() is None


def order(n: int = 1) -> Outbound:
    return Outbound(message_id=f"sms-http-{n:04d}", channel=KIND, to="+8613800138000",
                    template="note", account="310000000001", data={"text": "您好 / Hello"},
                    created_at=dt.datetime.now(dt.UTC))


async def test_the_runner_retries_a_busy_gateway_and_never_posts_twice(bus: Mosquitto) -> None:
    assert load_plugin(KIND) is HttpGatewayPlugin
    gw = Gateway("", [], [http_answer("503 Service Unavailable", b"busy"),
                          http_answer("200 OK", b'{"id": "gw-1", "status": "queued"}')])
    server = await asyncio.start_server(gateway_handler(gw), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/sms"
    channels = channels_for(bus, extra={KIND: {"url": url, "token": "tok-9", "timeout_s": 5}})
    runner = ChannelRunner(HttpGatewayPlugin, channels, bus.state_dir)
    async with server, await client(channels, bus.state_dir, "engine", "t-engine") as engine:
        await engine.subscribe(f"callcenter/delivery/{KIND}", qos=1)
        messages = aiter(engine.messages)

        async def report() -> DeliveryReport:
            msg = await asyncio.wait_for(anext(messages), 20)
            assert isinstance(msg.payload, bytes)
            return DeliveryReport.model_validate_json(msg.payload)

        await runner.start()
        try:
            await engine.publish(outbox_topic(KIND), order().model_dump_json().encode(), qos=1)
            busy, sent = await report(), await report()
            # the relay's resend, or the broker's redelivery: reported again, not sent again
            await engine.publish(outbox_topic(KIND), order().model_dump_json().encode(), qos=1)
            again = await report()
        finally:
            await runner.close()
            server.close()
    assert (busy.state, busy.attempt) == (DeliveryState.RETRYING, 1)
    assert busy.reason.startswith("the SMS gateway answered 503 Service Unavailable")
    assert (sent.state, sent.attempt) == (DeliveryState.SENT, 2)
    assert again == sent
    assert len(gw.requests) == 2
    assert all(json.loads(body)["message_id"] == "sms-http-0001" for _, _, body in gw.requests)
