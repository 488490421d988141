"""The e-mail channel against a real SMTP server process (channels/mail_sink.py, aiosmtpd)
with STARTTLS (a self-signed certificate made here by openssl) and AUTH; and its inbound
listener, fed by a real SMTP client (aiosmtplib)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import io
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pypdf
import pytest

from callcenter.channels import render
from callcenter.channels.email import (
    EmailPlugin,
    EmailSettings,
    address_problem,
    check_address,
    smtp_failure,
)
from callcenter.channels.messages import DeliveryState, Inbound, Outbound
from callcenter.errors import DeliveryError
from tests.ports import free_port, ready_port

#: run as a module: the file's own folder holds an ``email.py`` that would shadow the stdlib
SINK = ("-m", "callcenter.channels.mail_sink")
USER, PASSWORD = "clerk", "s3cret-pw"
FROM = "service@example-securities.test"
DEADLINE = 20.0

STATEMENT_DATA: dict[str, Any] = {
    "customer": "张三",
    "as_of": "2026-11-23",
    "cash_balance": "100000.00",
    "cash_available": "85000.50",
    "positions": [{"code": "600000", "name": "浦发银行", "qty": 1000, "last": "8.52"}],
    "fills": [{"time": "09:31:05", "order_id": "O1", "code": "600000", "name": "浦发银行",
               "side": "buy", "qty": 1000, "price": "8.50", "commission": "5.00"}],
}


def outbound(to: str = "zhang.san@example.com", template: str = "statement",
             data: dict[str, Any] | None = None, message_id: str = "msg-0001-abcd",
             lang: str = "zh") -> Outbound:
    return Outbound(message_id=message_id, channel="email", to=to, template=template,
                    lang=lang, account="310000000001", ref="SR20261123001",
                    data=STATEMENT_DATA if data is None else data,
                    created_at=dt.datetime.now(dt.UTC))


def pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("certs")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return cert, key


@dataclass
class Sink:
    port: int
    out: Path

    def received(self) -> list[tuple[EmailMessage, dict[str, Any]]]:
        mails = []
        for path in sorted(self.out.glob("*.eml")):
            mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(mail, EmailMessage)
            mails.append((mail, json.loads(path.with_suffix(".json").read_text())))
        return mails


StartSink = Callable[..., Awaitable[Sink]]


@pytest.fixture
async def start_sink(tmp_path: Path, certs: tuple[Path, Path]) -> AsyncIterator[StartSink]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(*flags: str, tls: str = "starttls", auth: bool = True) -> Sink:
        out = tmp_path / f"sink{len(procs)}"
        args = [*SINK, "--dir", str(out), *flags]
        if tls in ("starttls", "tls"):
            args += ["--cert", str(certs[0]), "--key", str(certs[1])]
        if tls == "tls":
            args.append("--tls")
        if auth:
            args += ["--user", USER, "--password", PASSWORD]
        log = open(tmp_path / f"sink{len(procs)}.log", "wb")  # noqa: SIM115
        proc = await asyncio.create_subprocess_exec(sys.executable, *args,
                                                    stdout=asyncio.subprocess.PIPE, stderr=log)
        log.close()
        procs.append(proc)
        return Sink(await ready_port(proc, DEADLINE), out)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), DEADLINE)


async def _no_report(*_: Any) -> None:
    raise AssertionError("the e-mail channel has no late receipts")


def plugin(port: int, certs: tuple[Path, Path] | None, *, security: str = "starttls",
           password: str = PASSWORD, publish: Callable[[Inbound], Awaitable[None]] | None = None,
           **more: Any) -> EmailPlugin:
    settings = EmailSettings(
        smtp_host="127.0.0.1", smtp_port=port, security=security, username=USER,
        password=password, from_address=FROM, timeout=10, send_timeout=60,
        ca_file=certs[0] if certs else None, **more)

    async def no_inbound(_: Inbound) -> None:
        raise AssertionError("no inbound expected")

    return EmailPlugin(settings, _no_report, publish or no_inbound)


@asynccontextmanager
async def started(mailer: EmailPlugin) -> AsyncIterator[EmailPlugin]:
    """The plugin started, and closed again however the block ends."""
    await mailer.start()
    try:
        yield mailer
    finally:
        await mailer.close()


# -- outbound ---------------------------------------------------------------------------------

async def test_statement_arrives_over_starttls_with_auth_and_the_pdf(
        start_sink: StartSink, certs: tuple[Path, Path]) -> None:
    sink = await start_sink()
    async with started(plugin(sink.port, certs)) as mailer:
        result = await mailer.deliver(outbound())
    assert result.state is DeliveryState.SENT
    assert result.detail["smtp_reply"].startswith("250") and "SINK1" in result.detail["smtp_reply"]
    [(mail, meta)] = sink.received()
    assert meta == {"mail_from": FROM, "rcpt_tos": ["zhang.san@example.com"], "tls": True,
                    "authenticated": True, "login": USER}
    assert mail["Subject"] == "示例证券 对账单 2026年11月23日（账户 ****0001）"
    assert mail["To"] == "zhang.san@example.com"
    assert mail["From"].addresses[0].addr_spec == FROM
    assert mail["From"].addresses[0].display_name == "示例证券 Example Securities"
    assert mail["Message-ID"] == "<msg-0001-abcd@example-securities.test>"
    assert result.detail["message_id"] == mail["Message-ID"]
    assert mail["X-Callcenter-Message-Id"] == "msg-0001-abcd"
    assert mail["X-Callcenter-Ref"] == "SR20261123001"
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "尊敬的张三" in text and "****0001" in text and "310000000001" not in text
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "statement-20261123-****0001.pdf"
    assert attachment.get_content_type() == "application/pdf"
    pdf = attachment.get_content()
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")
    doc = render.statement_from_data(STATEMENT_DATA, kind="statement", account="310000000001")
    assert pdf_pages(pdf) == render.render_document(doc, "zh").pages >= 1
    # the attachment carries its words as text (an independent reader finds them)
    text = pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "对账单" in text and "客户：张三" in text and "****0001" in text
    assert "310000000001" not in text


async def test_confirmations_over_implicit_tls_in_english(
        start_sink: StartSink, certs: tuple[Path, Path]) -> None:
    sink = await start_sink(tls="tls")
    async with started(plugin(sink.port, certs, security="tls")) as mailer:
        await mailer.deliver(outbound(template="confirmations", lang="en"))
    [(mail, _meta)] = sink.received()
    assert mail["Subject"] == ("Example Securities trade confirmations 2026-11-23 "
                               "(account ****0001)")
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "confirmations-20261123-****0001.pdf"
    assert pdf_pages(attachment.get_content()) == 1


async def test_a_notice_has_no_attachment_and_a_resend_keeps_its_message_id(
        start_sink: StartSink, certs: tuple[Path, Path]) -> None:
    sink = await start_sink()
    fill = {"side": "sell", "time": "10:01:05", "name": "平安银行", "code": "000001",
            "qty": 500, "price": "11.2"}
    async with started(plugin(sink.port, certs)) as mailer:
        for _ in range(2):
            await mailer.deliver(outbound(template="fill", data=fill))
    (first, _), (second, _) = sink.received()
    assert first["Message-ID"] == second["Message-ID"] == "<msg-0001-abcd@example-securities.test>"
    assert first["Auto-Submitted"] == "auto-generated"
    assert list(first.iter_attachments()) == []
    body = first.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().strip() == (
        "【示例证券】您的账户 ****0001 于 10:01:05 卖出 平安银行（000001）500 股，"
        "成交价 11.20 元。")


@pytest.mark.parametrize("to", [
    "zhang san@example.com",
    "zhang@example.com\r\nBcc: x@evil.example",
    "张三 <zhang@example.com>",
    "zhang@localhost",
    "zhang@[127.0.0.1]",
    "zhang..san@example.com",
    "zhang@@example.com",
])
async def test_a_wrong_address_fails_not_retriable_without_connecting(
        start_sink: StartSink, certs: tuple[Path, Path], to: str) -> None:
    sink = await start_sink()
    async with started(plugin(sink.port, certs)) as mailer:
        with pytest.raises(DeliveryError, match="bad e-mail address") as caught:
            await mailer.deliver(outbound(to=to))
    assert caught.value.retriable is False
    assert sink.received() == []


async def test_a_refused_recipient_is_not_retriable(
        start_sink: StartSink, certs: tuple[Path, Path]) -> None:
    sink = await start_sink("--refuse-rcpt")
    async with started(plugin(sink.port, certs)) as mailer:
        with pytest.raises(DeliveryError) as caught:
            await mailer.deliver(outbound())
    assert caught.value.retriable is False
    assert "550" in caught.value.reason and "User unknown" in caught.value.reason
    assert sink.received() == []


async def test_a_4xx_is_retriable(start_sink: StartSink, certs: tuple[Path, Path]) -> None:
    sink = await start_sink("--tempfail")
    async with started(plugin(sink.port, certs)) as mailer:
        with pytest.raises(DeliveryError) as caught:
            await mailer.deliver(outbound())
    assert caught.value.retriable is True
    assert "451" in caught.value.reason and "try again later" in caught.value.reason


async def test_a_server_that_is_down_is_retriable(certs: tuple[Path, Path]) -> None:
    async with started(plugin(free_port(), certs)) as mailer:
        with pytest.raises(DeliveryError, match="connection failed") as caught:
            await mailer.deliver(outbound())
    assert caught.value.retriable is True


async def test_a_wrong_password_is_not_retriable(
        start_sink: StartSink, certs: tuple[Path, Path]) -> None:
    sink = await start_sink()
    async with started(plugin(sink.port, certs, password="wrong")) as mailer:
        with pytest.raises(DeliveryError, match="authentication failed: 535") as caught:
            await mailer.deliver(outbound())
    assert caught.value.retriable is False


async def test_a_server_without_starttls_is_not_retriable(
        start_sink: StartSink, certs: tuple[Path, Path]) -> None:
    sink = await start_sink(tls="none", auth=False)
    async with started(plugin(sink.port, certs)) as mailer:
        with pytest.raises(DeliveryError, match="STARTTLS") as caught:
            await mailer.deliver(outbound())
    assert caught.value.retriable is False
    assert sink.received() == []


async def test_an_untrusted_certificate_is_not_retriable(start_sink: StartSink) -> None:
    sink = await start_sink()
    mailer = plugin(sink.port, None)  # the system's CAs: the sink's self-signed cert fails
    async with started(mailer):
        with pytest.raises(DeliveryError, match="certificate") as caught:
            await mailer.deliver(outbound())
    assert caught.value.retriable is False


async def test_missing_document_data_fails_not_retriable_naming_the_key(
        start_sink: StartSink, certs: tuple[Path, Path]) -> None:
    sink = await start_sink()
    mailer = plugin(sink.port, certs)
    data = {k: v for k, v in STATEMENT_DATA.items() if k != "cash_balance"}
    try:
        with pytest.raises(DeliveryError, match="'cash_balance'") as caught:
            await mailer.deliver(outbound(data=data))
    finally:
        await mailer.close()
    assert caught.value.retriable is False
    assert sink.received() == []


def test_addresses() -> None:
    assert address_problem("zhang.san+stmt@example.com") is None
    assert check_address("li@例子.中国") == "li@xn--fsqu00a.xn--fiqs8s"
    assert address_problem("张三@example.com") == (
        "non-ASCII local part (SMTPUTF8) is not supported")
    assert address_problem("a\n@example.com") is not None
    assert address_problem("a@example.123") is not None
    assert address_problem("a@-bad-.example") is not None
    assert address_problem("x" * 65 + "@example.com") is not None


def test_smtp_failures_map_to_retriable_or_not() -> None:
    assert smtp_failure(aiosmtplib.SMTPSenderRefused(421, "busy", FROM)).retriable
    assert not smtp_failure(aiosmtplib.SMTPDataError(554, "spam")).retriable
    assert smtp_failure(ConnectionRefusedError(111, "refused")).retriable
    assert smtp_failure(aiosmtplib.SMTPServerDisconnected("gone")).retriable
    assert smtp_failure(aiosmtplib.SMTPReadTimeoutError("slow")).retriable
    assert not smtp_failure(aiosmtplib.SMTPNotSupported("no STARTTLS")).retriable


def test_settings_refuse_a_password_in_clear_to_a_remote_host() -> None:
    with pytest.raises(ValueError, match="in clear"):
        EmailSettings(smtp_host="smtp.example.com", security="none", username="u",
                      password="p", from_address=FROM)
    with pytest.raises(ValueError, match="from_address"):
        EmailSettings(from_address="not an address")


# -- inbound ----------------------------------------------------------------------------------

@dataclass
class Listener:
    mailer: EmailPlugin
    port: int
    inbox: list[Inbound]
    mailbox: Path


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    inbox: list[Inbound] = []

    async def publish(item: Inbound) -> None:
        inbox.append(item)

    port = free_port()
    mailer = plugin(1, None, publish=publish, inbound_port=port, mailbox_dir=tmp_path / "mbox",
                    max_message_bytes=64 * 1024)
    await mailer.start()
    assert mailer.inbound_address == ("127.0.0.1", port)
    yield Listener(mailer, port, inbox, tmp_path / "mbox")
    await mailer.close()
    with pytest.raises(OSError):  # the listener is gone
        await asyncio.open_connection("127.0.0.1", port)


def customer_mail(to: str = FROM) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "李四 <lisi@example.com>"
    mail["To"] = to
    mail["Subject"] = "咨询：银证转账未到账"
    mail.set_content("您好，我昨天的银证转账还没有到账，请帮忙查一下。\n账户尾号 0001。")
    mail.add_alternative("<p>您好，<b>HTML</b> 版本</p>", subtype="html")
    return mail


async def test_inbound_mail_becomes_a_contact_and_is_stored(listener: Listener) -> None:
    errors, reply = await aiosmtplib.send(customer_mail(), hostname="127.0.0.1",
                                          port=listener.port, sender="lisi@example.com",
                                          timeout=10)
    assert errors == {} and "accepted as" in reply
    [contact] = listener.inbox
    assert contact.channel == "email"
    assert contact.sender == "lisi@example.com"
    assert contact.subject == "咨询：银证转账未到账"
    assert contact.text.startswith("您好，我昨天的银证转账还没有到账")
    assert contact.contact_id in reply
    stored = Path(contact.attachment)
    assert stored.parent == listener.mailbox.absolute() and stored.suffix == ".eml"
    assert [p.name for p in listener.mailbox.iterdir()] == [stored.name]
    parsed = email.message_from_bytes(stored.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "咨询：银证转账未到账"


async def test_inbound_html_only_mail_is_read_as_text(listener: Listener) -> None:
    mail = EmailMessage()
    mail["From"] = "wang@example.com"
    mail["To"] = FROM
    mail["Subject"] = "Statement request"
    mail.set_content("<html><style>p{}</style><p>Please send my<br>statement.</p></html>",
                     subtype="html")
    await aiosmtplib.send(mail, hostname="127.0.0.1", port=listener.port, timeout=10)
    [contact] = listener.inbox
    assert contact.text == "Please send my\nstatement."


async def test_inbound_mail_for_another_address_is_refused(listener: Listener) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
        await aiosmtplib.send(customer_mail(to="someone@example.com"), hostname="127.0.0.1",
                              port=listener.port, timeout=10)
    assert caught.value.recipients[0].code == 550
    assert listener.inbox == [] and list(listener.mailbox.iterdir()) == []


async def test_inbound_mail_too_large_is_refused(listener: Listener) -> None:
    mail = customer_mail()
    mail.add_attachment(b"\0" * (100 * 1024), maintype="application", subtype="octet-stream",
                        filename="big.bin")
    with pytest.raises(aiosmtplib.SMTPResponseException) as caught:
        await aiosmtplib.send(mail, hostname="127.0.0.1", port=listener.port, timeout=10)
    assert caught.value.code == 552
    assert listener.inbox == [] and list(listener.mailbox.iterdir()) == []


async def test_inbound_mail_is_refused_for_now_when_it_cannot_be_published(
        tmp_path: Path) -> None:
    async def broken(_: Inbound) -> None:
        raise ConnectionError("bus down")

    port = free_port()
    mailer = plugin(1, None, publish=broken, inbound_port=port, mailbox_dir=tmp_path / "mbox")
    async with started(mailer):
        with pytest.raises(aiosmtplib.SMTPDataError) as caught:
            await aiosmtplib.send(customer_mail(), hostname="127.0.0.1", port=port, timeout=10)
    assert caught.value.code == 451
    assert list((tmp_path / "mbox").iterdir()) == []


async def test_inbound_listener_offers_starttls(tmp_path: Path,
                                               certs: tuple[Path, Path]) -> None:
    inbox: list[Inbound] = []

    async def publish(item: Inbound) -> None:
        inbox.append(item)

    port = free_port()
    mailer = plugin(1, None, publish=publish, inbound_port=port, mailbox_dir=tmp_path / "mbox",
                    inbound_cert_file=certs[0], inbound_key_file=certs[1])
    async with started(mailer):
        await aiosmtplib.send(customer_mail(), hostname="127.0.0.1", port=port, start_tls=True,
                              cert_bundle=str(certs[0]), timeout=10)
    assert [c.subject for c in inbox] == ["咨询：银证转账未到账"]
