"""The SMS channel against the SMSC simulator (``python -m callcenter.channels.smsc_sim``) run as a
real process speaking SMPP 3.4 over TCP; and the HTTP gateway adapter against a small local HTTP
server. Every wait is for an event (a line from the simulator, a report, a phase) with a
deadline."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callcenter.channels import smpp
from callcenter.channels.messages import DeliveryState, Inbound, Outbound
from callcenter.channels.sms import (
    MAX_HTTP_BODY,
    HttpGatewayPlugin,
    HttpGatewaySettings,
    SmppPlugin,
    SmppSettings,
    redact_url,
)
from callcenter.errors import ChannelError, DeliveryError
from callcenter.sip.certs import ensure_server_cert
from tests.ports import free_port, start_ready

DEADLINE = 20.0
SYSTEM_ID, PASSWORD = "callctr", "s3cr3t"
# 150 Chinese characters: a statement notice
NOTICE = ("尊敬的客户您好，您的证券账户对账单已生成，请登录网上营业厅或手机客户端查看资金、"
          "持仓及成交明细。如有疑问请致电客服热线九五五八八，我们将竭诚为您服务。温馨提示：股市有"
          "风险，投资需谨慎。请妥善保管您的交易密码和资金密码，切勿向他人透露。感谢您一直以来对我"
          "们的信任与支持，生活愉快！示例证券客户服务中心。")
assert len(NOTICE) == 150


def outbound(text: str = NOTICE, to: str = "+8613800138000",
             message_id: str = "msg-sms-0001") -> Outbound:
    return Outbound(message_id=message_id, channel="sms", to=to, template="statement",
                    account="310000000001", data={"text": text},
                    created_at=dt.datetime.now(dt.UTC))


@dataclass
class Sim:
    proc: asyncio.subprocess.Process
    port: int
    out: Path
    lines: asyncio.Queue[str]
    reader: asyncio.Task[None]

    backlog: list[str] = field(default_factory=list)

    async def expect(self, word: str) -> str:
        """The rest of the next stdout line starting with ``word`` (others are kept for later
        calls)."""
        for i, line in enumerate(self.backlog):
            head, _, rest = line.partition(" ")
            if head == word:
                del self.backlog[i]
                return rest
        async with asyncio.timeout(DEADLINE):
            while True:
                line = await self.lines.get()
                head, _, rest = line.partition(" ")
                if head == word:
                    return rest
                self.backlog.append(line)

    def received(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text("utf-8").splitlines()]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), DEADLINE)
        await asyncio.wait_for(self.reader, DEADLINE)


StartSim = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def start_sim(tmp_path: Path) -> AsyncIterator[StartSim]:
    sims: list[Sim] = []

    async def start(*flags: str, port: int = 0, password: str = PASSWORD) -> Sim:
        out = tmp_path / "messages.jsonl"
        proc, ready = await start_ready(
            "-m", "callcenter.channels.smsc_sim", "--port", str(port),
            "--system-id", SYSTEM_ID, "--password", password, "--out", str(out), *flags,
            deadline=DEADLINE)
        assert proc.stdout is not None
        lines: asyncio.Queue[str] = asyncio.Queue()

        async def pump(stream: asyncio.StreamReader) -> None:
            while raw := await stream.readline():
                lines.put_nowait(raw.decode().rstrip("\n"))

        sim = Sim(proc, ready, out, lines, asyncio.create_task(pump(proc.stdout)))
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        await sim.stop()


@dataclass
class Channel:
    plugin: SmppPlugin
    reports: asyncio.Queue[tuple[str, DeliveryState, str, dict[str, Any]]] = field(
        default_factory=asyncio.Queue)
    inbound: asyncio.Queue[Inbound] = field(default_factory=asyncio.Queue)

    async def report(self) -> tuple[str, DeliveryState, str, dict[str, Any]]:
        return await asyncio.wait_for(self.reports.get(), DEADLINE)


MakeChannel = Callable[..., Awaitable[Channel]]


@pytest.fixture
async def make_channel(tmp_path: Path) -> AsyncIterator[MakeChannel]:
    channels: list[Channel] = []

    async def make(port: int, *, bound: bool = True, **overrides: Any) -> Channel:
        values: dict[str, Any] = {
            "host": "127.0.0.1", "port": port, "system_id": SYSTEM_ID, "password": PASSWORD,
            "source_addr": "95588", "response_timeout_s": 5.0, "connect_timeout_s": 5.0,
            "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, "session_wait_s": 5.0,
            "state_db": tmp_path / "sms-receipts.sqlite3"}
        values.update(overrides)
        reports: asyncio.Queue[tuple[str, DeliveryState, str, dict[str, Any]]] = asyncio.Queue()
        inbound: asyncio.Queue[Inbound] = asyncio.Queue()

        async def report_later(message_id: str, state: DeliveryState, reason: str,
                               detail: dict[str, Any]) -> None:
            reports.put_nowait((message_id, state, reason, detail))

        async def publish_inbound(contact: Inbound) -> None:
            inbound.put_nowait(contact)

        plugin = SmppPlugin(SmppSettings(**values), report_later, publish_inbound)
        await plugin.start()
        channel = Channel(plugin, reports, inbound)
        channels.append(channel)
        if bound:
            await plugin.wait_phase("bound", within_s=DEADLINE)
        return channel

    yield make
    for channel in channels:
        await channel.plugin.close()
    stray = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
             and not t.done() and (t.get_name() or "").startswith("smpp-")]
    assert stray == []


# -- SMPP ----------------------------------------------------------------------------------------

async def test_long_chinese_notice_arrives_whole_and_its_receipt_is_processed(
        start_sim: StartSim, make_channel: MakeChannel) -> None:
    sim = await start_sim()
    ch = await make_channel(sim.port)
    delivered = await ch.plugin.deliver(outbound())
    assert delivered.state is DeliveryState.SENT
    assert delivered.detail["parts"] == 3 and len(delivered.detail["smsc_ids"]) == 3

    got = json.loads(await sim.expect("MESSAGE"))
    assert got["text"] == NOTICE
    assert got["parts"] == 3 and got["data_coding"] == 8
    assert got["dest"] == "8613800138000" and got["source"] == "95588"
    assert got["message_ids"] == delivered.detail["smsc_ids"]
    assert sim.received() == [got]  # and it is in the simulator's file

    message_id, state, reason, detail = await ch.report()
    assert (message_id, state, reason) == ("msg-sms-0001", DeliveryState.DELIVERED, "")
    assert detail["smsc_ids"] == delivered.detail["smsc_ids"] and detail["parts"] == 3
    for _ in range(3):
        assert (await sim.expect("RECEIPT")).endswith("DELIVRD ACKED")


async def test_emoji_and_ascii_messages(start_sim: StartSim, make_channel: MakeChannel) -> None:
    sim = await start_sim()
    ch = await make_channel(sim.port)
    text = "股" * 66 + "📈" + "涨停" * 20
    first = await ch.plugin.deliver(outbound(text, message_id="msg-emoji-1"))
    assert first.detail["parts"] == 2
    assert json.loads(await sim.expect("MESSAGE"))["text"] == text
    ascii_text = "Your statement for 2026-11 is ready. " * 5
    second = await ch.plugin.deliver(outbound(ascii_text, to="13800138000",
                                              message_id="msg-ascii-1"))
    got = json.loads(await sim.expect("MESSAGE"))
    assert got["text"] == ascii_text.strip() and got["data_coding"] == 0
    assert got["parts"] == second.detail["parts"] == 2
    assert {(await ch.report())[0] for _ in range(2)} == {"msg-emoji-1", "msg-ascii-1"}


async def test_concurrent_messages_share_the_window(start_sim: StartSim,
                                                    make_channel: MakeChannel) -> None:
    sim = await start_sim()
    ch = await make_channel(sim.port, window=2)
    ids = [f"msg-many-{i:04d}" for i in range(6)]
    texts = {mid: f"{mid}：{NOTICE}" for mid in ids}
    results = await asyncio.gather(*(ch.plugin.deliver(outbound(texts[mid], message_id=mid))
                                     for mid in ids))
    assert all(r.detail["parts"] == 3 for r in results)
    got = {json.loads(await sim.expect("MESSAGE"))["text"] for _ in ids}
    assert got == set(texts.values())
    reports = [await ch.report() for _ in ids]
    assert sorted(r[0] for r in reports) == ids
    assert {r[1] for r in reports} == {DeliveryState.DELIVERED}


async def test_throttled_submit_is_retriable_then_goes_through(
        start_sim: StartSim, make_channel: MakeChannel) -> None:
    sim = await start_sim("--throttle-first", "1")
    ch = await make_channel(sim.port)
    with pytest.raises(DeliveryError) as err:
        await ch.plugin.deliver(outbound())
    assert err.value.retriable and "ESME_RTHROTTLED" in err.value.reason
    assert "part 1/3" in err.value.reason
    await ch.plugin.deliver(outbound())  # the runner's retry
    assert json.loads(await sim.expect("MESSAGE"))["text"] == NOTICE
    assert (await ch.report())[1] is DeliveryState.DELIVERED


async def test_rejected_destination_fails_for_good(start_sim: StartSim,
                                                   make_channel: MakeChannel) -> None:
    sim = await start_sim("--reject-dest", "86139")
    ch = await make_channel(sim.port)
    with pytest.raises(DeliveryError) as err:
        await ch.plugin.deliver(outbound(to="+8613912345678"))
    assert not err.value.retriable and "ESME_RINVDSTADR" in err.value.reason


async def test_undeliverable_receipt_reports_failed(start_sim: StartSim,
                                                    make_channel: MakeChannel) -> None:
    sim = await start_sim("--undeliv-dest", "86137")
    ch = await make_channel(sim.port)
    await ch.plugin.deliver(outbound(to="+8613700000000", message_id="msg-undeliv-1"))
    message_id, state, reason, detail = await ch.report()
    assert (message_id, state) == ("msg-undeliv-1", DeliveryState.FAILED)
    assert "UNDELIV" in reason and "err 001" in reason and detail["stat"] == "UNDELIV"


async def test_bad_number_is_refused_before_the_smsc(make_channel: MakeChannel) -> None:
    ch = await make_channel(free_port(), bound=False, session_wait_s=0.0)
    with pytest.raises(DeliveryError) as err:
        await ch.plugin.deliver(outbound(to="call-me"))
    assert not err.value.retriable and "phone number" in err.value.reason


async def test_smsc_down_is_retriable(make_channel: MakeChannel) -> None:
    port = free_port()  # nothing listens there
    ch = await make_channel(port, bound=False)
    await ch.plugin.wait_phase("down", within_s=DEADLINE)
    with pytest.raises(DeliveryError) as err:
        await ch.plugin.deliver(outbound())
    assert err.value.retriable and f"127.0.0.1:{port}" in err.value.reason


async def test_refused_bind_is_retriable_with_the_status(start_sim: StartSim,
                                                         make_channel: MakeChannel) -> None:
    sim = await start_sim(password="other")
    ch = await make_channel(sim.port, bound=False)
    assert await sim.expect("BIND") == "ESME_RINVPASWD"
    await ch.plugin.wait_phase("down", within_s=DEADLINE)
    with pytest.raises(DeliveryError) as err:
        await ch.plugin.deliver(outbound())
    assert err.value.retriable and "ESME_RINVPASWD" in err.value.reason
    assert PASSWORD not in err.value.reason


async def test_lost_session_is_retriable_and_comes_back(start_sim: StartSim,
                                                        make_channel: MakeChannel) -> None:
    sim = await start_sim()
    ch = await make_channel(sim.port, session_wait_s=0.0)
    await sim.stop()
    await ch.plugin.wait_phase("down", "connecting", within_s=DEADLINE)
    with pytest.raises(DeliveryError) as err:
        await ch.plugin.deliver(outbound())
    assert err.value.retriable and "SMPP" in err.value.reason
    again = await start_sim(port=sim.port)
    await ch.plugin.wait_phase("bound", within_s=DEADLINE)
    await ch.plugin.deliver(outbound())
    assert json.loads(await again.expect("MESSAGE"))["text"] == NOTICE
    assert (await ch.report())[1] is DeliveryState.DELIVERED


async def test_a_late_receipt_is_matched_after_a_restart(start_sim: StartSim,
                                                         make_channel: MakeChannel) -> None:
    sim = await start_sim("--hold-receipts")  # receipts wait for the next bind
    first = await make_channel(sim.port)
    sent = await first.plugin.deliver(outbound(message_id="msg-restart-1"))
    await sim.expect("MESSAGE")
    await first.plugin.close()
    assert first.reports.empty()

    second = await make_channel(sim.port)  # a new process would do the same: same state_db
    message_id, state, _reason, detail = await second.report()
    assert (message_id, state) == ("msg-restart-1", DeliveryState.DELIVERED)
    assert detail["smsc_ids"] == sent.detail["smsc_ids"]


async def test_in_memory_book_cannot_match_after_restart(start_sim: StartSim,
                                                         make_channel: MakeChannel) -> None:
    sim = await start_sim("--hold-receipts")
    first = await make_channel(sim.port, state_db=None)
    await first.plugin.deliver(outbound(message_id="msg-memory-1"))
    await first.plugin.close()
    second = await make_channel(sim.port, state_db=None)
    for _ in range(3):  # acknowledged (nothing to wait for), but not reported
        assert (await sim.expect("RECEIPT")).endswith("ACKED")
    assert second.reports.empty()


async def test_sms_from_a_customer_is_published(start_sim: StartSim,
                                                make_channel: MakeChannel) -> None:
    text = "我想查询一下我的账户余额，" * 8
    sim = await start_sim("--mo", f"8613800138000:{text}")
    ch = await make_channel(sim.port)
    contact = await asyncio.wait_for(ch.inbound.get(), DEADLINE)
    assert (contact.channel, contact.sender, contact.text) == ("sms", "8613800138000", text)


@pytest.fixture
async def quiet_smsc() -> AsyncIterator[Callable[[bool], Awaitable[tuple[int, asyncio.Event]]]]:
    """A minimal in-test SMSC: binds anyone, then answers enquire_link only if told to; its
    event is set once it saw three of them."""
    servers: list[asyncio.Server] = []

    async def start(answer: bool) -> tuple[int, asyncio.Event]:
        seen = asyncio.Event()
        count = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            with contextlib.suppress(asyncio.IncompleteReadError, OSError):
                while True:
                    head = await reader.readexactly(16)
                    frame = head + await reader.readexactly(int.from_bytes(head[:4]) - 16)
                    pdu = smpp.decode(frame)
                    if isinstance(pdu, smpp.BindTransceiver):
                        writer.write(smpp.encode(smpp.response_to(pdu, system_id="Q")))
                    elif isinstance(pdu, smpp.EnquireLink):
                        count += 1
                        if count >= 3:
                            seen.set()
                        if answer:
                            writer.write(smpp.encode(smpp.response_to(pdu)))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1]), seen

    yield start
    for server in servers:
        server.close()


async def test_keepalive_keeps_an_answering_session(
        quiet_smsc: Callable[[bool], Awaitable[tuple[int, asyncio.Event]]],
        make_channel: MakeChannel) -> None:
    port, seen = await quiet_smsc(True)
    ch = await make_channel(port, enquire_link_s=0.05, response_timeout_s=2.0)
    link = ch.plugin._link
    await asyncio.wait_for(seen.wait(), DEADLINE)
    assert ch.plugin.phase == "bound" and ch.plugin._link is link


async def test_keepalive_drops_a_silent_session(
        quiet_smsc: Callable[[bool], Awaitable[tuple[int, asyncio.Event]]],
        make_channel: MakeChannel) -> None:
    port, _seen = await quiet_smsc(False)
    ch = await make_channel(port, enquire_link_s=0.05, response_timeout_s=0.2)
    await ch.plugin.wait_phase("down", within_s=DEADLINE)
    assert "no enquire_link_resp within 0.2s" in ch.plugin.last_error


# -- the HTTP gateway ----------------------------------------------------------------------------

@dataclass
class Gateway:
    url: str
    requests: list[tuple[str, dict[str, str], bytes]]
    answers: list[bytes]


def gateway_handler(gw: Gateway) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                            Awaitable[None]]:
    """A gateway that answers each request on its connection with the next of ``answers``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers["content-length"]))
            gw.requests.append((request_line, headers, body))
            answer = gw.answers.pop(0)
            if answer == b"silence":
                await reader.read()  # until the client gives up
                return
            writer.write(answer)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return handle


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway("", [], [])
    server = await asyncio.start_server(gateway_handler(gw), "127.0.0.1", 0)
    gw.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/sms?src=cc"
    async with server:
        yield gw
        server.close()


def http_plugin(url: str, **overrides: Any) -> HttpGatewayPlugin:
    async def report_later(*_args: Any) -> None:
        raise AssertionError("the HTTP gateway does not report later")

    async def publish_inbound(_contact: Inbound) -> None:
        raise AssertionError("no inbound")

    values: dict[str, Any] = {"url": url, "token": "tok-123", "source": "95588",
                              "timeout_s": 5.0}
    values.update(overrides)
    return HttpGatewayPlugin(HttpGatewaySettings(**values), report_later, publish_inbound)


def http_answer(status: str, body: bytes, *, chunked: bool = False) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    if chunked:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 5]), body[i:i + 5])
                          for i in range(0, len(body), 5))
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def test_http_gateway_sends_json_with_the_token(gateway: Gateway) -> None:
    plugin = http_plugin(gateway.url)
    await plugin.start()
    gateway.answers += [http_answer("200 OK", b'{"id": "gw-77", "status": "queued"}'),
                        http_answer("202 Accepted", b'{"message_id": 9, "status": "delivered"}',
                                    chunked=True)]
    first = await plugin.deliver(outbound())
    assert (first.state, first.detail) == (DeliveryState.SENT,
                                           {"http_status": 200, "gateway_id": "gw-77"})
    request_line, headers, body = gateway.requests[0]
    assert request_line == "POST /v1/sms?src=cc HTTP/1.1"
    assert headers["authorization"] == "Bearer tok-123"
    assert headers["host"] == gateway.url.split("/")[2]
    assert json.loads(body) == {"message_id": "msg-sms-0001", "to": "+8613800138000",
                                "text": NOTICE, "source": "95588"}
    second = await plugin.deliver(outbound())
    assert second.state is DeliveryState.DELIVERED and second.detail["gateway_id"] == "9"
    await plugin.close()


@pytest.mark.parametrize("status, retriable", [("429 Too Many Requests", True),
                                               ("503 Service Unavailable", True),
                                               ("400 Bad Request", False),
                                               ("401 Unauthorized", False)])
async def test_http_gateway_statuses(gateway: Gateway, status: str, retriable: bool) -> None:
    plugin = http_plugin(gateway.url)
    gateway.answers.append(http_answer(status, b'{"error": "no\\nway"}'))
    with pytest.raises(DeliveryError) as err:
        await plugin.deliver(outbound())
    assert err.value.retriable is retriable
    assert err.value.reason.startswith(f"the SMS gateway answered {status}")
    assert "no\\nway" in err.value.reason and "\n" not in err.value.reason


async def test_http_gateway_down_or_silent_is_retriable(gateway: Gateway) -> None:
    with pytest.raises(DeliveryError) as err:
        await http_plugin(f"http://127.0.0.1:{free_port()}/sms").deliver(outbound())
    assert err.value.retriable and "ConnectionRefusedError" in err.value.reason
    gateway.answers.append(b"silence")
    with pytest.raises(DeliveryError) as err:
        await http_plugin(gateway.url, timeout_s=0.3).deliver(outbound())
    assert err.value.retriable and "did not answer within 0.3s" in err.value.reason
    gateway.answers.append(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 99999999\r\n\r\n")
    with pytest.raises(DeliveryError) as err:
        await http_plugin(gateway.url).deliver(outbound())
    assert err.value.retriable and "99999999" in err.value.reason


async def test_http_gateway_refuses_bad_input_before_sending(gateway: Gateway) -> None:
    with pytest.raises(DeliveryError) as err:
        await http_plugin(gateway.url).deliver(outbound(to="12"))
    assert not err.value.retriable
    with pytest.raises(DeliveryError) as err:
        await http_plugin(gateway.url, max_chars=100).deliver(outbound())
    assert not err.value.retriable and "150 characters" in err.value.reason
    assert gateway.requests == []
    with pytest.raises(ValueError, match="http"):
        HttpGatewaySettings(url="ftp://example.com/")
    with pytest.raises(ValueError, match="printable"):
        HttpGatewaySettings(url="http://example.com/", token="a\r\nX-Injected: 1")


async def test_http_gateway_never_logs_its_token_or_url_secrets(
        gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = gateway.url.replace("?src=cc", "?key=k3y-secret")
    plugin = http_plugin(url)
    gateway.answers += [http_answer("200 OK", b'{"id": "gw-1"}'),
                        http_answer("401 Unauthorized", b'{"error": "bad token tok-123"}')]
    assert (await plugin.deliver(outbound())).state is DeliveryState.SENT
    with pytest.raises(DeliveryError) as err:
        await plugin.deliver(outbound())
    await plugin.close()
    assert gateway.requests[1][1]["authorization"] == "Bearer tok-123"
    assert "tok-123" not in err.value.reason and "bad token ***" in err.value.reason
    assert "HTTP Request: POST" in caplog.text  # httpx's own line, with the URL redacted
    assert "/v1/sms?***" in caplog.text
    assert "tok-123" not in caplog.text and "k3y-secret" not in caplog.text
    assert "secret" not in redact_url("https://user:secret@gw.example/sms?key=secret")


async def test_http_gateway_refuses_an_endless_answer(gateway: Gateway) -> None:
    """An endless body is not read to its end; a 2xx still means the gateway took the message
    (sent once: a retry would send it twice), any other status is retried."""
    body = b"x" * (MAX_HTTP_BODY + 10)
    gateway.answers.append(http_answer("503 Service Unavailable", body, chunked=True))
    with pytest.raises(DeliveryError) as err:
        await http_plugin(gateway.url).deliver(outbound())
    assert err.value.retriable and "too long" in err.value.reason
    gateway.answers.append(http_answer("200 OK", body, chunked=True))
    sent = await http_plugin(gateway.url).deliver(outbound())
    assert sent.state is DeliveryState.SENT and sent.detail == {"http_status": 200}


async def test_http_gateway_over_tls_verifies_the_certificate(tmp_path: Path) -> None:
    certs = ensure_server_cert(tmp_path / "tls", ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    gw = Gateway("", [], [http_answer("200 OK", b'{"id": "tls-1"}')])
    server = await asyncio.start_server(gateway_handler(gw), "127.0.0.1", 0, ssl=context)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/sms"
    async with server:
        trusting = http_plugin(url, ca_file=certs.ca)
        await trusting.start()
        sent = await trusting.deliver(outbound())
        await trusting.close()
        assert sent.detail == {"http_status": 200, "gateway_id": "tls-1"}
        stranger = http_plugin(url)  # the system's CAs do not know the sandbox's
        with pytest.raises(DeliveryError) as err:
            await stranger.deliver(outbound())
        await stranger.close()
        assert err.value.retriable and "CERTIFICATE_VERIFY_FAILED" in err.value.reason
        server.close()
    assert len(gw.requests) == 1
    with pytest.raises(ChannelError, match="CA file"):
        await http_plugin(url, ca_file=tmp_path / "missing.pem").start()
